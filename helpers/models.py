"""The one model per task of the series (lesson 01 explains the digits CNN, lesson 04 the fish
counter; later lessons import them so that every figure is measured on the same model)."""

from __future__ import annotations

import keras
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


def fish_counter(image_size: int = 128, seed: int = 0) -> keras.Model:
    """A small CNN that regresses the number of fish in an RGB image scaled to [0, 1]; MSE loss, MAE metric."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input(shape=(image_size, image_size, 3), name="image"),
            layers.Conv2D(16, 3, activation="relu", padding="same"),
            layers.MaxPooling2D(),
            layers.Conv2D(32, 3, activation="relu", padding="same"),
            layers.MaxPooling2D(),
            layers.Conv2D(64, 3, activation="relu", padding="same"),
            layers.MaxPooling2D(),
            layers.Conv2D(64, 3, activation="relu", padding="same"),
            layers.GlobalAveragePooling2D(),
            layers.Dense(32, activation="relu"),
            layers.Dense(1, name="count"),
        ],
        name="fish_counter",
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse", metrics=["mae"])
    return model
