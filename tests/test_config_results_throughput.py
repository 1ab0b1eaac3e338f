"""The scale knob, the results files and the throughput protocol."""

import json

import numpy as np
import pytest

from helpers import config, results
from helpers.throughput import time_pipeline, time_pool


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


def test_record_writes_the_schema(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "project_root", lambda: tmp_path)
    scale = config.get_scale("ci")
    out = results.record("01_in_memory_fit.ipynb", [
        {"pipeline": "in-memory", "dataset_mb": np.float64(957.0), "peak_anon_mb": 1900.123456,
         "samples_per_s": float("nan"), "accuracy": np.float32(0.5)}], scale=scale)
    assert out == tmp_path / "results" / "ci" / "01_in_memory_fit.json"
    data = json.loads(out.read_text())
    assert data["notebook"] == "01_in_memory_fit" and data["scale"] == "ci"
    assert data["records"][0] == {"pipeline": "in-memory", "dataset_mb": 957.0, "peak_anon_mb": 1900.123,
                                  "samples_per_s": None, "accuracy": 0.5}
    assert results.load(scale) == [data]
    with pytest.raises(ValueError, match="lacks"):
        results.record("x", [{"pipeline": "p"}], scale=scale)


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
