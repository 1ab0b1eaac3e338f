"""The series side by side: the main pipelines of every lesson, read from ``results/<scale>/*.json``.

Lesson 07 and the README's table use this module. It reads whatever results files are there (any
subset of the lessons) and, for each record of a main pipeline, gives:

- samples/s inside ``fit`` as a fraction of the **in-memory reference of the same task** (digits or
  fish) **in the same lesson's run**: a ratio is never taken between two runs;
- peak anonymous memory as a fraction of the data set (float32, as the model sees it);
- time to the first batch, where the lesson recorded it (each lesson measured it its own way:
  compare it within a lesson);
- what the pipeline needs: threads, processes, a format on disk.

Which records are main pipelines, and what they need, is the table :data:`PIPELINES`, keyed by
(notebook stem, pipeline name); :data:`DETAILS` names the records left out on purpose (size sweeps,
hit rates, controls). A record in neither is *unclassified*: :func:`unclassified` lists it, the
tests fail on it for the committed results, so a renamed pipeline cannot drop out of the table
silently. Records of a lesson the tables do not know at all still show, marked "not classified".

``python -m helpers.summary --markdown`` prints the README's table (``results/default``).
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from helpers.config import get_scale, project_root
from helpers.results import load

KINDS = ("in memory", "streaming", "cache in RAM", "cache on disk", "trap", "CPU-heavy stream")
"""How a pipeline treats the data: holds all of it, streams it, caches (part of) it, the trap, or
streams it through a CPU-heavy augmentation (lesson 06: input-bound by design, its speed a fraction
of the compute ceiling, and its worker processes cost copy-on-write memory that does not scale with
the data)."""
STREAMING_KINDS = ("streaming", "cache on disk")
"""Kinds that keep only a few batches in RAM, whatever the size of the data."""
UNCLASSIFIED = "not classified"


@dataclass(frozen=True)
class Pipeline:
    """What the summary knows about one main pipeline (an entry of :data:`PIPELINES`)."""

    label: str
    """Short name in the table."""
    task: str
    """``"digits"`` (28x28 arrays, the digits CNN) or ``"fish"`` (JPEG files, the fish counter)."""
    kind: str
    """One of :data:`KINDS`."""
    needs: str
    """Threads, processes, the format on disk, what it holds in RAM."""
    reference: bool = False
    """The in-memory reference of its task in its lesson: samples/s fractions are taken against it."""
    holds: float = 0.0
    """The share of ``dataset_mb`` it keeps in RAM by design and its record's peak includes: 1 for
    float32 arrays, 0.25 for uint8 (the digits' memmap that the trap copies, decoded images), a
    cache's budget; 0 for a streaming pipeline."""
    peak_from: str | None = None
    """Take the peak from this record of the same run (the pipeline alone) instead of the row's own.
    Fish trained in ``fit``: the fish counter's own training memory (hundreds of MiB, the most in
    the first fish training of a process) would hide the pipeline's."""
    peak_shown: bool = True
    """False: the record's peak is mostly the model's own training memory (the fish counter in
    ``fit``) and the lesson has no pipeline-alone figure for it: the table shows none."""


# Keys: (notebook stem, pipeline name as recorded); a name ending in "*" matches by prefix (for
# names that carry a scale-dependent number). The order here is the order of the rows.
PIPELINES: dict[tuple[str, str], Pipeline] = {
    ("01_in_memory_fit", "in-memory arrays (np.load + astype + fit)"): Pipeline(
        "np.load + fit(arrays)", "digits", "in memory", "the float32 arrays in RAM, plus the copies made "
        "on the way (uint8 load, astype, fit's tensors)", reference=True, holds=1.0),
    ("01_in_memory_fit", "tf.data from_tensor_slices(arrays) (fresh process)"): Pipeline(
        "tf.data from_tensor_slices(arrays)", "digits", "in memory",
        "the arrays in RAM and TensorFlow's copy of them", holds=1.0),
    ("02_memmap_pydataset", "in-memory arrays"): Pipeline(
        "np.load + fit(arrays)", "digits", "in memory", "the float32 arrays in RAM, plus copies",
        reference=True, holds=1.0),
    ("02_memmap_pydataset", "memmap PyDataset"): Pipeline(
        "memmap + PyDataset", "digits", "streaming",
        "a .npy file on disk, np.load(mmap_mode=\"r\"); no workers; page cache (reclaimable)"),
    ("04_file_list_with_cache", "ImageFileDataset + encoded-bytes cache, fit (fish counter)"): Pipeline(
        "file-list PyDataset + JPEG-bytes cache", "fish", "streaming",
        "JPEG files; their bytes cached in RAM (about the JPEGs' size); Pillow decodes in Python, no workers",
        peak_from="cache, encoded bytes, MiB budget, budget *"),
    ("04_file_list_with_cache", "cache, fill-once, decoded, budget *"): Pipeline(
        "fill-once cache of decoded images", "fish", "cache in RAM",
        "JPEG files; decoded float32 images in RAM up to a budget (half the data here); thread workers, "
        "not processes (their cache is lost every epoch)", holds=0.5),
    ("05_tf_data", "digits: in memory (float32 arrays)"): Pipeline(
        "float32 arrays in RAM", "digits", "in memory", "the float32 arrays in RAM", reference=True, holds=1.0),
    ("05_tf_data", "digits: PyDataset: MemmapDataset (02)"): Pipeline(
        "memmap + PyDataset", "digits", "streaming", "a .npy file on disk; no workers"),
    ("05_tf_data", "digits: tf.data from_generator(path)"): Pipeline(
        "tf.data from_generator(args=[path])", "digits", "streaming",
        "a .npy file on disk, opened inside the generator (Python: holds the GIL)"),
    ("05_tf_data", "digits: tf.data range+numpy_function"): Pipeline(
        "tf.data range → shuffle → numpy_function", "digits", "streaming",
        "a .npy file on disk; the row reader is Python (holds the GIL)"),
    ("05_tf_data", "digits: tf.data TFRecord interleave"): Pipeline(
        "tf.data TFRecord shards + interleave", "digits", "streaming",
        "TFRecord shards on disk (one conversion pass); tf.data's threads"),
    ("05_tf_data", "tf.data from_generator(args=[memmap]) (the trap)"): Pipeline(
        "from_generator(args=[memmap]): the trap", "digits", "trap",
        "copies the whole array into a tensor before the first batch", holds=0.25),
    ("05_tf_data", "fish: in memory (decoded uint8 array)"): Pipeline(
        "decoded uint8 array in RAM", "fish", "in memory",
        "every image decoded once, as uint8 in RAM (a quarter of float32)", reference=True, peak_shown=False),
    ("05_tf_data", "fish: PyDataset: ImageFileDataset (04)"): Pipeline(
        "file-list PyDataset", "fish", "streaming", "JPEG files; Pillow decodes in Python, no workers",
        peak_shown=False),
    ("05_tf_data", "fish: tf.data JPEG map, AUTOTUNE"): Pipeline(
        "tf.data read_file → decode_jpeg, map(AUTOTUNE)", "fish", "streaming",
        "JPEG files; decoded by TensorFlow ops on tf.data's threads (no GIL)",
        peak_from="tf.data JPEG map (AUTOTUNE) + prefetch"),
    ("05_tf_data", "tf.data cache() in memory (decoded fish)"): Pipeline(
        "tf.data cache() in RAM", "fish", "cache in RAM",
        "the decoded uint8 set in RAM, filled by one complete epoch", holds=0.25),
    ("05_tf_data", "tf.data cache(filename) (decoded fish)"): Pipeline(
        "tf.data cache(filename)", "fish", "cache on disk",
        "a file of the decoded set on disk, written by one complete epoch"),
    ("06_multiprocessing_gpu", "compute ceiling (one batch in memory, repeated)"): Pipeline(
        "compute ceiling: one batch in memory, repeated", "fish", "in memory",
        "one batch in RAM, no input pipeline: how fast the model trains (64x64 images)", reference=True),
    ("06_multiprocessing_gpu", "augmented fish, threads, 1 worker"): Pipeline(
        "PyDataset + Pillow augmentation, 1 worker", "fish", "CPU-heavy stream",
        "JPEG files; random rotation, crop, blur, colour and noise in Python (Pillow, NumPy); Keras's own thread"),
    ("06_multiprocessing_gpu", "augmented fish, threads, 2 workers"): Pipeline(
        "the same, 2 worker threads", "fish", "CPU-heavy stream",
        "workers=2: threads share the process and its memory; parallel where Pillow and NumPy release the GIL"),
    ("06_multiprocessing_gpu", "augmented fish, processes, 2 workers"): Pipeline(
        "the same, 2 worker processes", "fish", "CPU-heavy stream",
        "workers=2, use_multiprocessing=True: a new pool every epoch; copy-on-write memory for the pool; "
        "the dataset class in a module (spawn, forkserver)"),
    ("06_multiprocessing_gpu", "augmented fish, tf.data, num_parallel_calls=AUTOTUNE"): Pipeline(
        "tf.data twin: augmentation as TF ops, AUTOTUNE", "fish", "CPU-heavy stream",
        "JPEG files; the augmentation written in TensorFlow ops, on tf.data's threads (no GIL)"),
}

# Records left out of the table on purpose, per notebook ("*" at the end: by prefix).
DETAILS: dict[str, tuple[str, ...]] = {
    "01_in_memory_fit": ("in-memory arrays, *",),                  # the size sweep (see size_series)
    "02_memmap_pydataset": ("constant-batch PyDataset (control)", "in-memory arrays, *", "memmap PyDataset, *"),
    "03_generator_order_and_pitfalls": ("*",),                      # an order study: no pipeline to compare
    "04_file_list_with_cache": ("pipeline alone, *", "cache, *", "hit rate, *", "bytes per image",
                                "one image, *", "fit, 2 workers, *"),
    "05_tf_data": ("tf.data from_generator(args=[path])", "tf.data range->shuffle->batch->numpy_function",
                   "TFRecord write *",
                   "tf.data TFRecord shards + interleave", "deterministic=False, *",
                   "fish: tf.data JPEG map, sequential", "fish: tf.data cache(filename)",
                   "shuffle buffer of *", "shuffle of all indices *"),
    "06_multiprocessing_gpu": ("augmented fish, threads, 4 workers", "augmented fish, processes, 1 worker",
                               "augmented fish, processes, 4 workers", "augmented fish, tf.data, num_parallel_calls=1",
                               "augmented pipeline alone, *", "copy-on-write: *", "fit with 2 worker threads beside *",
                               "fit stopped by an error *", "fit in a fresh process, *", "GPU check *"),
}


@dataclass(frozen=True)
class Row:
    """One line of the side-by-side table."""

    notebook: str
    pipeline: str
    """The record's name, as the lesson wrote it."""
    label: str
    task: str | None
    kind: str
    """One of :data:`KINDS`, or :data:`UNCLASSIFIED`."""
    needs: str
    samples_per_s: float | None
    fraction_of_in_memory: float | None
    """samples/s ÷ the in-memory reference's, same task, same lesson's run (None: no reference)."""
    peak_anon_mb: float | None
    dataset_mb: float | None
    time_to_first_batch_s: float | None
    holds: float = 0.0
    """See :attr:`Pipeline.holds`."""
    reference: bool = False
    """The in-memory reference of its task in its lesson."""
    peak_alone: bool = False
    """The peak is the pipeline's alone (no model), from another record of the same run."""

    @property
    def lesson(self) -> str:
        """``"02"`` for ``"02_memmap_pydataset"``."""
        return self.notebook[:2]

    @property
    def peak_vs_dataset(self) -> float | None:
        """Peak anonymous memory ÷ the data set's size (float32)."""
        if self.peak_anon_mb is None or not self.dataset_mb:
            return None
        return self.peak_anon_mb / self.dataset_mb


def matches(name: str, key: str) -> bool:
    """``key`` equals ``name``, or ends in ``*`` and ``name`` starts with the rest."""
    return name.startswith(key[:-1]) if key.endswith("*") else name == key


def find(results: Iterable[dict[str, Any]], notebook: str, key: str) -> dict[str, Any] | None:
    """The first record of ``notebook`` whose pipeline name :func:`matches` ``key``, or None."""
    for payload in results:
        if payload["notebook"] == notebook:
            return next((r for r in payload["records"] if matches(r["pipeline"], key)), None)
    return None


def _is_known(notebook: str) -> bool:
    return notebook in DETAILS or any(nb == notebook for nb, _ in PIPELINES)


def _needs_from_extras(record: dict[str, Any]) -> str:
    """What a record of an unclassified lesson says about workers (lesson 06's ``workers``,
    ``use_multiprocessing``)."""
    workers, processes = record.get("workers"), record.get("use_multiprocessing")
    if workers:
        noun = ("processes" if workers > 1 else "process") if processes else ("threads" if workers > 1 else "thread")
        return f"{workers} worker {noun}"
    return "worker processes" if processes else ""


def unclassified(results: Iterable[dict[str, Any]]) -> list[tuple[str, str]]:
    """(notebook, pipeline) of every record neither in :data:`PIPELINES`, nor used as a row's
    ``peak_from``, nor in :data:`DETAILS`."""
    out = []
    for payload in results:
        nb = payload["notebook"]
        keys = [k for n, k in PIPELINES if n == nb] + [p.peak_from for (n, _), p in PIPELINES.items()
                                                        if n == nb and p.peak_from] + list(DETAILS.get(nb, ()))
        out += [(nb, r["pipeline"]) for r in payload["records"] if not any(matches(r["pipeline"], k) for k in keys)]
    return out


def missing(results: Iterable[dict[str, Any]]) -> list[tuple[str, str]]:
    """(notebook, key) of every entry of :data:`PIPELINES` (and its ``peak_from``) whose lesson's
    results are there but hold no matching record: a pipeline renamed in its lesson."""
    results = list(results)
    present = {payload["notebook"] for payload in results}
    out = []
    for (nb, key), p in PIPELINES.items():
        if nb in present:
            out += [(nb, k) for k in (key, p.peak_from) if k and find(results, nb, k) is None]
    return out


def rows(results: Iterable[dict[str, Any]]) -> list[Row]:
    """The side-by-side rows of every results file given (as :func:`helpers.results.load` returns
    them), sorted by notebook, then in the order of :data:`PIPELINES`."""
    out: list[Row] = []
    for payload in sorted(results, key=lambda p: p["notebook"]):
        nb, records = payload["notebook"], payload["records"]
        if not _is_known(nb):  # a lesson this module does not know yet: show what it measured
            out += [Row(nb, r["pipeline"], r["pipeline"], None, UNCLASSIFIED, _needs_from_extras(r),
                        r.get("samples_per_s"), None, r.get("peak_anon_mb"), r.get("dataset_mb"),
                        r.get("time_to_first_batch_s"))
                    for r in records if r.get("samples_per_s") is not None or r.get("peak_anon_mb") is not None]
            continue
        found = [(p, find([payload], nb, key)) for (n, key), p in PIPELINES.items() if n == nb]
        found = [(p, r) for p, r in found if r is not None]
        reference = {p.task: r.get("samples_per_s") for p, r in found if p.reference}
        for p, r in found:
            speed, ref = r.get("samples_per_s"), reference.get(p.task)
            peak = r.get("peak_anon_mb") if p.peak_shown else None
            if p.peak_from:
                alone = find([payload], nb, p.peak_from)
                peak = alone.get("peak_anon_mb") if alone else None
            out.append(Row(
                nb, r["pipeline"], p.label, p.task, p.kind, p.needs, speed,
                speed / ref if speed is not None and ref else None, peak, r.get("dataset_mb"),
                r.get("time_to_first_batch_s"), p.holds, p.reference, peak_alone=p.peak_from is not None))
    return out


def lessons_without_results(results: Iterable[dict[str, Any]], notebooks: Path | None = None) -> list[str]:
    """Stems of the lesson notebooks in ``notebooks/`` (07, which only reads, excluded) that have no
    results file among ``results``."""
    folder = notebooks or project_root() / "notebooks"
    present = {payload["notebook"] for payload in results}
    stems = sorted(p.stem for p in folder.glob("[0-9][0-9]_*.ipynb"))
    return [s for s in stems if s not in present and not s.startswith("07_")]


def size_series(results: Iterable[dict[str, Any]]) -> dict[str, tuple[list[float], list[float]]]:
    """The size sweeps of the lessons (records named ``"<pipeline>, <N>% of the data..."``):
    ``{"<lesson> <pipeline>": ([dataset_mb...], [peak_anon_mb...])}``, sorted by size."""
    pattern = re.compile(r"^(.*), (\d+)% of the data")
    series: dict[str, list[tuple[float, float]]] = {}
    for payload in sorted(results, key=lambda p: p["notebook"]):
        for r in payload["records"]:
            m = pattern.match(r["pipeline"])
            if m and r.get("dataset_mb") is not None and r.get("peak_anon_mb") is not None:
                series.setdefault(f"{payload['notebook'][:2]} {m.group(1)}", []).append(
                    (r["dataset_mb"], r["peak_anon_mb"]))
    return {k: ([s for s, _ in sorted(v)], [p for _, p in sorted(v)]) for k, v in series.items()}


def _ratio(value: float | None) -> str:
    if value is None:
        return "—"
    if value >= 0.095:
        return f"{value:.2f}×"
    return f"{value:.3f}×" if value >= 0.001 else "<0.001×"


def markdown(table: list[Row], scale: str | None = None) -> str:
    """The rows as a Markdown table, with a line on how to read it (and the scale, if given)."""
    lines = ["| lesson | pipeline | data | kind | samples/s in fit | ÷ in-memory | peak ÷ data | first batch | needs |",
             "|---|---|---|---|---:|---:|---:|---:|---|"]
    for r in table:
        speed = "—" if r.samples_per_s is None else f"{r.samples_per_s:,.0f}"
        fraction = _ratio(r.fraction_of_in_memory)
        ttfb = "—" if r.time_to_first_batch_s is None else f"{r.time_to_first_batch_s:.1f} s"
        peak = _ratio(r.peak_vs_dataset) + (" †" if r.peak_alone and r.peak_vs_dataset is not None else "")
        lines.append(f"| {r.lesson} | {r.label} | {r.task or '—'} | {r.kind} | {speed} | {fraction} | {peak} | "
                     f"{ttfb} | {r.needs or '—'} |")
    where = f" at the `{scale}` scale" if scale else ""
    lines += ["", f"Measured{where}, one lesson's run at a time: \"÷ in-memory\" divides by the in-memory "
              "reference of the same task in the same lesson (lesson 06: its compute ceiling, one batch in memory "
              "repeated; — where the lesson has none); \"peak ÷ data\" is "
              "the peak anonymous memory over the float32 data set (†: of the pipeline alone, no model, in the same "
              "run; — for fish trained in fit without such a figure: the fish counter's own training memory would "
              "hide the pipeline's; lesson 06 measured its peaks in fit after the model had already trained once, "
              "so they show what the pipeline adds); \"first batch\" is as each lesson timed it."]
    return "\n".join(lines)


@dataclass(frozen=True)
class Advice:
    """The answer of :func:`recommend`: where to look, what to do, and what the series measured."""

    lesson: str
    pipeline: str
    do: str
    measured: str

    def __str__(self) -> str:
        return f"→ lesson {self.lesson}, {self.pipeline}: {self.do}\n  measured: {self.measured}"


# (what to look up, in the order tried: the first whose results are there is quoted)
_Candidates = tuple[tuple[str, str], ...]
# a speed-up the series measured in one run: (notebook, faster record, slower record, key, what it is)
_Speedup = tuple[str, str, str, str, str]

_WORKERS_SPEEDUP: _Speedup = (
    "06_multiprocessing_gpu", "augmented fish, processes, 2 workers", "augmented fish, processes, 1 worker",
    "samples_per_s", "2 worker processes over 1 worker (random augmentation in Python, inside fit)")

GUIDE: dict[tuple[str, bool, bool], tuple[_Candidates, str, _Candidates, tuple[_Speedup, ...]]] = {
    ("arrays", True, False): (
        (("01_in_memory_fit", "in-memory arrays (np.load + astype + fit)"), ("02_memmap_pydataset", "in-memory arrays")),
        "np.load the arrays and call fit(x, y): the simplest route, as long as its peak (the copies included) "
        "fits in your RAM.",
        (("02_memmap_pydataset", "memmap PyDataset"), ("05_tf_data", "digits: PyDataset: MemmapDataset (02)")), ()),
    ("arrays", False, False): (
        (("02_memmap_pydataset", "memmap PyDataset"), ("05_tf_data", "digits: PyDataset: MemmapDataset (02)")),
        "save them as .npy once, open them with np.load(mmap_mode=\"r\") in a PyDataset that reads one batch "
        "at a time.",
        (("05_tf_data", "digits: tf.data from_generator(path)"), ("05_tf_data", "digits: tf.data TFRecord interleave")),
        ()),
    ("arrays", True, True): (
        (("05_tf_data", "digits: in memory (float32 arrays)"), ("01_in_memory_fit", "in-memory arrays (np.load + astype + fit)")),
        "keep the arrays in RAM and put the heavy per-batch work in a tf.data map(num_parallel_calls=AUTOTUNE) "
        "written in TensorFlow ops, so that it runs on every core while the model trains (Python code holds "
        "the GIL: give it worker processes instead, lesson 06).",
        (("05_tf_data", "digits: tf.data range+numpy_function"),),
        (("05_tf_data", "fish: tf.data JPEG map, AUTOTUNE", "fish: tf.data JPEG map, sequential",
          "pipeline_alone_samples_per_s", "a parallel map over a sequential one (JPEG decoding, pipeline alone)"),)),
    ("arrays", False, True): (
        (("05_tf_data", "digits: tf.data range+numpy_function"), ("02_memmap_pydataset", "memmap PyDataset")),
        "stream the rows from a .npy memmap (range → shuffle → batch → numpy_function) and put the heavy work in "
        "a following map(num_parallel_calls=AUTOTUNE) in TensorFlow ops; Python work needs worker processes "
        "(lesson 06).",
        (("05_tf_data", "digits: tf.data TFRecord interleave"), ("02_memmap_pydataset", "memmap PyDataset")),
        (("05_tf_data", "fish: tf.data JPEG map, AUTOTUNE", "fish: tf.data JPEG map, sequential",
          "pipeline_alone_samples_per_s", "a parallel map over a sequential one (JPEG decoding, pipeline alone)"),)),
    ("images", True, False): (
        (("05_tf_data", "fish: in memory (decoded uint8 array)"),),
        "decode every image once into a uint8 array (a quarter of float32) and fit from memory, scaling to "
        "[0, 1] per batch.",
        (("05_tf_data", "fish: tf.data JPEG map, AUTOTUNE"), ("04_file_list_with_cache",
                                                               "ImageFileDataset + encoded-bytes cache, fit (fish counter)")),
        ()),
    ("images", False, False): (
        (("05_tf_data", "fish: tf.data JPEG map, AUTOTUNE"),
         ("04_file_list_with_cache", "ImageFileDataset + encoded-bytes cache, fit (fish counter)")),
        "stream the files: read_file → decode_jpeg in a map(num_parallel_calls=AUTOTUNE) + prefetch; or a "
        "file-list PyDataset (lesson 04) when the decoding must be Python.",
        (("05_tf_data", "fish: PyDataset: ImageFileDataset (04)"),
         ("04_file_list_with_cache", "ImageFileDataset + encoded-bytes cache, fit (fish counter)")),
        ()),
    ("images", True, True): (
        (("04_file_list_with_cache", "cache, fill-once, decoded, budget *"),
         ("05_tf_data", "tf.data cache() in memory (decoded fish)")),
        "decode once and keep the decoded images in RAM: a fill-once cache shared by thread workers (lesson 04; "
        "worker processes lose it every epoch) or tf.data's cache() after the decoding map (lesson 05); "
        "augment after the cache, with workers or in TensorFlow ops (lesson 06).",
        (("05_tf_data", "tf.data cache() in memory (decoded fish)"),),
        (("04_file_list_with_cache", "pipeline alone, decoded, fill-once, warm epoch",
          "pipeline alone, no cache, warm epoch", "samples_per_s",
          "a warm decoded cache over decoding every epoch (pipeline alone)"),
         _WORKERS_SPEEDUP)),
    ("images", False, True): (
        (("05_tf_data", "tf.data cache(filename) (decoded fish)"),),
        "decode in a map(num_parallel_calls=AUTOTUNE) and cache(filename) the decoded set on disk (it is written "
        "by one complete epoch); later epochs replay it without decoding. Random augmentation, which must run "
        "every epoch, goes after the cache, with workers or in TensorFlow ops (lesson 06).",
        (("05_tf_data", "fish: tf.data JPEG map, AUTOTUNE"),),
        (("05_tf_data", "fish: tf.data cache(filename)", "fish: tf.data JPEG map, AUTOTUNE",
          "pipeline_alone_samples_per_s", "replaying the decoded file over decoding (pipeline alone)"),
         ("05_tf_data", "fish: tf.data JPEG map, AUTOTUNE", "fish: tf.data JPEG map, sequential",
          "pipeline_alone_samples_per_s", "a parallel decoding map over a sequential one (pipeline alone)"),
         _WORKERS_SPEEDUP)),
}


def _quote(row: Row) -> str:
    parts = [f"{row.label} (lesson {row.lesson}, {row.task})"]
    if row.fraction_of_in_memory is not None and row.fraction_of_in_memory != 1.0:
        parts.append(f"{row.fraction_of_in_memory:.2f}× the in-memory speed in fit")
    elif row.samples_per_s is not None:
        parts.append(f"{row.samples_per_s:,.0f} samples/s in fit")
    if row.peak_anon_mb is not None and row.dataset_mb:
        alone = ", pipeline alone" if row.peak_alone else ""
        peak = f"{row.peak_anon_mb:,.0f}" if row.peak_anon_mb >= 10 else f"{row.peak_anon_mb:.1f}"
        parts.append(f"peak +{peak} MiB for {row.dataset_mb:,.0f} MiB of data "
                     f"({_ratio(row.peak_vs_dataset)}{alone})")
    if row.time_to_first_batch_s is not None:
        parts.append(f"first batch after {row.time_to_first_batch_s:.1f} s")
    return ", ".join(parts)


def recommend(kind: str, fits_in_ram: bool, cpu_heavy: bool,
              results: list[dict[str, Any]] | None = None) -> Advice:
    """Which pipeline of the series to use for your data, with the figures the series measured.

    ``kind``: ``"arrays"`` (NumPy arrays, or anything you can write as one) or ``"images"`` (image
    files). ``fits_in_ram``: the data fits in the RAM you have free, with room for its copies
    (lesson 01: about 3x the float32 size for arrays; the decoded uint8 set for images).
    ``cpu_heavy``: per-sample preprocessing (decoding, augmentation) costs more CPU than the model
    step. ``results``: as :func:`helpers.results.load` returns them (default: the current scale's).
    """
    if kind not in ("arrays", "images"):
        raise ValueError(f"kind must be 'arrays' or 'images', not {kind!r}")
    results = load() if results is None else results
    candidates, do, alternatives, speedups = GUIDE[kind, bool(fits_in_ram), bool(cpu_heavy)]
    by_key = {(r.notebook, r.pipeline): r for r in rows(results)}

    def row_of(notebook: str, key: str) -> Row | None:
        record = find(results, notebook, key)
        return by_key.get((notebook, record["pipeline"])) if record else None

    primary = next((row for nb, key in candidates if (row := row_of(nb, key))), None)
    if primary is None:
        nb, key = candidates[0]
        return Advice(nb[:2], PIPELINES[nb, key].label, do, f"not measured yet: run lesson {nb} (no results for it)")
    quotes = [_quote(primary)]
    quotes += [f"alternative: {_quote(row)}" for nb, key in alternatives
               if (row := row_of(nb, key)) and row.label != primary.label][:1]
    for nb, fast, slow, key, what in speedups:
        a, b = find(results, nb, fast), find(results, nb, slow)
        if a and b and a.get(key) and b.get(key):
            quotes.append(f"{what}: {a[key] / b[key]:.1f}× (lesson {nb[:2]})")
    return Advice(primary.lesson, primary.label, do, "; ".join(quotes))


def main(argv: list[str] | None = None) -> int:
    """``python -m helpers.summary [--markdown] [--scale default]``."""
    parser = argparse.ArgumentParser(prog="python -m helpers.summary", description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="print the Markdown table (the README's)")
    parser.add_argument("--scale", default="default", help="results/<scale>/ to read (default: default)")
    args = parser.parse_args(argv)
    scale = get_scale(args.scale)
    results = load(scale)
    if args.markdown:
        print(markdown(rows(results), scale.name))
        return 0
    for r in rows(results):
        print(f"{r.lesson}  {r.kind:<16} {r.label:<48} ÷ in-memory {_ratio(r.fraction_of_in_memory):>7}  "
              f"peak ÷ data {_ratio(r.peak_vs_dataset):>7}")
    for nb, name in unclassified(results):
        print(f"not classified: {nb}: {name!r} (add it to PIPELINES or DETAILS in helpers/summary.py)")
    for nb, key in missing(results):
        print(f"missing: {nb} has no record {key!r} (renamed?)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
