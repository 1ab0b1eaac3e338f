"""helpers.session.start: safe to call again; prints what a reader needs; refuses a bad start method.
helpers.lab.machine: where it runs, the processor, the CPUs."""

import multiprocessing

import pytest

from helpers import session
from helpers.lab import machine
from helpers.report import claims


def test_start_twice_prints_versions_and_forgets_claims(capsys, monkeypatch):
    monkeypatch.delenv(session.START_METHOD_ENV, raising=False)
    claims.expect("x", "y", 1.0, "<", 2.0)
    tf, keras, np = session.start()
    tf2, _, _ = session.start()
    assert tf is tf2 and keras.__version__.startswith("3.") and np.ones(1).sum() == 1
    out = capsys.readouterr().out
    assert out.count("TensorFlow ") == 2 and "CPUs" in out and "scale " in out and "start by" in out
    assert claims.kept() == []


def test_a_start_method_that_does_not_exist_is_refused(monkeypatch):
    before = multiprocessing.get_start_method(allow_none=True)
    monkeypatch.setenv(session.START_METHOD_ENV, "teleport")
    with pytest.raises(ValueError, match="TUTORIAL_START_METHOD='teleport'"):
        session.start()
    assert multiprocessing.get_start_method(allow_none=True) == before


def test_where_and_cpus():
    assert machine.cpus() >= 1 and machine.where()


def test_cpu_model_names_the_processor(monkeypatch):
    name = machine.cpu_model()
    assert isinstance(name, str) and name
    monkeypatch.setattr("builtins.open", lambda *a, **k: (_ for _ in ()).throw(OSError("no /proc")))
    assert machine.cpu_model()   # macOS, Windows: platform.processor() or a placeholder
