"""The side-by-side summary of lesson 07 and the README: classification, ratios, Markdown, advice."""

import re

import pytest

from helpers import summary
from helpers.config import get_scale, project_root
from helpers.results import load

DEFAULT = load(get_scale("default"))   # the committed results
README_START, README_END = "<!-- results-table:start -->", "<!-- results-table:end -->"


def rec(pipeline, dataset_mb=100.0, peak_anon_mb=None, samples_per_s=None, **extra):
    return {"pipeline": pipeline, "dataset_mb": dataset_mb, "peak_anon_mb": peak_anon_mb,
            "samples_per_s": samples_per_s, **extra}


@pytest.fixture
def small_table(monkeypatch):
    """Two lessons with a digits reference each, one fish pipeline without one, a detail."""
    P = summary.Pipeline
    monkeypatch.setattr(summary, "PIPELINES", {
        ("10_a", "in memory"): P("arrays", "digits", "in memory", "RAM", reference=True, holds=1.0),
        ("10_a", "stream, budget *"): P("stream", "digits", "streaming", "disk", peak_from="alone, *"),
        ("11_b", "fish files"): P("files", "fish", "streaming", "JPEG", peak_shown=False),
        ("11_b", "in memory"): P("arrays", "digits", "in memory", "RAM", reference=True, holds=1.0),
        ("11_b", "stream"): P("stream", "digits", "streaming", "disk"),
    })
    monkeypatch.setattr(summary, "DETAILS", {"10_a": ("sweep, *",)})
    return [
        {"notebook": "11_b", "records": [rec("in memory", 100, 300, 2000.0), rec("stream", 100, 5, 1000.0),
                                         rec("fish files", 50, 10, 40.0)]},
        {"notebook": "10_a", "records": [rec("stream, budget 3 MiB", 100, 900, 900.0, time_to_first_batch_s=0.5),
                                         rec("in memory", 100, 310, 1000.0, time_to_first_batch_s=4.0),
                                         rec("alone, 3 MiB", 100, 2.5), rec("sweep, 50%", 50, 1)]},
    ]


def test_a_key_matches_a_name_exactly_or_by_its_prefix():
    assert summary.matches("tf.data from_generator(args=[path])", "tf.data from_generator(args=[path])")
    assert not summary.matches("tf.data from_generator(args=[p])", "tf.data from_generator(args=[path])")
    assert summary.matches("cache, fill-once, decoded, budget 56 MiB", "cache, fill-once, decoded, budget *")
    assert not summary.matches("in-memory arrays", "in-memory arrays, *")


def test_rows_take_ratios_within_one_lesson_and_in_table_order(small_table):
    rows = summary.rows(small_table)
    assert [(r.notebook, r.pipeline) for r in rows] == [
        ("10_a", "in memory"), ("10_a", "stream, budget 3 MiB"),
        ("11_b", "fish files"), ("11_b", "in memory"), ("11_b", "stream")]
    a_ref, a_stream, b_fish, b_ref, b_stream = rows
    assert a_ref.fraction_of_in_memory == 1.0 and a_ref.time_to_first_batch_s == 4.0
    assert a_stream.fraction_of_in_memory == pytest.approx(0.9)      # 900 / 1000: lesson 10's reference
    assert b_stream.fraction_of_in_memory == pytest.approx(0.5)      # 1000 / 2000: lesson 11's, not 10's
    assert b_fish.fraction_of_in_memory is None                      # no fish reference in lesson 11
    assert b_fish.peak_anon_mb is None and b_fish.samples_per_s == 40.0   # its recorded peak is not shown
    assert a_stream.peak_anon_mb == 2.5 and a_stream.peak_alone      # from the pipeline-alone record
    assert a_stream.peak_vs_dataset == pytest.approx(0.025) and b_ref.peak_vs_dataset == pytest.approx(3.0)
    assert a_ref.lesson == "10" and a_ref.holds == 1.0 and a_ref.reference and not a_stream.reference


