"""The fit timing protocol and its callback, on a tiny model."""

import keras
import numpy as np

from helpers.lab.throughput import CpuThroughputCallback, FirstStepPerEpoch, ThroughputCallback, time_fit


def _tiny_model() -> keras.Model:
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def test_time_fit_times_only_the_steps_after_the_warm_up():
    x, y = np.zeros((400, 4), "float32"), np.zeros(400, "int64")
    t = time_fit(_tiny_model(), x, y, batch_size=16, steps=7, warmup=3)
    assert t.samples == 7 * 16 and t.seconds > 0 and t.time_to_first_batch_s > 0


def test_throughput_callback_says_when_too_few_steps_ran():
    cb = ThroughputCallback(batch_size=16, warmup_steps=10)
    _tiny_model().fit(np.zeros((32, 4), "float32"), np.zeros(32, "int64"), batch_size=16, verbose=0, callbacks=[cb])
    try:
        cb.timing
    except RuntimeError as exc:
        assert "at least warmup_steps + 1" in str(exc)
    else:
        raise AssertionError("expected a RuntimeError")


def test_first_step_per_epoch_times_each_epoch():
    cb = FirstStepPerEpoch()
    _tiny_model().fit(np.zeros((32, 4), "float32"), np.zeros(32, "int64"), batch_size=16, epochs=3, verbose=0,
                      callbacks=[cb])
    assert len(cb.seconds) == 3 and all(s > 0 for s in cb.seconds)


def test_steps_are_counted_right_with_steps_per_execution():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True), steps_per_execution=4)
    t = time_fit(model, np.zeros((400, 4), "float32"), np.zeros(400, "int64"), batch_size=16, steps=8, warmup=4)
    assert t.samples == 8 * 16 and t.seconds > 0


def test_cpu_throughput_callback_reads_cpu_time_over_the_timed_window():
    import time

    class Busy(keras.callbacks.Callback):   # each step: 20 ms of CPU in this process, then 20 ms asleep
        def on_train_batch_end(self, batch, logs=None):
            t = time.process_time()
            while time.process_time() - t < 0.02:
                pass
            time.sleep(0.02)

    cb = CpuThroughputCallback(batch_size=16, warmup_steps=2)
    _tiny_model().fit(np.zeros((16 * 12, 4), "float32"), np.zeros(16 * 12, "int64"), batch_size=16, verbose=0,
                      callbacks=[Busy(), cb])
    assert cb.timing.samples == 10 * 16
    assert 0.3 < cb.cpu_per_s < 0.9          # about half of each step busy (the model's own step adds a little)
