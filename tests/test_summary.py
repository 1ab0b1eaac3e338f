"""The side-by-side table of the summary lesson and the README: rows, ratios, sweeps, Markdown, README."""

import pytest

from helpers.config import get_scale
from helpers.report import summary
from helpers.report.results import STREAMING_KINDS, Row, find, load



def committed():
    """The committed results (results/default), read afresh."""
    return load(get_scale("default"))


def rec(id, pipeline=None, dataset_mb=100.0, peak_anon_mb=None, samples_per_s=None, row=None, **extra):
    out = {"id": id, "pipeline": pipeline or id, "dataset_mb": dataset_mb, "peak_anon_mb": peak_anon_mb,
           "samples_per_s": samples_per_s, **extra}
    if row is not None:
        out["row"] = row
    return out


def ref(label="arrays"):
    return {"label": label, "task": "digits", "kind": "in memory", "needs": "RAM", "reference": True, "holds": 1.0}


@pytest.fixture
def small_table():
    """Two lessons with a digits reference each, one fish pipeline without one, details."""
    return [
        {"notebook": "11_b", "records": [
            rec("in-memory", "in memory", 100, 300, 2000.0, ref()),
            rec("stream", "stream", 100, 5, 1000.0, {"label": "stream", "task": "digits", "kind": "streaming",
                                                     "needs": "disk"}),
            rec("fish-files", "fish files", 50, 10, 40.0, {"label": "files", "task": "fish", "kind": "streaming",
                                                           "needs": "JPEG", "peak_shown": False})]},
        {"notebook": "10_a", "records": [
            rec("stream", "stream, budget 3 MiB", 100, 900, 900.0,
                {"label": "stream", "task": "digits", "kind": "streaming", "needs": "disk", "peak_from": "alone"},
                time_to_first_batch_s=0.5),
            rec("in-memory", "in memory", 100, 310, 1000.0, ref(), time_to_first_batch_s=4.0),
            rec("alone", "alone, 3 MiB", 100, 2.5),
            rec("sweep-50", "sweep, 50%", 50, 1, sweep="arrays"),
            rec("sweep-100", "sweep, 100%", 100, 3, sweep="arrays")]},
    ]


def test_rows_take_ratios_within_one_lesson_in_the_order_recorded(small_table):
    rows = summary.rows(small_table)
    assert [(r.notebook, r.id) for r in rows] == [   # by task, its reference first, else as recorded
        ("10_a", "in-memory"), ("10_a", "stream"), ("11_b", "in-memory"), ("11_b", "stream"), ("11_b", "fish-files")]
    a_ref, a_stream, b_ref, b_stream, b_fish = rows
    assert a_ref.fraction_of_in_memory == 1.0 and a_ref.time_to_first_batch_s == 4.0
    assert a_stream.fraction_of_in_memory == pytest.approx(0.9)      # 900 / 1000: lesson 10's reference
    assert b_stream.fraction_of_in_memory == pytest.approx(0.5)      # 1000 / 2000: lesson 11's, not 10's
    assert b_fish.fraction_of_in_memory is None                      # no fish reference in lesson 11
    assert b_fish.peak_anon_mb is None and b_fish.samples_per_s == 40.0   # its recorded peak is not shown
    assert a_stream.peak_anon_mb == 2.5 and a_stream.peak_alone      # from the pipeline-alone record
    assert a_stream.peak_vs_dataset == pytest.approx(0.025) and b_ref.peak_vs_dataset == pytest.approx(3.0)
    assert a_ref.lesson == "10" and a_ref.holds == 1.0 and a_ref.reference and not a_stream.reference
    assert a_stream.pipeline == "stream, budget 3 MiB" and a_stream.label == "stream"


def test_a_label_changes_in_one_place_only(small_table):
    """The row's label is the record's own: renaming it changes the table and nothing else."""
    small_table[1]["records"][0]["row"]["label"] = "streamed"
    small_table[1]["records"][0]["pipeline"] = "streamed, budget 3 MiB"
    rows = summary.rows(small_table)
    assert [r.label for r in rows if r.notebook == "10_a"] == ["arrays", "streamed"]
    assert rows[1].fraction_of_in_memory == pytest.approx(0.9)


def test_a_missing_lesson_leaves_the_others(small_table):
    rows = summary.rows(small_table[:1])
    assert {r.notebook for r in rows} == {"11_b"}
    assert summary.rows([]) == []


