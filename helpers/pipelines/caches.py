"""Three caches for a file-list dataset, with hit/miss counters. Needs NumPy; copy alone.

Lesson 04 measures them; they share one small interface.

Every cache has ``get(key, load) -> value``: the value of ``key`` if it is held (a *hit*), else
``load(key)`` (a *miss*), kept or not by the cache's policy. ``stores`` says what the dataset should
put in it: ``"decoded"`` (the float32 array the model sees) or ``"encoded"`` (the file's bytes,
decoded at each use). ``hits``, ``misses``, ``hit_rate``, ``len()`` and ``nbytes`` report on it.

- :class:`LRUCache`: ``functools.lru_cache(maxsize)``, what the article tried. On epoch-wise scans
  smaller than the data it *thrashes*: it evicts the least recently used item, which is exactly
  the one a sequential epoch asks for next (0 % hits), and most of what a shuffled epoch asks for.
- :class:`FillOnceCache`: keeps the first ``capacity`` items it sees and never evicts, so each later
  epoch hits ``capacity / n`` of its items, in any order.
- :class:`BytesBudgetCache`: fill-once too, with a budget in **megabytes** rather than items; meant
  for the encoded bytes (a JPEG is ~30x smaller than its decoded float32 array, so ~30x more fit).

All are safe to share between thread workers (``PyDataset(workers=4)``). Under process workers
(``use_multiprocessing=True``) each worker process has its **own copy**: Keras rebuilds the pool
every epoch, so what a worker adds is lost at the epoch's end (what the parent held when the pool
was made is inherited, under fork as copy-on-write, under spawn by pickling). To *see* the
workers' hits and misses from the parent, create the cache with ``shared_counters=True``: the two
counters then live in shared memory that worker processes inherit.
"""

from __future__ import annotations

import functools
import multiprocessing
import threading
from typing import Any, Callable, Hashable, Literal

import numpy as np

MB = 2**20
"""A megabyte here is a MiB (2**20 bytes), like every memory figure of the series."""

Stores = Literal["decoded", "encoded"]


