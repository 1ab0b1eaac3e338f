"""tf.data routes for a .npy memmap and for JPEGs, and TFRecord shards. Needs NumPy, TensorFlow; copy alone.

The building blocks of lesson 05: stream the digit memmap and the fish JPEGs without copies.

- :func:`trap_dataset`: the trap, ``from_generator(batches_of, args=[memmap, ...])``, which copies the
  array into a tensor before the first batch
- :func:`memmap_batches` / :func:`generator_dataset`: ``from_generator`` fed a **path** (the memmap
  is opened inside the generator), not the array (which ``from_generator`` would copy into a tensor)
- :class:`RowReader` / :func:`index_dataset`: ``Dataset.range(n) -> shuffle -> batch ->
  map(tf.numpy_function(read sorted rows))``: a full per-epoch shuffle of indices, rows read from a
  memmap opened lazily by path (the Python function holds the GIL)
- :func:`write_tfrecord_shards` / :func:`tfrecord_dataset`: TFRecord shards written chunk by chunk
  from the memmap (temporary names, renamed when full, a manifest written last), read back with
  ``interleave``; :func:`write_jpeg_shards` / :func:`parse_jpeg_example`: the fish JPEGs' bytes,
  count and id in shards shuffled once at write time (lesson 08 shards them across trainers)
- :func:`jpeg_dataset`: paths + labels -> ``tf.io.read_file`` -> ``tf.io.decode_jpeg`` -> resize in
  ``map(num_parallel_calls=...)`` (TensorFlow ops: no GIL) -> [cache] -> batch -> prefetch

Every digits pipeline yields ``(x, y)`` batches with ``x`` float32 in [0, 1] of shape (b, 28, 28) and
``y`` uint8 labels, like the in-memory arrays and ``MemmapDataset`` of lessons 01-02; the fish pipeline
yields float32 images in [0, 1] and float32 counts, like ``ImageFileDataset`` of lesson 04.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE
MANIFEST = "shards.json"
"""Written last by :func:`write_tfrecord_shards`: its presence marks a complete shard set."""


def _str(path: str | bytes | os.PathLike) -> str:
    """A path as ``str`` (``from_generator`` and ``numpy_function`` hand strings over as bytes)."""
    return path.decode() if isinstance(path, (bytes, np.bytes_)) else os.fspath(path)


def _open_pair(x_path: str | bytes | os.PathLike, y_path: str | bytes | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Open ``x.npy``/``y.npy`` as read-only memmaps and check that they belong together."""
    x = np.load(_str(x_path), mmap_mode="r")
    y = np.load(_str(y_path), mmap_mode="r")
    if x.ndim != 3 or x.dtype != np.uint8 or y.ndim != 1 or len(y) != len(x):
        raise ValueError(f"{_str(x_path)} {x.shape} {x.dtype} and {_str(y_path)} {y.shape} {y.dtype}: "
                         "expected uint8 images (N, H, W) and N labels")
    return x, y


def _digit_signature(height: int = 28, width: int = 28) -> tuple[tf.TensorSpec, tf.TensorSpec]:
    return (tf.TensorSpec((None, height, width), tf.float32), tf.TensorSpec((None,), tf.uint8))


