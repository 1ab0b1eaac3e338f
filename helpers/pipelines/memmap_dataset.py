"""MemmapDataset: batches of a .npy pair read through np.memmap. Needs NumPy, Keras; copy alone.

Built in lesson 02; lesson 07 adds block shuffling for files larger than the page cache.

The images stay on disk: each batch reads only its own rows, so the memory a training run owns
does not grow with the data (the rows read sit in the kernel's page cache, which is reclaimable).

Built so that it works with every way Keras runs a :class:`keras.utils.PyDataset`:

- **lazy, per process**: the two files are opened with ``np.load(path, mmap_mode="r")`` in the
  process that reads a batch. The object pickles to a few hundred bytes (``__getstate__`` drops the
  open memmaps; an ``np.memmap`` attribute would pickle *its whole data*), so worker processes
  started with spawn or forkserver (macOS, Windows; Linux from Python 3.14) get the paths and open
  the files themselves.
- **a module-level class**: such workers unpickle it by importing this module (a class defined in
  a notebook's ``__main__`` cannot be found there).
- **every sample once per epoch**: ``len`` is a ceiling, the last batch may be partial. With
  ``shuffle=True`` the sample order is a new permutation each epoch (``on_epoch_end``), drawn from
  ``np.random.default_rng([seed, epoch])`` so every worker computes the same one from ``seed`` and
  the epoch number; each batch is read with its indices sorted (forward through the file).
- **no read-ahead for random reads**: with ``shuffle=True`` the mapping is advised
  ``MADV_RANDOM`` (``readahead=None``, the default): the kernel then reads the pages a batch needs
  and no more. With its default read-ahead each random 784-byte row pulls in up to ~128 KiB around
  it; that is harmless while the file sits in the page cache, and ruinous when the file is larger
  than the page cache can hold (the pages read ahead are evicted before they are used). Reading in
  order (``shuffle=False``) keeps the read-ahead, which is what a sequential read wants.
- **block shuffling** (``block_rows=K``), for files larger than the page cache: the epoch visits
  blocks of ``K`` consecutive rows in a random order, reads each block whole (one ``preadv``: one
  sequential read instead of ``K`` random ones), and shuffles the rows of :data:`WINDOW_BLOCKS`
  blocks at a time in memory (a window of ``WINDOW_BLOCKS * K`` uint8 rows, at most two held, also
  while the next is read; those of an ended epoch are dropped).
  Batches mix rows of 64 random places of the file; the price in randomness is measured in
  lesson 07.
- **uint8 -> float32 per batch**: images stored as ``uint8`` are served as ``float32`` in [0, 1]
  (``x / 255``, the same values as ``x.astype("float32") / 255`` of the whole array); floating
  images are served as ``float32`` unscaled. Labels are served with their dtype on disk.

Bad input fails at construction with an error naming the file: a missing or unreadable file, a
dtype that cannot be memory-mapped or served, x and y of different lengths, indices out of range.
"""

from __future__ import annotations

import math
import mmap
import os
import threading
from typing import Any, Sequence

import keras
import numpy as np

PathLike = str | os.PathLike
WINDOW_BLOCKS = 64
"""Blocks whose rows are shuffled together with ``block_rows`` (a window of the epoch)."""


def _open(path: PathLike, what: str) -> np.ndarray:
    """``np.load(path, mmap_mode="r")`` with an error that names the file and what it should hold."""
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} file {os.fspath(path)!r} does not exist") from None
    except (ValueError, OSError) as exc:  # not a .npy, truncated, object dtype, ...
        raise ValueError(f"{what} file {os.fspath(path)!r} cannot be memory-mapped as a .npy array: {exc}") from exc


