"""Lesson 08's process handling: free ports, a clear error for a port in use, pinning, a tf.data
service cluster that serves and leaves no process behind, trainers stopped on a timeout, and the
fish shards written once shuffled, complete and aligned."""

import errno
import os
import socket
import time

import numpy as np
import psutil
import pytest
import tensorflow as tf

from helpers.lab import service, trainers
from helpers.lab.service import ServiceCluster, check_port_free, free_port, listening
from helpers.pipelines import tfdata


def test_free_port_is_free_and_a_taken_port_names_itself():
    port = free_port()
    check_port_free(port)                       # nothing listens there
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        with pytest.raises(OSError, match=f"port {port} is already in use.*free_port"):
            check_port_free(port)


@pytest.mark.skipif(not service.can_pin(), reason="no sched_setaffinity on this platform")
def test_pin_sets_every_thread_and_none_unpins():
    before = os.sched_getaffinity(0)
    try:
        service.pin([0])
        assert os.sched_getaffinity(0) == {0}
        service.pin(None)
        assert os.sched_getaffinity(0) == set(range(os.cpu_count()))
    finally:
        os.sched_setaffinity(0, before)


def test_a_cluster_serves_every_element_once_per_worker_and_stops_all_its_processes():
    with ServiceCluster(workers=2) as svc:
        pids = svc.pids()
        assert len(pids) == 3 and all(psutil.pid_exists(p) for p in pids)
        assert all(listening(p) for p in pids)
        ds = tf.data.Dataset.range(20).apply(tf.data.experimental.service.distribute(
            tf.data.experimental.service.ShardingPolicy.OFF, svc.address, job_name="test-off"))
        got = sorted(int(x) for x in ds)
        assert got == sorted(list(range(20)) * 2)    # OFF: each of 2 workers a whole epoch
        svc.kill_worker(0)
        assert not svc.worker_servers[0].alive()
        ports = [s.port for s in svc.servers]
    time.sleep(0.1)
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids)
    assert not service.leftover_processes()
    for port in ports:
        check_port_free(port)                   # no port left open


def test_a_dispatcher_port_in_use_is_a_clear_error_and_starts_nothing():
    with socket.socket() as s:
        s.bind(("", 0))
        s.listen()
        taken = s.getsockname()[1]
        with pytest.raises(OSError, match=f"port {taken} is already in use"):
            ServiceCluster(workers=1, port=taken).__enter__()
    assert not service.leftover_processes()


def test_trainers_are_stopped_at_the_timeout(tmp_path):
    t0 = time.monotonic()
    got = trainers.run_trainers([tmp_path / "none.tfrecord"], tmp_path, n=2, timeout_s=0.5)
    assert time.monotonic() - t0 < 20
    assert [g["exitcode"] for g in got] != [0, 0] and all("by_file" not in g for g in got)
    assert not service.leftover_processes()


def test_jpeg_shards_are_shuffled_once_complete_and_aligned(tmp_path):
    from PIL import Image

    paths, counts = [], []
    for i in range(12):
        p = tmp_path / f"{i}.jpg"
        Image.fromarray(np.full((8, 8, 3), 20 * i, np.uint8)).save(p)
        paths.append(p)
        counts.append(float(i % 5))
    shards = tfdata.write_jpeg_shards(paths, counts, tmp_path / "shards", n_shards=3, seed=1)
    assert len(shards.paths) == 3 and shards.n == 12
    records = [tfdata.parse_jpeg_example(r, 8) for r in tf.data.TFRecordDataset([str(p) for p in shards.paths])]
    ids = [int(i) for _, _, i in records]
    assert sorted(ids) == list(range(12)) and ids != sorted(ids)        # complete, shuffled
    for image, count, i in records:                                      # aligned: image, count and id of one file
        assert float(count) == counts[int(i)]
        assert abs(float(tf.reduce_mean(image)) * 255 - 20 * int(i)) < 3
    assert not list((tmp_path / "shards").glob("*.tmp"))


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="Linux only: prctl(PR_SET_PDEATHSIG)")
def test_servers_die_with_the_process_that_started_them():
    import subprocess
    import sys

    code = ("import os; from helpers.lab.service import ServiceCluster; c = ServiceCluster(workers=1).__enter__(); "
            "print(*c.pids(), flush=True); os._exit(0)")          # gone without stopping its cluster
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": root}).stdout
    pids = [int(p) for p in out.split()]
    assert len(pids) == 2
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(psutil.pid_exists(p) for p in pids):
        time.sleep(0.1)
    assert not any(psutil.pid_exists(p) for p in pids)


def test_readline_returns_a_line_or_nothing_after_its_timeout():
    """How a cluster waits for a server's "listening" line: a thread reads, so it works on any pipe."""
    for text, timeout_s, want in (("", 0.2, ""), ("worker listening on port 1\n", 5.0, "worker listening on port 1\n")):
        read_fd, write_fd = os.pipe()
        with os.fdopen(read_fd, "r") as reader, os.fdopen(write_fd, "w") as writer:
            writer.write(text)
            writer.flush()
            t0 = time.perf_counter()
            assert service._readline(reader, timeout_s) == want
            assert (time.perf_counter() - t0 >= timeout_s) == (not want)   # waited only for nothing
