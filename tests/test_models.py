"""The fish counter's options for a GPU: uint8 input scaled inside, a float32 output, steps per call."""

import keras
import numpy as np

from helpers.models import fish_counter


def test_uint8_input_gives_the_same_output_as_float_input_scaled_outside():
    images = np.random.default_rng(0).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    scaled_inside = fish_counter(16, uint8_input=True)
    scaled_outside = fish_counter(16)
    assert scaled_inside.inputs[0].dtype == "uint8"
    np.testing.assert_allclose(scaled_inside.predict(images, verbose=0),
                               scaled_outside.predict(images.astype(np.float32) / 255, verbose=0), rtol=1e-5, atol=1e-6)


def test_the_output_stays_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = fish_counter(16, steps_per_execution=4)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.layers[0].compute_dtype == "float16" and model.outputs[0].dtype == "float32"


def test_activation_mb_counts_every_layer_output_of_a_batch():
    from helpers.models import activation_mb
    model = fish_counter(16)
    # conv 16x16x16, pool 8x8x16, conv 8x8x32, pool 4x4x32, conv 4x4x64, pool 2x2x64, conv 2x2x64, gap 64, dense 32, 1
    floats = 16*16*16 + 8*8*16 + 8*8*32 + 4*4*32 + 4*4*64 + 2*2*64 + 2*2*64 + 64 + 32 + 1
    assert activation_mb(model, 10) == 10 * floats * 4 / 2**20
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        half = fish_counter(16)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert activation_mb(half, 10) < activation_mb(model, 10)   # float16 outputs, the float32 output layer
