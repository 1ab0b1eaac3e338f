"""Worker-process helpers of lesson 06: start methods, copy-on-write, and no process left behind."""

import multiprocessing
import os
import sys
import time

import numpy as np
import pytest

from helpers.lab.workers import (WorkerWatch, copied_by_reading_mb, idle_forked_child, private_dirty_mb,
                                 unpickle_in_new_process, wait_for_workers_to_exit, worker_processes)
from helpers.pipelines.caches import FillOnceCache

linux_only = pytest.mark.skipif(not os.path.exists("/proc/self/smaps_rollup"), reason="needs Linux /proc/PID/smaps_rollup")


class Here:
    """A class in a module that a new interpreter can import (this test module)."""


def test_fork_inherits_what_spawn_must_import(monkeypatch):
    monkeypatch.setattr(sys.modules["__main__"], "Anywhere", type("Anywhere", (), {"__module__": "__main__"}),
                        raising=False)
    orphan = sys.modules["__main__"].Anywhere()  # a class of __main__, like one defined in a notebook
    assert unpickle_in_new_process(orphan, "fork") == "ok: a __main__.Anywhere"
    assert unpickle_in_new_process(FillOnceCache(3), "fork") == "ok: a helpers.pipelines.caches.FillOnceCache"
    spawned = unpickle_in_new_process(orphan, "spawn")
    assert spawned.startswith("AttributeError") and "Anywhere" in spawned
    assert unpickle_in_new_process(FillOnceCache(3), "spawn") == "ok: a helpers.pipelines.caches.FillOnceCache"


def test_an_object_that_does_not_pickle_is_reported_without_a_pool():
    assert unpickle_in_new_process(lambda: 0, "fork").startswith(("PicklingError", "AttributeError"))


@linux_only
def test_reading_a_list_copies_its_pages_reading_an_array_does_not():
    paths = [f"fish/{i % 10}/{i:07d}.jpg" for i in range(200_000)]
    array = np.array(paths, dtype="S24")
    assert copied_by_reading_mb(paths) > 8  # ~200,000 string objects of ~70 bytes, each page touched
    assert copied_by_reading_mb(array) < 1
    assert private_dirty_mb() > 0


@linux_only
def test_an_idle_child_is_a_worker_until_the_block_ends():
    with idle_forked_child() as pid:
        assert pid in [p.pid for p in worker_processes()]
    left, _ = wait_for_workers_to_exit([], timeout=5)
    assert left == 0 and pid not in [p.pid for p in worker_processes()]


def test_waiting_for_workers_and_watching_them():
    ctx = multiprocessing.get_context("fork")
    before = worker_processes()
    with WorkerWatch(interval=0.005, label="short") as watch:
        short = ctx.Process(target=time.sleep, args=(0.3,))
        short.start()
        time.sleep(0.1)
        watch.label = "long"
        long = ctx.Process(target=time.sleep, args=(30,))
        long.start()
        time.sleep(0.1)
    assert short.pid in watch.seen["short"] and long.pid in watch.seen["long"]
    left, waited = wait_for_workers_to_exit(before, timeout=0.2)
    assert left >= 1 and waited >= 0.2  # the long one is still there
    long.terminate()
    assert wait_for_workers_to_exit(before, timeout=5)[0] == 0
    short.join()
    long.join()


def test_workers_of_a_forkserver_pool_are_workers_and_the_server_is_not():
    # a forkserver worker is forked from the server and carries its command line (Python 3.14's default)
    if "forkserver" not in multiprocessing.get_all_start_methods():
        pytest.skip("no forkserver on this platform")
    before = worker_processes()
    with multiprocessing.get_context("forkserver").Pool(2) as pool:
        pids = set(pool.map(_pid, range(4)))
        found = {p.pid for p in worker_processes()} - {p.pid for p in before}
        assert pids <= found and len(found) == 2  # the 2 workers, not the fork server
    assert wait_for_workers_to_exit(before, timeout=5)[0] == 0  # the server stays, and is not counted


def _pid(_: int) -> int:
    return os.getpid()
