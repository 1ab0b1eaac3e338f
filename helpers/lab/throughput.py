"""Samples per second of an input pipeline, alone and inside ``model.fit``, measured one way.

The protocol of the series: warm up first (tracing, compilation, the first batches, a cold page
cache), then time a fixed number of steps; ``samples/s = samples / seconds``. Comparisons a lesson
states as ratios are measured in the same run, one after the other.
"""

from __future__ import annotations

import multiprocessing
import os
import multiprocessing.pool
import time
from dataclasses import dataclass
from typing import Any, Iterator

import keras


@dataclass(frozen=True)
class Timing:
    """Result of one timed run."""

    samples: int
    seconds: float
    time_to_first_batch_s: float
    """From asking for the first batch to having it (includes any set-up the pipeline does)."""

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else float("nan")


def process_cpu_s() -> float:
    """CPU seconds (user + system) this process has used so far, all its threads together."""
    t = os.times()
    return t.user + t.system


def _batch_size(batch: Any) -> int:
    """Number of samples in a batch: the length of its first array (x, (x, y), or {name: x})."""
    while isinstance(batch, (tuple, list, dict)):
        batch = next(iter(batch.values())) if isinstance(batch, dict) else batch[0]
    return int(batch.shape[0])


def endless_batches(pipeline: Any) -> Iterator[Any]:
    """Endless batches of a PyDataset/Sequence (by index, cycling), a tf.data Dataset or iterable."""
    if hasattr(pipeline, "__getitem__") and hasattr(pipeline, "__len__"):
        n = len(pipeline)
        i = 0
        while True:
            yield pipeline[i % n]
            i += 1
    else:
        while True:
            produced = False
            for batch in pipeline:
                produced = True
                yield batch
            if not produced:
                raise ValueError("the pipeline produced no batch")


def time_pipeline(pipeline: Any, steps: int, warmup: int = 1) -> Timing:
    """Iterate ``warmup + steps`` batches of ``pipeline`` without a model; time the last ``steps``.

    ``pipeline`` is a :class:`keras.utils.PyDataset` (read by index in this process), a
    ``tf.data.Dataset`` or any iterable of batches (re-iterated when it runs out).
    """
    return _time_batches(endless_batches(pipeline), steps, warmup)


def _time_batches(it: Iterator[Any], steps: int, warmup: int) -> Timing:
    """Take ``warmup`` batches from ``it`` (the first one timed apart), then time ``steps`` more."""
    t0 = time.perf_counter()
    next(it)
    first = time.perf_counter() - t0
    for _ in range(warmup - 1):
        next(it)
    samples = 0
    t1 = time.perf_counter()
    for _ in range(steps):
        samples += _batch_size(next(it))
    return Timing(samples, time.perf_counter() - t1, first)


def time_pool(dataset: Any, workers: int, steps: int, warmup: int = 1, processes: bool = False) -> Timing:
    """:func:`time_pipeline` for a PyDataset read by a pool of ``workers`` threads (or processes), as
    Keras reads it with ``workers=``: batches asked for in index order, ``workers`` at a time, no model.

    The batches ``0 .. warmup + steps - 1`` are made once each; the first ``warmup`` are not timed.
    Threads come from ``multiprocessing.pool.ThreadPool`` (what Keras calls ``multiprocessing.dummy.Pool``),
    processes from ``multiprocessing.Pool``, started before the clock starts.
    """
    if warmup < 1 or steps < 1:
        raise ValueError(f"warmup ({warmup}) and steps ({steps}) must be at least 1")
    if warmup + steps > len(dataset):
        raise ValueError(f"warmup + steps = {warmup + steps} batches, the dataset has {len(dataset)}")
    pool_type = multiprocessing.Pool if processes else multiprocessing.pool.ThreadPool
    with pool_type(workers) as pool:
        return _time_batches(pool.imap(dataset.__getitem__, range(warmup + steps)), steps, warmup)


