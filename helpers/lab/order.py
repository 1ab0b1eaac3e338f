"""Tools to see in what order Keras hands samples to a model (lesson 03).

The trick of the order study this lesson reproduces: feed *sample indices* as the data and use a
model whose output equals its input. Whatever Keras does on the way (queues, worker threads or
processes, shuffling), ``model.predict`` then returns the indices in the order the model saw them.

- :func:`cycling_generator`: the study's generator, cycling 0..n-1 in batches (and its buggy
  twin :func:`cycling_generator_reset`, which empties its cache inside the infinite loop)
- :func:`pooled_generator` and :func:`load_sample`: a generator that "loads" its samples in a
  pool, in order (``imap``) or not (``imap_unordered``)
- :func:`take`: a generator that ends after a given number of batches
- :class:`IndexDataset`: a ``keras.utils.PyDataset`` serving batches of indices; it records which
  batches ``__getitem__`` served, in this process (``calls``) and, across worker processes, in an
  append-only log file (:func:`read_log`)
- :class:`Recorder` and :func:`identity_model`: the model that returns its input, optionally
  recording every batch it receives (to see what ``fit`` feeds it)
- :class:`SlowStep`: a callback that makes each ``predict`` step take a set time, as a real
  model's step does (the identity model's step takes almost no time)

Everything here is module-level so that worker processes can unpickle it under ``spawn`` and
``forkserver`` too (a class defined in a notebook lives in ``__main__``, which a fresh
interpreter cannot import).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np

Batch = tuple[np.ndarray, np.ndarray]


def _column(values: list[int] | np.ndarray) -> np.ndarray:
    """Values as a float32 column (n, 1): the input shape of :func:`identity_model`."""
    return np.asarray(values, dtype="float32").reshape(-1, 1)


def cycling_generator(batch_size: int, n: int = 10, served: list[list[int]] | None = None) -> Iterator[Batch]:
    """The order study's generator: cycles 0, 1, ..., n-1, 0, 1, ... forever, in batches.

    Yields ``(x, y)`` with ``x = y`` = the sample values as a float32 column. The cache of
    pending samples lives *outside* the infinite loop, so a batch may span two passes
    (batch size 7, n 10: ``0..6``, then ``7, 8, 9, 0, 1, 2, 3``). If ``served`` is given, each
    batch's values are appended to it when the batch is handed out (to count read-ahead).
    """
    cache: list[int] = []
    while True:
        for i in range(n):
            cache.append(i)
            if len(cache) == batch_size:
                if served is not None:
                    served.append(list(cache))
                x = _column(cache)
                cache = []
                yield x, x.copy()


def cycling_generator_reset(batch_size: int, n: int = 10, served: list[list[int]] | None = None) -> Iterator[Batch]:
    """The same generator with a classic bug: the cache is emptied *inside* the infinite loop.

    Whatever is left in the cache at the end of a pass is thrown away, so with batch size 7 and
    n 10, samples 7, 8 and 9 are never served.
    """
    while True:
        cache: list[int] = []  # the bug: this line belongs before `while True`
        for i in range(n):
            cache.append(i)
            if len(cache) == batch_size:
                if served is not None:
                    served.append(list(cache))
                x = _column(cache)
                cache = []
                yield x, x.copy()


SLOW_SAMPLE_S = 0.03
"""Seconds :func:`load_sample` takes for an even sample (odd samples are instant)."""


def load_sample(i: int) -> int:
    """Pretend to load sample ``i``: even samples are slow files (30 ms), odd ones instant.

    Unequal load times are what make ``imap_unordered`` hand results back out of order.
    Module-level, so a process pool can use it under ``spawn`` too.
    """
    if i % 2 == 0:
        time.sleep(SLOW_SAMPLE_S)
    return i


def pooled_generator(batch_size: int, pool: Any, ordered: bool, n: int = 10) -> Iterator[Batch]:
    """:func:`cycling_generator` whose samples are loaded in ``pool`` with :func:`load_sample`.

    ``ordered=True`` uses ``pool.imap`` (results in submission order), ``ordered=False`` uses
    ``pool.imap_unordered`` (results as soon as they are ready: the order is lost). ``pool`` is
    a ``multiprocessing.pool.ThreadPool`` or ``multiprocessing.Pool``.
    """
    imap: Callable[..., Iterator[int]] = pool.imap if ordered else pool.imap_unordered
    cache: list[int] = []
    while True:
        for value in imap(load_sample, range(n)):
            cache.append(value)
            if len(cache) == batch_size:
                x = _column(cache)
                cache = []
                yield x, x.copy()


def take(generator: Iterator[Batch], n_batches: int) -> Iterator[Batch]:
    """Yield the first ``n_batches`` batches of ``generator``, then stop.

    A generator *function* (Keras 3 accepts only real generators, not ``itertools.islice``).
    """
    for _, batch in zip(range(n_batches), generator):
        yield batch


class IndexDataset(keras.utils.PyDataset):
    """Batches of the sample indices ``0..n-1``: ``x = y`` = the indices as a float32 column.

    The length is a ceiling, so the last batch may be partial and every index is served once per
    epoch. ``__getitem__`` records the batch index it served:

    - in ``calls`` (a list of this process: complete without workers or with thread workers;
      with process workers it only holds what the parent process read itself),
    - and, if ``log_path`` is given, as a line ``"<pid> <batch index>"`` appended to that file
      when the batch is ready: one ``O_APPEND`` write per batch, so worker processes (fork or
      spawn) can log too; read it back with :func:`read_log`.

    Args:
        n: number of samples.
        batch_size: samples per batch.
        delay_s: seconds that each *even* batch index takes (odd ones are instant), to make
            workers finish batches out of order.
        log_path: optional file to log served batches to (created if missing).
        **kwargs: ``workers``, ``use_multiprocessing``, ``max_queue_size`` for ``PyDataset``.
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        delay_s: float = 0.0,
        log_path: str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if n <= 0 or batch_size <= 0:
            raise ValueError(f"IndexDataset needs n > 0 and batch_size > 0, got n={n}, batch_size={batch_size}")
        self.n = n
        self.batch_size = batch_size
        self.delay_s = delay_s
        self.log_path = None if log_path is None else str(log_path)
        self.calls: list[int] = []

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def indices(self, index: int) -> np.ndarray:
        """The sample indices of batch ``index`` (int64)."""
        if not 0 <= index < len(self):
            raise IndexError(f"batch index {index} out of range for {len(self)} batches")
        return np.arange(index * self.batch_size, min(self.n, (index + 1) * self.batch_size))

    def __getitem__(self, index: int) -> Batch:
        idx = self.indices(index)
        if self.delay_s and index % 2 == 0:
            time.sleep(self.delay_s)
        self.calls.append(index)
        if self.log_path is not None:
            fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, f"{os.getpid()} {index}\n".encode())
            finally:
                os.close(fd)
        x = _column(idx)
        return x, x.copy()