# -- 0. the trap: from_generator fed the memmaps --------------------------------------------------
def batches_of(x: np.ndarray, y: np.ndarray, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The generator of the StackOverflow question: batches of the arrays it is given, scaled to [0, 1]."""
    for start in range(0, len(x), batch_size):
        yield x[start:start + batch_size].astype("float32") / 255, y[start:start + batch_size]


def trap_dataset(x_path: str | os.PathLike, y_path: str | os.PathLike, batch_size: int) -> tf.data.Dataset:
    """The trap, as the question wrote it: the **memmaps** passed in ``args``.
    ``from_generator`` converts every arg to a tensor first: the whole array is copied into RAM."""
    x, y = _open_pair(x_path, y_path)
    return tf.data.Dataset.from_generator(batches_of, args=[x, y, batch_size],
                                          output_signature=_digit_signature(*x.shape[1:]))


# -- 1. from_generator, fed a path --------------------------------------------------------------
def memmap_batches(x_path: str | bytes | os.PathLike, y_path: str | bytes | os.PathLike,
                   batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(x float32 / 255, y)`` batches in file order; the memmaps are opened here, from paths.

    Use it with ``tf.data.Dataset.from_generator(memmap_batches, args=[x_path, y_path, batch_size])``:
    the args are then two short strings and an int, not the data.
    """
    x, y = _open_pair(x_path, y_path)
    batch_size = int(batch_size)
    for start in range(0, len(x), batch_size):
        stop = min(start + batch_size, len(x))
        yield x[start:stop].astype(np.float32) / 255, np.array(y[start:stop])


def generator_dataset(x_path: str | os.PathLike, y_path: str | os.PathLike, batch_size: int) -> tf.data.Dataset:
    """``from_generator(memmap_batches, args=[paths, batch_size])``: batches in file order."""
    x, _ = _open_pair(x_path, y_path)
    return tf.data.Dataset.from_generator(
        memmap_batches, args=[os.fspath(x_path), os.fspath(y_path), batch_size],
        output_signature=_digit_signature(*x.shape[1:]))


# -- 2. an index dataset read through numpy_function --------------------------------------------
class RowReader:
    """Callable ``indices -> (x float32 / 255, y)`` reading rows of a ``.npy`` pair through memmaps.

    The memmaps are opened on first call (lazily, from the paths), so the object pickles small.
    The indices are sorted before reading (a sorted fancy index reads the file forward); x and y
    are returned in that sorted order, so they stay aligned.
    """

    def __init__(self, x_path: str | os.PathLike, y_path: str | os.PathLike) -> None:
        self.x_path, self.y_path = os.fspath(x_path), os.fspath(y_path)
        self._x: np.ndarray | None = None
        self._y: np.ndarray | None = None
        self.calls = 0
        """How many batches this reader has read (for lessons that count reads)."""

    def __getstate__(self) -> dict:
        return {"x_path": self.x_path, "y_path": self.y_path, "_x": None, "_y": None, "calls": 0}

    def __len__(self) -> int:
        self._open()
        return len(self._x)

    def _open(self) -> None:
        if self._x is None:
            self._x, self._y = _open_pair(self.x_path, self.y_path)

    def __call__(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self._open()
        self.calls += 1
        idx = np.sort(np.asarray(indices, dtype=np.int64))
        return self._x[idx].astype(np.float32) / 255, self._y[idx]


def index_dataset(x_path: str | os.PathLike, y_path: str | os.PathLike, batch_size: int, *,
                  shuffle: bool = True, seed: int | None = 0, num_parallel_calls: int | None = None,
                  deterministic: bool | None = None, reader: RowReader | None = None) -> tf.data.Dataset:
    """``Dataset.range(n) -> shuffle(n) -> batch -> map(tf.numpy_function(RowReader))``.

    ``shuffle(n)`` draws a new permutation of the *indices* every epoch (``reshuffle_each_iteration``):
    a full shuffle whose buffer holds integers, not images. The reader runs Python, so it holds the
    GIL: ``num_parallel_calls`` > 1 overlaps only its NumPy parts that release it.
    """
    reader = reader or RowReader(x_path, y_path)
    x, _ = _open_pair(x_path, y_path)
    n, (h, w) = len(x), x.shape[1:]
    ds = tf.data.Dataset.range(n)
    if shuffle:
        ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)

    def read(indices: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        xb, yb = tf.numpy_function(reader, [indices], (tf.float32, tf.uint8), stateful=False)
        xb.set_shape((None, h, w))
        yb.set_shape((None,))
        return xb, yb

    return ds.map(read, num_parallel_calls=num_parallel_calls, deterministic=deterministic)


# -- 3. TFRecord shards --------------------------------------------------------------------------
@dataclass(frozen=True)
class Shards:
    """A complete set of TFRecord shards (what :func:`write_tfrecord_shards` returns)."""

    paths: list[Path]
    n: int
    """Number of records (images) over all shards."""
    image_shape: tuple[int, int]


def _example(image: np.ndarray, label: int) -> bytes:
    return tf.train.Example(features=tf.train.Features(feature={
        "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image.tobytes()])),
        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
    })).SerializeToString()


def read_manifest(out_dir: str | os.PathLike) -> Shards:
    """The shards listed by ``out_dir/shards.json``; a clear error if the set is not complete."""
    out = Path(out_dir)
    try:
        meta = json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise FileNotFoundError(f"{out}: no complete TFRecord shard set ({MANIFEST} missing or unreadable); "
                                "write it with write_tfrecord_shards") from exc
    paths = [out / name for name in meta["files"]]
    missing = [p.name for p in paths if not p.exists()]
    if missing:
        raise FileNotFoundError(f"{out}: {MANIFEST} lists shards that are missing: {missing}")
    return Shards(paths, int(meta["n"]), tuple(meta["image_shape"]))


def _write_shard_set(out_dir: str | os.PathLike, prefix: str, n_shards: int,
                     records_of: Callable[[int], Iterator[bytes]], meta: dict[str, Any]) -> Shards:
    """Write shard ``s`` of ``n_shards`` from ``records_of(s)`` as ``<prefix>-<s>-of-<n>.tfrecord``,
    each under a temporary name renamed when full; ``shards.json`` (``meta`` + the file names) is
    removed first and written last, so an interrupted run leaves no complete-looking set."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)
    for old in out.glob("*.tfrecord"):
        old.unlink()
    names = []
    for s in range(n_shards):
        name = f"{prefix}-{s:05d}-of-{n_shards:05d}.tfrecord"
        tmp = out / f"{name}.{os.getpid()}.tmp"
        with tf.io.TFRecordWriter(str(tmp)) as writer:
            for record in records_of(s):
                writer.write(record)
        os.replace(tmp, out / name)
        names.append(name)
    tmp = out / f"{MANIFEST}.{os.getpid()}.tmp"           # the manifest last, whole, by one rename
    tmp.write_text(json.dumps({"files": names, **meta}, indent=1))
    os.replace(tmp, out / MANIFEST)
    return read_manifest(out)


def write_tfrecord_shards(x_path: str | os.PathLike, y_path: str | os.PathLike, out_dir: str | os.PathLike,
                          n_shards: int = 8, chunk: int = 8192, seed: int | None = 0) -> Shards:
    """Write the rows of a ``.npy`` pair to ``n_shards`` TFRecord files of ``tf.train.Example``
    records (``image``: the raw uint8 bytes, ``label``: int64), **shuffled once** at write time in
    the order of :func:`write_order` ``(n, seed)``; ``seed=None`` keeps the file's order (a file
    sorted by class then gives shards of a class or two each, which no shuffle of the shard names
    and no modest record buffer mixes again: lesson 07 measures it).

    Chunk by chunk: at most ``chunk`` rows are read from the memmaps at a time (in ascending row
    order within a chunk), never the whole array. The set is written atomically (see
    :func:`_write_shard_set`).
    """
    x, y = _open_pair(x_path, y_path)
    n = len(x)
    order = write_order(n, seed)
    bounds = np.linspace(0, n, n_shards + 1).astype(np.int64)

    def records_of(s: int) -> Iterator[bytes]:
        for start in range(int(bounds[s]), int(bounds[s + 1]), chunk):
            rows = order[start:min(start + chunk, int(bounds[s + 1]))]
            ascending = np.sort(rows)                                  # one pass over the file per chunk
            xs, ys = np.asarray(x[ascending]), np.asarray(y[ascending])  # one chunk in RAM, no second copy
            for i in np.searchsorted(ascending, rows):                 # the chunk's rows in the order written
                yield _example(xs[i], ys[i])

    return _write_shard_set(out_dir, "digits", n_shards, records_of,
                            {"n": n, "image_shape": list(x.shape[1:]), "source": os.fspath(x_path), "seed": seed})


def write_order(n: int, seed: int | None) -> np.ndarray:
    """The rows :func:`write_tfrecord_shards` writes, in its order: a permutation of ``range(n)``
    drawn with ``seed``, or ``range(n)`` itself for ``seed=None`` (record ``i`` holds row ``order[i]``)."""
    return np.arange(n) if seed is None else np.random.default_rng(seed).permutation(n)


def write_jpeg_shards(paths: Sequence[str | os.PathLike], counts: Sequence[float], out_dir: str | os.PathLike,
                      n_shards: int = 4, seed: int = 0) -> Shards:
    """Write image files to ``n_shards`` TFRecord files of ``tf.train.Example`` records: ``jpeg``
    (the file's bytes, not decoded), ``count`` (float) and ``id`` (the image's position in
    ``paths``), **shuffled once** at write time with ``seed`` (a file list sorted by class would
    otherwise give shards of one class each), dealt to the shards in turn. Atomic, as
    :func:`write_tfrecord_shards`."""
    if len(paths) != len(counts):
        raise ValueError(f"{len(paths)} paths but {len(counts)} counts")
    order = np.random.default_rng(seed).permutation(len(paths))

    def records_of(s: int) -> Iterator[bytes]:
        for i in order[s::n_shards]:
            yield tf.train.Example(features=tf.train.Features(feature={
                "jpeg": tf.train.Feature(bytes_list=tf.train.BytesList(value=[Path(paths[i]).read_bytes()])),
                "count": tf.train.Feature(float_list=tf.train.FloatList(value=[float(counts[i])])),
                "id": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(i)])),
            })).SerializeToString()

    return _write_shard_set(out_dir, "fish", n_shards, records_of,
                            {"n": len(paths), "image_shape": [], "source": "jpeg files", "seed": seed})


def parse_jpeg_example(serialized: tf.Tensor, image_size: int) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """One record of :func:`write_jpeg_shards` -> ``(image float32 [0, 1] image_size square, count, id)``."""
    f = tf.io.parse_single_example(serialized, {"jpeg": tf.io.FixedLenFeature([], tf.string),
                                                "count": tf.io.FixedLenFeature([], tf.float32),
                                                "id": tf.io.FixedLenFeature([], tf.int64)})
    image = tf.image.resize(tf.io.decode_jpeg(f["jpeg"], channels=3), (image_size, image_size)) / 255
    return image, f["count"], f["id"]


def parse_batch(serialized: tf.Tensor, image_shape: Sequence[int] = (28, 28)) -> tuple[tf.Tensor, tf.Tensor]:
    """A batch of serialized ``tf.train.Example`` -> ``(x float32 / 255, y uint8)`` (vectorised)."""
    features = tf.io.parse_example(serialized, {
        "image": tf.io.FixedLenFeature([], tf.string),
        "label": tf.io.FixedLenFeature([], tf.int64),
    })
    pixels = tf.io.decode_raw(features["image"], tf.uint8)
    x = tf.reshape(pixels, (-1, *image_shape))
    return tf.cast(x, tf.float32) / 255, tf.cast(features["label"], tf.uint8)


def tfrecord_dataset(shards: Shards, batch_size: int, *, shuffle_buffer: int = 2048, seed: int | None = 0,
                     cycle_length: int = 4, num_parallel_calls: int | None = AUTOTUNE,
                     deterministic: bool | None = None) -> tf.data.Dataset:
    """Shard files (shuffled per epoch) -> ``interleave(TFRecordDataset)`` -> ``shuffle(records)`` ->
    batch -> ``map(parse_batch)``. ``shuffle_buffer=0`` keeps the order (shards in turn, records
    interleaved ``cycle_length`` at a time, one record from each)."""
    files = tf.data.Dataset.from_tensor_slices([str(p) for p in shards.paths])
    if shuffle_buffer:
        files = files.shuffle(len(shards.paths), seed=seed, reshuffle_each_iteration=True)
    ds = files.interleave(tf.data.TFRecordDataset, cycle_length=cycle_length,
                          num_parallel_calls=num_parallel_calls, deterministic=deterministic)
    if shuffle_buffer:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    shape = shards.image_shape
    return ds.batch(batch_size).map(lambda s: parse_batch(s, shape), num_parallel_calls=num_parallel_calls,
                                    deterministic=deterministic)


# -- 4. JPEG files through TensorFlow ops -------------------------------------------------------
def sequential(ds: tf.data.Dataset) -> tf.data.Dataset:
    """``ds`` with tf.data's ``map_parallelization`` optimisation off.

    By default (``None``, meaning on) tf.data runs a *stateless* ``map`` without
    ``num_parallel_calls`` in parallel anyway; a one-call-at-a-time baseline needs this.
    """
    options = tf.data.Options()
    options.experimental_optimization.map_parallelization = False
    return ds.with_options(options)


def load_jpeg(path: tf.Tensor, image_size: int, read_counter: tf.Variable | None = None) -> tf.Tensor:
    """``read_file -> decode_jpeg(channels=3) -> resize`` to ``image_size`` square, as uint8.

    ``read_counter`` (an int64 ``tf.Variable``), if given, is incremented once per file read.
    """
    data = tf.io.read_file(path)
    if read_counter is not None:
        with tf.control_dependencies([read_counter.assign_add(1)]):
            data = tf.identity(data)
    image = tf.io.decode_jpeg(data, channels=3)
    image = tf.image.resize(image, (image_size, image_size))
    return tf.saturate_cast(tf.round(image), tf.uint8)


def jpeg_dataset(paths: Sequence[str | os.PathLike], labels: Sequence[float], batch_size: int, image_size: int, *,
                 num_parallel_calls: int | None = AUTOTUNE, shuffle: bool = True, seed: int | None = 0,
                 cache: str | os.PathLike | None = None, shuffle_buffer: int = 1024,
                 deterministic: bool | None = None, prefetch: bool = True,
                 read_counter: tf.Variable | None = None) -> tf.data.Dataset:
    """Paths + labels -> ``map(load_jpeg, num_parallel_calls)`` -> [cache] -> batch -> float32 / 255 -> prefetch.

    ``cache=None``: the *paths* are shuffled per epoch (cheap) and every epoch decodes again.
    ``cache=""`` keeps the decoded uint8 images in memory, ``cache="some/file"`` on disk; both are
    filled during the first *complete* epoch and then replayed. With a cache the paths are
    shuffled once, before it (a file list sorted by label would otherwise be cached, and replayed,
    sorted), and the replayed images again by a buffer of ``shuffle_buffer``. ``read_counter``: see
    :func:`load_jpeg`.
    """
    if len(paths) != len(labels):
        raise ValueError(f"{len(paths)} paths but {len(labels)} labels")
    ds = tf.data.Dataset.from_tensor_slices(([os.fspath(p) for p in paths], np.asarray(labels, np.float32)))
    if shuffle:  # with a cache: one order, the one the cache is filled (and replayed) in
        ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=cache is None)
    ds = ds.map(lambda p, y: (load_jpeg(p, image_size, read_counter), y), num_parallel_calls=num_parallel_calls,
                deterministic=deterministic)
    if cache is not None:
        ds = ds.cache(os.fspath(cache))
        if shuffle:
            ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size).map(lambda x, y: (tf.cast(x, tf.float32) / 255, y),
                                  num_parallel_calls=num_parallel_calls, deterministic=deterministic)
    return ds.prefetch(AUTOTUNE) if prefetch else ds
