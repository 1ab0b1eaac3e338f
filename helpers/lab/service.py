"""Lesson 08: tf.data service servers in OS processes of their own, on this machine (standing in for
machines), and the measurements of the lesson that use them.

- :func:`free_port`, :func:`check_port_free`: ports picked at run time; a port in use is a clear error
- :class:`ServiceCluster`: a ``with`` block that starts a dispatcher and N workers
  (``python -m helpers.lab.service dispatcher|worker ...``), each optionally pinned to CPUs, waits until
  they listen, samples their memory and CPU time, can stop a worker or restart the dispatcher, and
  stops every process it started on the way out, also when the block raises
- :func:`listening` : the addresses a process listens on (the servers bind every interface)
- :func:`pin`: pin this process (all its threads) to some CPUs, before TensorFlow starts its pools
- :func:`leftover_processes`: server or trainer processes still running (a lesson ends with none)

TensorFlow is imported only in the server processes and in the functions that need it, so the
notebook's kernel can import this module cheaply.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Collection, Sequence

import psutil

from helpers.config import project_root
from helpers.lab.memory import process_memory_kb

LOOPBACK = "127.0.0.1"
START_TIMEOUT_S = 60.0
"""Seconds a server process gets to import TensorFlow and listen on its port."""


# -- ports and CPUs -----------------------------------------------------------------------------
def free_port() -> int:
    """A TCP port nobody listens on now (the system picks it: bind to port 0, read, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def _listening_pids(port: int) -> list[int]:
    try:
        return sorted({c.pid for c in psutil.net_connections(kind="tcp")
                       if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid})
    except (psutil.AccessDenied, OSError):  # macOS without root
        return []


def check_port_free(port: int) -> None:
    """Raise ``OSError`` naming the port (and the process that holds it, when known) if it is taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("", port))
        except OSError as exc:
            holders = _listening_pids(port)
            who = f" by process {', '.join(map(str, holders))}" if holders else ""
            raise OSError(exc.errno, f"port {port} is already in use{who}: pick another one "
                                     f"(helpers.lab.service.free_port()) or stop what holds it") from None


def listening(pid: int) -> list[str]:
    """The ``address:port`` pairs process ``pid`` listens on (``0.0.0.0`` / ``::``: every interface)."""
    try:
        conns = psutil.Process(pid).net_connections(kind="tcp") if hasattr(psutil.Process, "net_connections") \
            else psutil.Process(pid).connections(kind="tcp")
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []
    return sorted({f"{c.laddr.ip}:{c.laddr.port}" for c in conns if c.status == psutil.CONN_LISTEN})


def can_pin() -> bool:
    """True where a process can be pinned to CPUs (Linux ``sched_setaffinity``)."""
    return hasattr(os, "sched_setaffinity")


def pin(cpus: Sequence[int] | None, pid: int | None = None) -> None:
    """Pin process ``pid`` (default: this one), every thread it has now and every thread it starts
    later, to ``cpus`` (None: every CPU of the machine, i.e. unpinned).

    Pin a process before it imports TensorFlow: its thread pools are sized by the CPUs it may use.
    """
    if not can_pin():
        raise OSError("this platform cannot pin a process to CPUs (no os.sched_setaffinity)")
    cpus = set(cpus) if cpus else set(range(os.cpu_count() or 1))
    for tid in os.listdir(f"/proc/{pid or 'self'}/task"):
        try:
            os.sched_setaffinity(int(tid), cpus)
        except ProcessLookupError:  # a thread that ended meanwhile
            pass


def die_with_parent() -> None:
    """Linux: have the kernel send this process SIGKILL when its parent ends (a notebook's kernel
    that is restarted or killed takes its server and trainer processes with it). Elsewhere: nothing."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:      # the parent ended before the call: end now
        os._exit(1)


# -- the server processes -----------------------------------------------------------------------
def _serve(argv: Sequence[str]) -> None:
    """Body of ``python -m helpers.lab.service``: run one dispatcher or one worker until killed."""
    p = argparse.ArgumentParser(prog="python -m helpers.lab.service")
    p.add_argument("role", choices=["dispatcher", "worker"])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--dispatcher-port", type=int)
    p.add_argument("--work-dir", default="")
    p.add_argument("--fault-tolerant", action="store_true")
    p.add_argument("--worker-ports", default="", help="a fixed worker list (needed by FILE/DATA sharding)")
    p.add_argument("--worker-timeout-ms", type=int, default=2000)
    p.add_argument("--job-gc-timeout-ms", type=int, default=2000)
    args = p.parse_args(argv)
    die_with_parent()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from helpers.lab.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    import tensorflow as tf

    service = tf.data.experimental.service
    if args.role == "dispatcher":
        workers = [f"localhost:{w}" for w in args.worker_ports.split(",") if w]
        config = service.DispatcherConfig(
            port=args.port, work_dir=args.work_dir or None, fault_tolerant_mode=args.fault_tolerant,
            worker_addresses=workers or None, worker_timeout_ms=args.worker_timeout_ms,
            job_gc_check_interval_ms=500, job_gc_timeout_ms=args.job_gc_timeout_ms)
        server = service.DispatchServer(config)
    else:
        server = service.WorkerServer(service.WorkerConfig(
            dispatcher_address=f"localhost:{args.dispatcher_port}", worker_address=f"localhost:{args.port}",
            port=args.port, heartbeat_interval_ms=500))
    print(f"{args.role} listening on port {args.port}", flush=True)
    server.join()


def _readline(stream: Any, timeout_s: float) -> str:
    """One line of ``stream``, or "" if none came within ``timeout_s``. A thread reads it: ``select``
    takes no pipe on Windows. After a timeout the thread waits on, until the stream closes."""
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout_s)
    return line[0] if line else ""