def test_markdown_has_one_line_per_row_and_dashes_for_what_was_not_measured(small_table):
    rows = summary.rows(small_table)
    text = summary.markdown(rows, "ci")
    lines = text.splitlines()
    assert lines[0].startswith("| lesson | pipeline |") and lines[1].startswith("|---")
    table = [line for line in lines if line.startswith("| 1")]
    assert len(table) == len(rows)
    assert table[1].split(" | ")[5:9] == ["0.90×", "—", "0.025× †", "0.5 s"]
    assert table[4].split(" | ")[5] == "—"                            # fish: no reference in its lesson
    assert "`ci` scale" in text and "†" in lines[-1]


def test_a_compute_ceiling_has_its_own_column_and_rounds_show_their_spread():
    """Two references of different meaning never share a column; a figure timed in rounds shows their min-max."""
    ceiling = {"label": "ceiling", "task": "fish", "kind": "compute ceiling", "needs": "one batch", "reference": True}
    heavy = {"label": "heavy", "task": "fish", "kind": "CPU-heavy stream", "needs": "CPU"}
    table = summary.rows([{"notebook": "12_c", "records": [
        rec("ceiling", samples_per_s=1000.0, row=ceiling),
        rec("heavy", samples_per_s=300.0, row=heavy, rounds_samples_per_s=[280.0, 300.0, 330.0])]}])
    assert [r.fraction_of_ceiling for r in table] == [1.0, pytest.approx(0.3)]
    assert [r.fraction_of_in_memory for r in table] == [None, None]
    assert table[1].samples_range == (280.0, 330.0) and table[0].samples_range is None
    line = summary.markdown(table).splitlines()[3].split(" | ")
    assert line[4:7] == ["300 (280–330)", "—", "0.30×"]


def test_size_series_collects_the_sweeps(small_table):
    assert summary.size_series(small_table) == {"10 arrays": ([50, 100], [1, 3])}


def test_lessons_without_results_come_from_the_notebooks_folder(tmp_path):
    for name in ("01_a.ipynb", "02_b.ipynb", f"{summary.READERS[0]}.ipynb", "notes.ipynb"):
        (tmp_path / name).write_text("{}")
    assert summary.lessons_without_results([{"notebook": "01_a", "records": []}], tmp_path) == ["02_b"]


def test_the_readme_table_is_written_between_its_markers(tmp_path, monkeypatch):
    monkeypatch.setattr(summary, "readme_table", lambda: "| the | table |")
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\n{summary.README_START}\nold table\n{summary.README_END}\n\nmore\n")
    assert summary.write_readme(readme) is True
    assert readme.read_text() == f"# Title\n\n{summary.README_START}\n| the | table |\n{summary.README_END}\n\nmore\n"
    assert summary.write_readme(readme) is False and summary.readme_text(readme) == "| the | table |"
    readme.write_text("# no markers\n")
    with pytest.raises(ValueError, match="results-table:start"):
        summary.write_readme(readme)


# --- the committed results (results/default) ---

def test_the_committed_results_have_rows_and_one_reference_per_task_and_lesson():
    assert committed(), "results/default is empty"
    table = summary.rows(committed())
    assert table and all(isinstance(r.row, Row) for r in table)
    references = [(r.notebook, r.task) for r in table if r.reference]
    assert len(references) == len(set(references))


def test_cli_prints_the_markdown_table_of_the_default_results(capsys):
    assert summary.main(["--markdown"]) == 0
    assert capsys.readouterr().out == summary.markdown(summary.rows(committed()), "default") + "\n"
    assert summary.main([]) == 0


def test_readme_table_matches_the_committed_results():
    """The README shows exactly `python -m helpers.report.summary --markdown` between its two markers
    (`python -m helpers.report.summary --write-readme` writes it; `run.sh series` calls that)."""
    assert summary.readme_text() == summary.readme_table(), \
        "the README's results table is stale: run `python -m helpers.report.summary --write-readme`"


def test_lesson_06_rows_are_fractions_of_its_compute_ceiling():
    """Lesson 06 is input-bound on purpose: its rows divide by its ceiling and stay out of the streaming checks."""
    table = [r for r in summary.rows(committed()) if r.notebook == "06_multiprocessing_gpu"]
    assert table, "no default results for lesson 06"
    ceiling = find(committed(), "06_multiprocessing_gpu", "ceiling")
    assert [r.id for r in table if r.reference] == ["ceiling"]
    for r in table:
        if not r.reference:
            assert r.kind == "CPU-heavy stream" and r.kind not in STREAMING_KINDS
            assert r.fraction_of_ceiling == pytest.approx(r.samples_per_s / ceiling["samples_per_s"])
            assert r.fraction_of_in_memory is None, "a ceiling is not an in-memory reference: its own column"