def _as_indices(indices: Any, n: int, x_path: PathLike) -> range | np.ndarray:
    """The sample indices as a ``range`` (pickles in a few bytes) or a 1-D int64 array, checked."""
    if indices is None:
        return range(n)
    if isinstance(indices, slice):
        indices = range(*indices.indices(n))
    if isinstance(indices, range):
        if len(indices) and not (0 <= min(indices[0], indices[-1]) and max(indices[0], indices[-1]) < n):
            raise IndexError(f"indices {indices} out of range for {n:,} samples in {os.fspath(x_path)!r}")
        return indices
    arr = np.asarray(indices)
    if arr.ndim != 1 or not (arr.size == 0 or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"indices must be a 1-D sequence of integers, got shape {arr.shape} dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    if arr.size and (arr.min() < 0 or arr.max() >= n):
        raise IndexError(f"indices range from {arr.min()} to {arr.max()}: out of range for {n:,} samples "
                         f"in {os.fspath(x_path)!r}")
    if arr.size and arr[0] >= 0 and np.array_equal(arr, np.arange(arr[0], arr[0] + arr.size)):
        return range(int(arr[0]), int(arr[0]) + arr.size)  # a contiguous split: keep it tiny
    return arr


def _read_into(fd: int, buffer: memoryview, offset: int) -> int:
    """Read ``len(buffer)`` bytes at ``offset`` into ``buffer`` with one call (``os.preadv``; where it
    does not exist, Windows, ``os.pread`` and a copy). Returns the bytes read."""
    if hasattr(os, "preadv"):
        return os.preadv(fd, [buffer], offset)
    data = os.pread(fd, len(buffer), offset) if hasattr(os, "pread") else _seek_read(fd, len(buffer), offset)
    buffer[:len(data)] = data
    return len(data)


def _seek_read(fd: int, size: int, offset: int) -> bytes:
    os.lseek(fd, offset, os.SEEK_SET)
    return os.read(fd, size)


def _advise(x: np.ndarray, readahead: bool) -> np.ndarray:
    """``madvise(MADV_RANDOM)`` on the mapping of memmap ``x`` when ``readahead`` is off (returns ``x``)."""
    mapping = getattr(x, "_mmap", None)
    if not readahead and mapping is not None and hasattr(mmap, "MADV_RANDOM"):
        mapping.madvise(mmap.MADV_RANDOM)
    return x


class MemmapDataset(keras.utils.PyDataset):
    """Batches ``(x, y)`` of two ``.npy`` files, read through ``np.memmap`` batch by batch.

    Args:
        x_path: ``.npy`` file of the inputs, shape ``(N, ...)``, dtype ``uint8`` (served as
            ``float32 / 255``) or floating (served as ``float32``).
        y_path: ``.npy`` file of the targets, shape ``(N, ...)``, numeric.
        batch_size: samples per batch; the last batch of an epoch holds the rest.
        indices: the samples this dataset serves (``None``: all ``N``; a ``range``, a ``slice`` or
            an integer sequence). A train/validation split is two index ranges of one file.
        shuffle: serve the samples in a new random order each epoch (each batch is read with
            its indices sorted). ``False`` serves ``indices`` in the order given.
        seed: seed of the per-epoch permutations (epoch ``e`` uses ``default_rng([seed, e])``).
        block_rows: with ``shuffle``, shuffle blocks of this many consecutive rows, read whole, and
            the rows of :data:`WINDOW_BLOCKS` blocks together (``None``: every row on its own). For
            data larger than the page cache; ``indices`` must then be a contiguous range.
        readahead: the kernel's read-ahead on the memmap of ``x``: ``None`` (default) turns it off
            when ``shuffle`` (``madvise(MADV_RANDOM)``) and leaves it on when reading in order;
            ``True``/``False`` force it. Where ``madvise`` does not exist (Windows) it is a no-op.
        **kwargs: ``workers``, ``use_multiprocessing``, ``max_queue_size`` of
            :class:`keras.utils.PyDataset`.
    """

    def __init__(self, x_path: PathLike, y_path: PathLike, batch_size: int,
                 indices: range | slice | Sequence[int] | np.ndarray | None = None,
                 shuffle: bool = True, seed: int = 0, block_rows: int | None = None,
                 readahead: bool | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.x_path = os.fspath(x_path)
        self.y_path = os.fspath(y_path)
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.readahead = (not self.shuffle) if readahead is None else bool(readahead)
        """Whether the kernel reads ahead on ``x``'s mapping (off: ``MADV_RANDOM``)."""
        self.epoch = 0
        """Epochs completed (``on_epoch_end`` calls); picks the permutation of the current epoch."""

        x, y = _open(self.x_path, "x"), _open(self.y_path, "y")
        if x.ndim < 1 or y.ndim < 1:
            raise ValueError(f"x {self.x_path!r} has shape {x.shape} and y {self.y_path!r} has shape {y.shape}: "
                             "both need a first (sample) axis")
        if len(x) != len(y):
            raise ValueError(f"x and y disagree: {self.x_path!r} holds {len(x):,} samples {x.shape} but "
                             f"{self.y_path!r} holds {len(y):,} {y.shape}")
        if not (x.dtype == np.uint8 or np.issubdtype(x.dtype, np.floating)):
            raise TypeError(f"x {self.x_path!r} has dtype {x.dtype}: expected uint8 (scaled to [0, 1]) or a float dtype")
        if not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating)
                or y.dtype == np.bool_):
            raise TypeError(f"y {self.y_path!r} has dtype {y.dtype}: expected numeric labels")
        self.n_total = len(x)
        self.x_shape, self.x_dtype = tuple(x.shape), x.dtype
        self.y_shape, self.y_dtype = tuple(y.shape), y.dtype
        self.indices = _as_indices(indices, self.n_total, self.x_path)
        if len(self.indices) == 0:
            raise ValueError(f"no samples to serve from {self.x_path!r} (indices is empty)")
        self._x: np.ndarray | None = _advise(x, self.readahead)  # checked here; reopened lazily after pickling
        self._y: np.ndarray | None = y
        self._order: np.ndarray | None = None
        self._order_epoch = -1
        if block_rows is not None:
            if isinstance(block_rows, bool) or not isinstance(block_rows, (int, np.integer)) or block_rows < 1:
                raise ValueError(f"block_rows must be a positive integer, got {block_rows!r}")
            if not (isinstance(self.indices, range) and self.indices.step == 1):
                raise ValueError("block_rows needs indices that are one contiguous range (a split of the file)")
        self.block_rows = None if block_rows is None else int(block_rows)
        self._windows: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        self._window_of_block: np.ndarray | None = None
        self._window_epoch = -1
        # buffers of dropped windows: the next window is read into one (a new window-sized array for every
        # window let the C heap of some versions grow by a window or more per fit: freed, not handed back)
        self._spare: list[np.ndarray] = []
        self._lock = threading.Lock()
        self._fd: int | None = None

    # -- pickling: paths and settings only --------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_x"] = state["_y"] = state["_order"] = state["_fd"] = None  # memmaps would pickle their data
        state["_order_epoch"] = -1
        state["_windows"], state["_lock"], state["_window_of_block"], state["_window_epoch"] = {}, None, None, -1
        state["_spare"] = []
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # -- the sample order of this epoch ------------------------------------------------------------
    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """The two memmaps of this process, opened on first use."""
        if self._x is None or self._y is None:
            x, y = _open(self.x_path, "x"), _open(self.y_path, "y")
            if x.shape != self.x_shape or x.dtype != self.x_dtype or y.shape != self.y_shape or y.dtype != self.y_dtype:
                raise ValueError(f"{self.x_path!r} / {self.y_path!r} changed since the dataset was made: "
                                 f"now {x.shape} {x.dtype} / {y.shape} {y.dtype}")
            self._x, self._y = _advise(x, self.readahead), y
        return self._x, self._y

    def order(self) -> np.ndarray:
        """The sample indices in the order this epoch serves them (computed once per epoch)."""
        if self._order is None or self._order_epoch != self.epoch:
            base = self.indices
            if self.shuffle and self.block_rows:
                order = self._block_order()
            elif self.shuffle:
                perm = np.random.default_rng([self.seed, self.epoch]).permutation(len(base))
                order = (perm + base.start) if isinstance(base, range) and base.step == 1 else np.asarray(base)[perm]
            else:
                order = np.asarray(base, dtype=np.int64)
            self._order, self._order_epoch = order.astype(np.int64, copy=False), self.epoch
        return self._order

    def _blocks(self) -> np.ndarray:
        """This epoch's order of the blocks (with ``block_rows``)."""
        n_blocks = math.ceil(len(self.indices) / self.block_rows)
        return np.random.default_rng([self.seed, self.epoch, 1]).permutation(n_blocks)

    def _block_order(self) -> np.ndarray:
        """This epoch's rows with ``block_rows``: blocks in a random order, rows shuffled within
        each window of :data:`WINDOW_BLOCKS` blocks."""
        k, start, n = self.block_rows, self.indices.start, len(self.indices)
        blocks, rng = self._blocks(), np.random.default_rng([self.seed, self.epoch])
        parts = []
        for w in range(0, len(blocks), WINDOW_BLOCKS):
            rows = np.concatenate([np.arange(b * k, min(n, (b + 1) * k)) for b in blocks[w:w + WINDOW_BLOCKS]])
            parts.append(rows[rng.permutation(len(rows))])
        return np.concatenate(parts) + start

    def _read_window(self, window: int) -> tuple[np.ndarray, np.ndarray]:
        """The blocks of a window of this epoch, each read whole with one ``preadv`` (forward through
        the file): ``(rows, first)``, the rows one after the other (in a buffer of a whole window's
        rows, reused from a dropped window when there is one) and, for every block of the file, where
        its first row sits in ``rows`` (-1: not in this window)."""
        x, _ = self._arrays()
        k, start, n = self.block_rows, self.indices.start, len(self.indices)
        row_bytes = int(np.prod(self.x_shape[1:])) * self.x_dtype.itemsize
        if self._fd is None:
            self._fd = os.open(self.x_path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        blocks = np.sort(self._blocks()[window * WINDOW_BLOCKS:(window + 1) * WINDOW_BLOCKS])
        first = np.full(math.ceil(n / k), -1, np.int64)
        sizes = [min(n, (b + 1) * k) - b * k for b in blocks.tolist()]
        rows = self._spare.pop() if self._spare else np.empty((WINDOW_BLOCKS * k, *self.x_shape[1:]), self.x_dtype)
        at = 0
        for b, size in zip(blocks.tolist(), sizes):
            lo = start + b * k
            view = memoryview(rows[at:at + size].reshape(-1).view(np.uint8))  # read straight into the window
            if _read_into(self._fd, view, x.offset + lo * row_bytes) != size * row_bytes:
                raise OSError(f"{self.x_path!r}: short read of rows {lo:,}-{lo + size:,} (truncated file?)")
            first[b], at = at, at + size
        return rows, first

    def _block_rows_of(self, idx: np.ndarray) -> np.ndarray:
        """Rows ``idx`` read through the windows they fall in (at most two windows held)."""
        k, start = self.block_rows, self.indices.start
        if self._window_epoch != self.epoch:  # which window each block is in, once per epoch
            blocks = self._blocks()
            self._window_of_block = np.empty(len(blocks), np.int64)
            self._window_of_block[blocks] = np.arange(len(blocks)) // WINDOW_BLOCKS
            self._window_epoch = self.epoch
        block = (idx - start) // k
        within = idx - start - block * k
        windows = self._window_of_block[block]
        out = np.empty((len(idx), *self.x_shape[1:]), self.x_dtype)
        for w in np.unique(windows).tolist():
            key = (self.epoch, w)
            with self._lock:
                if key not in self._windows:
                    for old in sorted(self._windows)[:-1]:   # keep the latest: a batch may span two windows
                        self._spare.append(self._windows.pop(old)[0])   # its buffer, for the next window
                    self._windows[key] = self._read_window(w)   # so at most two are held, while reading too
                rows, first = self._windows[key]
            here = windows == w
            out[here] = rows[first[block[here]] + within[here]]
        return out

    def batch_indices(self, index: int) -> np.ndarray:
        """The sample indices of batch ``index``, in the order they are served."""
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} out of range: this dataset has {len(self)} batches")
        idx = self.order()[index * self.batch_size:(index + 1) * self.batch_size]
        return np.sort(idx) if self.shuffle else idx

    # -- the PyDataset interface -------------------------------------------------------------------
    def __len__(self) -> int:
        return math.ceil(len(self.indices) / self.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        idx = self.batch_indices(index)
        x, y = self._arrays()
        if self.shuffle and self.block_rows:
            xb, yb = self._block_rows_of(idx), y[idx]
        elif idx.size > 1 and np.any(idx[1:] < idx[:-1]):  # unsorted (shuffle=False, indices given so)
            sorter = np.argsort(idx, kind="stable")
            inverse = np.empty_like(sorter)
            inverse[sorter] = np.arange(sorter.size)
            xb, yb = x[idx[sorter]][inverse], y[idx[sorter]][inverse]  # read forward, serve as asked
        else:
            xb, yb = x[idx], y[idx]
        if xb.dtype == np.uint8:
            xb = np.divide(xb, np.float32(255), dtype=np.float32)  # one float32 array per batch
        else:
            xb = np.asarray(xb, dtype=np.float32)
        return xb, np.asarray(yb)

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass

    def on_epoch_end(self) -> None:
        """Next epoch: a new permutation of the samples when ``shuffle`` is true.

        Keras calls it after every epoch, and ``fit`` once more before the first one (Keras 3
        resets its epoch iterator), so ``epoch`` counts calls, not epochs trained. The windows of
        block shuffling read in the epoch that ends are dropped: no later batch reads them.
        """
        self.epoch += 1
        if self._windows:
            with self._lock:
                self._spare = (self._spare + [rows for rows, _ in self._windows.values()])[:2]
                self._windows.clear()

    def __repr__(self) -> str:
        return (f"MemmapDataset({os.path.basename(self.x_path)!r}, {os.path.basename(self.y_path)!r}, "
                f"batch_size={self.batch_size}, samples={len(self.indices):,} of {self.n_total:,}, "
                f"batches={len(self)}, shuffle={self.shuffle}, block_rows={self.block_rows}, readahead={self.readahead}, "
                f"epoch={self.epoch})")
