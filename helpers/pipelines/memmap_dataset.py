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
- **block shuffling within a byte budget** (``window_mb=M``), for files larger than the page cache:
  the epoch visits blocks of consecutive rows (``block_rows``, by default the most rows, a power of
  two, that fit in :data:`BLOCK_KIB` KiB: 512 rows of 784 bytes, 2 rows of a 224x224x3 image) in a
  random order, reads each block whole (one ``preadv``: one sequential read instead of one random
  read a row) and shuffles the rows of a window of up to :data:`WINDOW_BLOCKS` blocks in memory. At
  most two windows are held (also while the next is read; those of an ended epoch are dropped), and
  both together, with the working memory of converting rows and of knowing where each block is, never
  take more than ``window_mb`` MiB, whatever the size of a row: the window holds fewer blocks where
  the budget asks for it, and a budget too small for one block is an error.
  Batches mix rows of up to 64 random places of the file; the price in randomness is measured in
  lesson 07. Any set of indices works (a range, or the whole blocks of a split drawn at random):
  a block is read from its first to its last row served, so a sparse set also reads rows it does
  not serve. The budget is per process: with ``use_multiprocessing=True`` every worker process
  holds windows of its own (worker threads share them).
- **uint8 -> float32 per batch**: images stored as ``uint8`` are served as ``float32`` in [0, 1]
  (``x / 255``, the same values as ``x.astype("float32") / 255`` of the whole array); floating
  images are served as ``float32`` unscaled. Labels are served with their dtype on disk.

Bad input fails at construction with an error naming the file: a missing or unreadable file, a
dtype that cannot be memory-mapped or served, x and y of different lengths, indices out of range, a
budget smaller than one batch or than one block.
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
MIB = 2**20
WINDOW_BLOCKS = 64
"""Most blocks whose rows are shuffled together (a window of the epoch); fewer if the budget asks."""
WINDOW_MB = 256
"""Default budget of block shuffling (``block_rows`` given, no ``window_mb``), in MiB, for its two
windows together: room next to TensorFlow on a free Colab (12.7 GB)."""
CONVERT_KIB = 256
"""A block-shuffled batch is converted to float32 this many KiB of it at a time (at least one row)."""
BLOCK_KIB = 400
"""Default size of a block: the most rows, a power of two, within this many KiB (at least one row).
One read of this size costs about as much as one random read of a row."""