def read_log(path: str | os.PathLike[str]) -> list[tuple[int, int]]:
    """The ``(pid, batch index)`` lines an :class:`IndexDataset` logged, in the order written."""
    p = Path(path)
    if not p.exists():
        return []
    out = []
    for line_no, line in enumerate(p.read_text().splitlines(), 1):
        parts = line.split()
        if len(parts) != 2 or not all(s.isdigit() for s in parts):
            raise ValueError(f"{p}: line {line_no} is not '<pid> <batch index>': {line!r}")
        out.append((int(parts[0]), int(parts[1])))
    return out


class Recorder(keras.layers.Layer):
    """A layer that returns its input and, when run eagerly, records every batch it receives.

    ``batches`` holds one list of ints per batch, in the order the model received them. Graph
    mode only traces the layer (no values), so compile the model with ``run_eagerly=True``:
    :func:`identity_model` does that when given a recorder.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.batches: list[list[int]] = []

    def call(self, x: Any) -> Any:
        try:
            values = keras.ops.convert_to_numpy(x)
        except Exception:  # symbolic tensor (model building or graph tracing): nothing to record
            return x
        self.batches.append(np.rint(values).astype(int).ravel().tolist())
        return x

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape


def identity_model(recorder: Recorder | None = None) -> keras.Model:
    """A compiled model whose output equals its input (one float per sample).

    ``Input((1,))`` then ``Dense(1)`` with weight 1 and bias 0, compiled with plain SGD at
    learning rate 0, so it stays the identity even inside ``fit``. (The study used
    ``Lambda(lambda x: x)``; a Dense layer gives ``fit`` a weight to "train".) With a
    :class:`Recorder`, the recorder comes first and the model runs eagerly so it sees values.
    """
    inputs = keras.Input((1,), name="index")
    x = recorder(inputs) if recorder is not None else inputs
    outputs = keras.layers.Dense(1, kernel_initializer="ones", bias_initializer="zeros", name="identity")(x)
    model = keras.Model(inputs, outputs, name="identity")
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0), loss="mse", run_eagerly=recorder is not None)
    return model


class SlowStep(keras.callbacks.Callback):
    """Sleeps ``seconds`` after every ``predict`` batch: a stand-in for a model whose step takes time.

    The identity model's step is so short that ``predict(steps=2)`` may return before tf.data's
    prefetch thread has run at all. A real model's step takes milliseconds to seconds, and the
    prefetch thread pulls the next batches in the meantime. ``time.sleep`` releases the GIL, so the
    thread that calls the generator can run during the sleep.
    """

    def __init__(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"SlowStep: seconds must be >= 0, got {seconds}")
        super().__init__()
        self.seconds = seconds

    def on_predict_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        time.sleep(self.seconds)


def as_ints(predictions: np.ndarray) -> list[int]:
    """Predictions of :func:`identity_model` as a flat list of ints (the indices it saw)."""
    return np.rint(np.asarray(predictions)).astype(int).ravel().tolist()


# -- how well batches mix the labels (lesson 05's fish routes; data that arrives sorted) ------------
def batch_labels(pipeline: Any, n_batches: int) -> list[np.ndarray]:
    """The labels of the first ``n_batches`` batches of a pipeline of ``(x, y)`` batches: a
    ``PyDataset`` (read by index), a ``tf.data.Dataset`` or any iterable."""
    from helpers.lab.throughput import endless_batches

    out = []
    for _, batch in zip(range(n_batches), endless_batches(pipeline)):
        y = batch[1]
        out.append(np.asarray(y.numpy() if hasattr(y, "numpy") else y).reshape(-1))
    return out


def distinct_per_batch(batches: list[np.ndarray]) -> float:
    """Mean number of distinct labels in a batch."""
    if not batches:
        raise ValueError("no batches")
    return float(np.mean([len(np.unique(b)) for b in batches]))


def label_mixing(batches: list[np.ndarray], labels: Any, rounds: int = 5, seed: int = 0) -> float:
    """How well ``batches`` mix the labels, next to a full shuffle: the mean number of distinct
    labels per batch, divided by that of batches of the same sizes cut from a random permutation
    of all ``labels`` (mean over ``rounds`` permutations).

    About 1.0: as mixed as a full shuffle. Label-sorted data read in order (or through a small
    shuffle buffer) gives batches of one or a few labels: far below 1.
    """
    labels = np.asarray(labels).reshape(-1)
    sizes = [len(b) for b in batches]
    if sum(sizes) > len(labels):
        raise ValueError(f"{sum(sizes)} labels in the batches but only {len(labels)} in the data set")
    ends = np.cumsum(sizes)
    rng = np.random.default_rng(seed)
    full = np.mean([distinct_per_batch(np.split(rng.permutation(labels)[:ends[-1]], ends[:-1]))
                    for _ in range(rounds)])
    return distinct_per_batch(batches) / full
