"""Each notebook's time in the test run, against its budget (printed at the end, never failed:
a timing depends on the machine). Issue 12: about 2 minutes per notebook and environment at the
ci scale keeps CI, both package sets included, under 40 minutes."""

from collections import defaultdict

NOTEBOOK_BUDGET_S = 120.0
_seconds: dict[str, float] = defaultdict(float)


def pytest_runtest_logreport(report):
    path = report.nodeid.split("::", 1)[0]
    if path.endswith(".ipynb"):
        _seconds[path] += report.duration


def pytest_terminal_summary(terminalreporter):
    if not _seconds:
        return
    tr = terminalreporter
    tr.section(f"time per notebook (budget {NOTEBOOK_BUDGET_S:.0f} s each)")
    for path, seconds in sorted(_seconds.items()):
        over = seconds - NOTEBOOK_BUDGET_S
        tr.write_line(f"{seconds:7.0f} s  {path}" + (f"  (over budget by {over:.0f} s)" if over > 0 else ""))
    tr.write_line(f"{sum(_seconds.values()):7.0f} s  in all, {sum(s > NOTEBOOK_BUDGET_S for s in _seconds.values())} "
                  f"of {len(_seconds)} notebooks over budget")
