"""ImageFileDataset: batches of image files, decoded with Pillow. Needs NumPy, Keras, Pillow; copy alone.

A file-list dataset of images (lesson 04; lessons 05 and 06 reuse it).

The index follows the convention of the Stanford "data generator" article: a ``partition`` dict
``{"train": [ID, ...], "validation": [...], "test": [...]}`` and a ``labels`` dict ``{ID: label}``.
Here an ID is the file's path relative to the data root (``"3/000012.jpg"``) and the label is the
name of its folder (``path.parent.name``), read with :mod:`pathlib`.

:class:`ImageFileDataset` is a ``keras.utils.PyDataset`` that reads and decodes one batch of files
per ``__getitem__`` (Pillow), optionally through a cache: any object with the interface of
:class:`CacheLike`, such as the caches of ``caches.py``.
"""

from __future__ import annotations

import io
import math
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Hashable, Protocol, Sequence

import keras
import numpy as np
from PIL import Image


class CacheLike(Protocol):
    """What :class:`ImageFileDataset` needs of a cache (the caches of ``caches.py`` have it).

    ``stores`` is ``"decoded"`` (the cache holds the float32 array the model sees) or ``"encoded"``
    (the file's bytes, decoded at each use); ``get(key, load)`` returns the value held under
    ``key``, else ``load(key)`` (kept or not, as the cache decides); ``hits`` and ``misses`` count
    the two cases (read by :class:`CacheStatsCallback`).
    """

    stores: str

    @property
    def hits(self) -> int: ...

    @property
    def misses(self) -> int: ...

    def get(self, key: Hashable, load: Callable[[Any], Any]) -> Any: ...


IMAGE_SUFFIXES = (".jpg", ".jpeg")


# -- the index ------------------------------------------------------------------------------
def list_images(root: str | os.PathLike) -> list[Path]:
    """Every JPEG file under ``root`` (any depth), sorted, so the list is the same on every machine."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no image folder at {root}")
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def label_of(path: str | os.PathLike) -> int:
    """The label of ``<root>/<label>/<id>.jpg``: the name of the file's folder, as an int."""
    name = Path(path).parent.name
    try:
        return int(name)
    except ValueError:
        raise ValueError(f"{path}: its folder name {name!r} is not an integer label") from None


def make_index(root: str | os.PathLike, fractions: Sequence[float] = (0.8, 0.1, 0.1),
               seed: int = 0) -> tuple[dict[str, list[str]], dict[str, int]]:
    """``(partition, labels)`` of the images under ``root`` (the Stanford article's convention).

    The sorted file list is shuffled with ``seed`` and cut into train/validation/test by
    ``fractions``. IDs are POSIX paths relative to ``root``; ``labels[ID]`` is the folder name.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or not math.isclose(sum(fractions), 1.0):
        raise ValueError(f"fractions must be 3 non-negative numbers summing to 1, not {fractions}")
    root = Path(root)
    ids = [p.relative_to(root).as_posix() for p in list_images(root)]
    order = np.random.default_rng(seed).permutation(len(ids))
    n_train = int(round(fractions[0] * len(ids)))
    n_val = int(round(fractions[1] * len(ids)))
    cuts = {"train": order[:n_train], "validation": order[n_train:n_train + n_val],
            "test": order[n_train + n_val:]}
    partition = {name: [ids[i] for i in idx] for name, idx in cuts.items()}
    labels = {i: label_of(i) for i in ids}
    return partition, labels


def paths_and_targets(root: str | os.PathLike, ids: Sequence[str], labels: dict[str, int],
                      dtype: Any = "float32") -> tuple[list[Path], np.ndarray]:
    """Full paths and the target array of a list of IDs (e.g. ``partition["train"]``), aligned."""
    root = Path(root)
    return [root / i for i in ids], np.array([labels[i] for i in ids], dtype=dtype)


# -- reading one image --------------------------------------------------------------------------
class BadImageError(OSError):
    """A file that cannot be read as an image; the message starts with the file's path."""


