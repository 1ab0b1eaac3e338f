"""Which pipeline for your data: the summary lesson's decision guide, quoting the series' figures.

Three questions decide it (:func:`recommend`): arrays or image files? does the data fit in RAM with
its copies? is the preprocessing CPU-heavy? Each answer names the lesson and the record (by its
id, see :mod:`helpers.report.results`) whose figures it quotes, from the rows of :mod:`helpers.report.summary`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from helpers.report.results import find, load
from helpers.report.summary import TableRow, ratio_text, rows


@dataclass(frozen=True)
class Advice:
    """The answer of :func:`recommend`: where to look, what to do, and what the series measured."""

    lesson: str
    pipeline: str
    """The row's label in the table (the record's id when it was not measured yet)."""
    do: str
    measured: str

    def __str__(self) -> str:
        return f"→ lesson {self.lesson}, {self.pipeline}: {self.do}\n  measured: {self.measured}"


Ref = tuple[str, str]
"""(notebook stem, record id)."""


@dataclass(frozen=True)
class Speedup:
    """A speed-up the series measured in one run: ``faster[key] / slower[key]`` of one lesson."""

    notebook: str
    faster: str
    slower: str
    key: str
    what: str


@dataclass(frozen=True)
class Case:
    """One answer of the guide."""

    candidates: tuple[Ref, ...]
    """Rows to quote, in the order tried: the first whose results are there is the answer."""
    do: str
    alternatives: tuple[Ref, ...] = ()
    """One of these is quoted as the alternative (the first measured, not the answer itself)."""
    speedups: tuple[Speedup, ...] = ()


_PARALLEL_DECODE = Speedup("05_tf_data", "fish-jpeg-autotune", "fish-jpeg-sequential", "pipeline_alone_samples_per_s",
                           "a parallel map over a sequential one (JPEG decoding, pipeline alone)")
_WORKERS = Speedup("06_multiprocessing_gpu", "processes-2", "processes-1", "samples_per_s",
                   "2 worker processes over 1 worker (random augmentation in Python, inside fit)")

GUIDE: dict[tuple[str, bool, bool], Case] = {
    ("arrays", True, False): Case(
        (("01_in_memory_fit", "in-memory"), ("02_memmap_pydataset", "in-memory")),
        "np.load the arrays and call fit(x, y): the simplest route, as long as its peak (the copies included) "
        "fits in your RAM.",
        (("02_memmap_pydataset", "memmap"), ("05_tf_data", "digits-memmap"))),
    ("arrays", False, False): Case(
        (("07_larger_than_ram", "blocks"), ("02_memmap_pydataset", "memmap"), ("05_tf_data", "digits-memmap")),
        "save them as .npy once and read them through a memmap PyDataset, one batch at a time (MemmapDataset, "
        "lesson 02). When the file is larger than the page cache too (your RAM, or a container's limit), "
        "random rows come from the disk: read blocks of rows whole and shuffle them in memory "
        "(MemmapDataset(window_mb=64), fit(shuffle=False); lesson 07), never with the kernel's read-ahead "
        "on random rows.",
        (("02_memmap_pydataset", "memmap"), ("05_tf_data", "digits-tfrecord"))),
    ("arrays", True, True): Case(
        (("05_tf_data", "digits-in-memory"), ("01_in_memory_fit", "in-memory")),
        "keep the arrays in RAM and put the heavy per-batch work in a tf.data map(num_parallel_calls=AUTOTUNE) "
        "written in TensorFlow ops, so that it runs on every core while the model trains (Python code holds "
        "the GIL: give it worker processes instead, lesson 06).",
        (("05_tf_data", "digits-index"),), (_PARALLEL_DECODE,)),
    ("arrays", False, True): Case(
        (("05_tf_data", "digits-index"), ("02_memmap_pydataset", "memmap")),
        "stream the rows from a .npy memmap (range → shuffle → batch → numpy_function) and put the heavy work in "
        "a following map(num_parallel_calls=AUTOTUNE) in TensorFlow ops; Python work needs worker processes "
        "(lesson 06).",
        (("05_tf_data", "digits-tfrecord"), ("02_memmap_pydataset", "memmap")), (_PARALLEL_DECODE,)),
    ("images", True, False): Case(
        (("05_tf_data", "fish-in-memory"),),
        "decode every image once into a uint8 array (a quarter of float32) and fit from memory, scaling to "
        "[0, 1] per batch.",
        (("05_tf_data", "fish-jpeg-autotune"), ("04_file_list_with_cache", "fit-encoded-cache"))),
    ("images", False, False): Case(
        (("05_tf_data", "fish-jpeg-autotune"), ("04_file_list_with_cache", "fit-encoded-cache")),
        "stream the files: read_file → decode_jpeg in a map(num_parallel_calls=AUTOTUNE) + prefetch; or a "
        "file-list PyDataset (lesson 04) when the decoding must be Python.",
        (("05_tf_data", "fish-pydataset"), ("04_file_list_with_cache", "fit-encoded-cache"))),
    ("images", True, True): Case(
        (("04_file_list_with_cache", "cache-fill-once"), ("05_tf_data", "cache-memory")),
        "decode once and keep the decoded images in RAM: a fill-once cache shared by thread workers (lesson 04; "
        "worker processes lose it every epoch) or tf.data's cache() after the decoding map (lesson 05); "
        "augment after the cache, with workers or in TensorFlow ops (lesson 06).",
        (("05_tf_data", "cache-memory"),),
        (Speedup("04_file_list_with_cache", "alone-decoded-fill-once", "alone-no-cache", "samples_per_s",
                 "a warm decoded cache over decoding every epoch (pipeline alone)"), _WORKERS)),
    ("images", False, True): Case(
        (("05_tf_data", "cache-file"),),
        "decode in a map(num_parallel_calls=AUTOTUNE) and cache(filename) the decoded set on disk (it is written "
        "by one complete epoch); later epochs replay it without decoding. Random augmentation, which must run "
        "every epoch, goes after the cache, with workers or in TensorFlow ops (lesson 06).",
        (("05_tf_data", "fish-jpeg-autotune"),),
        (Speedup("05_tf_data", "fish-cache-file", "fish-jpeg-autotune", "pipeline_alone_samples_per_s",
                 "replaying the decoded file over decoding (pipeline alone)"),
         Speedup("05_tf_data", "fish-jpeg-autotune", "fish-jpeg-sequential", "pipeline_alone_samples_per_s",
                 "a parallel decoding map over a sequential one (pipeline alone)"),
         _WORKERS)),
}


def quote(row: TableRow) -> str:
    """What the series measured for a row, in one line."""
    parts = [f"{row.label} (lesson {row.lesson}, {row.task})"]
    if row.fraction_of_in_memory is not None and row.fraction_of_in_memory != 1.0:
        parts.append(f"{row.fraction_of_in_memory:.2f}× the in-memory speed in fit")
    elif row.fraction_of_ceiling is not None and row.fraction_of_ceiling != 1.0:
        parts.append(f"{row.fraction_of_ceiling:.2f}× the compute ceiling in fit")
    elif row.samples_per_s is not None:
        parts.append(f"{row.samples_per_s:,.0f} samples/s in fit")
    if row.peak_anon_mb is not None and row.dataset_mb:
        alone = ", pipeline alone" if row.peak_alone else ""
        peak = f"{row.peak_anon_mb:,.0f}" if row.peak_anon_mb >= 10 else f"{row.peak_anon_mb:.1f}"
        parts.append(f"peak +{peak} MiB for {row.dataset_mb:,.0f} MiB of data "
                     f"({ratio_text(row.peak_vs_dataset)}{alone})")
    if row.time_to_first_batch_s is not None:
        parts.append(f"first training step after {row.time_to_first_batch_s:.1f} s")
    return ", ".join(parts)


def speedup(results: list[dict[str, Any]], s: Speedup) -> float | None:
    """The measured ratio of a :class:`Speedup`, or None if its lesson's results are not there."""
    a, b = find(results, s.notebook, s.faster), find(results, s.notebook, s.slower)
    if a and b and a.get(s.key) and b.get(s.key):
        return a[s.key] / b[s.key]
    return None


