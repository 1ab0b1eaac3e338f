"""Keras callback that records memory per epoch (imports Keras; :mod:`helpers.memory` does not)."""

from __future__ import annotations

import keras

from helpers.memory import MemoryMonitor


class MemoryCallback(keras.callbacks.Callback):
    """Per-epoch memory figures during ``fit``, from one :class:`MemoryMonitor` of the whole run.

    After ``fit``: ``epoch_peak_anon_mb[i]`` and ``epoch_end_anon_mb[i]`` are the highest and the
    last anonymous memory of epoch ``i`` (MiB above the value when training began);
    ``monitor`` holds the whole timeline, with a mark at each epoch end.
    """

    def __init__(self, interval: float = 0.05) -> None:
        super().__init__()
        self.monitor = MemoryMonitor(interval=interval)
        self.epoch_peak_anon_mb: list[float] = []
        self.epoch_end_anon_mb: list[float] = []
        self._epoch_t0 = 0.0

    def on_train_begin(self, logs=None) -> None:
        self.monitor.__enter__()

    def on_epoch_begin(self, epoch, logs=None) -> None:
        self._epoch_t0 = self.monitor.sample().t

    def on_epoch_end(self, epoch, logs=None) -> None:
        self.monitor.mark(f"epoch {epoch + 1}")
        now = self.monitor.samples[-1].t
        self.epoch_peak_anon_mb.append(self.monitor.peak_anon_between(self._epoch_t0, now))
        self.epoch_end_anon_mb.append(self.monitor.end_anon_mb)

    def on_train_end(self, logs=None) -> None:
        self.monitor.__exit__(None, None, None)
