"""The input routes lesson 05 compares inside ``fit``, built by name so that each one can be
measured in a fresh process (:func:`helpers.memory.in_fresh_process`).

Why a fresh process: TensorFlow keeps the memory a run frees and hands it to the next run, so in
one kernel whichever route runs later looks cheaper than it is (and the first ``fit`` of a model
pays for TensorFlow's own start-up buffers). One route per process measures each from the same
starting point.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from helpers.memory import MemoryMonitor
from helpers.recipes import _import_tensorflow_quietly

DIGIT_ROUTES = ("in memory (float32 arrays)", "PyDataset: MemmapDataset (02)", "tf.data from_generator(path)",
                "tf.data range+numpy_function", "tf.data TFRecord interleave")
FISH_ROUTES = ("in memory (decoded uint8 array)", "PyDataset: ImageFileDataset (04)", "tf.data JPEG map, AUTOTUNE")


def _digits(route: str, scale: Any) -> tuple[Any, Any, dict]:
    """``(data, y, fit_kwargs)`` of a digits route: arrays with ``y``, or a dataset and ``y=None``."""
    import tensorflow as tf

    from helpers import tfdata
    from helpers.config import data_dir
    from helpers.datasets import ensure_digits
    from helpers.memmap_dataset import MemmapDataset

    d, b = ensure_digits(scale, progress=False), scale.batch_size
    if route == DIGIT_ROUTES[0]:  # lesson 01: the whole float32 array in RAM, fit(x, y)
        x = np.load(d.x_path, mmap_mode="r") / np.float32(255)
        return x, np.load(d.y_path), {}
    if route == DIGIT_ROUTES[1]:
        return MemmapDataset(d.x_path, d.y_path, b), None, {}
    # a tf.data Dataset shuffles itself: fit's shuffle=True would only warn
    if route == DIGIT_ROUTES[2]:
        ds = tfdata.generator_dataset(d.x_path, d.y_path, b)
    elif route == DIGIT_ROUTES[3]:
        ds = tfdata.index_dataset(d.x_path, d.y_path, b, num_parallel_calls=tf.data.AUTOTUNE)
    elif route == DIGIT_ROUTES[4]:
        shards = tfdata.read_manifest(data_dir(scale) / "tfdata" / "digits_tfrecord")
        ds = tfdata.tfrecord_dataset(shards, b).prefetch(tf.data.AUTOTUNE)
    else:
        raise ValueError(f"unknown digits route {route!r}; one of {DIGIT_ROUTES}")
    return ds, None, {"shuffle": False}


def _fish(route: str, scale: Any, steps: int) -> tuple[Any, Any, dict]:
    """``(data, None, fit_kwargs)`` of a fish route, long enough for ``steps`` batches."""
    import tensorflow as tf

    from helpers import tfdata
    from helpers.datasets import ensure_fish
    from helpers.image_files import ImageFileDataset, label_of, list_images

    paths = list_images(ensure_fish(scale))
    counts = [float(label_of(p)) for p in paths]
    b, size = scale.batch_size, scale.fish_image_size
    if route == FISH_ROUTES[0]:  # every image decoded once, held as uint8, scaled per batch
        decode_all = tf.data.Dataset.from_tensor_slices([str(p) for p in paths]).map(
            lambda p: tfdata.load_jpeg(p, size), num_parallel_calls=tf.data.AUTOTUNE).batch(512)
        x8 = np.concatenate([x.numpy() for x in decode_all])
        ds = tf.data.Dataset.from_tensor_slices((x8, np.asarray(counts, np.float32))).repeat().batch(b)
        ds = ds.map(lambda x, y: (tf.cast(x, tf.float32) / 255, y)).prefetch(tf.data.AUTOTUNE)
        return ds, None, {"shuffle": False}
    if route == FISH_ROUTES[1]:
        reps = -(-steps * b // len(paths))  # repeat the file list so that the epoch is long enough
        return ImageFileDataset(paths * reps, counts * reps, b, size), None, {}
    if route == FISH_ROUTES[2]:
        return tfdata.jpeg_dataset(paths, counts, b, size).repeat(), None, {"shuffle": False}
    raise ValueError(f"unknown fish route {route!r}; one of {FISH_ROUTES}")


def fit_route(task: str, route: str, scale_name: str, steps: int, warmup: int, rounds: int = 2) -> dict:
    """Build the model, then (inside a :class:`MemoryMonitor`) the route of ``task`` (``"digits"`` or
    ``"fish"``) at the scale ``scale_name``, and time ``fit`` on it ``rounds`` times with the series'
    protocol (:func:`helpers.throughput.time_fit`, ``warmup`` + ``steps`` steps).

    Returns ``samples_per_s`` (the best round: a busy moment of the machine does not decide),
    ``rounds_samples_per_s`` and ``peak_anon_mb``: what building the route and the first round of
    training added to the process (later rounds reuse that memory). Run it with
    :func:`helpers.memory.in_fresh_process`; the data must exist (and, for the TFRecord route, the
    shards of lesson 05).
    """
    _import_tensorflow_quietly()
    from helpers.config import SCALES
    from helpers.models import digits_cnn, fish_counter
    from helpers.throughput import time_fit

    scale = SCALES[scale_name]
    if task not in ("digits", "fish"):
        raise ValueError(f"task must be 'digits' or 'fish', not {task!r}")
    model = digits_cnn() if task == "digits" else fish_counter(scale.fish_image_size)
    speeds = []
    with MemoryMonitor() as mon:
        mon.mark("route + round 1")
        data, y, kwargs = _digits(route, scale) if task == "digits" else _fish(route, scale, warmup + steps + 2)
        for k in range(rounds):
            if k:
                mon.mark(f"round {k + 1}")
            timing = time_fit(model, data, y, batch_size=scale.batch_size, steps=steps, warmup=warmup, **kwargs)
            speeds.append(timing.samples_per_s)
    first = mon.stages()[0]
    return {"samples_per_s": max(speeds), "rounds_samples_per_s": speeds, "peak_anon_mb": first.peak_mb}
