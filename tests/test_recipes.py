"""Work run in a fresh process: the runner, the silenced stderr, and each lesson's recipes and routes."""

import multiprocessing
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from helpers.config import SCALES
from helpers.datasets import make_digits, make_fish
from helpers.lab.quiet import quiet_stderr
from helpers.lab.recipes import (DIGIT_ROUTES, FISH_ROUTES, FreshProcessDied, fish_route, fit_route, fit_with_start_methods,
                                 first_batches, from_tensor_slices_cost, in_fresh_process, in_fresh_processes, in_memory_fit, interrupted_fit, memmap_fit,
                                 shuffle_buffer_cost)
from helpers.lab.workers import unpickle_in_new_process
from helpers.pipelines.image_files import label_of, list_images


class Here:
    """A class in a module that a new interpreter can import (this test module)."""


def test_in_fresh_process_runs_an_importable_function_elsewhere():
    assert in_fresh_process(os.getpid) != os.getpid()


def test_quiet_stderr_restores_stderr(capfd):
    with quiet_stderr():
        os.write(2, b"hidden\n")
    os.write(2, b"shown\n")
    assert capfd.readouterr().err == "shown\n"


def test_in_fresh_process_may_start_workers_and_reports_errors():
    assert in_fresh_process(unpickle_in_new_process, Here(), "fork") == "ok: a test_recipes.Here"
    with pytest.raises(ValueError):
        in_fresh_process(int, "not a number")
    with pytest.raises(RuntimeError, match="exit code 3"):
        in_fresh_process(os._exit, 3)


def stamp(tag):
    """A call that says which process made it, when, whether TensorFlow was imported before it, and
    the start method its own worker processes would use."""
    imported = "tensorflow" in sys.modules
    start = time.time()
    time.sleep(0.2)
    return tag, os.getpid(), start, time.time(), imported, multiprocessing.get_start_method()


def test_in_fresh_processes_makes_each_call_alone_in_its_own_process_in_order():
    out = in_fresh_processes([(stamp, (k,), {}) for k in range(3)], at_once=2)   # a group of 2, then 1
    assert [tag for tag, *_ in out] == [0, 1, 2]
    pids = {pid for _, pid, *_ in out}
    assert len(pids) == 3 and os.getpid() not in pids
    assert all(o[4] for o in out), "TensorFlow is imported before the call"
    assert all(o[5] == multiprocessing.get_start_method() for o in out), "workers would start as they do here"
    assert all(a[3] <= b[2] for a, b in zip(out, out[1:])), "one call after the other, never two at once"
    assert in_fresh_processes([]) == []
    with pytest.raises(ValueError, match="at_once"):
        in_fresh_processes([(os.getpid, (), {})], at_once=0)


def start_method_here():
    """The start method this process would use for worker processes of its own."""
    return multiprocessing.get_start_method()


def test_a_fresh_process_starts_its_workers_the_way_this_one_would():
    before = multiprocessing.get_start_method()
    other = "forkserver" if before != "forkserver" else "spawn"
    try:   # "spawn" starts the fresh process; its own pools use the start method in use here
        assert in_fresh_process(start_method_here) == before
        multiprocessing.set_start_method(other, force=True)
        assert in_fresh_process(start_method_here) == other
    finally:
        multiprocessing.set_start_method(before, force=True)


def test_in_fresh_processes_raises_and_leaves_no_process():
    with pytest.raises(ValueError):
        in_fresh_processes([(int, ("not a number",), {}), (os.getpid, (), {})], at_once=2)
    with pytest.raises(FreshProcessDied, match="exit code 3"):
        in_fresh_processes([(os._exit, (3,), {})])
    assert not multiprocessing.active_children(), "the group's other process was stopped"


