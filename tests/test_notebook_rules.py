"""Rules every lesson keeps, read from the notebooks' source (no kernel needed).

- A figure that depends on the machine (a speed, a ratio, a peak, a time) is a claim
  (``helpers.report.claims.expect``), never a bare ``assert``: an assert that compares such a figure fails
  this test unless its line says why it holds everywhere (``# invariant: ...``).
- Each lesson ends with ``claims.finish(...)`` (its claims table and results).
- Each notebook has a time budget at the ci scale (root ``conftest.py``), and the budgets and the
  reserve of both CI environments, with the time outside the notebooks, fit under CI's 50 minutes.
- The repository's address is one constant (``helpers.config.REPO_URL``): every setup cell, badge
  and the README agree with it.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
from pathlib import Path

import pytest

from helpers.config import REPO_URL

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
MACHINE = re.compile(r"per_s|speed|ratio|peak|_mb|mib|second|elapsed|time|rate|throughput|faster|slower|"
                     r"ceiling|rows_s|fraction|_s$|^s$|_x$", re.I)
ORDERING = (ast.Lt, ast.LtE, ast.Gt, ast.GtE)


def code_cells(path: Path) -> list[str]:
    cells = json.loads(path.read_text())["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]


def parse(source: str) -> ast.Module:
    """A cell as Python: IPython's ``%magic`` and ``!shell`` lines become blank lines."""
    lines = ["" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()]
    return ast.parse("\n".join(lines))


def names(node: ast.AST) -> list[str]:
    out = []
    for n in ast.walk(node):
        if isinstance(n, ast.Name):
            out.append(n.id)
        elif isinstance(n, ast.Attribute):
            out.append(n.attr)
        elif isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value.isidentifier():
            out.append(n.value)
    return out


def machine_asserts(source: str) -> list[str]:
    """Asserts of ``source`` that order machine-dependent figures and do not say why they hold."""
    lines = source.splitlines()
    found = []
    for node in ast.walk(parse(source)):
        if not isinstance(node, ast.Assert):
            continue
        orders = any(isinstance(op, ORDERING) for c in ast.walk(node.test) if isinstance(c, ast.Compare)
                     for op in c.ops)
        text = "\n".join(lines[node.lineno - 1:node.end_lineno])
        if orders and any(MACHINE.search(n) for n in names(node.test)) and "# invariant" not in text:
            found.append(text.strip())
    return found


def test_the_scan_finds_a_timing_assert_and_spares_an_invariant():
    assert machine_asserts("assert ratio >= 0.85, 'slow'")
    assert machine_asserts("assert rec['samples_per_s'] > 2 * base")
    assert not machine_asserts("assert peak >= batch_mb  # invariant: a pipeline holds one batch")
    assert not machine_asserts("assert len(seen) == n and sorted(seen) == list(range(n))")
    assert not machine_asserts("assert mixing > 0.9")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_bare_assert_on_a_machine_dependent_figure(path):
    left = [a for src in code_cells(path) for a in machine_asserts(src)]
    assert not left, (f"{path.name}: these asserts compare figures that depend on the machine; make them "
                      "claims (helpers.report.claims.expect) or say why they hold everywhere (# invariant: ...):\n"
                      + "\n---\n".join(left))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_lesson_ends_with_its_claims(path):
    last = code_cells(path)[-1]
    assert f'claims.finish("{path.stem}")' in last, f"{path.name}: the last code cell calls claims.finish"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_setup_cell_and_badges_use_the_one_address(path):
    setup = code_cells(path)[0]
    assert f'REPO = "{REPO_URL}"' in setup, f"{path.name}: its setup cell clones {REPO_URL}"
    text = path.read_text()
    github = REPO_URL.removeprefix("https://github.com/")
    for badge in re.findall(r"https://colab\.research\.google\.com/github/([^)\s\"]+)", text):
        assert badge == f"{github}/blob/main/notebooks/{path.name}", badge
    for badge in re.findall(r"kernels/welcome\?src=([^)\s\"]+)", text):
        assert badge == f"{REPO_URL}/blob/main/notebooks/{path.name}", badge
    name = github.split("/")[-1]
    for use in re.findall(rf"[\w./:-]*/{re.escape(name)}", text):
        assert use.endswith(github), f"{path.name}: {use} is not {REPO_URL}"


def test_readme_names_the_address_and_says_it_is_a_placeholder():
    readme = (ROOT / "README.md").read_text()
    assert REPO_URL in readme
    if "OWNER" in REPO_URL:
        assert "placeholder" in readme


def load_conftest():
    spec = importlib.util.spec_from_file_location("root_conftest", ROOT / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_notebook_has_a_time_budget_and_together_they_fit_ci():
    conftest = load_conftest()
    assert {p.name[:2] for p in NOTEBOOKS} == set(conftest.NOTEBOOK_BUDGET_S), "one budget per notebook"
    both_environments = 2 * (sum(conftest.NOTEBOOK_BUDGET_S.values()) + conftest.RESERVED_S)
    assert both_environments + conftest.OUTSIDE_NOTEBOOKS_S <= conftest.CI_LIMIT_S <= 50 * 60, \
        f"the budgets and reserves ({both_environments / 60:.1f} min for two environments) leave CI no room under its limit"
    assert conftest.RESERVED_S >= 0
    assert conftest.budget_of("notebooks/05_tf_data.ipynb") == conftest.NOTEBOOK_BUDGET_S["05"]
    assert conftest.budget_of("notebooks/99_new.ipynb") is None