def recommend(kind: str, fits_in_ram: bool, cpu_heavy: bool,
              results: list[dict[str, Any]] | None = None) -> Advice:
    """Which pipeline of the series to use for your data, with the figures the series measured.

    ``kind``: ``"arrays"`` (NumPy arrays, or anything you can write as one) or ``"images"`` (image
    files). ``fits_in_ram``: the data fits in the RAM you have free, with room for its copies
    (lesson 01: about 3x the float32 size for arrays; the decoded uint8 set for images).
    ``cpu_heavy``: per-sample preprocessing (decoding, augmentation) costs more CPU than the model
    step. ``results``: as :func:`helpers.report.results.load` returns them (default: the current scale's).
    """
    if kind not in ("arrays", "images"):
        raise ValueError(f"kind must be 'arrays' or 'images', not {kind!r}")
    results = load() if results is None else results
    case = GUIDE[kind, bool(fits_in_ram), bool(cpu_heavy)]
    by_ref = {(r.notebook, r.id): r for r in rows(results)}
    primary = next((by_ref[ref] for ref in case.candidates if ref in by_ref), None)
    if primary is None:
        nb, record_id = case.candidates[0]
        return Advice(nb[:2], record_id, case.do, f"not measured yet: run lesson {nb} (no results for it)")
    quotes = [quote(primary)]
    quotes += [f"alternative: {quote(by_ref[ref])}" for ref in case.alternatives
               if ref in by_ref and by_ref[ref].label != primary.label][:1]
    for s in case.speedups:
        ratio = speedup(results, s)
        if ratio is not None:
            quotes.append(f"{s.what}: {ratio:.1f}× (lesson {s.notebook[:2]})")
    return Advice(primary.lesson, primary.label, case.do, "; ".join(quotes))
