"""Measured figures of a lesson, written to ``results/<scale>/<notebook-stem>.json``.

The summary lesson and the README table read only these files, and each record says what it is
where it is measured: the lesson that makes a record gives it a stable ``id`` and, if it is one of
the series' main pipelines, a :class:`Row` (its label in the table, task, kind, reference, what it
needs, which figure is its peak). Nothing elsewhere is keyed by a record's label. Schema::

    {"schema": 2, "notebook": "02_memmap_pydataset", "scale": "default",
     "records": [{"id": "memmap", "pipeline": "memmap PyDataset", "dataset_mb": 957.0,
                  "peak_anon_mb": 24.1, "samples_per_s": 9703.2,
                  "row": {"label": "memmap + PyDataset", "task": "digits", "kind": "streaming", ...},
                  ...extra keys...}]}

``dataset_mb`` is the size of the data as the model sees it (float32 in memory), in MiB. A record
of a size sweep carries ``sweep`` (the name of its series) and the summary plots it against
``dataset_mb``. Runs under a memory limit add ``memory_limit_mb``, ``data_file_mb`` and
``limit_kind`` (:data:`LIMIT_KINDS`).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from helpers.config import Scale, get_scale, project_root, results_dir, write_atomic

SCHEMA = 2
"""Version of the file format; :func:`load` refuses files of another version."""
REQUIRED = ("id", "pipeline", "dataset_mb", "peak_anon_mb", "samples_per_s")
"""Keys every record has (``None`` where a figure does not apply)."""
TASKS = {
    "digits": "28x28 digit arrays, the digits CNN (lessons 01, 02, 05)",
    "fish": "fish JPEG files, the fish counter (lessons 04-06)",
}
KINDS = {
    "in memory": "holds the whole data set in RAM",
    "compute ceiling": "one batch in RAM, repeated: no input pipeline, the model's own speed (a reference)",
    "streaming": "holds a few batches in RAM, whatever the size of the data",
    "cache in RAM": "holds (part of) the data in RAM, up to what it was given room for",
    "cache on disk": "keeps the (decoded) data in a file and holds a few batches in RAM",
    "trap": "looks like streaming but copies the whole data set into RAM",
    "CPU-heavy stream": "streams image files through a random augmentation that makes the input, not the "
                        "model, the bottleneck on purpose (lesson 06); its worker processes cost "
                        "copy-on-write memory of the training process",
}
"""How a main pipeline treats the data: the one list of kinds (a new lesson adds to it here)."""
STREAMING_KINDS = ("streaming", "cache on disk")
"""Kinds that keep only a few batches in RAM, whatever the size of the data."""
BATCH_CHECKED_KINDS = (*STREAMING_KINDS, "CPU-heavy stream", "trap")
"""Kinds whose shown peak must carry the ``batch_mb`` of the pipeline and be at least that: a peak
below the one batch a pipeline holds is a measurement artifact (memory freed earlier in the same
process, reused), never a figure."""
LIMIT_KINDS = ("cgroup", "evict")
"""How a run under a memory limit was limited: a memory cgroup, or the page cache evicted."""
LIMIT_KEYS = ("memory_limit_mb", "data_file_mb", "limit_kind")
_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


@dataclass(frozen=True)
class Row:
    """What a record of a main pipeline is, said by the lesson that measures it: its row in the
    side-by-side table (:mod:`helpers.report.summary`)."""

    label: str
    """Short name in the table."""
    task: str
    """One of :data:`TASKS`: speeds are compared only within a task (and a lesson's run)."""
    kind: str
    """One of :data:`KINDS`."""
    needs: str
    """Threads, processes, the format on disk, what it holds in RAM."""
    reference: bool = False
    """The reference of its task in its lesson, of kind ``"in memory"`` or ``"compute ceiling"``:
    samples/s fractions are taken against it, in the column of its kind (at most one per task and
    lesson)."""
    holds: float = 0.0
    """The share of ``dataset_mb`` it keeps in RAM by design and its peak includes: 1 for float32
    arrays, 0.25 for uint8, a cache's budget; 0 for a streaming pipeline."""
    peak_from: str | None = None
    """The id of another record of the same lesson whose peak is shown instead of this one's (the
    pipeline alone, no model): the fish counter's own training memory would hide the pipeline's."""
    peak_shown: bool = True
    """False: the record's peak is mostly the model's own training memory and the lesson has no
    pipeline-alone figure for it: the table shows none."""

    def __post_init__(self) -> None:
        where = f"row {self.label!r}"
        if not self.label or not self.needs:
            raise ValueError(f"{where}: label and needs must not be empty")
        if self.task not in TASKS:
            raise ValueError(f"{where}: task {self.task!r} is not one of {sorted(TASKS)}")
        if self.kind not in KINDS:
            raise ValueError(f"{where}: kind {self.kind!r} is not one of {list(KINDS)} "
                             "(a new kind is added to helpers.report.results.KINDS)")
        if not 0 <= self.holds <= 1:
            raise ValueError(f"{where}: holds={self.holds} is a share of the data, 0 to 1")

    @classmethod
    def of(cls, value: "Row | dict[str, Any]") -> "Row":
        """A :class:`Row` from itself or from its dict (as a results file stores it)."""
        if isinstance(value, cls):
            return value
        unknown = set(value) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"row {value.get('label')!r}: unknown fields {sorted(unknown)}")
        return cls(**value)


def clean(value: Any) -> Any:
    """Plain JSON values: numpy scalars to Python, floats rounded, NaN to None, rows to dicts."""
    if isinstance(value, Row):
        return clean(asdict(value))
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else round(value, 3)
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


