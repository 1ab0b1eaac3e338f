"""helpers.report.claims: a machine-dependent figure is reported, or raises in a strict run, and is stored."""

import json

import pytest

from helpers import config
from helpers.report import claims


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    claims.reset()
    monkeypatch.delenv(claims.ENV, raising=False)
    monkeypatch.delenv("TUTORIAL_MEMORY", raising=False)
    yield
    claims.reset()


def test_a_claim_that_holds_prints_one_line(capsys):
    assert claims.expect("speed", "a memmap trains near in-memory speed", [0.9, 0.95, 0.8], ">=", 0.7, unit="x") is None
    c = claims.kept()[-1]
    assert c.held and c.measured == 0.9 and (c.min, c.max, c.rounds) == (0.8, 0.95, 3)
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("claim holds:") and "0.8x-0.95x" in out


def test_lenient_run_reports_and_goes_on(capsys):
    claims.expect("speed", "two processes beat one", 0.8, ">=", 1.2, unit="x", reason="one CPU")
    c = claims.kept()[-1]
    assert c.held is False
    out = capsys.readouterr().out
    assert "DIFFERS HERE" in out and "Likely: one CPU." in out and "goes on" in out


def test_strict_run_raises_and_keeps_the_claim(monkeypatch):
    monkeypatch.setenv(claims.ENV, "strict")
    with pytest.raises(AssertionError, match="two processes beat one"):
        claims.expect("speed", "two processes beat one", 0.8, ">=", 1.2)
    assert claims.kept()[0].held is False


def test_a_rerun_replaces_its_entry():
    claims.expect("a", "x", 1.0, "<", 2.0)
    claims.expect("b", "y", 1.0, "<", 2.0)
    claims.expect("a", "x", 3.0, "<", 2.0)
    assert [(c.id, c.held) for c in claims.kept()] == [("a", False), ("b", True)]


def test_anonymous_memory_is_not_measurable_under_the_rss_fallback(monkeypatch, capsys):
    monkeypatch.setenv("TUTORIAL_MEMORY", "rss")
    monkeypatch.setenv(claims.ENV, "strict")
    claims.expect("flat", "memory stays flat", 999.0, "<", 10.0, unit="MiB", needs="anon")
    c = claims.kept()[-1]
    assert c.held is None and c.measured is None
    out = capsys.readouterr().out
    assert "not measurable here" in out and "gives only RSS" in out


def test_a_figure_not_measured_in_this_run_says_why(monkeypatch, capsys):
    monkeypatch.setenv(claims.ENV, "strict")           # not a difference: nothing raises
    claims.expect("small", "the streaming peak is a fraction of the in-memory one", None, "<", 20, unit="%",
                  missing="the in-memory run was killed: out of memory")
    c = claims.kept()[-1]
    assert c.held is None and c.measured is None
    assert "not measurable here" in capsys.readouterr().out and "killed: out of memory" in c.reason


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="op"):
        claims.expect("a", "x", 1.0, "=>", 2.0)
    with pytest.raises(ValueError, match="needs"):
        claims.expect("a", "x", 1.0, ">", 2.0, needs="gpu")
    with pytest.raises(ValueError, match="no measurement"):
        claims.expect("a", "x", [], ">", 2.0)


def test_finish_prints_the_table_and_stores_the_claims(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(config, "project_root", lambda: tmp_path)
    claims.expect("speed", "fast", [1.0, 2.0], ">=", 1.2, unit="x")
    claims.expect("slow", "slow", 5.0, "<", 1.0)
    assert claims.finish("99_example") is None   # a notebook cell ending with it shows only its lines
    out = capsys.readouterr().out
    assert "2 claims: 1 hold, 1 differ here, 0 not measurable" in out
    path = config.results_dir() / "99_example.json"
    assert out.rstrip().endswith(f"claims stored in results/{path.parent.name}/{path.name}")
    payload = json.loads(path.read_text())
    assert payload["records"] == [] and payload["notebook"] == "99_example"
    assert payload["claims"][0] == {"id": "speed", "text": "fast", "op": ">=", "threshold": 1.2,
                                    "measured": 1.5, "min": 1.0, "max": 2.0, "rounds": 2, "held": True}
    assert path.parent == config.results_dir()


def test_spreads_merge_the_logged_test_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "project_root", lambda: tmp_path)
    monkeypatch.setenv(config.ENV_VAR, "ci")
    monkeypatch.setenv(claims.ENV, "strict")
    for rounds in ([1.3, 1.5], [1.1, 1.4], [1.25]):
        claims.reset()
        claims.expect("speed", "fast", rounds, ">=", 1.2, unit="x")
        claims.finish("99_example")
    monkeypatch.delenv(claims.ENV)
    claims.finish("99_example")  # not a test run: not counted at the ci scale
    merged = claims.spreads([tmp_path / "results" / claims.LOG])
    entry = merged["99_example/speed"]
    assert len(entry["runs"]) == 3 and entry["threshold"] == 1.2
    assert claims.inside_spread(entry)  # the second run's rounds went down to 1.1
    entry["runs"].pop(1)
    assert not claims.inside_spread(entry)


def test_spreads_keep_the_runs_recorded_before(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "project_root", lambda: tmp_path)
    monkeypatch.setenv(config.ENV_VAR, "ci")
    monkeypatch.setenv(claims.ENV, "strict")
    log = tmp_path / "results" / claims.LOG
    claims.expect("speed", "fast", [1.3, 1.5], ">=", 1.2, unit="x")
    claims.finish("99_example")
    first = claims.spreads([log])
    log.unlink()                                   # the first run's log is gone, its record stays
    claims.reset()
    claims.expect("speed", "fast", [1.6], ">=", 1.1, unit="x")
    claims.finish("99_example")
    merged = claims.spreads([log], previous=first)
    entry = merged["99_example/speed"]
    assert [r["measured"] for r in entry["runs"]] == [1.4, 1.6] and entry["threshold"] == 1.1
    assert claims.spreads([log], previous=merged) == merged      # the same log twice: nothing added
    assert len(first["99_example/speed"]["runs"]) == 1           # previous is not changed


def test_spreads_drop_the_runs_of_a_changed_claim(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "project_root", lambda: tmp_path)
    monkeypatch.setenv(config.ENV_VAR, "ci")
    monkeypatch.setenv(claims.ENV, "strict")
    log = tmp_path / "results" / claims.LOG
    claims.expect("speed", "fast", [0.9, 1.5], ">=", 1.0, unit="x")   # measured the old way
    claims.expect("other", "small", [2.0], "<", 3.0, unit="x")
    claims.finish("99_example")
    before = claims.spreads([log])
    merged = claims.spreads([log], previous=before, drop=["99_example/speed"])
    assert "99_example/speed" not in merged, "neither the recorded runs nor the log's count"
    assert merged["99_example/other"] == before["99_example/other"]
    claims.reset()
    claims.expect("speed", "fast", [1.4, 1.6], ">=", 1.0, unit="x")   # measured the new way, logged later
    claims.finish("99_example")
    log2 = tmp_path / "later.jsonl"
    log2.write_text(log.read_text().splitlines()[-1] + "\n")
    again = claims.spreads([log2], previous=merged)
    assert [r["measured"] for r in again["99_example/speed"]["runs"]] == [1.5]
    with pytest.raises(ValueError, match="notebook/id"):
        claims.spreads([log], drop=["speed"])
