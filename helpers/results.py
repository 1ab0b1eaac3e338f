"""Measured figures of a lesson, written to ``results/<scale>/<notebook-stem>.json``.

Lesson 07 and the README table read only these files. Schema::

    {"notebook": "01_in_memory_fit", "scale": "default",
     "records": [{"pipeline": "...", "dataset_mb": 957.0, "peak_anon_mb": 1890.2,
                  "samples_per_s": 8123.4, ...extra keys...}]}

``dataset_mb`` is the size of the data as the model sees it (float32 in memory), in MiB.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from helpers.config import Scale, get_scale, results_dir

REQUIRED = ("pipeline", "dataset_mb", "peak_anon_mb", "samples_per_s")


def _clean(value: Any) -> Any:
    """Plain JSON values: numpy scalars to Python, floats rounded, NaN to None."""
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else round(value, 3)
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def record(notebook: str, records: list[dict[str, Any]], scale: Scale | None = None) -> Path:
    """Write the records of ``notebook`` (its stem, e.g. ``"01_in_memory_fit"``) atomically.

    Each record needs ``pipeline``, ``dataset_mb``, ``peak_anon_mb`` and ``samples_per_s``
    (``None`` where it does not apply); extra keys are kept. Returns the file written.
    """
    scale = scale or get_scale()
    for r in records:
        missing = [k for k in REQUIRED if k not in r]
        if missing:
            raise ValueError(f"record {r.get('pipeline', r)!r} lacks {missing}")
    out = results_dir(scale) / f"{Path(notebook).stem}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"notebook": Path(notebook).stem, "scale": scale.name, "records": _clean(records)}
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1) + "\n")
    os.replace(tmp, out)
    return out


def load(scale: Scale | None = None) -> list[dict[str, Any]]:
    """Every results file of a scale, sorted by notebook."""
    folder = results_dir(scale or get_scale())
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