@dataclass
class Server:
    """One server process of a :class:`ServiceCluster`."""

    name: str
    port: int
    argv: list[str]
    proc: subprocess.Popen | None = None
    peak_anon_mb: float = 0.0
    """Highest anonymous memory seen since the cluster started."""

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc is not None else -1

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def anon_mb(self) -> float | None:
        mem = process_memory_kb(self.pid, shared=False) if self.alive() else None
        return None if mem is None else mem[0] / 1024


@dataclass
class ServiceCluster:
    """A tf.data service on this machine: a dispatcher and ``workers`` worker processes.

    ``with ServiceCluster(workers=2, cpus=[1]) as service: ds.apply(distribute(..., service=service.address))``

    Args:
        workers: number of worker processes.
        cpus: CPUs every server process is pinned to once it listens (None: not pinned).
        fixed_workers: give the dispatcher the list of worker addresses (FILE and DATA sharding need it).
        work_dir: the dispatcher's journal folder (with ``fault_tolerant=True``: it can restart).
        worker_timeout_ms: how long the dispatcher waits for a silent worker before it drops it.
        job_gc_timeout_ms: how long a job nobody reads stays (its workers keep its buffers).
        port: the dispatcher's port (None: a free one).
        restart_dispatcher: start the dispatcher again (same port, same work_dir) when it dies, as a
            cluster manager would.
    """

    workers: int = 2
    cpus: Sequence[int] | None = None
    fixed_workers: bool = False
    work_dir: str | os.PathLike | None = None
    fault_tolerant: bool = False
    worker_timeout_ms: int = 2000
    job_gc_timeout_ms: int = 2000
    port: int | None = None
    restart_dispatcher: bool = False
    restarts: int = field(default=0, init=False)
    """How many times the dispatcher was started again."""
    servers: list[Server] = field(default_factory=list, init=False)
    _sampler: threading.Thread | None = field(default=None, init=False, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False, repr=False)

    @property
    def address(self) -> str:
        """What ``distribute(service=...)`` takes: ``grpc://localhost:PORT``."""
        return f"grpc://localhost:{self.servers[0].port}"

    @property
    def dispatcher(self) -> Server:
        return self.servers[0]

    @property
    def worker_servers(self) -> list[Server]:
        return self.servers[1:]

    def _argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "helpers.lab.service", *args]

    def _start(self, server: Server) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(project_root()),
                                                                       os.environ.get("PYTHONPATH")])))
        server.proc = subprocess.Popen(server.argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                       text=True, start_new_session=True)

    def _wait_listening(self, server: Server) -> None:
        line = _readline(server.proc.stdout, START_TIMEOUT_S)   # printed once the server is up
        if "listening" not in line:
            code = server.proc.poll()
            raise RuntimeError(f"the tf.data service {server.name} (port {server.port}) did not start "
                               + (f"(it exited with code {code})" if code is not None
                                  else f"within {START_TIMEOUT_S:.0f} s"))

    def __enter__(self) -> "ServiceCluster":
        if self.cpus and not can_pin():
            raise OSError("this platform cannot pin processes to CPUs: pass cpus=None")
        port = self.port or free_port()
        check_port_free(port)
        worker_ports = [free_port() for _ in range(self.workers)]
        fixed = ["--worker-ports", ",".join(map(str, worker_ports))] if self.fixed_workers else []
        d_args = ["dispatcher", "--port", str(port), "--worker-timeout-ms", str(self.worker_timeout_ms),
                  "--job-gc-timeout-ms", str(self.job_gc_timeout_ms), *fixed]
        if self.work_dir:
            d_args += ["--work-dir", os.fspath(self.work_dir)]
        if self.fault_tolerant:
            d_args.append("--fault-tolerant")
        self.servers = [Server("dispatcher", port, self._argv(*d_args))]
        self.servers += [Server(f"worker {i + 1}", wp, self._argv("worker", "--port", str(wp),
                                                                    "--dispatcher-port", str(port)))
                         for i, wp in enumerate(worker_ports)]
        try:
            for s in self.servers:
                self._start(s)
            for s in self.servers:
                self._wait_listening(s)
            if self.cpus:     # pinned once up: their imports of TensorFlow ran on every CPU
                self.repin(self.cpus)
        except BaseException:
            self.stop()
            raise
        self._stop.clear()
        self._sampler = threading.Thread(target=self._sample, name="ServiceCluster", daemon=True)
        self._sampler.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            if self.restart_dispatcher and not self.dispatcher.alive() and not self._stop.is_set():
                self._restart_dispatcher()
                self.restarts += 1
            for s in self.servers:
                mb = s.anon_mb()
                if mb is not None:
                    s.peak_anon_mb = max(s.peak_anon_mb, mb)

    def kill_worker(self, i: int = 0) -> None:
        """Stop worker ``i`` at once (SIGKILL), as a machine that fails would."""
        w = self.worker_servers[i]
        if w.alive():
            w.proc.kill()
            w.proc.wait()

    def _restart_dispatcher(self) -> None:
        """Kill the dispatcher (if alive) and start it again on the same port (and work_dir)."""
        d = self.dispatcher
        if d.alive():
            d.proc.kill()
            d.proc.wait()
        self._start(d)
        self._wait_listening(d)
        if self.cpus:
            pin(self.cpus, d.pid)

    def repin(self, cpus: Sequence[int] | None) -> None:
        """Pin every server process (all its threads) to ``cpus`` now (None: unpin)."""
        for s in self.servers:
            if s.alive():
                pin(cpus, s.pid)

    def pids(self) -> list[int]:
        return [s.pid for s in self.servers if s.alive()]

    def stop(self) -> None:
        """Stop every server process (SIGTERM, then SIGKILL after 5 s) and wait for them."""
        self._stop.set()
        for s in self.servers:
            if s.alive():
                s.proc.send_signal(signal.SIGTERM)
        for s in self.servers:
            if s.proc is None:
                continue
            try:
                s.proc.wait(5)
            except subprocess.TimeoutExpired:
                s.proc.kill()
                s.proc.wait()
            if s.proc.stdout is not None:
                s.proc.stdout.close()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
        if self._sampler is not None:
            self._sampler.join(1)