def test_classification_finds_new_and_renamed_records(small_table):
    assert summary.unclassified(small_table) == []
    assert summary.missing(small_table) == []
    small_table[1]["records"][0]["pipeline"] = "streamed, budget 3 MiB"   # renamed in its lesson
    assert summary.unclassified(small_table) == [("10_a", "streamed, budget 3 MiB")]
    assert summary.missing(small_table) == [("10_a", "stream, budget *")]
    assert [r.pipeline for r in summary.rows(small_table) if r.notebook == "10_a"] == ["in memory"]


def test_a_missing_lesson_leaves_the_others(small_table):
    rows = summary.rows(small_table[:1])
    assert {r.notebook for r in rows} == {"11_b"} and summary.missing(small_table[:1]) == []
    assert summary.rows([]) == []


def test_records_of_an_unknown_lesson_show_unclassified(small_table):
    results = small_table + [{"notebook": "12_workers", "records": [
        rec("4 workers", 100, 40, 300.0, workers=4, use_multiprocessing=True),
        rec("2 threads", 100, 20, 250.0, workers=2, use_multiprocessing=False),
        rec("a hit rate", 100)]}]
    extra = [r for r in summary.rows(results) if r.notebook == "12_workers"]
    assert [(r.pipeline, r.kind, r.needs) for r in extra] == [
        ("4 workers", summary.UNCLASSIFIED, "4 worker processes"),
        ("2 threads", summary.UNCLASSIFIED, "2 worker threads")]
    assert all(r.fraction_of_in_memory is None for r in extra)
    assert summary.unclassified(results) == [("12_workers", p) for p in ("4 workers", "2 threads", "a hit rate")]


def test_markdown_has_one_line_per_row_and_dashes_for_what_was_not_measured(small_table):
    rows = summary.rows(small_table)
    text = summary.markdown(rows, "ci")
    lines = text.splitlines()
    assert lines[0].startswith("| lesson | pipeline |") and lines[1].startswith("|---")
    table = [line for line in lines if line.startswith("| 1")]
    assert len(table) == len(rows)
    assert table[1].split(" | ")[5:8] == ["0.90×", "0.025× †", "0.5 s"]
    assert table[2].split(" | ")[5] == "—"                            # fish: no reference in its lesson
    assert "`ci` scale" in text and "†" in lines[-1]


def test_size_series_collects_the_sweeps(small_table):
    results = small_table + [{"notebook": "13_s", "records": [
        rec("arrays, 100% of the data", 200, 600), rec("arrays, 50% of the data", 100, 300),
        rec("memmap, 50% of the data", 100, None)]}]
    assert summary.size_series(results) == {"13 arrays": ([100, 200], [300, 600])}  # "sweep, 50%" is not one


def test_lessons_without_results_come_from_the_notebooks_folder(tmp_path):
    for name in ("01_a.ipynb", "02_b.ipynb", "07_what_to_use_when.ipynb", "notes.ipynb"):
        (tmp_path / name).write_text("{}")
    assert summary.lessons_without_results([{"notebook": "01_a", "records": []}], tmp_path) == ["02_b"]


# --- the committed results (results/default) ---

def test_every_committed_record_is_classified():
    """A pipeline renamed or added in a lesson must be put in PIPELINES or DETAILS, not dropped."""
    assert DEFAULT, "results/default is empty"
    assert summary.unclassified(DEFAULT) == [], "add these records to summary.PIPELINES or summary.DETAILS"
    assert summary.missing(DEFAULT) == [], "these entries of summary.PIPELINES match no record: renamed?"


def test_each_committed_record_makes_at_most_one_row_and_each_lesson_one_reference_per_task():
    for payload in DEFAULT:
        nb = payload["notebook"]
        for r in payload["records"]:
            keys = [k for n, k in summary.PIPELINES if n == nb and summary.matches(r["pipeline"], k)]
            assert len(keys) <= 1, f"{nb}: {r['pipeline']!r} matches {keys}"
    references = [(n, p.task) for (n, _), p in summary.PIPELINES.items() if p.reference]
    assert len(references) == len(set(references))
    assert all(p.kind in summary.KINDS for p in summary.PIPELINES.values())


