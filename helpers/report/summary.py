"""The series side by side: the main pipelines of every lesson, read from ``results/<scale>/*.json``.

The summary lesson and the README's table use this module. A record is a row when its lesson gave
it a :class:`helpers.report.results.Row` (what it is, said where it was measured); the others (size sweeps,
hit rates, controls) are details, read by id. Each column has one meaning:

- **samples/s in fit**: as the lesson recorded it, with the min-max of its rounds where it timed
  several (``rounds_samples_per_s``);
- **÷ in-memory**: samples/s ÷ the **in-memory** reference (kind ``"in memory"``) of the same task
  **in the same lesson's run** (a ratio is never taken between two runs);
- **÷ ceiling**: samples/s ÷ the **compute ceiling** of the same task and lesson (kind
  ``"compute ceiling"``: one batch in memory, repeated; lesson 06): a different reference, so its
  own column;
- **peak ÷ data**: peak anonymous memory as a fraction of the data set (float32, as the model sees it);
- **first step in fit**: ``time_to_first_batch_s`` as :func:`helpers.lab.throughput.time_fit` measures
  it, from the start of training to the end of its first step (tracing included); a pipeline's
  *first batch* alone is another figure (``first_batch_s``, :func:`helpers.lab.recipes.first_batches`)
  and stays in its lesson;
- what the pipeline needs: threads, processes, a format on disk.

``python -m helpers.report.summary --markdown`` prints the README's table; ``--write-readme`` writes it
into README.md between its markers, always from ``results/default`` (the committed results).
The decision guide built on these rows is :mod:`helpers.report.guide`.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from helpers.config import get_scale, project_root
from helpers.report.results import Row, find, load

README_START, README_END = "<!-- results-table:start -->", "<!-- results-table:end -->"
READERS = ("09_what_to_use_when",)
"""Lessons that only read results (they write none)."""


@dataclass(frozen=True)
class TableRow:
    """One line of the side-by-side table: a record and its :class:`~helpers.report.results.Row`."""

    notebook: str
    id: str
    """The record's id in its lesson."""
    pipeline: str
    """The record's name, as the lesson wrote it."""
    row: Row
    samples_per_s: float | None
    fraction_of_in_memory: float | None
    """samples/s ÷ the in-memory reference's, same task, same lesson's run (None: no such reference)."""
    fraction_of_ceiling: float | None
    """samples/s ÷ the compute ceiling's, same task, same lesson's run (None: no ceiling)."""
    samples_range: tuple[float, float] | None
    """min and max samples/s of the rounds the lesson timed (None: one figure)."""
    peak_anon_mb: float | None
    dataset_mb: float | None
    time_to_first_batch_s: float | None
    peak_alone: bool = False
    """The peak is the pipeline's alone (no model, a fresh process): from another record of the same
    run (``peak_from``), or the record's own when it keeps what ``fit`` added apart
    (``fit_peak_anon_mb``, lesson 06)."""

    @property
    def lesson(self) -> str:
        """``"02"`` for ``"02_memmap_pydataset"``."""
        return self.notebook[:2]

    def __getattr__(self, name: str) -> Any:
        """``label``, ``task``, ``kind``, ``needs``, ``reference``, ``holds``...: what the record's
        :class:`~helpers.report.results.Row` says."""
        if name != "row" and name in Row.__dataclass_fields__:
            return getattr(self.row, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def peak_vs_dataset(self) -> float | None:
        """Peak anonymous memory ÷ the data set's size (float32)."""
        if self.peak_anon_mb is None or not self.dataset_mb:
            return None
        return self.peak_anon_mb / self.dataset_mb


def rows(results: Iterable[dict[str, Any]]) -> list[TableRow]:
    """The side-by-side rows of every results file given (as :func:`helpers.report.results.load` returns
    them), sorted by notebook; within a lesson by task (in the order the lesson recorded them), the
    in-memory reference first, then in the order recorded."""
    results = sorted(results, key=lambda p: p["notebook"])
    out: list[TableRow] = []
    for payload in results:
        nb = payload["notebook"]
        main = [(r, Row.of(r["row"])) for r in payload["records"] if r.get("row") is not None]
        tasks = list(dict.fromkeys(row.task for _, row in main))
        main.sort(key=lambda pair: (tasks.index(pair[1].task), not pair[1].reference))  # stable: else as recorded
        reference = {row.task: (r.get("samples_per_s"), row.kind) for r, row in main if row.reference}
        for r, row in main:
            speed, (ref, ref_kind) = r.get("samples_per_s"), reference.get(row.task, (None, None))
            fraction = speed / ref if speed is not None and ref else None
            rounds = r.get("rounds_samples_per_s")
            peak = r.get("peak_anon_mb") if row.peak_shown else None
            if row.peak_from:
                peak = find([payload], nb, row.peak_from).get("peak_anon_mb")
            out.append(TableRow(
                nb, r["id"], r["pipeline"], row, speed,
                fraction if ref_kind == "in memory" else None, fraction if ref_kind == "compute ceiling" else None,
                (min(rounds), max(rounds)) if rounds and len(rounds) > 1 else None,
                peak, r.get("dataset_mb"), r.get("time_to_first_batch_s"),
                peak_alone=row.peak_from is not None or "fit_peak_anon_mb" in r))
    return out


def lessons_without_results(results: Iterable[dict[str, Any]], notebooks: Path | None = None) -> list[str]:
    """Stems of the lesson notebooks in ``notebooks/`` (the :data:`READERS` excluded) that have no
    results file among ``results``."""
    folder = notebooks or project_root() / "notebooks"
    present = {payload["notebook"] for payload in results}
    stems = sorted(p.stem for p in folder.glob("[0-9][0-9]_*.ipynb"))
    return [s for s in stems if s not in present and s not in READERS]


def size_series(results: Iterable[dict[str, Any]]) -> dict[str, tuple[list[float], list[float]]]:
    """The size sweeps of the lessons (records with a ``sweep`` key):
    ``{"<lesson> <sweep>": ([dataset_mb...], [peak_anon_mb...])}``, each sorted by size."""
    series: dict[str, list[tuple[float, float]]] = {}
    for payload in sorted(results, key=lambda p: p["notebook"]):
        for r in payload["records"]:
            if r.get("sweep") and r.get("peak_anon_mb") is not None:
                series.setdefault(f"{payload['notebook'][:2]} {r['sweep']}", []).append(
                    (r["dataset_mb"], r["peak_anon_mb"]))
    return {k: ([s for s, _ in sorted(v)], [p for _, p in sorted(v)]) for k, v in series.items()}


def ratio_text(value: float | None) -> str:
    """``0.90×``, ``0.025×``, ``<0.001×`` or ``—``: a ratio with as many digits as it needs."""
    if value is None:
        return "—"
    if value >= 0.095:
        return f"{value:.2f}×"
    return f"{value:.3f}×" if value >= 0.001 else "<0.001×"


def markdown(table: list[TableRow], scale: str | None = None) -> str:
    """The rows as a Markdown table, with a line on how to read it (and the scale, if given)."""
    lines = ["| lesson | pipeline | data | kind | samples/s in fit | ÷ in-memory | ÷ ceiling | peak ÷ data | "
             "first step in fit | needs |",
             "|---|---|---|---|---:|---:|---:|---:|---:|---|"]
    for r in table:
        speed = "—" if r.samples_per_s is None else f"{r.samples_per_s:,.0f}"
        if r.samples_range:
            speed += f" ({r.samples_range[0]:,.0f}–{r.samples_range[1]:,.0f})"
        ttfb = "—" if r.time_to_first_batch_s is None else f"{r.time_to_first_batch_s:.1f} s"
        peak = ratio_text(r.peak_vs_dataset) + (" †" if r.peak_alone and r.peak_vs_dataset is not None else "")
        lines.append(f"| {r.lesson} | {r.label} | {r.task} | {r.kind} | {speed} | "
                     f"{ratio_text(r.fraction_of_in_memory)} | {ratio_text(r.fraction_of_ceiling)} | {peak} | "
                     f"{ttfb} | {r.needs} |")
    where = f" at the `{scale}` scale" if scale else ""
    lines += ["", f"Measured{where}, one lesson's run at a time. \"samples/s in fit\": the lesson's figure, in brackets "
              "the min–max of its rounds. \"÷ in-memory\" divides by the in-memory reference of the same task in "
              "the same lesson, \"÷ ceiling\" by the compute ceiling (one batch in memory, repeated: lesson 06); — "
              "where the lesson has no such reference. \"peak ÷ data\": the peak anonymous memory over the float32 "
              "data set (†: of the pipeline alone, no model, in a fresh process; — for fish trained in fit without "
              "such a figure: the fish counter's own training memory would hide the pipeline's). \"first step in "
              "fit\": from the start of training to the end of its first step, tracing included."]
    return "\n".join(lines)


def readme_table() -> str:
    """The README's table: :func:`markdown` of the committed ``results/default``."""
    scale = get_scale("default")
    return markdown(rows(load(scale)), scale.name)


def _table_span(text: str, where: Path) -> tuple[int, int]:
    """Start and end offsets of the text between the README's markers (a clear error without them)."""
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < 0 or end < start:
        raise ValueError(f"{where}: needs the lines {README_START} and {README_END}, in that order, "
                         "around the results table")
    return start + len(README_START), end


def readme_text(readme: Path | None = None) -> str:
    """What the README has between its markers now (stripped)."""
    readme = readme or project_root() / "README.md"
    text = readme.read_text()
    a, b = _table_span(text, readme)
    return text[a:b].strip()


def write_readme(readme: Path | None = None) -> bool:
    """Write :func:`readme_table` into the README between its markers; True if that changed it."""
    readme = readme or project_root() / "README.md"
    text = readme.read_text()
    a, b = _table_span(text, readme)
    new = text[:a] + "\n" + readme_table() + "\n" + text[b:]
    if new == text:
        return False
    readme.write_text(new)
    return True


def main(argv: list[str] | None = None) -> int:
    """``python -m helpers.report.summary [--markdown | --write-readme] [--scale default]``."""
    parser = argparse.ArgumentParser(prog="python -m helpers.report.summary", description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="print the Markdown table")
    parser.add_argument("--write-readme", action="store_true",
                        help="write the table of results/default into README.md between its markers")
    parser.add_argument("--scale", default="default", help="results/<scale>/ to read (default: default)")
    args = parser.parse_args(argv)
    if args.write_readme:
        changed = write_readme()
        print(f"README.md: results table {'written' if changed else 'already up to date'} (results/default)")
        return 0
    scale = get_scale(args.scale)
    table = rows(load(scale))
    if args.markdown:
        print(markdown(table, scale.name))
        return 0
    for r in table:
        print(f"{r.lesson}  {r.kind:<16} {r.label:<48} ÷ in-memory {ratio_text(r.fraction_of_in_memory):>7}  "
              f"÷ ceiling {ratio_text(r.fraction_of_ceiling):>7}  peak ÷ data {ratio_text(r.peak_vs_dataset):>7}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
