"""The layout of ``helpers``: three parts, imports that go one way, and ``pipelines/`` copyable.

- ``helpers/pipelines/`` is what a learner copies: its modules import the standard library, NumPy,
  Keras, TensorFlow and Pillow, and siblings only by relative import. Copied alone into an empty
  folder it imports as a package, every module of it imports, and a file that imports no sibling
  imports on its own. Each file's first docstring line names what it needs and the siblings that
  come with it.
- No import circle between the modules of ``helpers`` (imports inside functions included).
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HELPERS = ROOT / "helpers"
PIPELINES = HELPERS / "pipelines"
PARTS = ("pipelines", "lab", "report")
TOP = {"__init__", "config", "datasets", "models", "session"}
THIRD_PARTY = {"numpy": "NumPy", "keras": "Keras", "tensorflow": "TensorFlow", "PIL": "Pillow"}
"""What a ``pipelines/`` module may import beyond the standard library, with its name in prose."""


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    """Every module of ``helpers`` by dotted name (packages by their ``__init__.py``)."""
    return {module_name(p): p for p in sorted(HELPERS.rglob("*.py"))}


def imports_of(path: Path) -> list[tuple[str, int, ast.stmt]]:
    """``(target, level, node)`` of every import in ``path``, nested ones included: ``target`` is the
    dotted module for absolute imports, the relative module text for relative ones (``from . import
    a, b`` gives one entry per name)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(alias.name, 0, node) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level and not node.module:
                out += [(alias.name, node.level, node) for alias in node.names]
            else:
                out.append((node.module or "", node.level, node))
    return out


def helpers_edges(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The ``helpers`` modules that module ``name`` imports (a ``from pkg import mod`` counts ``mod``)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    edges = set()
    for target, level, node in imports_of(path):
        if level:
            base = package.split(".")
            base = base[:len(base) - (level - 1)]
            target = ".".join(base + ([target] if target else []))
        if target != "helpers" and not target.startswith("helpers."):
            continue
        found = {target} if target in known else set()
        if isinstance(node, ast.ImportFrom):
            found |= {f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in known}
        edges |= found or {target}
    return edges - {name}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_three_parts_and_the_top():
    known = modules()
    for part in PARTS:
        assert f"helpers.{part}" in known, f"helpers/{part}/__init__.py is missing"
    top = {p.stem for p in HELPERS.glob("*.py")}
    assert top == TOP, f"modules at the top of helpers/ beyond {sorted(TOP)}: {sorted(top - TOP)}"
    assert {p.name for p in HELPERS.iterdir() if p.is_dir() and p.name != "__pycache__"} == set(PARTS)
    doc = ast.get_docstring(ast.parse((HELPERS / "__init__.py").read_text()))
    for part in PARTS:
        assert f"helpers.{part}" in doc, f"helpers/__init__.py does not map helpers.{part}"


def test_every_import_of_the_series_resolves():
    known = modules()
    for name, path in known.items():
        for target in helpers_edges(name, path, known):
            assert target in known, f"{name} imports {target}, which does not exist"


def test_no_import_circle():
    known = modules()
    graph = {name: helpers_edges(name, path, known) for name, path in known.items()}
    assert graph["helpers.report.claims"], "the walk found no import of helpers.report.claims: it is broken"
    assert cycles(graph) == [], "modules that import each other (a circle)"


def test_the_parts_import_nothing_when_imported():
    """Importing ``helpers.lab.memory`` imports ``helpers`` and ``helpers.lab`` first: their
    ``__init__`` files import nothing, so no circle can pass through them (the walk does not see
    those implicit imports)."""
    for path in [HELPERS / "__init__.py", *(HELPERS / part / "__init__.py" for part in PARTS)]:
        assert [t for t, _, _ in imports_of(path) if t != "__future__"] == [], f"{path} imports something"


def test_the_walk_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_pipelines_import_only_what_a_learner_has():
    """The standard library, NumPy, Keras, TensorFlow, Pillow; siblings by relative import only."""
    for path in sorted(PIPELINES.glob("*.py")):
        for target, level, _ in imports_of(path):
            if level:
                assert level == 1, f"{path.name}: a relative import beyond pipelines/ ({'.' * level}{target})"
                assert (PIPELINES / f"{target}.py").exists(), f"{path.name}: no sibling {target}.py"
                continue
            top = target.split(".")[0]
            assert top in THIRD_PARTY or top in sys.stdlib_module_names, \
                f"{path.name} imports {target}: pipelines/ may import the standard library and {sorted(THIRD_PARTY)}"


def siblings_of(path: Path) -> set[str]:
    return {f"{target}.py" for target, level, _ in imports_of(path) if level}


def test_each_file_says_what_it_needs_and_which_siblings_come_with_it():
    for path in sorted(PIPELINES.glob("*.py")):
        if path.name == "__init__.py":
            continue
        first = ast.get_docstring(ast.parse(path.read_text())).splitlines()[0]
        needs = {THIRD_PARTY[t.split(".")[0]] for t, level, _ in imports_of(path)
                 if not level and t.split(".")[0] in THIRD_PARTY}
        for name in needs:
            assert name in first, f"{path.name}: its first docstring line does not say it needs {name}: {first!r}"
        if not needs:
            assert "standard library" in first, f"{path.name}: say it needs only the standard library: {first!r}"
        siblings = siblings_of(path)
        named = {w.strip(".,;:`") for w in first.split() if w.strip(".,;:`").endswith(".py")}
        assert named == siblings, f"{path.name}: first line names {sorted(named)}, it imports {sorted(siblings)}"
        if not siblings:
            assert "copy alone" in first, f"{path.name}: say it can be copied alone: {first!r}"


def test_the_folder_copied_alone_imports(tmp_path):
    """``pipelines/`` in an empty folder, without the rest of the series on the path: the package and
    every module import; each file without a sibling import imports alone, from a folder of its own."""
    shutil.copytree(PIPELINES, tmp_path / "project" / "pipelines", ignore=shutil.ignore_patterns("__pycache__"))
    alone = []
    for path in sorted(PIPELINES.glob("*.py")):
        if path.name != "__init__.py" and not siblings_of(path):
            (tmp_path / "alone" / path.stem).mkdir(parents=True)
            shutil.copy(path, tmp_path / "alone" / path.stem / path.name)
            alone.append(path.stem)
    mods = sorted(p.stem for p in PIPELINES.glob("*.py") if p.name != "__init__.py")
    script = f"""
import importlib, importlib.util, json, sys
sys.path = [p for p in sys.path if p not in ("", {str(ROOT)!r})]
try:
    import helpers
    raise SystemExit("helpers is importable: the test would not show that pipelines/ stands alone")
except ImportError:
    pass
sys.path.insert(0, {str(tmp_path / "project")!r})
import pipelines
done = [importlib.import_module("pipelines." + m).__name__ for m in {mods!r}]
for m in {alone!r}:
    sys.path.insert(0, {str(tmp_path / "alone")!r} + "/" + m)
    done.append(importlib.import_module(m).__file__)
    sys.path.pop(0)
print(json.dumps(done))
"""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    run = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    done = json.loads(run.stdout.strip().splitlines()[-1])
    assert done[:len(mods)] == [f"pipelines.{m}" for m in mods]
    assert [Path(f).parent.name for f in done[len(mods):]] == alone
    assert {"memmap_dataset", "image_files", "caches", "tfdata"} <= set(alone)