@pytest.mark.skipif(not Path("/proc/self/oom_score_adj").exists(), reason="Linux only")
def test_a_fresh_process_is_the_first_to_kill_and_its_death_says_so():
    assert in_fresh_process(Path.read_text, Path("/proc/self/oom_score_adj")).strip() == "1000"
    assert Path("/proc/self/oom_score_adj").read_text().strip() != "1000"     # this process keeps its own
    with pytest.raises(FreshProcessDied, match="exit code -9.*out-of-memory killer") as died:
        in_fresh_process(signal.raise_signal, signal.SIGKILL)
    assert died.value.exitcode == -9


@pytest.fixture(scope="module")
def fish(tmp_path_factory):
    paths = [str(p) for p in list_images(make_fish(48, tmp_path_factory.mktemp("data") / "fish", image_size=32,
                                                   progress=False))]
    return paths, [float(label_of(p)) for p in paths]


def test_fits_under_spawn_then_fork_in_a_fresh_process(fish):
    paths, y = fish
    runs = in_fresh_process(fit_with_start_methods, ["spawn", "fork"], paths[:16], y[:16], 16, 4)
    assert [r["method"] for r in runs] == ["spawn", "fork"]
    assert all(r["workers_left"] == 0 and r["seconds"] >= r["time_to_first_batch_s"] > 0 for r in runs)
    with pytest.raises(ValueError, match="last"):
        fit_with_start_methods(["fork", "spawn"], paths, y, 16, 4)


def test_interrupted_fit_counts_the_workers_it_leaves(fish):
    paths, y = fish
    r = in_fresh_process(interrupted_fit, paths, y, 16, batch_size=2, wait_s=0.5)
    assert r["error"] == "stopped at step 2"
    assert all(0 <= r[k] <= 2 for k in ("right_after", "after_wait", "after_gc"))
    with pytest.raises(ValueError, match="max_queue_size"):
        in_fresh_process(interrupted_fit, paths[:8], y[:8], 16, batch_size=4)


def test_in_memory_fit_reports_its_stages(tmp_path):
    f = make_digits(20_000, tmp_path, progress=False)  # 60 MiB of float32
    r = in_fresh_process(in_memory_fit, f.x_path, f.y_path, 20_000, batch_size=512)
    assert set(r["stages"]) == {"load", "astype / 255", "fit"}
    assert 59 < r["dataset_mb"] < 61 and r["kernel_mb"] > 0
    assert r["peak_anon_mb"] >= r["dataset_mb"]  # the float32 array alone


def test_from_tensor_slices_cost_is_measured(tmp_path):
    f = make_digits(20_000, tmp_path, progress=False)
    r = in_fresh_process(from_tensor_slices_cost, f.x_path, f.y_path, 20_000, batch_size=128)
    assert r["peak_anon_mb"] >= 0.9 * r["dataset_mb"]


def test_memmap_fit_reports_a_peak_far_below_the_data_it_streams(tmp_path):
    f = make_digits(20_000, tmp_path, progress=False)
    r = in_fresh_process(memmap_fit, f.x_path, f.y_path, 20_000, batch_size=128, steps=20)
    assert 59 < r["dataset_mb"] < 61 and r["peak_anon_mb"] > 0


def test_shuffle_buffer_cost_grows_with_the_buffer(tmp_path):
    f = make_digits(20_000, tmp_path, progress=False)
    small = in_fresh_process(shuffle_buffer_cost, f.x_path, f.y_path, 1_000, 128)
    big = in_fresh_process(shuffle_buffer_cost, f.x_path, f.y_path, 15_000, 128)
    image_mb = 15_000 * 28 * 28 * 4 / 2**20
    assert small["peak_anon_mb"] < big["peak_anon_mb"] and big["peak_anon_mb"] > 0.8 * image_mb
    indices = in_fresh_process(shuffle_buffer_cost, f.x_path, f.y_path, 15_000, 128, elements="indices")
    assert indices["bytes_per_element"] < 0.25 * 28 * 28 * 4