def block_rows_for(row_bytes: int) -> int:
    """Rows in a block by default for rows of ``row_bytes`` bytes: the largest power of two whose
    rows fit in :data:`BLOCK_KIB` KiB, at least 1 (784-byte digits: 512; 224x224x3 uint8: 2)."""
    if row_bytes < 1:
        raise ValueError(f"row_bytes must be positive, got {row_bytes}")
    fit = BLOCK_KIB * 1024 // row_bytes
    return 1 << (int(fit).bit_length() - 1) if fit >= 1 else 1


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
        window_mb: with ``shuffle``, **block shuffling** within this many MiB for its two windows
            together (``None``: every row on its own, the default). For data larger than the page
            cache; train with ``fit(shuffle=False)`` (Keras's shuffle of batch indices would scatter
            the windows). It must hold one batch, and two windows of one block each.
        block_rows: rows in a block (``None``: :func:`block_rows_for` the row's size). Given alone,
            it turns block shuffling on with the default budget :data:`WINDOW_MB`.
        readahead: the kernel's read-ahead on the memmap of ``x``: ``None`` (default) turns it off
            when ``shuffle`` (``madvise(MADV_RANDOM)``) and leaves it on when reading in order;
            ``True``/``False`` force it. Where ``madvise`` does not exist (Windows) it is a no-op.
        **kwargs: ``workers``, ``use_multiprocessing``, ``max_queue_size`` of
            :class:`keras.utils.PyDataset`.
    """

    def __init__(self, x_path: PathLike, y_path: PathLike, batch_size: int,
                 indices: range | slice | Sequence[int] | np.ndarray | None = None,
                 shuffle: bool = True, seed: int = 0, window_mb: float | None = None,
                 block_rows: int | None = None, readahead: bool | None = None, **kwargs: Any) -> None:
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
        self.row_bytes = int(np.prod(self.x_shape[1:], dtype=np.int64)) * self.x_dtype.itemsize
        """Bytes of one row of ``x`` on disk."""
        self.window_mb, self.block_rows, self.window_blocks = self._plan_blocks(window_mb, block_rows)
        """Block shuffling (all ``None`` without it): the budget of both windows in MiB, the rows in a
        block, the blocks in a window."""
        self._plan: tuple[np.ndarray, ...] | None = None
        self._windows: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        self._window_of_block: np.ndarray | None = None
        self._window_epoch = -1
        # buffers of dropped windows: the next window is read into one (a new window-sized array for every
        # window let the C heap of some versions grow by a window or more per fit: freed, not handed back)
        self._spare: list[np.ndarray] = []
        self._lock = threading.Lock()
        self._fd: int | None = None

    def _plan_blocks(self, window_mb: float | None, block_rows: int | None) -> tuple[Any, Any, Any]:
        """``(window_mb, block_rows, window_blocks)`` of block shuffling, checked against the budget."""
        if block_rows is not None and (isinstance(block_rows, bool) or not isinstance(block_rows, (int, np.integer))
                                       or block_rows < 1):
            raise ValueError(f"block_rows must be a positive integer, got {block_rows!r}")
        if window_mb is not None and (isinstance(window_mb, bool) or not isinstance(window_mb, (int, float, np.number))
                                      or not math.isfinite(window_mb) or window_mb <= 0):
            raise ValueError(f"window_mb must be a positive number of MiB, got {window_mb!r}")
        if window_mb is None and block_rows is None:
            return None, None, None
        budget = float(WINDOW_MB if window_mb is None else window_mb)
        named = f"window_mb={budget:g}" + (" (the default)" if window_mb is None else "")
        k = int(block_rows) if block_rows is not None else block_rows_for(self.row_bytes)
        batch_mb, block_mb = self.batch_size * self.row_bytes / MIB, k * self.row_bytes / MIB
        if budget < batch_mb:
            raise ValueError(f"{named} is smaller than one batch: {self.batch_size} rows of "
                             f"{self.x_path!r} take {batch_mb:,.2f} MiB")
        reserve = self._reserve_bytes(k)
        blocks = min(WINDOW_BLOCKS, int((budget * MIB - reserve) // 2 // (k * self.row_bytes)))
        if blocks < 1:
            need = math.ceil((2 * block_mb + reserve / MIB) * 100) / 100
            raise ValueError(f"{named} leaves {max(0.0, budget - reserve / MIB) / 2:.2f} MiB for each of the two "
                             f"windows (after {reserve / MIB:.2f} MiB of working memory), but one block of {k} rows "
                             f"of {self.x_path!r} takes {block_mb:,.2f} MiB: raise window_mb to at least "
                             f"{need:,.2f} or pass a smaller block_rows")
        if not self._x.flags.c_contiguous:
            raise ValueError(f"{self.x_path!r} is stored in Fortran order: block shuffling reads rows as "
                             "contiguous bytes; save it with np.save(path, np.ascontiguousarray(x))")
        return budget, k, blocks

    def _reserve_bytes(self, block_rows: int) -> int:
        """What block shuffling needs beside its two windows, within the budget: converting a few rows
        to float32 at a time (their uint8 and float32 copies) and, per block, where each window holds
        it (two windows) and which window it is in."""
        row_float = self.row_bytes // self.x_dtype.itemsize * 4
        convert = self._convert_rows() * (self.row_bytes + row_float)
        blocks = min(len(self.indices), math.ceil(self.n_total / block_rows) + 1)
        return convert + 3 * 8 * blocks

    def _convert_rows(self) -> int:
        """Rows of a block-shuffled batch converted to float32 at a time (:data:`CONVERT_KIB`)."""
        return max(1, CONVERT_KIB * 1024 // (self.row_bytes // self.x_dtype.itemsize * 4))

    def _block_plan(self) -> tuple[np.ndarray, ...]:
        """The blocks this dataset serves, once per process: ``(served, starts, ids, lo, hi)``: the served
        rows sorted, where each block's rows begin in ``served`` (and end: ``starts[j + 1]``), the
        blocks' numbers in the file (row // block_rows) and the first and last + 1 row read of each."""
        if self._plan is None:
            base = self.indices
            if isinstance(base, range) and base.step == 1:
                served = np.arange(base.start, base.stop, dtype=np.int64)
            else:
                served = np.sort(np.asarray(base, dtype=np.int64))
            ids, starts = np.unique(served // self.block_rows, return_index=True)
            starts = np.append(starts, len(served))
            self._plan = (served, starts, ids, served[starts[:-1]], served[starts[1:] - 1] + 1)
        return self._plan

    # -- pickling: paths and settings only --------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_x"] = state["_y"] = state["_order"] = state["_fd"] = state["_plan"] = None  # memmaps pickle their data
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
            if self.shuffle and self.window_mb:
                order = self._block_order()
            elif self.shuffle:
                perm = np.random.default_rng([self.seed, self.epoch]).permutation(len(base))
                order = (perm + base.start) if isinstance(base, range) and base.step == 1 else np.asarray(base)[perm]
            else:
                order = np.asarray(base, dtype=np.int64)
            self._order, self._order_epoch = order.astype(np.int64, copy=False), self.epoch
        return self._order

    def _blocks(self) -> np.ndarray:
        """This epoch's order of the blocks (positions in :meth:`_block_plan`, with ``window_mb``)."""
        n_blocks = len(self._block_plan()[2])
        return np.random.default_rng([self.seed, self.epoch, 1]).permutation(n_blocks)

    def _block_order(self) -> np.ndarray:
        """This epoch's rows with block shuffling: blocks in a random order, rows shuffled within each
        window of ``window_blocks`` blocks."""
        served, starts = self._block_plan()[:2]
        blocks, rng, w = self._blocks(), np.random.default_rng([self.seed, self.epoch]), self.window_blocks
        parts = []
        for at in range(0, len(blocks), w):
            rows = np.concatenate([served[starts[j]:starts[j + 1]] for j in blocks[at:at + w]])
            parts.append(rows[rng.permutation(len(rows))])
        return np.concatenate(parts)

    def _read_window(self, window: int) -> tuple[np.ndarray, np.ndarray]:
        """The blocks of a window of this epoch, each read whole with one ``preadv`` (forward through
        the file, from its first to its last row served): ``(rows, first)``, the rows one after the
        other (in a buffer of a whole window's rows, reused from a dropped window when there is one)
        and, for every block, where its first row read sits in ``rows`` (-1: not in this window)."""
        x, _ = self._arrays()
        _, _, ids, lo, hi = self._block_plan()
        if self._fd is None:
            self._fd = os.open(self.x_path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        w = self.window_blocks
        blocks = np.sort(self._blocks()[window * w:(window + 1) * w])
        first = np.full(len(ids), -1, np.int64)
        rows = self._spare.pop() if self._spare else np.empty((w * self.block_rows, *self.x_shape[1:]), self.x_dtype)
        at = 0
        for j in blocks.tolist():
            start, size = int(lo[j]), int(hi[j] - lo[j])
            view = memoryview(rows[at:at + size].reshape(-1).view(np.uint8))  # read straight into the window
            if _read_into(self._fd, view, x.offset + start * self.row_bytes) != size * self.row_bytes:
                raise OSError(f"{self.x_path!r}: short read of rows {start:,}-{start + size:,} (truncated file?)")
            first[j], at = at, at + size
        return rows, first

    def _block_rows_of(self, idx: np.ndarray) -> np.ndarray:
        """Rows ``idx`` read through the windows they fall in (at most two windows held), served as
        float32 (uint8 scaled to [0, 1]): converted :data:`CONVERT_KIB` KiB at a time straight into
        the batch, so no uint8 copy of a whole batch of large rows sits beside it."""
        _, _, ids, lo, _ = self._block_plan()
        block = np.searchsorted(ids, idx // self.block_rows)
        within = idx - lo[block]
        out = np.empty((len(idx), *self.x_shape[1:]), np.float32)
        scale = np.float32(255) if self.x_dtype == np.uint8 else np.float32(1)
        chunk = self._convert_rows()
        with self._lock:   # worker threads: a window is neither dropped nor refilled while a batch copies from it
            if self._window_epoch != self.epoch:  # which window each block is in, once per epoch
                window_of_block = np.empty(len(ids), np.int64)
                window_of_block[self._blocks()] = np.arange(len(ids)) // self.window_blocks
                self._window_of_block, self._window_epoch = window_of_block, self.epoch
            windows = self._window_of_block[block]
            for w in np.unique(windows).tolist():
                key = (self.epoch, w)
                if key not in self._windows:
                    for old in sorted(self._windows)[:-1]:   # keep the latest: a batch may span two windows
                        self._spare.append(self._windows.pop(old)[0])   # its buffer, for the next window
                    self._windows[key] = self._read_window(w)   # so at most two are held, while reading too
                rows, first = self._windows[key]
                here = np.flatnonzero(windows == w)
                at = first[block[here]] + within[here]
                for c in range(0, len(here), chunk):   # a few rows at a time: small temporaries
                    out[here[c:c + chunk]] = np.divide(rows[at[c:c + chunk]], scale, dtype=np.float32)
        return out

    def held_mb(self) -> float:
        """MiB of the window buffers block shuffling holds now (windows and spare buffers): at most
        ``window_mb``."""
        buffers = [rows for rows, _ in self._windows.values()] + list(self._spare)
        return sum(b.nbytes for b in buffers) / MIB

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
        if self.shuffle and self.window_mb:
            return self._block_rows_of(idx), np.asarray(y[idx])   # float32 already
        if idx.size > 1 and np.any(idx[1:] < idx[:-1]):  # unsorted (shuffle=False, indices given so)
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
                f"batches={len(self)}, shuffle={self.shuffle}, readahead={self.readahead}, "
                + (f"window_mb={self.window_mb:g} (blocks of {self.block_rows} rows, {self.window_blocks} a window: "
                   f"{self.window_bytes() * 2 / MIB:,.1f} MiB for two), " if self.window_mb else "")
                + f"epoch={self.epoch})")

    def window_bytes(self) -> int:
        """Bytes of one window's buffer with block shuffling (0 without): two are held at most."""
        return self.window_blocks * self.block_rows * self.row_bytes if self.window_mb else 0
