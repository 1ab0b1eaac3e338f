"""Random numbers in worker processes (lesson 06): who shares NumPy's global random state.

A forked worker is a copy of its parent, random state included. Python's ``random`` module
reseeds itself in every forked child (``os.register_at_fork``); NumPy's global state
(``np.random.rand``, ``np.random.randint``, ...) does not, and Keras's ``PyDataset`` pool passes no
seed to its workers. So worker processes forked from a parent that has used NumPy's generator
(``np.random.seed``, ``keras.utils.set_random_seed``) draw the *same* "random" numbers. A spawned
worker, or a forkserver child whose server never used ``numpy.random`` (NumPy 2 loads it on first
use), creates the generator itself, seeded from the operating system: its draws differ, and differ
in every run.

- :class:`DrawsDataset`: a ``PyDataset`` whose every batch draws three numbers in the process that
  computes it (NumPy's global state, Python's ``random``, and a generator seeded by the epoch and
  the batch) and logs them with the process id
- :func:`read_draws` reads that log; :func:`draw_summary` counts distinct draws per source

The fix the series uses (``helpers.pipelines.augment.AugmentedImageDataset``): every random number of a
sample comes from ``np.random.default_rng([seed, epoch, row])``: the same whichever worker computes
it, different for every sample and epoch.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np

SOURCES = ("numpy_global", "python_random", "seeded_by_batch")
HIGH = 2**31  # draws are ints in [0, HIGH)


def seeded_draw(seed: int, epoch: int, index: int) -> int:
    """The draw of batch ``index`` in ``epoch`` from ``np.random.default_rng([seed, epoch, index])``:
    the same in any process, so the training process can compute what a worker should have drawn."""
    return int(np.random.default_rng([seed, epoch, index]).integers(HIGH))


class DrawsDataset(keras.utils.PyDataset):
    """``n_batches`` batches of ``batch_size`` samples (``x = y`` = the batch index, float32).

    ``__getitem__`` draws one number from each of :data:`SOURCES` in the process that runs it and
    appends the line ``"<pid> <epoch> <index> <numpy_global> <python_random> <seeded_by_batch>"``
    to ``log_path`` (one ``O_APPEND`` write, so worker processes of any start method can log).
    ``delay_s`` makes each batch take that long, so that every worker gets batches. ``epoch``
    advances in ``on_epoch_end`` (in the training process; Keras hands each epoch's new workers a
    fresh copy of the dataset).

    Args:
        n_batches, batch_size: the epoch's size.
        log_path: the log file (created if missing).
        seed: the seed of ``seeded_by_batch``.
        delay_s: seconds each batch takes.
        **kwargs: ``workers``, ``use_multiprocessing``, ``max_queue_size`` for ``PyDataset``.
    """

    def __init__(self, n_batches: int, batch_size: int, log_path: str | os.PathLike[str], seed: int = 0,
                 delay_s: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if n_batches <= 0 or batch_size <= 0:
            raise ValueError(f"DrawsDataset needs n_batches > 0 and batch_size > 0, got {n_batches}, {batch_size}")
        self.n_batches, self.batch_size = int(n_batches), int(batch_size)
        self.log_path, self.seed, self.delay_s = str(log_path), int(seed), float(delay_s)
        self.epoch = 0

    def __len__(self) -> int:
        return self.n_batches

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if not 0 <= index < self.n_batches:
            raise IndexError(f"batch {index} of a dataset of {self.n_batches} batches")
        time.sleep(self.delay_s)
        line = (f"{os.getpid()} {self.epoch} {index} {np.random.randint(HIGH)} {random.randrange(HIGH)} "
                f"{seeded_draw(self.seed, self.epoch, index)}\n")
        fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
        x = np.full((self.batch_size, 1), index, np.float32)
        return x, x.copy()

    def on_epoch_end(self) -> None:
        self.epoch += 1


def read_draws(path: str | os.PathLike[str]) -> list[dict[str, int]]:
    """The lines a :class:`DrawsDataset` logged, in the order written: dicts with ``pid``,
    ``epoch``, ``index`` and one key per source of :data:`SOURCES`."""
    p = Path(path)
    rows = []
    for line_no, line in enumerate(p.read_text().splitlines() if p.exists() else [], 1):
        parts = line.split()
        if len(parts) != 3 + len(SOURCES) or not all(s.isdigit() for s in parts):
            raise ValueError(f"{p}: line {line_no} is not "
                             f"'<pid> <epoch> <index> {' '.join(f'<{s}>' for s in SOURCES)}': {line!r}")
        rows.append(dict(zip(("pid", "epoch", "index", *SOURCES), map(int, parts))))
    return rows


def draw_summary(rows: list[dict[str, int]], seed: int = 0) -> dict[str, Any]:
    """What the logged draws show: ``batches``, ``served`` (the distinct ``(epoch, index)`` pairs),
    ``workers`` (distinct pids), ``distinct`` draws of each source, and ``reproducible`` (every
    ``seeded_by_batch`` draw equals :func:`seeded_draw` computed here)."""
    if not rows:
        raise ValueError("no draws logged: did the workers run?")
    return {"batches": len(rows), "served": len({(r["epoch"], r["index"]) for r in rows}),
            "workers": len({r["pid"] for r in rows}),
            "distinct": {s: len({r[s] for r in rows}) for s in SOURCES},
            "reproducible": all(r["seeded_by_batch"] == seeded_draw(seed, r["epoch"], r["index"]) for r in rows)}