def validate(notebook: str, records: list[dict[str, Any]]) -> None:
    """Raise ``ValueError`` naming the notebook and the record for anything a reader could not
    trust: a missing key, an id that is not unique or not ``lower-case-with-dashes``, an unknown
    kind or task, a ``peak_from`` that names no record, two references for one task, a sweep
    without a size, a run under a limit that does not say which, a peak below one batch of its own
    pipeline (``batch_mb``), a streaming row's peak without ``batch_mb``."""
    ids: list[str] = []
    for r in records:
        name = f"{notebook}: record {r.get('id', r.get('pipeline', '?'))!r}"
        missing = [k for k in REQUIRED if k not in r]
        if missing:
            raise ValueError(f"{name} lacks {missing} (every record has {list(REQUIRED)}; None where n/a)")
        if not isinstance(r["id"], str) or not _ID.match(r["id"]):
            raise ValueError(f"{name}: an id is lower-case letters, digits, '-', '_', '.'")
        if r["id"] in ids:
            raise ValueError(f"{name}: the id is used twice in this notebook")
        ids.append(r["id"])
        if "sweep" in r and (not isinstance(r["sweep"], str) or r["dataset_mb"] is None):
            raise ValueError(f"{name}: a sweep record names its series and has a dataset_mb")
        present = [k for k in LIMIT_KEYS if k in r]
        if present and (len(present) != len(LIMIT_KEYS) or r["limit_kind"] not in LIMIT_KINDS):
            raise ValueError(f"{name}: a run under a memory limit has all of {list(LIMIT_KEYS)}, "
                             f"limit_kind one of {LIMIT_KINDS}")
        batch, peak = r.get("batch_mb"), r["peak_anon_mb"]
        if batch is not None and peak is not None and peak < batch:
            raise ValueError(f"{name}: peak_anon_mb {peak:.2f} MiB is below one batch of its own pipeline "
                             f"({batch:.2f} MiB): an artifact of memory reused in one process; measure it in a "
                             "fresh process (helpers.lab.recipes.first_batches)")
        if r.get("row") is not None:
            try:
                Row.of(r["row"])
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{name}: {exc}") from None
    references: set[str] = set()
    for r in records:
        if r.get("row") is None:
            continue
        row = Row.of(r["row"])
        if row.peak_from is not None and row.peak_from not in ids:
            raise ValueError(f"{notebook}: record {r['id']!r}: peak_from={row.peak_from!r} names no record")
        shown = next(s for s in records if s["id"] == row.peak_from) if row.peak_from else r
        if (row.kind in BATCH_CHECKED_KINDS and row.peak_shown and shown["peak_anon_mb"] is not None
                and shown.get("batch_mb") is None):
            raise ValueError(f"{notebook}: record {shown['id']!r} (the peak of the {row.kind!r} row "
                             f"{r['id']!r}) needs batch_mb, the MiB of one batch, so that its peak can be checked")
        if row.reference:
            if row.kind not in ("in memory", "compute ceiling"):
                raise ValueError(f"{notebook}: record {r['id']!r}: a reference is 'in memory' or 'compute ceiling', "
                                 f"not {row.kind!r}")
            if row.task in references:
                raise ValueError(f"{notebook}: record {r['id']!r}: a second in-memory reference for {row.task!r}")
            references.add(row.task)


def record(notebook: str, records: list[dict[str, Any]], scale: Scale | None = None) -> Path:
    """Validate the records of ``notebook`` (its stem, e.g. ``"01_in_memory_fit"``) and write them
    atomically (see :func:`validate`). Returns the file written."""
    scale = scale or get_scale()
    stem = Path(notebook).stem
    validate(stem, records)
    out = results_dir(scale) / f"{stem}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    records = [{k: v for k, v in r.items() if not (k == "row" and v is None)} for r in records]  # row=None: a detail
    payload = {"schema": SCHEMA, "notebook": stem, "scale": scale.name, "records": clean(records)}
    return write_atomic(out, json.dumps(payload, indent=1) + "\n")


def write_benchmark(name: str, figures: dict[str, Any]) -> Path:
    """``results/benchmarks/<name>.json``: a benchmark's figures (``tests/bench_*.py``), written
    atomically; prints and returns the path."""
    path = project_root() / "results" / "benchmarks" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(clean(figures), indent=1) + "\n")
    print("written:", path.relative_to(project_root()))
    return path


def load(scale: Scale | None = None) -> list[dict[str, Any]]:
    """Every results file of a scale, sorted by notebook. A file of another schema version (written
    by an older version of the series) is an error that names it and the lesson to run again."""
    folder = results_dir(scale or get_scale())
    out = []
    for p in sorted(folder.glob("*.json")):
        payload = json.loads(p.read_text())
        if payload.get("schema") != SCHEMA:
            raise ValueError(f"{p}: results schema {payload.get('schema', 1)}, this series reads {SCHEMA}: "
                             f"run notebooks/{p.stem}.ipynb again (or delete the file)")
        out.append(payload)
    return out


def find(results: list[dict[str, Any]], notebook: str, record_id: str) -> dict[str, Any] | None:
    """The record ``record_id`` of ``notebook`` among ``results`` (as :func:`load` returns them), or
    None if that lesson's results are not there. ``KeyError`` if they are and have no such id."""
    for payload in results:
        if payload["notebook"] == notebook:
            found = next((r for r in payload["records"] if r["id"] == record_id), None)
            if found is None:
                raise KeyError(f"{notebook} has no record {record_id!r}; its ids: "
                               f"{[r['id'] for r in payload['records']]}")
            return found
    return None
