"""The series' ``keras.utils.PyDataset`` classes, in one namespace.

- :class:`MemmapDataset` (lesson 02): batches of a ``.npy`` pair read through ``np.memmap``
  (defined in :mod:`helpers.memmap_dataset`)
- :class:`ImageFileDataset` (lesson 04): batches decoded from a list of image files
  (defined in :mod:`helpers.image_files`)

Each lives in its own module so that importing one does not import the other; they are resolved
here on first use. Worker processes unpickle them from their defining modules.
"""

from __future__ import annotations

from typing import Any

_WHERE = {"MemmapDataset": "helpers.memmap_dataset", "ImageFileDataset": "helpers.image_files"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'helpers.loaders' has no attribute {name!r}")


__all__ = sorted(_WHERE)
