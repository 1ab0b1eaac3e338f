"""The one model per task of the series (lesson 01 explains the digits CNN, lesson 04 the fish
counter; later lessons import them so that every figure is measured on the same model)."""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import layers


def digits_cnn(seed: int = 0) -> keras.Model:
    """A small CNN for 28x28 digit images scaled to [0, 1]; 10 logits; compiled with Adam.

    Input shape (28, 28) float32: the channel axis is added inside the model, so the arrays on
    disk and in every pipeline keep the plain (N, 28, 28) layout.
    """
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input(shape=(28, 28), name="image"),
            layers.Reshape((28, 28, 1)),
            layers.Conv2D(16, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Flatten(),
            layers.Dense(64, activation="relu"),
            layers.Dense(10, name="logits"),
        ],
        name="digits_cnn",
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def fish_counter(image_size: int = 128, seed: int = 0, uint8_input: bool = False,
                 steps_per_execution: int = 1) -> keras.Model:
    """A small CNN that regresses the number of fish in an RGB image scaled to [0, 1]; MSE loss, MAE metric.

    ``uint8_input``: the model takes uint8 images (0-255) and scales them itself (a ``Rescaling``
    layer), so a pipeline sends a quarter of the bytes and, on a GPU, the division runs there.
    The output layer computes in float32 under any dtype policy (under ``mixed_float16`` a float16
    output would round the loss). ``steps_per_execution``: steps per call of the compiled training
    function (fewer calls from Python; callbacks see one batch end per call).
    """
    keras.utils.set_random_seed(seed)
    inputs = ([keras.Input(shape=(image_size, image_size, 3), dtype="uint8", name="image"), layers.Rescaling(1 / 255)]
              if uint8_input else [keras.Input(shape=(image_size, image_size, 3), name="image")])
    model = keras.Sequential(
        [
            *inputs,
            layers.Conv2D(16, 3, activation="relu", padding="same"),
            layers.MaxPooling2D(),
            layers.Conv2D(32, 3, activation="relu", padding="same"),
            layers.MaxPooling2D(),
            layers.Conv2D(64, 3, activation="relu", padding="same"),
            layers.MaxPooling2D(),
            layers.Conv2D(64, 3, activation="relu", padding="same"),
            layers.GlobalAveragePooling2D(),
            layers.Dense(32, activation="relu"),
            layers.Dense(1, name="count", dtype="float32"),
        ],
        name="fish_counter",
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse", metrics=["mae"],
                  steps_per_execution=steps_per_execution)
    return model


def activation_mb(model: keras.Model, batch_size: int) -> float:
    """MiB of the layer outputs of one batch (every layer's output, in its own dtype): what a
    training step keeps for its backward pass, next to the batch itself (lesson 04 sets it beside
    the fit peak). Counted from the model's shapes, not measured.
    """
    per_sample = sum(math.prod(layer.output.shape[1:]) * np.dtype(layer.output.dtype).itemsize
                     for layer in model.layers)
    return batch_size * per_sample / 2**20