if __name__ == "__main__":
    _serve(sys.argv[1:])


# -- measurements (run them with helpers.lab.recipes.in_fresh_process) ------------------------------
def service_pipeline(paths: Sequence[str], labels: Sequence[float], batch_size: int, out_size: int,
                     address: str | None, *, mode: str = "DYNAMIC", job_name: str | None = None) -> Any:
    """Lesson 06's TensorFlow-ops augmentation (:func:`helpers.pipelines.augment.augmented_jpeg_dataset`,
    endless, images as uint8: a quarter of the bytes to send), made in this process
    (``address=None``) or by the tf.data service at ``address`` (``distribute`` with
    ``ShardingPolicy[mode]``), then prefetched here."""
    import tensorflow as tf

    from helpers.pipelines.augment import augmented_jpeg_dataset

    ds = augmented_jpeg_dataset(list(paths), list(labels), batch_size, out_size, epochs=None, as_uint8=True)
    if address is None:
        return ds
    policy = getattr(tf.data.experimental.service.ShardingPolicy, mode)
    ds = ds.apply(tf.data.experimental.service.distribute(policy, service=address, job_name=job_name))
    return ds.prefetch(tf.data.AUTOTUNE)


def cpu_s_of(pids: Sequence[int]) -> float:
    """CPU seconds (user + system) used so far by the processes ``pids`` (gone ones count 0)."""
    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def trainer_rounds(routes: dict[str, str | None], paths: Sequence[str], labels: Sequence[float], *,
                   batch_size: int, out_size: int, steps: int, warmup: int, rounds: int,
                   cpus: Sequence[int] | None = None, service_pids: dict[str, list[int]] | None = None,
                   mode: str = "DYNAMIC", alone: bool | Collection[str] = True) -> dict:
    """The trainer of lesson 08 (run it in a fresh process): pinned to ``cpus`` (None: not pinned),
    it builds the fish counter (for uint8 images) once, then for ``rounds`` rounds times every route in turn: the
    pipeline alone (iterated, no model) and inside ``fit`` (``warmup`` steps excluded, ``steps``
    timed, the trainer's CPU seconds per second over the same window). ``alone``: True times every
    route alone too, False none, a collection of names those routes (the others only in ``fit``).

    ``routes``: name -> the service's address, or None for the augmentation in this process;
    ``service_pids``: name -> the service's processes, whose CPU time over the whole ``fit`` call
    is added to the trainer's to give the CPU time per sample of each route.
    Returns ``{name: {"fit": [samples/s per round], "alone": [...], "fit_cpu_per_s": [...],
    "cpu_ms_per_sample": [...]}}``, ``trainer_peak_anon_mb`` (this process, above the model built)
    and ``trainer_cpus``.
    """
    if cpus:
        pin(cpus)
    from helpers.lab.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    from helpers.lab.memory import MemoryMonitor
    from helpers.lab.throughput import CpuThroughputCallback, process_cpu_s, time_pipeline
    from helpers.models import fish_counter

    service_pids = service_pids or {}
    timed_alone = set(routes) if alone is True else set() if alone is False else set(alone)
    model = fish_counter(out_size, uint8_input=True)
    out: dict[str, Any] = {name: {"fit": [], "alone": [], "fit_cpu_per_s": [], "cpu_ms_per_sample": []}
                           for name in routes}
    with MemoryMonitor(interval=0.05) as mon:
        for r in range(rounds):
            for name, address in routes.items():
                def make(tag: str) -> Any:
                    job = f"{tag}-{name}-{r}-{os.getpid()}" if address else None
                    return service_pipeline(paths, labels, batch_size, out_size, address, mode=mode, job_name=job)

                if name in timed_alone:
                    out[name]["alone"].append(time_pipeline(make("alone"), steps, warmup).samples_per_s)
                cb = CpuThroughputCallback(batch_size, warmup)
                pids = service_pids.get(name, [])
                c0, s0 = process_cpu_s(), cpu_s_of(pids)
                model.fit(make("fit"), epochs=1, steps_per_epoch=warmup + steps, verbose=0, callbacks=[cb])
                cpu = process_cpu_s() - c0 + cpu_s_of(pids) - s0
                out[name]["fit"].append(cb.samples_per_s)
                out[name]["fit_cpu_per_s"].append(cb.cpu_per_s)
                out[name]["cpu_ms_per_sample"].append(1e3 * cpu / ((warmup + steps) * batch_size))
    out["trainer_peak_anon_mb"] = mon.peak_anon_mb
    out["trainer_cpus"] = sorted(os.sched_getaffinity(0)) if can_pin() else None
    return out