def nbytes_of(value: Any) -> int:
    """Bytes of a cached value's payload: ``len`` of bytes, ``nbytes`` of an array."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return len(value)
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    raise TypeError(f"cannot size a cached value of type {type(value).__name__}")


class Counters:
    """Hits and misses, counted under a lock.

    ``shared=True`` keeps them in shared memory (``multiprocessing.RawArray`` + ``Lock``), so the
    counts of worker processes reach the parent. Such counters pickle only while a process is being
    started (as Keras does for its pool), as every ``multiprocessing`` shared object.
    """

    def __init__(self, shared: bool = False) -> None:
        self.shared = shared
        self._values: Any = multiprocessing.RawArray("q", 2) if shared else [0, 0]
        self._lock: Any = multiprocessing.Lock() if shared else threading.Lock()

    def add(self, hit: bool) -> None:
        with self._lock:
            self._values[0 if hit else 1] += 1

    @property
    def hits(self) -> int:
        return int(self._values[0])

    @property
    def misses(self) -> int:
        return int(self._values[1])

    def reset(self) -> None:
        with self._lock:
            self._values[0] = self._values[1] = 0

    def __getstate__(self) -> dict:
        if self.shared:
            return {"shared": True, "values": self._values, "lock": self._lock}
        return {"shared": False, "values": list(self._values)}

    def __setstate__(self, state: dict) -> None:
        self.shared = state["shared"]
        self._values = state["values"]
        self._lock = state["lock"] if self.shared else threading.Lock()


class _Cache:
    """What the three caches share: counters and the report."""

    stores: Stores = "decoded"

    def __init__(self, stores: Stores, shared_counters: bool) -> None:
        if stores not in ("decoded", "encoded"):
            raise ValueError(f"stores must be 'decoded' or 'encoded', not {stores!r}")
        self.stores = stores
        self.counters = Counters(shared_counters)

    @property
    def hits(self) -> int:
        return self.counters.hits

    @property
    def misses(self) -> int:
        return self.counters.misses

    @property
    def hit_rate(self) -> float:
        """hits / (hits + misses) since creation or the last :meth:`reset_counters` (NaN if none)."""
        total = self.hits + self.misses
        return self.hits / total if total else float("nan")

    def reset_counters(self) -> None:
        """Zero the counters (the contents stay)."""
        self.counters.reset()

    def get(self, key: Hashable, load: Callable[[Any], Any]) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({len(self)} items, {self.nbytes / MB:.1f} MiB, stores={self.stores!r}, "
                f"hits={self.hits}, misses={self.misses})")


class _DictCache(_Cache):
    """A dict filled once under a lock; subclasses say whether a new value still fits."""

    def __init__(self, stores: Stores, shared_counters: bool) -> None:
        super().__init__(stores, shared_counters)
        self._data: dict[Hashable, Any] = {}
        self._nbytes = 0
        self._lock = threading.Lock()

    def _fits(self, size: int) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def get(self, key: Hashable, load: Callable[[Any], Any]) -> Any:
        """The value of ``key``: from the cache (hit) or from ``load(key)`` (miss, kept if it fits)."""
        value = self._data.get(key)  # a dict read is atomic under the GIL
        if value is not None:
            self.counters.add(True)
            return value
        self.counters.add(False)
        value = load(key)  # outside the lock: thread workers decode in parallel
        size = nbytes_of(value)
        with self._lock:
            if key not in self._data and self._fits(size):
                self._data[key] = value
                self._nbytes += size
        return value

    def __contains__(self, key: Hashable) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    @property
    def nbytes(self) -> int:
        """Bytes of the values held (payload only: Python's per-item overhead is ~100 B)."""
        return self._nbytes

    def clear(self) -> None:
        """Drop every item (the counters stay)."""
        with self._lock:
            self._data.clear()
            self._nbytes = 0

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()


class FillOnceCache(_DictCache):
    """Keep the first ``capacity`` items seen; never evict.

    On epoch-wise scans the same ``capacity`` items hit in every epoch after the first, whatever
    the order: the hit rate is ``capacity / n`` from epoch 2 on.
    """

    def __init__(self, capacity: int, stores: Stores = "decoded", shared_counters: bool = False) -> None:
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, not {capacity}")
        super().__init__(stores, shared_counters)
        self.capacity = int(capacity)

    def _fits(self, size: int) -> bool:
        return len(self._data) < self.capacity


class BytesBudgetCache(_DictCache):
    """Fill-once within a budget in megabytes (MiB): keep values while their bytes fit; never evict.

    Meant for encoded file bytes (``stores="encoded"``), but it sizes arrays too. ``nbytes`` never
    exceeds ``budget_mb * 2**20``; items that would overflow the budget are loaded, not kept.
    """

    def __init__(self, budget_mb: float, stores: Stores = "encoded", shared_counters: bool = False) -> None:
        if budget_mb < 0:
            raise ValueError(f"budget_mb must be >= 0, not {budget_mb}")
        super().__init__(stores, shared_counters)
        self.budget_mb = float(budget_mb)
        self.budget_bytes = int(budget_mb * MB)

    def _fits(self, size: int) -> bool:
        return self._nbytes + size <= self.budget_bytes


class LRUCache(_Cache):
    """``functools.lru_cache(maxsize)`` behind the common ``get(key, load)`` interface.

    Hits and misses are those of ``cache_info()``, the numbers ``lru_cache`` counts itself (also
    thread-safe). ``lru_cache`` caches a *function* of the key, so ``load`` must be the same
    function at every call (it is remembered at the first). A pickled copy (a spawned worker) starts
    empty: ``lru_cache`` cannot be pickled with its contents.
    """

    def __init__(self, maxsize: int, stores: Stores = "decoded") -> None:
        if maxsize < 0:
            raise ValueError(f"maxsize must be >= 0, not {maxsize}")
        super().__init__(stores, shared_counters=False)
        self.maxsize = int(maxsize)
        self._load: Callable[[Any], Any] | None = None
        self._item_nbytes = 0
        self._build()

    def _build(self) -> None:
        @functools.lru_cache(maxsize=self.maxsize)
        def cached(key: Hashable) -> Any:
            value = self._load(key)  # type: ignore[misc]
            self._item_nbytes = max(self._item_nbytes, nbytes_of(value))
            return value

        self._cached = cached

    def get(self, key: Hashable, load: Callable[[Any], Any]) -> Any:
        if self._load is None:
            self._load = load
        return self._cached(key)

    def cache_info(self) -> Any:
        """``functools.lru_cache``'s own ``CacheInfo(hits, misses, maxsize, currsize)``."""
        return self._cached.cache_info()

    @property
    def hits(self) -> int:
        return self._cached.cache_info().hits - self._hits0

    @property
    def misses(self) -> int:
        return self._cached.cache_info().misses - self._misses0

    _hits0 = 0
    _misses0 = 0

    def reset_counters(self) -> None:
        info = self._cached.cache_info()
        self._hits0, self._misses0 = info.hits, info.misses

    def __len__(self) -> int:
        return self._cached.cache_info().currsize

    @property
    def nbytes(self) -> int:
        """Bytes of the values held, as items x the largest item (exact for images of one size)."""
        return len(self) * self._item_nbytes

    def clear(self) -> None:
        self._cached.cache_clear()
        self._item_nbytes = 0
        self._hits0 = self._misses0 = 0

    def __getstate__(self) -> dict:
        return {"stores": self.stores, "maxsize": self.maxsize, "counters": self.counters}

    def __setstate__(self, state: dict) -> None:
        self.stores, self.maxsize, self.counters = state["stores"], state["maxsize"], state["counters"]
        self._load = None
        self._item_nbytes = 0
        self._build()


Cache = LRUCache | FillOnceCache | BytesBudgetCache
"""Any of the three (each has what ``ImageFileDataset`` of ``image_files.py`` needs of a ``cache``)."""