class ThroughputCallback(keras.callbacks.Callback):
    """Samples/s during ``fit``, excluding the first ``warmup_steps`` training steps.

    Timing starts at the end of step ``warmup_steps`` and stops at the end of the last step of
    training, so tracing and the first batches are excluded. Validation is not counted. Steps are
    counted from the batch index Keras passes, so ``steps_per_execution=k`` (one call per k steps)
    counts right; then make ``warmup_steps`` a multiple of k.
    """

    def __init__(self, batch_size: int, warmup_steps: int = 10) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.warmup_steps = warmup_steps
        self._step = 0
        self._t_start: float | None = None
        self._t_last: float | None = None
        self._timed_steps = 0
        self._start_step = 0
        self._epoch_base = 0
        self._t_train_begin = 0.0
        self.time_to_first_step_s = float("nan")
        """From the start of ``fit`` to the end of the first step (set-up, first batch, tracing)."""

    def on_train_begin(self, logs=None) -> None:
        self._t_train_begin = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None) -> None:
        self._epoch_base = self._step

    def on_train_batch_end(self, batch, logs=None) -> None:
        # steps so far from ``batch`` (the epoch's last step done), not from the number of calls:
        # with ``steps_per_execution=k`` Keras calls this once per k steps
        now = time.perf_counter()
        first = self._step == 0
        self._step = self._epoch_base + int(batch) + 1
        if first:
            self.time_to_first_step_s = now - self._t_train_begin
        if self._t_start is None:
            if self._step >= self.warmup_steps:
                self._t_start, self._start_step = now, self._step
        else:
            self._t_last = now
            self._timed_steps = self._step - self._start_step

    @property
    def timing(self) -> Timing:
        if self._t_start is None or self._t_last is None:
            raise RuntimeError(f"fit ran {self._step} steps: at least warmup_steps + 1 = {self.warmup_steps + 1} needed")
        return Timing(self._timed_steps * self.batch_size, self._t_last - self._t_start, self.time_to_first_step_s)

    @property
    def samples_per_s(self) -> float:
        return self.timing.samples_per_s


class CpuThroughputCallback(ThroughputCallback):
    """:class:`ThroughputCallback` that also reads this process's CPU time over the same timed window:
    ``cpu_per_s`` is CPU seconds per second (1.0 = one CPU busy all the time; threads add up)."""

    def __init__(self, batch_size: int, warmup_steps: int = 10) -> None:
        super().__init__(batch_size, warmup_steps)
        self._cpu_start = self._cpu_last = 0.0

    def on_train_batch_end(self, batch, logs=None) -> None:
        timing = self._t_start is not None
        super().on_train_batch_end(batch, logs)
        if self._t_start is not None:
            cpu = process_cpu_s()
            if timing:
                self._cpu_last = cpu
            else:
                self._cpu_start = cpu

    @property
    def cpu_per_s(self) -> float:
        t = self.timing
        return (self._cpu_last - self._cpu_start) / t.seconds if t.seconds > 0 else float("nan")


class FirstStepPerEpoch(keras.callbacks.Callback):
    """Seconds from the start of each epoch to the end of its first step (``seconds``, one per
    epoch): with worker processes, the wait for a new pool's workers to start, every epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []
        self._t_epoch = 0.0
        self._first = False

    def on_epoch_begin(self, epoch, logs=None) -> None:
        self._t_epoch, self._first = time.perf_counter(), True

    def on_train_batch_end(self, batch, logs=None) -> None:
        if self._first:
            self.seconds.append(time.perf_counter() - self._t_epoch)
            self._first = False


def time_fit(model: keras.Model, data: Any, y: Any = None, *, batch_size: int, steps: int,
             warmup: int = 10, **fit_kwargs: Any) -> Timing:
    """Train ``model`` for ``warmup + steps`` steps (one epoch) and time the last ``steps``.

    ``data`` is what ``fit`` takes (arrays with ``y``, a PyDataset, a tf.data Dataset). For
    arrays, ``batch_size`` is passed to ``fit``; for datasets it only counts samples (the dataset's
    own batches must have that size, the last partial batch aside).
    """
    cb = ThroughputCallback(batch_size, warmup)
    kwargs: dict[str, Any] = dict(epochs=1, steps_per_epoch=warmup + steps, verbose=0)
    if y is not None:
        kwargs["batch_size"] = batch_size
    kwargs.update(fit_kwargs)
    kwargs["callbacks"] = list(kwargs.get("callbacks", [])) + [cb]
    model.fit(data, y, **kwargs) if y is not None else model.fit(data, **kwargs)
    return cb.timing

