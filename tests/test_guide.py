"""The decision guide of the summary lesson: every answer points to a row and quotes its figures."""

import pytest

from helpers.config import get_scale
from helpers.report import guide, summary
from helpers.report.results import find, load



def committed():
    """The committed results (results/default), read afresh."""
    return load(get_scale("default"))


def test_the_guide_answers_all_eight_cases_from_rows_and_records_that_exist():
    assert set(guide.GUIDE) == {(k, f, c) for k in ("arrays", "images") for f in (True, False) for c in (True, False)}
    rows = {(r.notebook, r.id) for r in summary.rows(committed())}
    for case, answer in guide.GUIDE.items():
        for ref in answer.candidates + answer.alternatives:
            assert ref in rows, f"{case}: {ref} is not a row of the committed table"
        for s in answer.speedups:
            assert guide.speedup(committed(), s), f"{case}: {s} has no figures in the committed results"


@pytest.mark.parametrize("kind", ["arrays", "images"])
@pytest.mark.parametrize("fits_in_ram", [True, False])
@pytest.mark.parametrize("cpu_heavy", [True, False])
def test_recommend_names_a_lesson_and_quotes_its_figures(kind, fits_in_ram, cpu_heavy):
    advice = guide.recommend(kind, fits_in_ram, cpu_heavy, committed())
    row = next(r for r in summary.rows(committed()) if r.label == advice.pipeline and r.lesson == advice.lesson)
    assert advice.measured.startswith(f"{row.label} (lesson {row.lesson}, {row.task})")
    if row.peak_anon_mb is not None:
        assert f"+{row.peak_anon_mb:,.0f} MiB" in advice.measured or f"+{row.peak_anon_mb:.1f} MiB" in advice.measured
    assert str(advice).startswith(f"→ lesson {advice.lesson}, {advice.pipeline}:")
    nothing = guide.recommend(kind, fits_in_ram, cpu_heavy, [])
    assert nothing.measured.startswith("not measured yet: run lesson")


def test_recommend_quotes_speedups_measured_in_one_run():
    advice = guide.recommend("images", False, True, committed())
    fast = find(committed(), "05_tf_data", "fish-cache-file")["pipeline_alone_samples_per_s"]
    slow = find(committed(), "05_tf_data", "fish-jpeg-autotune")["pipeline_alone_samples_per_s"]
    assert f"{fast / slow:.1f}× (lesson 05)" in advice.measured
    with pytest.raises(ValueError, match="kind"):
        guide.recommend("text", True, False, committed())