def test_a_route_is_timed_in_rounds_and_its_memory_measured():
    r = in_fresh_process(fit_route, "digits", DIGIT_ROUTES[1], "ci", 3, 2, rounds=2)
    assert len(r["rounds_samples_per_s"]) == 2 and min(r["rounds_samples_per_s"]) <= r["samples_per_s"] <= max(r["rounds_samples_per_s"])
    assert r["samples_per_s"] > 0
    assert r["peak_anon_mb"] > 0


@pytest.mark.parametrize("task, route", [("digits", "no such route"), ("fish", DIGIT_ROUTES[0]), ("sound", FISH_ROUTES[0])])
def test_an_unknown_route_or_task_is_named_in_the_error(task, route):
    with pytest.raises(ValueError, match="no such route|unknown fish route|task must be"):
        fit_route(task, route, "ci", 1, 1)


def test_the_cache_route_says_what_it_needs():
    with pytest.raises(ValueError, match="needs cache_file"):
        fish_route(FISH_ROUTES[4], SCALES["ci"], 4)


def test_first_batches_holds_a_batch_and_measures_it_in_a_fresh_process(fish, tmp_path):
    """The series' one definition of a pipeline's first batch and peak: the batch is held, so the peak
    is at least the batch; a PyDataset with workers is read by a pool, a finite dataset by epochs."""
    from helpers.pipelines import tfdata
    from helpers.pipelines.augment import AugmentedImageDataset

    paths, y = fish
    r = in_fresh_process(first_batches, tfdata.jpeg_dataset, paths, y, 16, 32)
    assert r["batch_mb"] == pytest.approx(16 * 32 * 32 * 3 * 4 / 2**20, rel=0.01)
    assert r["peak_anon_mb"] >= r["batch_mb"] and r["first_batch_s"] > 0
    pool = in_fresh_process(first_batches, AugmentedImageDataset, paths, y, 8, 16, workers=2)
    assert pool["peak_anon_mb"] >= pool["batch_mb"] > 0
    cached = in_fresh_process(first_batches, tfdata.jpeg_dataset, paths, y, 16, 32, cache=str(tmp_path / "c"),
                              epochs=2, count_reads=True)
    assert len(cached["epoch_s"]) == 2 and cached["reads"] == len(paths), "epoch 2 replays the cache file"


def test_an_over_ram_route_reports_its_speed_reads_and_mixing(tmp_path):
    """Lesson 07's route runner (here without a limit): speeds, bytes read per row, a mixed order."""
    from helpers.datasets import make_sorted_digits
    from helpers.lab.recipes import TFRECORD_ROUTE, _over_ram_dataset, over_ram_route

    source = make_digits(2_000, tmp_path / "digits", progress=False)
    big = make_sorted_digits(source, 20_000, tmp_path / "sorted", progress=False)
    r = in_fresh_process(over_ram_route, "block shuffling, window_mb=64", str(big.x_path), str(big.y_path),
                         64, 5, 5, 2, fit_windows=2)
    assert r["alone_rows_per_s"] > 0 and r["fit_samples_per_s"] > 0 and r["read_bytes_per_row_fit"] >= 0
    assert len(r["fit_windows_samples_per_s"]) == 2 and r["fit_samples_per_s"] == max(r["fit_windows_samples_per_s"])
    assert r["label_mixing"] >= 0.9 and r["peak_anon_mb"] > 0
    with pytest.raises(ValueError, match="needs shards_dir"):
        _over_ram_dataset(TFRECORD_ROUTE, str(big.x_path), str(big.y_path), 64)
    with pytest.raises(ValueError, match="needs a shuffled MemmapDataset route"):
        over_ram_route(TFRECORD_ROUTE, str(big.x_path), str(big.y_path), 64, 5, 5, 2, fit_windows=2)
    with pytest.raises(ValueError, match="fit_windows must be at least 1"):
        over_ram_route("block shuffling, window_mb=64", str(big.x_path), str(big.y_path), 64, 5, 5, 2,
                       fit_windows=0)