def ids_source(files: Sequence[str | os.PathLike], shuffle_files: bool = False) -> Any:
    """The record ids of :func:`helpers.pipelines.tfdata.write_jpeg_shards` files, file after file: a source
    every processing mode can split (by file or by element). ``shuffle_files``: the file list
    shuffled before ``interleave`` (what ``list_files`` does by default)."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices([os.fspath(f) for f in files])
    if shuffle_files:
        ds = ds.shuffle(len(files), seed=0)
    ds = ds.interleave(tf.data.TFRecordDataset)
    return ds.map(lambda s: tf.io.parse_single_example(s, {"id": tf.io.FixedLenFeature([], tf.int64)})["id"])


def times_seen(address: str, files: Sequence[str | os.PathLike], mode: str, n: int, job_name: str,
               shuffle_files: bool = False) -> dict[int, int]:
    """One epoch of :func:`ids_source` through the service at ``address`` with ``ShardingPolicy[mode]``:
    ``{k: how many of the n records were seen k times}`` (a record never seen counts under 0)."""
    import collections

    import tensorflow as tf

    policy = getattr(tf.data.experimental.service.ShardingPolicy, mode)
    ds = ids_source(files, shuffle_files).apply(tf.data.experimental.service.distribute(policy, service=address, job_name=job_name))
    seen = collections.Counter(int(i) for i in ds.as_numpy_iterator())
    return dict(sorted(collections.Counter(seen.get(i, 0) for i in range(n)).items()))


def slow_ids(files: Sequence[str | os.PathLike], out_size: int = 64) -> Any:
    """:func:`ids_source` with lesson 06's augmentation done on each record's image (then dropped):
    a few milliseconds of work per record, as a real pipeline has."""
    import tensorflow as tf

    from helpers.pipelines.augment import augment_tf
    from helpers.pipelines.tfdata import parse_jpeg_example

    ds = tf.data.Dataset.from_tensor_slices([os.fspath(f) for f in files]).interleave(tf.data.TFRecordDataset)

    def work(serialized: Any) -> Any:
        image, _, i = parse_jpeg_example(serialized, out_size)
        image = augment_tf(tf.cast(image * 255, tf.uint8), tf.stack([i, i]), out_size)
        return i + tf.cast(tf.reduce_sum(image) * 0, tf.int64)    # keeps the work, returns the id

    return ds.map(work)


def epoch_with_a_failure(address: str, files: Sequence[str | os.PathLike], n: int, mode: str, kill_pid: int,
                         kill_at: float = 0.3, stall_s: float = 8.0, job_name: str = "fault") -> dict:
    """Run it in a fresh process: read one epoch of :func:`slow_ids` through the service with
    ``ShardingPolicy[mode]``; once ``kill_at`` of the epoch's ``n`` records have arrived, kill the
    service worker ``kill_pid`` (SIGKILL). Reading stops at the end of the epoch, at an error, or
    after ``stall_s`` seconds without an element (the iterator is then abandoned).

    Returns ``outcome`` (``ended``, ``raised: ...`` or ``stalled``), ``counts`` ({k: records seen k
    times}), ``read``, ``read_at_kill``, ``longest_gap_s`` (between elements after the kill) and
    ``last_element_after_kill_s``.
    """
    import collections
    import queue

    from helpers.lab.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    import tensorflow as tf

    policy = getattr(tf.data.experimental.service.ShardingPolicy, mode)
    ds = slow_ids(files).apply(tf.data.experimental.service.distribute(policy, service=address, job_name=job_name))
    arrivals: queue.Queue = queue.Queue()

    def read() -> None:
        try:
            for i in ds.as_numpy_iterator():
                arrivals.put(("id", int(i)))
            arrivals.put(("ended", None))
        except Exception as exc:  # noqa: BLE001 - what the trainer sees is the finding
            arrivals.put(("raised", f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"))

    threading.Thread(target=read, daemon=True).start()
    seen: list[int] = []
    t_kill = None
    at_kill = 0
    times: list[float] = []
    outcome = "stalled"
    while True:
        try:
            kind, value = arrivals.get(timeout=stall_s)
        except queue.Empty:
            break
        if kind != "id":
            outcome = kind if value is None else f"raised: {value}"
            break
        seen.append(value)
        times.append(time.perf_counter())
        if t_kill is None and len(seen) >= kill_at * n:
            os.kill(kill_pid, signal.SIGKILL)
            t_kill, at_kill = time.perf_counter(), len(seen)
    after = [t for t in times if t_kill is not None and t > t_kill]
    gaps = [b - a for a, b in zip([t_kill or 0.0, *after[:-1]], after)]
    per_record = collections.Counter(seen)
    return {"outcome": outcome, "read": len(seen), "read_at_kill": at_kill,
            "counts": dict(sorted(collections.Counter(per_record.get(i, 0) for i in range(n)).items())),
            "longest_gap_s": max(gaps, default=0.0),
            "last_element_after_kill_s": (after[-1] - t_kill) if after else 0.0}


def leftover_processes() -> list[str]:
    """Server and trainer processes of this series still running under this process
    (``python -m helpers.lab.service`` / ``helpers.lab.trainers``): what a lesson must not leave behind."""
    found = []
    for p in psutil.Process().children(recursive=True):
        try:
            cmd = " ".join(p.cmdline())
            alive = p.status() != psutil.STATUS_ZOMBIE
        except (psutil.NoSuchProcess, psutil.AccessDenied):   # ended meanwhile
            continue
        if alive and ("helpers.lab.service" in cmd or "helpers.lab.trainers" in cmd):
            found.append(f"pid {p.pid}: {cmd}")
    return found