def test_the_guide_points_to_rows_of_the_table_and_to_records_that_exist():
    present = {payload["notebook"] for payload in DEFAULT}
    for case, (candidates, do, alternatives, speedups) in summary.GUIDE.items():
        for key in candidates + alternatives:
            assert key in summary.PIPELINES, f"{case}: {key} is not a row of the table"
        for nb, fast, slow, key, _ in speedups:
            if nb in present:
                assert summary.find(DEFAULT, nb, fast)[key] and summary.find(DEFAULT, nb, slow)[key], (case, nb)
    assert set(summary.GUIDE) == {(k, f, c) for k in ("arrays", "images") for f in (True, False) for c in (True, False)}


@pytest.mark.parametrize("kind", ["arrays", "images"])
@pytest.mark.parametrize("fits_in_ram", [True, False])
@pytest.mark.parametrize("cpu_heavy", [True, False])
def test_recommend_names_a_lesson_and_quotes_its_figures(kind, fits_in_ram, cpu_heavy):
    advice = summary.recommend(kind, fits_in_ram, cpu_heavy, DEFAULT)
    row = next(r for r in summary.rows(DEFAULT) if r.label == advice.pipeline and r.lesson == advice.lesson)
    assert advice.measured.startswith(f"{row.label} (lesson {row.lesson}, {row.task})")
    if row.peak_anon_mb is not None:
        assert f"+{row.peak_anon_mb:,.0f} MiB" in advice.measured or f"+{row.peak_anon_mb:.1f} MiB" in advice.measured
    assert str(advice).startswith(f"→ lesson {advice.lesson}, {advice.pipeline}:")
    nothing = summary.recommend(kind, fits_in_ram, cpu_heavy, [])
    assert nothing.measured.startswith("not measured yet: run lesson")


def test_recommend_quotes_speedups_measured_in_one_run():
    advice = summary.recommend("images", False, True, DEFAULT)
    fast = summary.find(DEFAULT, "05_tf_data", "fish: tf.data cache(filename)")["pipeline_alone_samples_per_s"]
    slow = summary.find(DEFAULT, "05_tf_data", "fish: tf.data JPEG map, AUTOTUNE")["pipeline_alone_samples_per_s"]
    assert f"{fast / slow:.1f}× (lesson 05)" in advice.measured
    with pytest.raises(ValueError, match="kind"):
        summary.recommend("text", True, False, DEFAULT)


def test_cli_prints_the_markdown_table_of_the_default_results(capsys):
    assert summary.main(["--markdown"]) == 0
    assert capsys.readouterr().out == summary.markdown(summary.rows(DEFAULT), "default") + "\n"
    assert summary.main([]) == 0
    assert "not classified" not in capsys.readouterr().out


def test_readme_table_matches_results():
    """The README shows exactly `python -m helpers.summary --markdown` between its two markers."""
    readme = (project_root() / "README.md").read_text()
    if README_START not in readme or README_END not in readme:
        pytest.skip(f"README.md has no {README_START} ... {README_END} markers yet")
    found = re.search(re.escape(README_START) + r"\n(.*?)\n" + re.escape(README_END), readme, re.S)
    assert found, "the markers must stand on their own lines, start before end"
    assert found.group(1).strip() == summary.markdown(summary.rows(DEFAULT), "default"), \
        "the README's results table is stale: paste the output of `python -m helpers.summary --markdown`"


def test_lesson_06_rows_are_fractions_of_its_compute_ceiling():
    """Lesson 06 is input-bound on purpose: its rows divide by its ceiling and stay out of the streaming checks."""
    table = [r for r in summary.rows(DEFAULT) if r.notebook == "06_multiprocessing_gpu"]
    if not table:
        pytest.skip("no default results for lesson 06")
    ceiling = summary.find(DEFAULT, "06_multiprocessing_gpu", "compute ceiling (one batch in memory, repeated)")
    assert [r.label for r in table if r.reference] == ["compute ceiling: one batch in memory, repeated"]
    for r in table:
        if not r.reference:
            assert r.kind == "CPU-heavy stream" and r.kind not in summary.STREAMING_KINDS
            assert r.fraction_of_in_memory == pytest.approx(r.samples_per_s / ceiling["samples_per_s"])
