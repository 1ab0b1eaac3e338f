"""Work measured in a fresh process: the runner, and every recipe the lessons run with it.

Why a fresh process: TensorFlow and Keras keep memory freed by one run and hand it to the next,
so a second measurement in the same process sees a smaller peak than the recipe really costs (and
the first ``fit`` of a model pays for TensorFlow's own start-up buffers). One measurement per
process starts each from the same point. :func:`in_fresh_process` runs any function of this module
(or any importable one) in a new "spawn" process and returns its result.

- the runner, :func:`in_fresh_process` (and :func:`in_fresh_processes` for several calls, their
  imports side by side); every recipe imports TensorFlow with
  :func:`helpers.lab.quiet.import_tensorflow_quietly` (or under :func:`helpers.lab.quiet.quiet_stderr`)
- lesson 01: :func:`in_memory_fit`, :func:`from_tensor_slices_cost`; lesson 02: :func:`memmap_fit`
- any pipeline alone, its first batch and peak: :func:`first_batches` (lessons 05, 06)
- lesson 05: :func:`shuffle_buffer_cost`; the input routes (:data:`DIGIT_ROUTES`, :data:`FISH_ROUTES`)
  built by name (:func:`digit_route`, :func:`fish_route`: the lesson times the same objects alone)
  and timed inside ``fit`` (:func:`fit_route`, round by round over routes: :func:`fit_routes_interleaved`)
- lesson 06: :func:`fit_with_start_methods`, :func:`interrupted_fit`, :func:`draws_in_workers`,
  :func:`tensorflow_after_fork`
- lesson 07 (under a memory limit, with :mod:`helpers.lab.budget`): :data:`OVER_RAM_ROUTES`, :func:`over_ram_baseline`,
  :func:`over_ram_route`, :func:`over_ram_quality`

Everything here imports TensorFlow only when called, so a new process imports this module fast.
"""

from __future__ import annotations

import gc
import multiprocessing
import multiprocessing.pool
import os
import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

import numpy as np

from helpers.config import MIB, SCALES, Scale, data_dir
from helpers.lab.memory import MemoryMonitor
from helpers.lab.quiet import import_tensorflow_quietly, quiet_stderr
from helpers.lab.workers import wait_for_workers_to_exit, worker_processes

T = TypeVar("T")


# -- the runner ---------------------------------------------------------------------------------
def _first_to_kill() -> None:
    """Linux: make this process the out-of-memory killer's first choice (``oom_score_adj`` 1000, which
    any process may raise for itself): a measurement that outgrows the machine's memory is killed,
    not the notebook's kernel that started it. Elsewhere, or where it cannot be written: nothing."""
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
    except OSError:
        pass


def _payload(func: Callable[..., Any], args: Sequence[Any], kwargs: dict) -> bytes:
    """A call for a fresh process, pickled here (what cannot travel fails here, clearly), with this
    process's start method: the child starts its own worker processes (a ``PyDataset``'s pool) the
    way this one would. A process started by "spawn" would otherwise start them by "spawn" too,
    each worker a new interpreter that imports TensorFlow, whatever the start method in use here."""
    method = multiprocessing.get_start_method(allow_none=True) or multiprocessing.get_all_start_methods()[0]  # default
    return pickle.dumps((func, tuple(args), dict(kwargs), method))   # read without fixing this process's method


def _call_and_send(conn: Any, payload: bytes) -> None:
    """Body of :func:`in_fresh_process`'s child: unpickle the call (:func:`_payload`), set the
    parent's start method, and make the call with the child's standard error sent to /dev/null
    (TensorFlow's C++ log, at its import and at its first op, ignores ``TF_CPP_MIN_LOG_LEVEL``; an
    exception comes back through the pipe), and send ``(True, result)`` or ``(False, exception)``."""
    _first_to_kill()
    try:
        with quiet_stderr():
            func, args, kwargs, start_method = pickle.loads(payload)
            multiprocessing.set_start_method(start_method, force=True)
            reply: tuple[bool, Any] = (True, func(*args, **kwargs))
    except Exception as exc:  # noqa: BLE001 - raised again in the parent
        reply = (False, exc)
    try:
        conn.send(reply)
    except Exception as exc:  # noqa: BLE001 - an unpicklable result or exception
        conn.send((False, RuntimeError(f"{type(exc).__name__} sending the result back: {exc}; {reply[1]!r}")))
    conn.close()


class FreshProcessDied(RuntimeError):
    """The process of :func:`in_fresh_process` ended without a result; ``exitcode`` says how
    (-9: killed by SIGKILL, on Linux most often by the out-of-memory killer)."""

    def __init__(self, exitcode: int | None) -> None:
        self.exitcode = exitcode
        how = (" (killed by SIGKILL: on Linux most often the out-of-memory killer, when the machine's memory "
               "ran out)" if exitcode == -9 else "")
        super().__init__(f"the fresh process died without a result (exit code {exitcode}){how}")


