"""The scale knob, the results files and the throughput protocol."""

import json

import numpy as np
import pytest

from helpers import config
from helpers.lab.throughput import time_pipeline, time_pool
from helpers.report import results


def test_scale_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv(config.ENV_VAR, "ci")
    assert config.get_scale().name == "ci"
    monkeypatch.delenv(config.ENV_VAR)
    assert config.get_scale().name == "default"
    with pytest.raises(ValueError, match="TUTORIAL_SCALE='huge'"):
        config.get_scale("huge")


def test_default_scale_is_about_one_gigabyte_of_float32():
    assert 900 <= config.SCALES["default"].digits_float32_mb <= 1100
    assert config.SCALES["large"].n_digits == 4 * config.SCALES["default"].n_digits


def record(id="in-memory", **fields):
    return {"id": id, "pipeline": "in-memory arrays", "dataset_mb": 957.0, "peak_anon_mb": 1900.0,
            "samples_per_s": 100.0, **fields}


ROW = results.Row("np.load + fit(arrays)", "digits", "in memory", "the arrays in RAM", reference=True, holds=1.0)


def test_record_writes_the_schema(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "project_root", lambda: tmp_path)
    scale = config.get_scale("ci")
    out = results.record("01_in_memory_fit.ipynb", [
        {"id": "in-memory", "pipeline": "in-memory", "dataset_mb": np.float64(957.0), "peak_anon_mb": 1900.123456,
         "samples_per_s": float("nan"), "accuracy": np.float32(0.5), "row": ROW}], scale=scale)
    assert out == tmp_path / "results" / "ci" / "01_in_memory_fit.json"
    data = json.loads(out.read_text())
    assert data["schema"] == results.SCHEMA and data["notebook"] == "01_in_memory_fit" and data["scale"] == "ci"
    written = data["records"][0]
    assert {k: v for k, v in written.items() if k != "row"} == {
        "id": "in-memory", "pipeline": "in-memory", "dataset_mb": 957.0, "peak_anon_mb": 1900.123,
        "samples_per_s": None, "accuracy": 0.5}
    assert results.Row.of(written["row"]) == ROW
    assert results.load(scale) == [data]
    assert results.find([data], "01_in_memory_fit", "in-memory") == written
    assert results.find([data], "02_memmap_pydataset", "in-memory") is None       # that lesson is not there
    with pytest.raises(KeyError, match="no record 'memmap'"):
        results.find([data], "01_in_memory_fit", "memmap")


def test_load_refuses_a_file_of_another_schema(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "project_root", lambda: tmp_path)
    folder = tmp_path / "results" / "ci"
    folder.mkdir(parents=True)
    (folder / "01_in_memory_fit.json").write_text(json.dumps({"notebook": "01_in_memory_fit", "records": []}))
    with pytest.raises(ValueError, match="schema 1.*run notebooks/01_in_memory_fit.ipynb again"):
        results.load(config.get_scale("ci"))


@pytest.mark.parametrize("records, message", [
    ([{"pipeline": "p"}], "lacks"),
    ([record(id="In Memory")], "an id is lower-case"),
    ([record(), record()], "used twice"),
    ([record(row={"label": "a", "task": "digits", "kind": "somewhere", "needs": "n"})], "kind 'somewhere'"),
    ([record(row={"label": "a", "task": "text", "kind": "streaming", "needs": "n"})], "task 'text'"),
    ([record(row={"label": "a", "task": "digits", "kind": "streaming"})], "needs"),
    ([record(row={"label": "a", "task": "digits", "kind": "streaming", "needs": "n", "colour": 1})], "colour"),
    ([record(row={"label": "a", "task": "digits", "kind": "streaming", "needs": "n", "peak_from": "alone"})],
     "peak_from='alone' names no record"),
    ([record("a", row=ROW), record("b", row=ROW)], "second in-memory reference"),
    ([record(sweep="in-memory arrays", dataset_mb=None)], "sweep"),
    ([record(memory_limit_mb=2048)], "memory limit"),
    ([record(memory_limit_mb=2048, data_file_mb=3072, limit_kind="ulimit")], "memory limit"),
    ([record(peak_anon_mb=3.7, batch_mb=24.0)], "below one batch of its own pipeline"),
    ([record(peak_anon_mb=3.7, row={"label": "a", "task": "fish", "kind": "streaming", "needs": "n"})],
     "needs batch_mb"),
    ([record("fit", row={"label": "a", "task": "fish", "kind": "streaming", "needs": "n", "peak_from": "alone"}),
      record("alone", peak_anon_mb=3.7)], "record 'alone' .* needs batch_mb"),
])
def test_record_refuses_what_a_reader_could_not_trust(records, message, tmp_path, monkeypatch):
    monkeypatch.setattr(config, "project_root", lambda: tmp_path)
    with pytest.raises(ValueError, match=message) as err:
        results.record("07_larger_than_ram", records, scale=config.get_scale("ci"))
    assert "07_larger_than_ram" in str(err.value)
    assert not (tmp_path / "results").exists(), "nothing is written"


def test_a_run_under_a_limit_is_recorded_with_its_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "project_root", lambda: tmp_path)
    out = results.record("x", [record(memory_limit_mb=2048, data_file_mb=3072, limit_kind="cgroup")],
                         scale=config.get_scale("ci"))
    assert json.loads(out.read_text())["records"][0]["limit_kind"] == "cgroup"


def test_write_atomic_leaves_no_temporary_file(tmp_path):
    path = config.write_atomic(tmp_path / "a.json", "{}")
    assert path.read_text() == "{}" and [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_time_pipeline_counts_samples_of_indexable_and_iterable_pipelines():
    batches = [(np.zeros((8, 2)), np.zeros(8)), (np.zeros((3, 2)), np.zeros(3))]

    class Indexable:
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return batches[i]

    t = time_pipeline(Indexable(), steps=4, warmup=1)  # batches 1,0,1,0 after the warm-up
    assert t.samples == 3 + 8 + 3 + 8 and t.samples_per_s > 0
    t = time_pipeline(iter(batches * 10), steps=3, warmup=2)
    assert t.samples == 8 + 3 + 8 and t.time_to_first_batch_s >= 0


class Sleepy:
    """A PyDataset-like sequence whose batches take 50 ms each, with the GIL released (as Pillow does)."""

    def __len__(self):
        return 8

    def __getitem__(self, i):
        import time
        time.sleep(0.05)
        return np.full((4, 2), i)


def test_time_pool_times_the_batches_and_threads_overlap():
    one = time_pool(Sleepy(), workers=1, steps=4, warmup=2)
    two = time_pool(Sleepy(), workers=2, steps=4, warmup=2)
    assert one.samples == two.samples == 16
    assert two.samples_per_s > 1.5 * one.samples_per_s  # sleeping releases the GIL: the threads overlap
    assert time_pool(Sleepy(), workers=2, steps=4, warmup=2, processes=True).samples == 16
    with pytest.raises(ValueError, match="the dataset has 8"):
        time_pool(Sleepy(), workers=2, steps=8, warmup=1)


def test_write_benchmark_writes_plain_json_under_results_benchmarks(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(results, "project_root", lambda: tmp_path)
    path = results.write_benchmark("demo", {"ratio": np.float64(8.68314), "runs": [np.int64(3)]})
    assert path == tmp_path / "results" / "benchmarks" / "demo.json"
    assert json.loads(path.read_text()) == {"ratio": 8.683, "runs": [3]}
    assert "written: results/benchmarks/demo.json" in capsys.readouterr().out