def read_bytes(path: str | os.PathLike) -> bytes:
    """The bytes of an image file; :class:`BadImageError` naming the file if missing or empty."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise BadImageError(f"{path}: cannot read the file ({type(exc).__name__}: {exc.strerror or exc})") from exc
    if not data:
        raise BadImageError(f"{path}: empty file (0 bytes)")
    return data


def decode(data: bytes, image_size: tuple[int, int], path: str | os.PathLike = "<bytes>") -> np.ndarray:
    """Decode JPEG (or any Pillow) bytes to float32 RGB in [0, 1], shape ``(height, width, 3)``.

    Smaller targets use JPEG draft mode (the decoder scales by 1/2, 1/4, 1/8 on the fly), then a
    bilinear resize to the exact size. :class:`BadImageError` names ``path`` if the bytes are not a
    complete image (truncated, corrupt).
    """
    height, width = image_size
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.size != (width, height):
                img.draft("RGB", (width, height))
            img = img.convert("RGB")  # decodes the whole image: a truncated file fails here
            if img.size != (width, height):
                img = img.resize((width, height), Image.BILINEAR)
            array = np.asarray(img, dtype=np.float32)
    except (OSError, ValueError, SyntaxError) as exc:
        raise BadImageError(f"{path}: not a readable image ({type(exc).__name__}: {exc})") from exc
    array *= 1 / 255
    return array


# -- the dataset ----------------------------------------------------------------------------
class ImageFileDataset(keras.utils.PyDataset):
    """Batches ``(images, targets)`` decoded from a list of image files.

    Args:
        paths: image files; ``targets[i]`` belongs to ``paths[i]``.
        targets: one target per path (any array-like; kept with its dtype).
        batch_size: images per batch; the last batch holds the rest (it may be smaller).
        image_size: side of the square output (int) or ``(height, width)``; images of another size
            are resized.
        cache: ``None`` or a :class:`CacheLike`, such as a cache of ``caches.py`` (``LRUCache``, ``FillOnceCache``,
            ``BytesBudgetCache``); its ``stores`` says whether it holds the decoded float32 array or
            the file's encoded bytes (decoded at each use).
        shuffle: visit the samples in a new seeded order every epoch (``on_epoch_end``).
        skip_bad: ``False`` (default): a missing, empty or corrupt file raises
            :class:`BadImageError` naming the file. ``True``: the file is dropped from its batch
            (images and targets stay aligned; the batch is smaller) and recorded in ``skipped``.
        seed: seed of the per-epoch order.
        **kwargs: ``workers``, ``use_multiprocessing``, ``max_queue_size`` for ``keras.utils.PyDataset``.

    Skips are recorded by the process that reads the batch. With thread workers that is this
    process; with ``use_multiprocessing=True`` the worker processes' records do not reach the parent
    (they also vanish when Keras rebuilds its pool each epoch): call :meth:`scan` before training to
    find, and with ``skip_bad=True`` drop, the bad files in this process.

    Every image goes through the cache under its path as key, so the dataset pickles small (a list
    of paths, the targets, the cache's contents if any) for spawned worker processes.
    """

    def __init__(self, paths: Sequence[str | os.PathLike], targets: Any, batch_size: int,
                 image_size: int | tuple[int, int], cache: CacheLike | None = None, shuffle: bool = True,
                 skip_bad: bool = False, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.paths = [str(p) for p in paths]
        self.targets = np.asarray(targets)
        if len(self.paths) != len(self.targets):
            raise ValueError(f"{len(self.paths)} paths but {len(self.targets)} targets")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, not {batch_size}")
        self.batch_size = int(batch_size)
        self.image_size = (int(image_size), int(image_size)) if np.isscalar(image_size) else tuple(image_size)
        self.cache = cache
        self.shuffle = shuffle
        self.skip_bad = skip_bad
        self.seed = seed
        self.epoch = 0
        self.skipped: dict[str, str] = {}
        """``{path: reason}`` of the files dropped in skip mode (in this process), first seen first."""
        self._lock = threading.Lock()
        self.order = self._order()

    # -- order ------------------------------------------------------------------------------
    def _order(self) -> np.ndarray:
        n = len(self.paths)
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng([self.seed, self.epoch]).permutation(n)

    def on_epoch_end(self) -> None:
        """Next epoch: a new seeded order (when ``shuffle``)."""
        self.epoch += 1
        self.order = self._order()

    def __len__(self) -> int:
        return math.ceil(len(self.paths) / self.batch_size)

    # -- reading ----------------------------------------------------------------------------
    def _read_decoded(self, path: str) -> np.ndarray:
        return decode(read_bytes(path), self.image_size, path)

    def load(self, path: str) -> np.ndarray:
        """One image as the model sees it, through the cache if there is one."""
        if self.cache is None:
            return self._read_decoded(path)
        if self.cache.stores == "encoded":
            return decode(self.cache.get(path, read_bytes), self.image_size, path)
        return self.cache.get(path, self._read_decoded)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} of a dataset of {len(self)} batches")
        rows = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        images, kept = [], []
        for row in rows:
            path = self.paths[row]
            try:
                images.append(self.load(path))
            except BadImageError as exc:
                if not self.skip_bad:
                    raise
                with self._lock:
                    self.skipped.setdefault(path, str(exc)[len(path) + 2:])
                continue
            kept.append(row)
        x = np.stack(images) if images else np.zeros((0, *self.image_size, 3), np.float32)
        return x, self.targets[np.asarray(kept, dtype=np.int64)]

    @property
    def n_skipped(self) -> int:
        """How many files skip mode dropped (in this process)."""
        return len(self.skipped)

    # -- before training ------------------------------------------------------------------
    def scan(self) -> dict[str, str]:
        """Read and decode every file once in this process (the cache is not used); return
        ``{path: reason}`` of the bad ones.

        With ``skip_bad=True`` they are added to ``skipped`` and removed from the dataset (paths
        and targets together), so worker processes never meet them; otherwise the first one raises.
        """
        bad: dict[str, str] = {}
        for path in self.paths:
            try:
                self._read_decoded(path)
            except BadImageError as exc:
                if not self.skip_bad:
                    raise
                bad[path] = str(exc)[len(path) + 2:]
        if bad:
            keep = np.array([p not in bad for p in self.paths])
            self.paths = [p for p, k in zip(self.paths, keep) if k]
            self.targets = self.targets[keep]
            self.skipped.update(bad)
            self.order = self._order()
        return bad

    def fill_cache(self) -> float:
        """Load every file into the cache in this process; return the seconds it took.

        Fill it before ``fit`` when ``use_multiprocessing=True``: worker processes inherit what the
        parent holds when Keras makes the pool (each epoch), but lose what they add themselves.
        """
        if self.cache is None:
            raise ValueError("this dataset has no cache to fill")
        t0 = time.perf_counter()
        for path in self.paths:
            try:
                if self.cache.stores == "encoded":
                    self.cache.get(path, read_bytes)
                else:
                    self.cache.get(path, self._read_decoded)
            except BadImageError:
                if not self.skip_bad:
                    raise
        return time.perf_counter() - t0

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()


class CacheStatsCallback(keras.callbacks.Callback):
    """Per epoch of ``fit``: seconds, and the hits and misses a cache counted in that epoch.

    Counts made in worker processes reach this callback only if the cache was created with
    ``shared_counters=True``.
    """

    def __init__(self, cache: CacheLike) -> None:
        super().__init__()
        self.cache = cache
        self.epochs: list[dict[str, float]] = []
        self._start = (0.0, 0, 0)

    def on_epoch_begin(self, epoch, logs=None) -> None:
        self._start = (time.perf_counter(), self.cache.hits, self.cache.misses)

    def on_epoch_end(self, epoch, logs=None) -> None:
        t0, h0, m0 = self._start
        hits, misses = self.cache.hits - h0, self.cache.misses - m0
        self.epochs.append({"epoch": epoch + 1, "seconds": time.perf_counter() - t0, "hits": hits,
                            "misses": misses, "hit_rate": hits / (hits + misses) if hits + misses else float("nan")})