def test_the_page_dropper_releases_what_a_memmap_dataset_read(tmp_path):
    """Lesson 07's fallback without a cgroup: every `every` batches the pages read leave the page
    cache, although the dataset's memmap still maps them (madvise(MADV_DONTNEED), then fadvise)."""
    import numpy as np

    from helpers.lab import budget
    from helpers.lab.recipes import _Dropping, _PageDropper
    from helpers.pipelines.memmap_dataset import MemmapDataset

    np.save(tmp_path / "x.npy", np.ones((20_000, 28, 28), np.uint8))
    np.save(tmp_path / "y.npy", np.zeros(20_000, np.uint8))
    ds = MemmapDataset(tmp_path / "x.npy", tmp_path / "y.npy", 1000, shuffle=False)
    for i in range(len(ds)):
        ds[i]
    assert budget.resident_fraction(tmp_path / "x.npy") > 0.5, "read: in the page cache"
    served = _Dropping(ds, _PageDropper(ds, [str(tmp_path / "x.npy")], every=5))
    for i in range(5):
        served[i]
    assert budget.resident_fraction(tmp_path / "x.npy") < 0.05, "dropped after 5 batches, memmap and all"


def in_order(fake):
    """A stand-in for ``in_fresh_processes`` that makes each call with ``fake(func, *args, **kwargs)``, in order."""
    return lambda calls: [fake(func, *args, **kwargs) for func, args, kwargs in calls]


def test_fit_routes_interleaved_runs_round_by_round(monkeypatch):
    import helpers.lab.recipes as recipes
    calls = []

    def fake(func, task, name, scale_name, steps, warmup, rounds):
        assert func is recipes.fit_route and rounds == 1
        calls.append(name)
        return {"samples_per_s": 100.0 * len(calls), "rounds_samples_per_s": [100.0 * len(calls)],
                "peak_anon_mb": float(len(calls))}

    monkeypatch.setattr(recipes, "in_fresh_processes", in_order(fake))
    r = recipes.fit_routes_interleaved("digits", ["a", "b"], "ci", 4, 1, rounds=3)
    assert calls == ["a", "b"] * 3
    assert r["a"]["rounds_samples_per_s"] == [100.0, 300.0, 500.0] and r["a"]["samples_per_s"] == 300.0
    assert r["b"]["peak_anon_mb"] == 6.0 and r["b"]["rounds_peak_anon_mb"] == [2.0, 4.0, 6.0]
    with pytest.raises(ValueError, match="at least 1"):
        recipes.fit_routes_interleaved("digits", ["a"], "ci", 4, 1, rounds=0)
    with pytest.raises(ValueError, match="at least 1"):
        recipes.fit_routes_interleaved("digits", ["a"], "ci", 4, 1, windows=0)


def test_fit_routes_interleaved_keeps_each_rounds_fastest_window(monkeypatch):
    import helpers.lab.recipes as recipes
    windows = iter([[50.0, 90.0], [80.0, 20.0], [70.0, 75.0], [10.0, 60.0]])

    def fake(func, task, name, scale_name, steps, warmup, rounds):
        assert rounds == 2, "each process times the windows asked for"
        timed = next(windows)
        return {"samples_per_s": sorted(timed)[0], "rounds_samples_per_s": timed, "peak_anon_mb": 1.0}

    monkeypatch.setattr(recipes, "in_fresh_processes", in_order(fake))
    r = recipes.fit_routes_interleaved("digits", ["a", "b"], "ci", 4, 1, rounds=2, windows=2)
    assert r["a"]["rounds_samples_per_s"] == [90.0, 75.0] and r["b"]["rounds_samples_per_s"] == [80.0, 60.0]
    assert r["a"]["rounds_windows_samples_per_s"] == [[50.0, 90.0], [70.0, 75.0]]
    assert r["a"]["samples_per_s"] == 82.5
