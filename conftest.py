"""Each notebook's time in the test run, against its budget (printed at the end, never failed:
a timing depends on the machine).

Issue 12: CI runs every notebook twice (the newest releases, then Colab's package set) and must stay
under 40 minutes, so each notebook has a budget at the ci scale, about 2 minutes on average. Lessons
05 and 06 get about 4: they measure many pipelines (05: 8 inside fit; 06: 8 worker configurations
inside fit, and worker interpreters started under each start method) over interleaved rounds, each
peak in a fresh process that pays TensorFlow's import. Less would mean peaks measured in a reused
process, which the series calls an artifact, or ratios without a spread. The budgets add up to what
CI allows (``tests/test_notebook_rules.py`` checks the sum).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

NOTEBOOK_BUDGET_S: dict[str, float] = {
    "01": 45, "02": 85, "03": 20, "04": 55, "05": 225, "06": 270, "07": 165, "08": 130, "09": 10,
}
"""Seconds each notebook (by its number) may take at the ci scale, in one environment, on a 2-CPU
machine like CI's. Set from the CI-exact runs of 2026-12-07 (the slower of the two environments)
with some room."""
CI_LIMIT_S = 40 * 60
"""What the whole CI run must stay under (issue 12)."""
OUTSIDE_NOTEBOOKS_S = 5 * 60
"""CI's time outside the notebooks: the helpers' tests (about 3 minutes) and two environments'
installs (about 2), in the CI-exact runs of 2026-12-07."""
_seconds: dict[str, float] = defaultdict(float)


def budget_of(path: str) -> float:
    """The budget of a notebook given by its path (``notebooks/05_tf_data.ipynb`` -> lesson ``05``)."""
    number = Path(path).name[:2]
    if number not in NOTEBOOK_BUDGET_S:
        raise KeyError(f"{path}: no time budget for notebook {number!r} in conftest.NOTEBOOK_BUDGET_S")
    return NOTEBOOK_BUDGET_S[number]


def pytest_runtest_logreport(report):
    path = report.nodeid.split("::", 1)[0]
    if path.endswith(".ipynb"):
        _seconds[path] += report.duration


def pytest_terminal_summary(terminalreporter):
    if not _seconds:
        return
    tr = terminalreporter
    tr.section("time per notebook, against its budget at the ci scale")
    over = 0
    for path, seconds in sorted(_seconds.items()):
        budget = budget_of(path)
        over += seconds > budget
        tr.write_line(f"{seconds:7.0f} s  of {budget:4.0f} s  {path}"
                      + (f"  (over budget by {seconds - budget:.0f} s)" if seconds > budget else ""))
    budgets = sum(budget_of(path) for path in _seconds)
    tr.write_line(f"{sum(_seconds.values()):7.0f} s  of {budgets:4.0f} s  in all; {over} of {len(_seconds)} notebooks "
                  "over budget")
