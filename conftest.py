"""Each notebook's time in the test run, against its budget (printed at the end, never failed:
a timing depends on the machine).

CI runs every notebook twice (the newest releases, then Colab's package set) and must stay under
50 minutes. Its time is split here, per environment: each notebook's budget at the ci scale (about 2
minutes on average), a reserve for the lessons and recipe cells still to come, and the time outside
the notebooks (``tests/test_notebook_rules.py`` checks that they add up to no more than the limit).
Lessons 05 and 06 get about 4 minutes: they measure many pipelines (05: 8 inside fit; 06: 8 worker
configurations inside fit, and worker interpreters started under each start method) over interleaved
rounds, each peak in a fresh process that pays TensorFlow's import. Less would mean peaks measured
in a reused process, which the series calls an artifact, or ratios without a spread.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

NOTEBOOK_BUDGET_S: dict[str, float] = {
    "01": 55, "02": 95, "03": 20, "04": 70, "05": 240, "06": 255, "07": 165, "08": 115, "09": 5,
}
"""Seconds each notebook (by its number) may take at the ci scale, in one environment, on a 2-CPU
machine like CI's: its longest time in the CI-exact runs of 979001b and f723733 (either environment),
rounded up to 5 s. A new notebook takes its budget from :data:`RESERVED_S`; a notebook that needs
more takes it from another."""
RESERVED_S = 300
"""Seconds per environment kept free for what is still to come: lessons 09-11 (your own data, resume
after a disconnect, beyond TensorFlow) and the recipe cell that opens each pipeline lesson. What they
take is moved from here into :data:`NOTEBOOK_BUDGET_S`."""
CI_LIMIT_S = 50 * 60
"""What the whole CI run must stay under: two environments' budgets and reserves, and the time
outside the notebooks."""
OUTSIDE_NOTEBOOKS_S = 6 * 60
"""CI's time outside the notebooks: the helpers' tests (about 4 minutes) and two environments'
installs (about 2), in the CI-exact run of f723733."""
_seconds: dict[str, float] = defaultdict(float)


def budget_of(path: str) -> float | None:
    """The budget of a notebook given by its path (``notebooks/05_tf_data.ipynb`` -> lesson ``05``),
    or None if it has none (``tests/test_notebook_rules.py`` fails then)."""
    return NOTEBOOK_BUDGET_S.get(Path(path).name[:2])


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
        if budget is None:
            tr.write_line(f"{seconds:7.0f} s  of    ? s  {path}  (no budget: add one to conftest.NOTEBOOK_BUDGET_S)")
            continue
        over += seconds > budget
        tr.write_line(f"{seconds:7.0f} s  of {budget:4.0f} s  {path}"
                      + (f"  (over budget by {seconds - budget:.0f} s)" if seconds > budget else ""))
    budgets = sum(budget_of(path) or 0 for path in _seconds)
    tr.write_line(f"{sum(_seconds.values()):7.0f} s  of {budgets:4.0f} s  in all; {over} of {len(_seconds)} notebooks "
                  f"over budget; {RESERVED_S} s more kept in reserve per environment")