def in_fresh_process(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``func(*args, **kwargs)`` in a new Python process ("spawn") and return its result.

    ``func`` must be importable (defined in ``helpers``), and its arguments and result picklable.
    An exception in ``func`` is raised here; a child that dies without replying gives a
    :class:`FreshProcessDied` (a ``RuntimeError``) with its exit code. On Linux the child is the
    out-of-memory killer's first choice: if it outgrows the machine, it dies, not this process.
    The process is not a daemon, so ``func`` may start worker processes of its own
    (``use_multiprocessing=True``), by the start method in use here (fork, spawn or forkserver), as
    this process would. An interrupt here stops the child.
    """
    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    # pickled here, unpickled in the child with TensorFlow's start-up log hidden (see _call_and_send)
    payload = _payload(func, args, kwargs)
    child = ctx.Process(target=_call_and_send, args=(send, payload), name="in_fresh_process")
    child.start()
    send.close()  # only the child writes: recv() ends with EOFError if it dies without replying
    try:
        ok, value = receive.recv()
    except EOFError:
        child.join()
        raise FreshProcessDied(child.exitcode) from None
    except BaseException:  # interrupted here (KeyboardInterrupt): do not leave the child running
        child.terminate()
        child.join()
        raise
    finally:
        receive.close()
    child.join(60)  # it has replied; give its exit (atexit handlers, its own children) a minute
    if child.is_alive():
        child.kill()
        child.join()
    if not ok:
        raise value
    return value


def _import_then_call(conn: Any) -> None:
    """Body of :func:`in_fresh_processes`' children: import TensorFlow and Keras (their start-up log
    hidden), say ``(True, "imported")``, then wait for the pickled call and make it as
    :func:`_call_and_send` does. A parent that stops before this child's turn closes the pipe: the
    child ends without a call."""
    _first_to_kill()
    try:
        with quiet_stderr():
            import keras  # noqa: F401
            import tensorflow  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - raised again in the parent
        conn.send((False, exc))
        conn.close()
        return
    conn.send((True, "imported"))
    try:
        payload = conn.recv_bytes()
    except EOFError:
        return
    _call_and_send(conn, payload)


def _reply_of(child: Any, conn: Any) -> tuple[bool, Any]:
    """The next ``(ok, value)`` a child sends, or :class:`FreshProcessDied` if it ended without."""
    try:
        return conn.recv()
    except EOFError:
        child.join()
        raise FreshProcessDied(child.exitcode) from None


def in_fresh_processes(calls: Sequence[tuple[Callable[..., Any], tuple, dict]], at_once: int | None = None) -> list:
    """Make each ``(func, args, kwargs)`` of ``calls`` as :func:`in_fresh_process` does, in a new process
    of its own, one call after the other in their order; return their results in that order.

    What it saves: each new process pays TensorFlow's import (about 4 s on a 2-CPU machine) before
    its call. Here the processes start ``at_once`` at a time (default: the CPUs this process may use)
    and import TensorFlow and Keras side by side; only when every process of the group has, the
    group's first call runs, then its second...: the imports overlap, the calls never do, so a call
    that times or measures something has the machine to itself, as with :func:`in_fresh_process`.
    On 2 CPUs, N calls pay about N/2 imports instead of N; on 1 CPU, as many as one at a time.

    An exception in a call is raised here, a process that dies gives :class:`FreshProcessDied`; the
    group's other processes are stopped, and the results of earlier calls are lost with it. An
    interrupt stops every process of the group.
    """
    if at_once is None:
        at_once = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if at_once < 1:
        raise ValueError(f"at_once must be at least 1, not {at_once}")
    # pickled here first: a call that cannot be sent fails before any process starts
    payloads = [_payload(func, args, kwargs) for func, args, kwargs in calls]
    ctx = multiprocessing.get_context("spawn")
    results = []
    for first in range(0, len(payloads), at_once):
        group: list[tuple[Any, Any]] = []
        try:
            for _ in payloads[first:first + at_once]:
                here, there = ctx.Pipe()
                child = ctx.Process(target=_import_then_call, args=(there,), name="in_fresh_processes")
                child.start()
                there.close()  # only the child holds its end: recv() here ends with EOFError if it dies
                group.append((child, here))
            for child, here in group:   # every process of the group has imported TensorFlow
                ok, value = _reply_of(child, here)
                if not ok:
                    raise value
            for payload, (child, here) in zip(payloads[first:first + at_once], group):
                here.send_bytes(payload)
                ok, value = _reply_of(child, here)
                child.join(60)  # it has replied; give its exit a minute, as in_fresh_process does
                if not ok:
                    raise value
                results.append(value)
        finally:   # normally every child has ended; after an error or an interrupt, the rest are stopped
            for child, here in group:
                here.close()
                if child.is_alive():
                    child.terminate()
                child.join(10)
                if child.is_alive():
                    child.kill()
                    child.join()
    return results


# -- lessons 01 and 02 ----------------------------------------------------------------------------
def in_memory_fit(x_path: str | Path, y_path: str | Path, n: int, batch_size: int, epochs: int = 1) -> dict:
    """Lesson 01's recipe on the first ``n`` digits: load into RAM, ``astype("float32") / 255``, ``fit``.

    The model is built before the :class:`MemoryMonitor` starts. Returns ``dataset_mb`` (float32
    MiB), ``peak_anon_mb``, ``kernel_mb`` (the process's anonymous memory before the data) and
    ``stages`` (MiB each stage added at its peak: ``load``, ``astype / 255``, ``fit``).
    """
    import_tensorflow_quietly()
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
    import_tensorflow_quietly()
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
    import_tensorflow_quietly()
    from helpers.models import digits_cnn
    from helpers.pipelines.memmap_dataset import MemmapDataset

    model = digits_cnn()
    with MemoryMonitor() as mon:
        ds = MemmapDataset(x_path, y_path, batch_size, indices=range(n))
        model.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0)
    return {"dataset_mb": n * int(np.prod(ds.x_shape[1:])) * 4 / MIB, "peak_anon_mb": mon.peak_anon_mb}


# -- lesson 05 --------------------------------------------------------------------------------------
def shuffle_buffer_cost(x_path: str | Path, y_path: str | Path, buffer_size: int, batch_size: int,
                        elements: str = "images") -> dict:
    """Lesson 05's shuffle buffer, measured alone: peak anonymous MiB while ``shuffle(buffer_size)``
    fills and its first 5 batches come out.

    ``elements="images"``: single float32 digits streamed from the ``.npy`` pair by path (the source
    holds no data). ``elements="indices"``: ``Dataset.range(buffer_size)``, one integer per element.
    tf.data is warmed up with a tiny buffer before the :class:`MemoryMonitor` starts, so the peak is
    what the buffer adds. Returns ``peak_anon_mb`` and ``bytes_per_element``.
    """
    import_tensorflow_quietly()
    import tensorflow as tf

    from helpers.pipelines.tfdata import generator_dataset

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


def _nbytes(batch: Any) -> int:
    """Bytes of a batch: every array or tensor of a tuple (or the single one) it is made of."""
    parts = batch if isinstance(batch, (tuple, list)) else (batch,)
    return sum(int(np.asarray(p).nbytes) for p in parts)


def first_batches(make: Callable[..., Any], *args: Any, batches: int = 3, epochs: int = 0,
                  count_reads: bool = False, **kwargs: Any) -> dict:
    """A pipeline alone, no model, measured the one way of the series (run it with
    :func:`in_fresh_process`): what it costs to build ``make(*args, **kwargs)`` and to serve.

    TensorFlow is imported and tf.data warmed up (a tiny dataset iterated once) first; then, inside a
    :class:`MemoryMonitor`, the pipeline is built and its first batch taken: **first batch** is the
    seconds from the call of ``make`` to holding that batch. The first batch is held while
    ``batches - 1`` more are taken (or, with ``epochs``, while that many complete epochs are read,
    each timed; the first epoch's time starts after its first batch), as a training loop holds the
    batch it trains on. A ``PyDataset`` is read by index in this process, or, when it has
    ``workers > 1`` or ``use_multiprocessing``, by a pool of that many threads (processes) in index
    order, as Keras reads it. ``count_reads``: pass ``read_counter=`` (a ``tf.Variable``) to ``make`` and
    return how many files it read.

    Returns ``first_batch_s``, ``peak_anon_mb`` (above the start, the whole process tree),
    ``batch_mb`` (the first batch's bytes), ``epoch_s`` (a list, with ``epochs``), ``reads``.
    A peak below ``batch_mb`` cannot be true here: the batch is held.
    """
    import_tensorflow_quietly()
    import keras
    import tensorflow as tf

    for _ in tf.data.Dataset.range(8).map(lambda i: i + 1, num_parallel_calls=2).batch(4).prefetch(1):
        pass  # tf.data's thread pools and function tracing: not the pipeline's cost
    if count_reads:
        kwargs["read_counter"] = tf.Variable(0, dtype=tf.int64)
    out: dict[str, Any] = {}
    with MemoryMonitor() as mon:
        t0 = time.perf_counter()
        pipeline = make(*args, **kwargs)
        pool = None
        if isinstance(pipeline, keras.utils.PyDataset):
            workers, processes = max(1, pipeline.workers), bool(pipeline.use_multiprocessing)
            if workers > 1 or processes:
                pool = (multiprocessing.Pool if processes else multiprocessing.pool.ThreadPool)(workers)
                one_epoch = lambda: pool.imap(pipeline.__getitem__, range(len(pipeline)))  # noqa: E731
            else:
                one_epoch = lambda: (pipeline[i] for i in range(len(pipeline)))  # noqa: E731
        else:
            one_epoch = lambda: iter(pipeline)  # noqa: E731
        try:
            it = one_epoch()
            first = next(it)
            out["first_batch_s"] = time.perf_counter() - t0
            out["batch_mb"] = _nbytes(first) / MIB
            if epochs:
                out["epoch_s"] = []
                for _ in range(epochs):
                    t1 = time.perf_counter()
                    for _ in it:
                        pass
                    out["epoch_s"].append(time.perf_counter() - t1)
                    it = one_epoch()
            else:
                for _ in range(batches - 1):
                    next(it)
        finally:
            if pool is not None:
                pool.terminate()
                pool.join()
    out["peak_anon_mb"] = mon.peak_anon_mb
    if count_reads:
        out["reads"] = int(kwargs["read_counter"].numpy())
    return out


DIGIT_ROUTES = ("in memory (float32 arrays)", "PyDataset: MemmapDataset (02)", "tf.data from_generator(path)",
                "tf.data range+numpy_function", "tf.data TFRecord interleave")
"""Lesson 05's digits routes, by name (:func:`digit_route`)."""
FISH_ROUTES = ("in memory (decoded uint8 array)", "PyDataset: ImageFileDataset (04)", "tf.data JPEG map, sequential",
               "tf.data JPEG map, AUTOTUNE", "tf.data cache(filename)")
"""Lesson 05's fish routes, by name (:func:`fish_route`)."""


@dataclass
class Route:
    """An input route, ready for ``fit`` (``data`` with ``y``, or a dataset and ``y=None``)."""

    name: str
    data: Any
    y: Any = None
    batch_size: int = 128
    fit_kwargs: dict = field(default_factory=dict)
    """Extra arguments of ``fit`` (a tf.data Dataset shuffles itself: ``shuffle=False``)."""

    def batches(self) -> Iterable[Any]:
        """What the route serves, to time it alone: the dataset itself, or for arrays in memory
        shuffled batches (indices sorted within a batch, like the streaming routes)."""
        if self.y is None:
            return self.data
        return _shuffled_batches(self.data, self.y, self.batch_size)


def _shuffled_batches(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int = 0) -> Iterator[tuple]:
    order = np.random.default_rng(seed).permutation(len(x))
    for start in range(0, len(x) - batch_size + 1, batch_size):
        idx = np.sort(order[start:start + batch_size])
        yield x[idx], y[idx]


def digit_route(name: str, scale: Scale) -> Route:
    """The digits route ``name`` (one of :data:`DIGIT_ROUTES`) over the scale's ``.npy`` pair (and,
    for the TFRecord route, lesson 05's shards, which must exist)."""
    import tensorflow as tf

    from helpers.datasets import ensure_digits
    from helpers.pipelines import tfdata
    from helpers.pipelines.memmap_dataset import MemmapDataset

    d, b = ensure_digits(scale, progress=False), scale.batch_size
    if name == DIGIT_ROUTES[0]:  # lesson 01: the whole float32 array in RAM, fit(x, y)
        x = np.load(d.x_path, mmap_mode="r") / np.float32(255)
        return Route(name, x, np.load(d.y_path), b)
    if name == DIGIT_ROUTES[1]:
        return Route(name, MemmapDataset(d.x_path, d.y_path, b), batch_size=b)
    if name == DIGIT_ROUTES[2]:
        ds = tfdata.generator_dataset(d.x_path, d.y_path, b)
    elif name == DIGIT_ROUTES[3]:
        ds = tfdata.index_dataset(d.x_path, d.y_path, b, num_parallel_calls=tf.data.AUTOTUNE)
    elif name == DIGIT_ROUTES[4]:
        shards = tfdata.read_manifest(data_dir(scale) / "tfdata" / "digits_tfrecord")
        ds = tfdata.tfrecord_dataset(shards, b).prefetch(tf.data.AUTOTUNE)
    else:
        raise ValueError(f"unknown digits route {name!r}; one of {DIGIT_ROUTES}")
    return Route(name, ds, batch_size=b, fit_kwargs={"shuffle": False})


def fish_route(name: str, scale: Scale, steps: int, cache_file: str | os.PathLike | None = None) -> Route:
    """The fish route ``name`` (one of :data:`FISH_ROUTES`), long enough for ``steps`` batches
    (the datasets repeat; the file-list ``PyDataset`` repeats its list). The cache route needs
    ``cache_file``, the path of tf.data's cache files."""
    if name not in FISH_ROUTES:
        raise ValueError(f"unknown fish route {name!r}; one of {FISH_ROUTES}")
    if name == FISH_ROUTES[4] and cache_file is None:
        raise ValueError(f"{name!r} needs cache_file, the path of tf.data's cache files")
    import tensorflow as tf

    from helpers.datasets import ensure_fish
    from helpers.pipelines import tfdata
    from helpers.pipelines.image_files import ImageFileDataset, label_of, list_images

    paths = list_images(ensure_fish(scale, progress=False))
    counts = [float(label_of(p)) for p in paths]
    b, size = scale.batch_size, scale.fish_image_size
    if name == FISH_ROUTES[0]:  # every image decoded once, held as uint8, scaled per batch
        decode_all = tf.data.Dataset.from_tensor_slices([str(p) for p in paths]).map(
            lambda p: tfdata.load_jpeg(p, size), num_parallel_calls=tf.data.AUTOTUNE).batch(512)
        x8 = tf.constant(np.concatenate([x.numpy() for x in decode_all]))
        y = tf.constant(counts, tf.float32)
        # a new permutation of the indices every epoch (an index costs bytes, an image kilobytes)
        ds = tf.data.Dataset.range(len(paths)).shuffle(len(paths), seed=0, reshuffle_each_iteration=True)
        ds = ds.repeat().batch(b).map(lambda i: (tf.cast(tf.gather(x8, i), tf.float32) / 255, tf.gather(y, i)))
        ds = ds.prefetch(tf.data.AUTOTUNE)
    elif name == FISH_ROUTES[1]:
        reps = -(-steps * b // len(paths))  # repeat the file list so that the epoch is long enough
        return Route(name, ImageFileDataset(paths * reps, counts * reps, b, size), batch_size=b)
    elif name == FISH_ROUTES[2]:
        ds = tfdata.sequential(tfdata.jpeg_dataset(paths, counts, b, size, num_parallel_calls=None,
                                                   prefetch=False)).repeat()
    elif name == FISH_ROUTES[3]:
        ds = tfdata.jpeg_dataset(paths, counts, b, size).repeat()
    else:  # FISH_ROUTES[4]
        ds = tfdata.jpeg_dataset(paths, counts, b, size, cache=cache_file, shuffle_buffer=256).repeat()
    return Route(name, ds, batch_size=b, fit_kwargs={"shuffle": False})


LATER_WARMUP = 2
"""Steps :func:`fit_route` excludes from its later rounds: the model is traced and the data warm by then;
only a new iterator's first batches remain."""


def fit_route(task: str, route: str, scale_name: str, steps: int, warmup: int, rounds: int = 2) -> dict:
    """Build the model, then (inside a :class:`MemoryMonitor`) the route of ``task`` (``"digits"`` or
    ``"fish"``) at the scale ``scale_name``, and time ``fit`` on it ``rounds`` times with the series'
    protocol (:func:`helpers.lab.throughput.time_fit`, ``warmup`` + ``steps`` steps; from round 2 on, at
    most :data:`LATER_WARMUP` steps of warm-up).

    Returns ``samples_per_s`` (the median of the rounds), ``rounds_samples_per_s`` (each round, for
    the spread) and ``peak_anon_mb``: what building the route and the first round of
    training added to the process (later rounds reuse that memory). Run it with
    :func:`in_fresh_process`; the data must exist (and, for the TFRecord route, lesson 05's shards).
    """
    if task not in ("digits", "fish"):
        raise ValueError(f"task must be 'digits' or 'fish', not {task!r}")
    known = DIGIT_ROUTES if task == "digits" else FISH_ROUTES
    if route not in known:
        raise ValueError(f"unknown {task} route {route!r}; one of {known}")
    import_tensorflow_quietly()
    from helpers.lab.throughput import time_fit
    from helpers.models import digits_cnn, fish_counter

    scale = SCALES[scale_name]
    model = digits_cnn() if task == "digits" else fish_counter(scale.fish_image_size)
    speeds = []
    with MemoryMonitor() as mon:
        mon.mark("route + round 1")
        r = digit_route(route, scale) if task == "digits" else fish_route(route, scale, warmup + steps + 2)
        for k in range(rounds):
            if k:
                mon.mark(f"round {k + 1}")
            timing = time_fit(model, r.data, r.y, batch_size=scale.batch_size, steps=steps,
                              warmup=warmup if k == 0 else min(warmup, LATER_WARMUP), **r.fit_kwargs)
            speeds.append(timing.samples_per_s)
    first = mon.stages()[0]
    return {"samples_per_s": float(np.median(speeds)), "rounds_samples_per_s": speeds, "peak_anon_mb": first.peak_mb}


def fit_routes_interleaved(task: str, routes: Sequence[str], scale_name: str, steps: int, warmup: int,
                           rounds: int = 2, windows: int = 1) -> dict[str, dict]:
    """:func:`fit_route` for each of ``routes`` in turn, ``rounds`` times over (round 1 of every route,
    then round 2 of every route, ...), each run in a fresh process (:func:`in_fresh_processes`: one
    at a time, their TensorFlow imports side by side): whatever the machine does meanwhile (other
    load, clock, caches) falls on every route of a round alike, and a ratio of two routes is taken
    round by round.

    Each process times ``windows`` windows of ``steps`` steps one after the other, and its round's
    figure is the fastest window: a pause of the machine (another program, a virtual machine's stolen
    time) only slows a window down, so the fastest is the one it touched least.

    Returns, per route: ``samples_per_s`` (the median of its rounds), ``rounds_samples_per_s`` (in
    round order, aligned across routes), ``rounds_windows_samples_per_s`` (every window of every
    round) and ``peak_anon_mb`` (the largest of its rounds' peaks, each measured in a fresh process)
    with ``rounds_peak_anon_mb``.
    """
    if rounds < 1 or windows < 1:
        raise ValueError(f"rounds ({rounds}) and windows ({windows}) must be at least 1")
    speeds: dict[str, list[float]] = {name: [] for name in routes}
    all_windows: dict[str, list[list[float]]] = {name: [] for name in routes}
    peaks: dict[str, list[float]] = {name: [] for name in routes}
    order = [name for _ in range(rounds) for name in routes]
    replies = in_fresh_processes([(fit_route, (task, name, scale_name, steps, warmup), {"rounds": windows})
                                  for name in order])
    for name, r in zip(order, replies):
        timed = r["rounds_samples_per_s"]
        speeds[name].append(max(timed))
        all_windows[name].append(list(timed))
        peaks[name].append(r["peak_anon_mb"])
    return {name: {"samples_per_s": float(np.median(speeds[name])), "rounds_samples_per_s": speeds[name],
                   "rounds_windows_samples_per_s": all_windows[name],
                   "peak_anon_mb": max(peaks[name]), "rounds_peak_anon_mb": peaks[name]} for name in routes}


# -- lesson 06 --------------------------------------------------------------------------------------
def fit_with_start_methods(methods: Sequence[str], paths: Sequence[str], targets: Sequence[float], out_size: int,
                           batch_size: int, workers: int = 2) -> list[dict]:
    """For each start method in turn: set it, then ``fit`` one epoch of
    :class:`~helpers.pipelines.augment.AugmentedImageDataset` with ``workers`` worker processes. Returns one
    dict per method: ``method``, ``seconds`` (the whole ``fit``), ``time_to_first_batch_s`` (from
    the start of ``fit`` to the end of its first step) and ``workers_left`` (worker processes still
    running after ``fit``).

    The model is traced on one in-memory batch first, so the first step of each ``fit`` waits only
    for the input. Meant for :func:`in_fresh_process`: Keras makes a multiprocessing queue with its
    first pool and keeps it, and a queue made under ``fork`` cannot be sent to ``spawn`` or
    ``forkserver`` workers (the other way round works), so ``fork`` must come last and the process
    must not have made a pool before.
    """
    methods = list(methods)
    if "fork" in methods and methods.index("fork") != len(methods) - 1:
        raise ValueError(f"{methods}: put 'fork' last (a queue made under fork cannot reach spawned workers)")
    with quiet_stderr():  # this process's logs and those of the workers it starts
        import tensorflow as tf

        from helpers.lab.throughput import ThroughputCallback
        from helpers.models import fish_counter
        from helpers.pipelines.augment import AugmentedImageDataset

        model = fish_counter(out_size)
        data = AugmentedImageDataset(paths, targets, batch_size, out_size, workers=workers, use_multiprocessing=True)
        model.fit(tf.data.Dataset.from_tensors(data[0]).repeat(), steps_per_epoch=2, verbose=0)  # trace the model
        results = []
        for method in methods:
            multiprocessing.set_start_method(method, force=True)
            before = worker_processes()
            speed = ThroughputCallback(batch_size, warmup_steps=1)
            t0 = time.perf_counter()
            model.fit(data, epochs=1, verbose=0, callbacks=[speed])
            seconds = time.perf_counter() - t0
            left, _ = wait_for_workers_to_exit(before, timeout=5)
            results.append({"method": multiprocessing.get_start_method(), "seconds": seconds,
                            "time_to_first_batch_s": speed.time_to_first_step_s, "workers_left": left})
    return results


def interrupted_fit(paths: Sequence[str], targets: Sequence[float], out_size: int, batch_size: int,
                    workers: int = 2, stop_at: int = 2, wait_s: float = 3.0) -> dict:
    """A ``fit`` with ``workers`` worker processes that a callback stops with an exception at step
    ``stop_at``, in an epoch longer than Keras's queue of batches. Returns the worker processes
    still running right after, after ``wait_s`` seconds, and after ``gc.collect()``.

    Meant for :func:`in_fresh_process`: the workers it leaves end with that process.
    """
    import gc

    with quiet_stderr():  # this process's logs and those of the workers it starts
        import keras

        from helpers.models import fish_counter
        from helpers.pipelines.augment import AugmentedImageDataset

        class Stop(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                if batch + 1 == stop_at:
                    raise RuntimeError(f"stopped at step {stop_at}")

        model = fish_counter(out_size)
        data = AugmentedImageDataset(paths, targets, batch_size, out_size, workers=workers, use_multiprocessing=True)
        if len(data) <= data.max_queue_size + stop_at:
            raise ValueError(f"{len(data)} batches: use more than max_queue_size + stop_at = "
                             f"{data.max_queue_size + stop_at}")
        before = worker_processes()
        try:
            model.fit(data, epochs=1, verbose=0, callbacks=[Stop()])
            error = ""
        except RuntimeError as exc:
            error = str(exc)
        right_after = len([p for p in worker_processes() if p.pid not in {b.pid for b in before}])
        after_wait, _ = wait_for_workers_to_exit(before, timeout=wait_s)
        gc.collect()
        after_gc, _ = wait_for_workers_to_exit(before, timeout=1.0)
    return {"error": error, "right_after": right_after, "after_wait": after_wait, "after_gc": after_gc,
            "wait_s": wait_s}


def draws_in_workers(method: str, log_path: str, preload: Sequence[str] = (), n_batches: int = 8,
                     epochs: int = 2, workers: int = 2, delay_s: float = 0.05, seed: int = 0) -> dict:
    """``fit`` an identity model for ``epochs`` epochs on :class:`~helpers.lab.seeding.DrawsDataset`
    with ``workers`` worker processes started by ``method`` (``forkserver``: with the fork server
    importing ``preload`` first, :func:`multiprocessing.set_forkserver_preload`). Returns ``rows``
    (the draws the workers logged in ``log_path``, :func:`~helpers.lab.seeding.read_draws`),
    ``parent_batches`` (batches this process read itself: Keras reads the first ones to learn their
    shapes), ``first_step_s`` (one per epoch: the wait for that epoch's workers,
    :class:`~helpers.lab.throughput.FirstStepPerEpoch`) and ``workers_left`` after ``fit``.

    This process seeds NumPy's global generator first (``np.random.seed(seed)``, as
    ``keras.utils.set_random_seed`` does): a training script has used it before its workers start.
    Meant for :func:`in_fresh_process`: the start method and the fork server's preload hold only if
    set before the process's first pool. The model is traced on an in-memory batch first.
    """
    if preload and method != "forkserver":
        raise ValueError(f"preload={list(preload)} is for 'forkserver', not {method!r}")
    multiprocessing.set_start_method(method, force=True)
    if preload:
        multiprocessing.set_forkserver_preload(list(preload))
    with quiet_stderr():  # this process's logs and those of the workers it starts
        from helpers.lab.order import identity_model
        from helpers.lab.seeding import DrawsDataset, read_draws
        from helpers.lab.throughput import FirstStepPerEpoch

        np.random.seed(seed)
        model = identity_model()
        model.fit(np.zeros((2, 1), np.float32), np.zeros((2, 1), np.float32), verbose=0)  # trace the model
        data = DrawsDataset(n_batches, 1, log_path, seed=seed, delay_s=delay_s, workers=workers,
                            use_multiprocessing=True)
        before = worker_processes()
        starts = FirstStepPerEpoch()
        model.fit(data, epochs=epochs, verbose=0, callbacks=[starts])
        left, _ = wait_for_workers_to_exit(before, timeout=5)
    rows = read_draws(log_path)
    return {"method": method, "preload": list(preload), "rows": [r for r in rows if r["pid"] != os.getpid()],
            "parent_batches": sum(r["pid"] == os.getpid() for r in rows), "first_step_s": starts.seconds,
            "workers_left": left}


def _tensorflow_op(size: int) -> float:
    import tensorflow as tf

    return float(tf.reduce_sum(tf.linalg.matmul(tf.ones((size, size)), tf.ones((size, size)))))


def _child_runs_tensorflow(conn: Any, size: int) -> None:
    conn.send(("threads", len(os.listdir("/proc/self/task"))))
    conn.send(("result", _tensorflow_op(size)))


def tensorflow_after_fork(sizes: Sequence[int] = (64, 1024), timeout_s: float = 5.0) -> dict:
    """Run a TensorFlow op here (which starts TensorFlow's thread pools), then, for each of
    ``sizes``, fork a child that multiplies two ``size x size`` matrices with TensorFlow. Returns
    ``parent_threads`` (this process's threads) and ``runs``, one dict per size: ``size``,
    ``child_threads`` (a fork copies only the thread that forks) and ``outcome``: ``"ran"``,
    ``"hung"`` (no answer within ``timeout_s``: the child is killed) or ``"died"`` (with its
    ``exitcode``), and ``seconds``. A small product runs on the calling thread; a large one is
    split over TensorFlow's thread pool, whose threads the child does not have.

    Linux only (``fork`` and ``/proc``). Meant for :func:`in_fresh_process`: a child that hangs is
    killed, and nothing of it outlives the call.
    """
    with quiet_stderr():
        _tensorflow_op(max(sizes))
        parent_threads = len(os.listdir("/proc/self/task"))
        ctx = multiprocessing.get_context("fork")
        runs = []
        for size in sizes:
            receive, send = ctx.Pipe(duplex=False)
            child = ctx.Process(target=_child_runs_tensorflow, args=(send, size), daemon=True)
            t0 = time.perf_counter()
            child.start()
            send.close()
            run: dict[str, Any] = {"size": size, "child_threads": None}
            try:
                while receive.poll(max(0.0, timeout_s - (time.perf_counter() - t0))):
                    key, value = receive.recv()
                    if key == "threads":
                        run["child_threads"] = value
                    else:
                        run["outcome"] = "ran"
                        break
                else:
                    run["outcome"] = "hung"
            except EOFError:  # the child ended without sending its result
                child.join(5)
                run.update(outcome="died", exitcode=child.exitcode)
            finally:
                run["seconds"] = time.perf_counter() - t0
                receive.close()
                if child.is_alive():
                    child.kill()
                child.join()
            runs.append(run)
    return {"parent_threads": parent_threads, "timeout_s": timeout_s, "runs": runs}

# -- lesson 07 --------------------------------------------------------------------------------------
OVER_RAM_ROUTES = {
    "memmap, read-ahead (lesson 02 as it was)": dict(readahead=True),
    "memmap, MADV_RANDOM": dict(),
    "memmap, MADV_RANDOM, 4 worker threads": dict(workers=4),
    "block shuffling, window_mb=64": dict(window_mb=64),
    "in order (shuffle=False), read-ahead": dict(shuffle=False),
    "in order (shuffle=False), no read-ahead": dict(shuffle=False, readahead=False),
}
"""Lesson 07's streaming routes over a file larger than the page cache: ``MemmapDataset``'s arguments."""
TFRECORD_ROUTE = "TFRecord shards + interleave + shuffle(2048)"
"""Lesson 07's tf.data route: the file's rows as TFRecord shards, read sequentially (``shards_dir``)."""


def _over_ram_dataset(route: str, x_path: str, y_path: str, batch_size: int, seed: int = 0,
                      n_rows: int | None = None, shards_dir: str | None = None) -> Any:
    """The dataset of a lesson-07 route: a ``MemmapDataset`` (:data:`OVER_RAM_ROUTES`) or, for
    :data:`TFRECORD_ROUTE`, lesson 05's TFRecord reader over the shards in ``shards_dir``."""
    if route == TFRECORD_ROUTE:
        from helpers.pipelines import tfdata

        if shards_dir is None:
            raise ValueError(f"{route!r} needs shards_dir, the folder of the TFRecord shards")
        return tfdata.tfrecord_dataset(tfdata.read_manifest(shards_dir), batch_size, seed=seed)
    from helpers.pipelines.memmap_dataset import MemmapDataset

    return MemmapDataset(x_path, y_path, batch_size, seed=seed, indices=None if n_rows is None else range(n_rows),
                         **OVER_RAM_ROUTES[route])


def tfdata_paths(shards_dir: str | None) -> list[Path]:
    """The shard files of lesson 07's TFRecord route (none without ``shards_dir``)."""
    if shards_dir is None:
        return []
    from helpers.pipelines.tfdata import read_manifest

    return list(read_manifest(shards_dir).paths)


def _first_labels(ds: Any, n_batches: int) -> list[np.ndarray]:
    """The labels of the first ``n_batches`` batches of a route, in the order it serves them."""
    if hasattr(ds, "batch_indices"):
        y = np.load(ds.y_path, mmap_mode="r")
        return [np.asarray(y[ds.batch_indices(i)]) for i in range(min(n_batches, len(ds)))]
    return [np.asarray(yb) for _, yb in ds.take(n_batches)]


def _read_bytes() -> int:
    with open("/proc/self/io") as f:
        return int(next(line for line in f if line.startswith("read_bytes")).split()[1])


class _PageDropper:
    """Drops the page cache of a route's files every ``every`` batches: the fallback of lesson 07
    where no memory cgroup can be made. Pages still mapped by a live memmap are not dropped by
    ``posix_fadvise``, so the memmap's pages are released first (``madvise(MADV_DONTNEED)``)."""

    def __init__(self, ds: Any, paths: Sequence[str], every: int) -> None:
        import threading

        self.ds, self.paths, self.every, self.count = ds, list(paths), int(every), 0
        self._lock = threading.Lock()

    def tick(self) -> None:
        """One batch served; every ``every`` batches, drop what was read."""
        import mmap

        from helpers.lab import budget

        with self._lock:
            self.count += 1
            if not self.every or self.count % self.every:
                return
            mapping = getattr(getattr(self.ds, "_x", None), "_mmap", None)
            if mapping is not None and hasattr(mmap, "MADV_DONTNEED"):
                mapping.madvise(mmap.MADV_DONTNEED)
            for path in self.paths:
                budget.evict(path)


class _Dropping:
    """A PyDataset's batches by index, each served through :meth:`_PageDropper.tick`."""

    def __init__(self, ds: Any, dropper: _PageDropper) -> None:
        self.ds, self.dropper = ds, dropper

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, index: int) -> Any:
        batch = self.ds[index]
        self.dropper.tick()
        return batch


def _dropping_iter(ds: Any, dropper: _PageDropper) -> Iterator[Any]:
    """A tf.data Dataset's batches, each followed by :meth:`_PageDropper.tick` (endless)."""
    while True:
        for batch in ds:
            yield batch
            dropper.tick()


def over_ram_route(route: str, x_path: str, y_path: str, batch_size: int, alone_batches: int, steps: int,
                   warmup: int, mixing_batches: int = 40, n_rows: int | None = None,
                   shards_dir: str | None = None, evict_every: int = 0, fit_windows: int = 1) -> dict:
    """One route of lesson 07 (:data:`OVER_RAM_ROUTES`, :data:`TFRECORD_ROUTE`, or ``"in memory
    (lesson 01)"``), in this (fresh, usually memory-limited) process: the digits CNN is built first
    (the baseline), then inside a :class:`MemoryMonitor` the route is read alone (``alone_batches``
    batches from the start of an epoch) and trained on (``warmup + steps`` steps,
    ``fit(shuffle=False)``: the dataset orders itself; Keras's shuffle of batch indices would scatter
    the block windows).

    Returns ``baseline_anon_mb`` (TensorFlow and the model), ``alone_rows_per_s``, ``fit_samples_per_s``,
    ``read_bytes_per_row_alone`` / ``_fit`` (bytes fetched from storage per row served),
    ``peak_anon_mb`` (above the baseline), ``label_mixing`` (distinct labels per batch over the first
    ``mixing_batches`` batches, ÷ a full shuffle's). ``n_rows``: serve only the first rows of the file
    (a smaller data set from the same file). ``evict_every``: where no limit holds the page cache
    down, drop the files' pages every that many batches (0: never). ``fit_windows``: time ``fit`` that
    many times one after the other, each in a new epoch of the dataset (a new order: other rows than
    the ones just read and cached; later windows warm up :data:`LATER_WARMUP` steps) and report the
    fastest as ``fit_samples_per_s``, every window in ``fit_windows_samples_per_s``: a pause of the
    machine only slows a window down. Only the shuffled ``MemmapDataset`` routes draw a new order.
    """
    if fit_windows < 1:
        raise ValueError(f"fit_windows must be at least 1, not {fit_windows}")
    shuffled = [name for name, kwargs in OVER_RAM_ROUTES.items() if kwargs.get("shuffle", True)]
    if fit_windows > 1 and route not in shuffled:
        raise ValueError(f"{route!r}: fit_windows > 1 needs a shuffled MemmapDataset route (one of {shuffled}), "
                         "whose next epoch reads rows in a new order")
    import_tensorflow_quietly()
    from helpers.lab.memory import snapshot
    from helpers.lab.order import label_mixing
    from helpers.lab.throughput import time_fit, time_pipeline, time_pool
    from helpers.models import digits_cnn

    model = digits_cnn()
    out: dict[str, Any] = {"baseline_anon_mb": snapshot().anon_mb}
    with MemoryMonitor() as mon:
        if route == "in memory (lesson 01)":
            x = np.load(x_path).astype("float32") / 255   # lesson 01's recipe: the whole file in RAM
            out["fit_samples_per_s"] = time_fit(model, x, np.load(y_path), batch_size=batch_size, steps=steps,
                                                warmup=warmup).samples_per_s
        else:
            ds = _over_ram_dataset(route, x_path, y_path, batch_size, n_rows=n_rows, shards_dir=shards_dir)
            y_all = np.load(y_path, mmap_mode="r")
            labels = _first_labels(ds, mixing_batches)
            out["label_mixing"] = label_mixing(labels, y_all[:n_rows] if n_rows else y_all)
            workers = OVER_RAM_ROUTES.get(route, {}).get("workers", 1)
            files = [str(p) for p in tfdata_paths(shards_dir)] if route == TFRECORD_ROUTE else [x_path]
            dropper = _PageDropper(ds, files, evict_every)
            served = ds if not evict_every else _Dropping(ds, dropper) if hasattr(ds, "batch_indices") \
                else _dropping_iter(ds, dropper)
            r0 = _read_bytes()
            if workers > 1:
                alone = time_pool(served, workers=workers, steps=alone_batches, warmup=2)
            else:
                alone = time_pipeline(served, steps=alone_batches, warmup=2)
            out["alone_rows_per_s"] = alone.samples_per_s
            out["read_bytes_per_row_alone"] = (_read_bytes() - r0) / ((alone_batches + 2) * batch_size)
            if hasattr(ds, "on_epoch_end"):
                ds.on_epoch_end()   # a new epoch: fit does not get the rows just read
            r0 = _read_bytes()
            import keras

            drop = [keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs=None: dropper.tick())] if evict_every else []
            windows, trained = [], 0
            for k in range(fit_windows):
                if k:
                    gc.collect()        # the last window's pipeline (Keras's adapter, its generator) goes first
                    ds.on_epoch_end()   # a new order: the next window reads other rows, not the cached ones
                w = warmup if k == 0 else min(warmup, LATER_WARMUP)
                windows.append(time_fit(model, ds, batch_size=batch_size, steps=steps, warmup=w,
                                        shuffle=False, callbacks=drop).samples_per_s)
                trained += steps + w
            out["fit_samples_per_s"], out["fit_windows_samples_per_s"] = max(windows), windows
            out["read_bytes_per_row_fit"] = (_read_bytes() - r0) / (trained * batch_size)
    out["peak_anon_mb"] = mon.peak_anon_mb
    return out


def over_ram_quality(route: str, x_path: str, y_path: str, test_x_path: str, test_y_path: str, batch_size: int,
                     steps: int, seeds: Sequence[int] = (0, 1, 2), shards_dir: str | None = None) -> dict:
    """What a route's order does to training (lesson 07): for each seed, a new digits CNN trained
    ``steps`` steps on the route (:data:`OVER_RAM_ROUTES`, shuffled with that seed), then evaluated
    on the held-out digits. No limit is needed: the order, not the disk, decides the result.

    Returns ``loss`` and ``accuracy`` (one per seed) and ``label_mixing`` of the first 40 batches.
    """
    import_tensorflow_quietly()
    from helpers.lab.order import label_mixing
    from helpers.models import digits_cnn

    tx = np.load(test_x_path).astype("float32") / 255
    ty = np.load(test_y_path)
    y_all = np.load(y_path, mmap_mode="r")
    out: dict[str, Any] = {"loss": [], "accuracy": []}
    for seed in seeds:
        model = digits_cnn(seed)
        ds = _over_ram_dataset(route, x_path, y_path, batch_size, seed=seed, shards_dir=shards_dir)
        if "label_mixing" not in out:
            out["label_mixing"] = label_mixing(_first_labels(ds, 40), y_all)
        model.fit(ds, epochs=1, steps_per_epoch=steps, shuffle=False, verbose=0)
        loss, accuracy = model.evaluate(tx, ty, batch_size=1024, verbose=0)
        out["loss"].append(float(loss))
        out["accuracy"].append(float(accuracy))
    return out


def over_ram_baseline(batch_size: int = 128, fits: int = 2) -> float:
    """What a lesson-07 child holds before any data: TensorFlow imported, the digits CNN built and
    trained a few steps on zeros (its working memory), ``fits`` times, each through a new
    ``PyDataset`` as the routes are trained (Keras's ``PyDataset`` adapter and a second ``fit``
    hold memory of their own: about 7 MiB more at ci with Keras 3.13 than one fit on arrays), as
    anonymous MiB of this process. Run it under a generous limit: the cgroup's peak is the baseline."""
    import_tensorflow_quietly()
    import keras

    from helpers.lab.memory import snapshot
    from helpers.models import digits_cnn

    class Zeros(keras.utils.PyDataset):
        """Four batches of zeros, shaped as the digits."""

        def __len__(self) -> int:
            return 4

        def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
            return np.zeros((batch_size, 28, 28), np.float32), np.zeros(batch_size, np.uint8)

    model = digits_cnn()
    for _ in range(fits):
        model.fit(Zeros(), epochs=1, verbose=0, shuffle=False)
    return snapshot().anon_mb
