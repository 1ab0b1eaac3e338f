"""Random numbers in worker processes: the draws dataset, its log, and what fork shares."""

import os

import pytest

from helpers.lab.recipes import draws_in_workers, in_fresh_process, tensorflow_after_fork
from helpers.lab.seeding import DrawsDataset, draw_summary, read_draws, seeded_draw


def test_each_batch_logs_its_process_epoch_and_three_draws(tmp_path):
    log = tmp_path / "draws.log"
    ds = DrawsDataset(3, 2, log, seed=7)
    x, y = ds[2]
    assert x.shape == (2, 1) and (x == 2).all() and (y == x).all()
    ds[0]
    ds.on_epoch_end()
    ds[0]
    rows = read_draws(log)
    assert [(r["pid"], r["epoch"], r["index"]) for r in rows] == [(os.getpid(), 0, 2), (os.getpid(), 0, 0),
                                                                  (os.getpid(), 1, 0)]
    assert rows[2]["seeded_by_batch"] == seeded_draw(7, 1, 0) != seeded_draw(7, 0, 0)
    s = draw_summary(rows, seed=7)
    assert s["batches"] == s["served"] == 3 and s["workers"] == 1 and s["reproducible"]
    assert not draw_summary(rows, seed=8)["reproducible"]


def test_bad_sizes_indices_and_log_lines_are_named(tmp_path):
    with pytest.raises(ValueError, match="n_batches > 0"):
        DrawsDataset(0, 2, tmp_path / "log")
    with pytest.raises(IndexError, match="batch 3 of a dataset of 3"):
        DrawsDataset(3, 2, tmp_path / "log")[3]
    bad = tmp_path / "bad.log"
    bad.write_text("1 0 0 5 6 7\n1 0 x 5 6 7\n")
    with pytest.raises(ValueError, match=r"bad.log: line 2 is not '<pid> <epoch> <index>"):
        read_draws(bad)
    with pytest.raises(ValueError, match="no draws logged"):
        draw_summary(read_draws(tmp_path / "missing.log"))


def test_forked_workers_share_numpy_global_state_but_not_python_random(tmp_path):
    r = in_fresh_process(draws_in_workers, "fork", str(tmp_path / "fork.log"), n_batches=6, epochs=2)
    s = draw_summary(r["rows"])
    assert s["batches"] == s["served"] == 12 and s["workers"] == 4 and r["workers_left"] == 0
    assert s["distinct"]["numpy_global"] < 12            # forked from one state: the same numbers
    assert s["distinct"]["python_random"] == 12          # reseeded in every forked child
    assert s["distinct"]["seeded_by_batch"] == 12 and s["reproducible"]
    assert len(r["first_step_s"]) == 2 and r["parent_batches"] >= 1


def test_spawned_workers_draw_apart(tmp_path):
    r = in_fresh_process(draws_in_workers, "spawn", str(tmp_path / "spawn.log"), n_batches=4, epochs=1)
    s = draw_summary(r["rows"])
    assert s["served"] == 4 and s["distinct"]["numpy_global"] == 4 and s["reproducible"]


def test_preload_is_only_for_forkserver(tmp_path):
    with pytest.raises(ValueError, match="preload=\\['numpy'\\] is for 'forkserver', not 'spawn'"):
        draws_in_workers("spawn", str(tmp_path / "log"), preload=["numpy"])


def test_a_forked_child_has_one_thread_and_its_tensorflow_ops_are_reported():
    r = in_fresh_process(tensorflow_after_fork, (8, 1024), 3.0)
    assert r["parent_threads"] > 1 and [run["size"] for run in r["runs"]] == [8, 1024]
    for run in r["runs"]:
        assert run["child_threads"] == 1 and run["outcome"] in {"ran", "hung", "died"} and run["seconds"] > 0
    assert r["runs"][1]["outcome"] != "hung" or r["runs"][1]["seconds"] >= 3.0, "killed only after the timeout"
