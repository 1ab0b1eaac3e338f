"""Worker processes (lesson 06): how they start, what they copy, and that none is left behind.

- :func:`unpickle_in_new_process`: pickle an object here and unpickle it in a new process of a
  given start method (``fork``, ``spawn``, ``forkserver``), as a worker pool does with a dataset;
  the worker's error comes back as text instead of hanging the pool
- :func:`copied_by_reading_mb`: fork a child that only *reads* an object, and measure the pages that
  reading made it copy (copy-on-write)
- :func:`idle_forked_child`: a forked child that does nothing, to measure what the parent's own
  writes copy while a child shares its pages
- :func:`worker_processes` / :func:`wait_for_workers_to_exit`: the processes this one has started
- :class:`WorkerWatch`: the worker processes seen while a block runs

The two ``fit`` runs of lesson 06 that need a fresh process (under several start methods, and
stopped by an error) are in :mod:`helpers.lab.recipes`. This module imports neither TensorFlow nor
Keras, so a new process can import it in a blink.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import time
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

import numpy as np
import psutil

from helpers.lab.memory import read_kb_fields
from helpers.lab.quiet import quiet_stderr
from helpers.lab.sampling import Sampler


# -- start methods ------------------------------------------------------------------------------
def _unpickle(blob: bytes) -> str:
    """In the new process: unpickle ``blob``; say what came out, or which error stopped it."""
    try:
        with quiet_stderr():  # unpickling may import the dataset's module, and TensorFlow
            obj = pickle.loads(blob)
    except Exception as exc:  # noqa: BLE001 - the error is the answer
        return f"{type(exc).__name__}: {exc}"
    return f"ok: a {type(obj).__module__}.{type(obj).__qualname__}"


def unpickle_in_new_process(obj: Any, method: str) -> str:
    """Pickle ``obj`` here, unpickle it in a one-process pool started with ``method``.

    Returns ``"ok: a module.Class"`` or ``"ErrorType: message"``. The object travels as bytes and
    is unpickled inside a ``try``: a real pool that fails to unpickle its task would lose the worker
    and wait for ever. (Under ``fork`` a real pool inherits the object instead of unpickling it:
    this function pickles under every method, so that all of them are compared the same way.)
    """
    try:
        blob = pickle.dumps(obj)
    except Exception as exc:  # noqa: BLE001 - cannot even leave this process
        return f"{type(exc).__name__}: {exc}"
    with multiprocessing.get_context(method).Pool(1) as pool:
        return pool.apply(_unpickle, (blob,))


# -- copy-on-write ------------------------------------------------------------------------------
def private_dirty_mb(pid: int | None = None) -> float:
    """MiB of pages that only this process maps and has written (``Private_Dirty`` of
    ``/proc/PID/smaps_rollup``): after a fork, what the process has copied or allocated itself."""
    fields = read_kb_fields(f"/proc/{pid or os.getpid()}/smaps_rollup", ("Private_Dirty",))
    if fields is None:
        raise OSError("needs Linux >= 4.14 (/proc/PID/smaps_rollup)")
    return fields["Private_Dirty"] / 1024


def _child_reads(obj: Any, conn: Any) -> None:
    before = private_dirty_mb()
    if isinstance(obj, (list, tuple)):
        total = sum(len(item) for item in obj)  # each item's reference count goes up and down
    else:
        total = int(obj.view(np.uint8).sum())  # every byte of the array, read in C
    conn.send((private_dirty_mb() - before, total))
    conn.close()


def copied_by_reading_mb(obj: Any) -> float:
    """Fork a child that reads every element of ``obj`` (a list of strings, or a NumPy array) and
    return the MiB of pages that the reading copied in the child (Linux, ``fork``).

    Reading a Python object writes to it: its reference count goes up and down, and that count
    sits in the object's memory, so the page holding it is copied. A NumPy array is one object
    whose elements are raw bytes: reading them writes nothing.
    """
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child_reads, args=(obj, send))
    child.start()
    send.close()
    copied, _ = receive.recv()
    child.join()
    return copied


@contextmanager
def idle_forked_child() -> Iterator[int]:
    """A forked child that sleeps until the block ends; yields its pid.

    It writes nothing, so any memory that the process tree gains meanwhile is this process's own
    writes to pages the child still shares (copy-on-write works both ways).
    """
    ctx = multiprocessing.get_context("fork")
    child = ctx.Process(target=time.sleep, args=(3600,), daemon=True)
    child.start()
    try:
        yield child.pid
    finally:
        child.terminate()
        child.join()


# -- worker processes -------------------------------------------------------------------------------
def worker_processes() -> list[psutil.Process]:
    """Child processes of this one that are running (zombies, already exited, are left out), except
    multiprocessing's resource tracker and fork server, which serve the whole session.

    A worker started by ``forkserver`` is forked from the fork server, so it carries the server's
    command line: it is told apart by its parent, which is a fork server."""
    running: dict[int, tuple[psutil.Process, str, int]] = {}
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                continue
            running[child.pid] = (child, " ".join(child.cmdline()), child.ppid())
        except psutil.NoSuchProcess:
            continue

    def is_server(pid: int) -> bool:
        _, cmdline, ppid = running[pid]
        return "multiprocessing.forkserver" in cmdline and not (ppid in running and is_server(ppid))

    out = []
    for pid, (child, cmdline, _) in running.items():
        if "multiprocessing.resource_tracker" in cmdline or is_server(pid):
            continue
        out.append(child)
    return out


def wait_for_workers_to_exit(before: Sequence[psutil.Process], timeout: float = 10.0) -> tuple[int, float]:
    """Wait until no worker process other than those in ``before`` runs; return
    ``(how many are left, seconds waited)``."""
    known = {p.pid for p in before}
    t0 = time.perf_counter()
    while True:
        left = [p for p in worker_processes() if p.pid not in known]
        waited = time.perf_counter() - t0
        if not left or waited >= timeout:
            return len(left), waited
        time.sleep(0.05)


class WorkerWatch:
    """Note the worker processes of this process every ``interval`` seconds while the block runs.

    ``seen`` maps a label to the process ids seen while it was set: change ``label`` during the
    block (e.g. from a Keras callback's ``on_epoch_begin``) to tell phases apart. Processes running
    at entry are left out. Sampling from a thread sees workers that live only between two
    training steps, which a callback alone could miss.
    """

    def __init__(self, interval: float = 0.02, label: str = "") -> None:
        self.label = label
        self.seen: dict[str, set[int]] = {}
        self._known: set[int] = set()
        self._sampler = Sampler(self._sample, interval, "WorkerWatch")

    def _sample(self) -> None:
        pids = {p.pid for p in worker_processes()} - self._known
        self.seen.setdefault(self.label, set()).update(pids)

    def __enter__(self) -> "WorkerWatch":
        self._known = {p.pid for p in worker_processes()}
        self._sampler.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._sampler.stop()
