"""Training recipes measured end to end, importable so that they can run in a fresh process
(:func:`helpers.memory.in_fresh_process`): one measurement per process, nothing left over from an
earlier run to hide part of the cost."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from helpers.memory import MemoryMonitor

MIB = 2**20


def _import_tensorflow_quietly() -> None:
    """Import TensorFlow with its C++ start-up log (which ignores TF_CPP_MIN_LOG_LEVEL) hidden."""
    saved = os.dup(2)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
    try:
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def in_memory_fit(x_path: str | Path, y_path: str | Path, n: int, batch_size: int, epochs: int = 1) -> dict:
    """Lesson 01's recipe on the first ``n`` digits: load into RAM, ``astype("float32") / 255``, ``fit``.

    The model is built before the :class:`MemoryMonitor` starts. Returns ``dataset_mb`` (float32
    MiB), ``peak_anon_mb``, ``kernel_mb`` (the process's anonymous memory before the data) and
    ``stages`` (MiB each stage added at its peak: ``load``, ``astype / 255``, ``fit``).
    """
    _import_tensorflow_quietly()
    from helpers.models import digits_cnn

    model = digits_cnn()
    x_disk = np.load(x_path, mmap_mode="r")
    y_disk = np.load(y_path, mmap_mode="r")
    with MemoryMonitor() as mon:
        mon.mark("load")
        x8 = np.array(x_disk[:n])  # what np.load of an n-image file gives
        y = np.array(y_disk[:n])
        mon.mark("astype / 255")
        x = x8.astype("float32") / 255
        mon.mark("fit")
        model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0)
    return {
        "dataset_mb": x.nbytes / MIB,
        "peak_anon_mb": mon.peak_anon_mb,
        "kernel_mb": mon.start.anon_mb,
        "stages": {s.label: s.added_mb for s in mon.stages()},
    }


def from_tensor_slices_cost(x_path: str | Path, y_path: str | Path, n: int, batch_size: int) -> dict:
    """Build ``tf.data.Dataset.from_tensor_slices((x, y))`` from float32 arrays already in RAM and
    read 10 batches; returns ``dataset_mb`` and ``peak_anon_mb`` (above the arrays themselves)."""
    _import_tensorflow_quietly()
    import tensorflow as tf

    x = np.load(x_path, mmap_mode="r")[:n].astype("float32") / 255
    y = np.array(np.load(y_path, mmap_mode="r")[:n])
    with MemoryMonitor() as mon:
        ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)
        for _ in ds.take(10):
            pass
    return {"dataset_mb": x.nbytes / MIB, "peak_anon_mb": mon.peak_anon_mb}


def memmap_fit(x_path: str | Path, y_path: str | Path, n: int, batch_size: int, steps: int | None = None) -> dict:
    """Lesson 02's recipe on the first ``n`` digits: a :class:`MemmapDataset` and ``fit`` (one epoch,
    or ``steps`` steps). Returns ``dataset_mb`` (float32 MiB) and ``peak_anon_mb``."""
    _import_tensorflow_quietly()
    from helpers.memmap_dataset import MemmapDataset
    from helpers.models import digits_cnn

    model = digits_cnn()
    with MemoryMonitor() as mon:
        ds = MemmapDataset(x_path, y_path, batch_size, indices=range(n))
        model.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0)
    return {"dataset_mb": n * int(np.prod(ds.x_shape[1:])) * 4 / MIB, "peak_anon_mb": mon.peak_anon_mb}


def shuffle_buffer_cost(x_path: str | Path, y_path: str | Path, buffer_size: int, batch_size: int,
                        elements: str = "images") -> dict:
    """Lesson 05's shuffle buffer, measured alone: peak anonymous MiB while ``shuffle(buffer_size)``
    fills and its first 5 batches come out.

    ``elements="images"``: single float32 digits streamed from the ``.npy`` pair by path (the source
    holds no data). ``elements="indices"``: ``Dataset.range(buffer_size)``, one integer per element.
    tf.data is warmed up with a tiny buffer before the :class:`MemoryMonitor` starts, so the peak is
    what the buffer adds. Returns ``peak_anon_mb`` and ``bytes_per_element``.
    """
    _import_tensorflow_quietly()
    import tensorflow as tf

    from helpers.tfdata import generator_dataset

    if elements == "images":
        source = generator_dataset(x_path, y_path, 1024).unbatch()
    elif elements == "indices":
        source = tf.data.Dataset.range(buffer_size)
    else:
        raise ValueError(f"elements must be 'images' or 'indices', not {elements!r}")

    def first_batches(size: int) -> None:
        for _ in source.shuffle(size, seed=0).batch(batch_size).take(5):
            pass

    first_batches(10)  # tf.data's threads, the generator's first chunk: not the buffer's cost
    with MemoryMonitor() as mon:
        first_batches(buffer_size)
    return {"peak_anon_mb": mon.peak_anon_mb, "bytes_per_element": mon.peak_anon_mb * MIB / buffer_size}
