"""Measure what a data pipeline really costs in RAM: anonymous memory of the whole process tree.

Why not RSS? ``VmRSS = RssAnon + RssFile + RssShmem``: reading a memory-mapped file moves its
pages into ``RssFile`` (and psutil's ``uss`` counts clean file pages as "unique"), so RSS and USS
grow while a memmap is read although the kernel can drop those pages at any time. The memory a
program *owns* -- what makes it die -- is anonymous memory. Forked workers share copy-on-write
pages, so summing each child's ``RssAnon`` counts shared pages several times; the proportional
share ``Pss_Anon`` of ``/proc/PID/smaps_rollup`` counts them once.

Sources: for a single process ``RssAnon``/``RssFile`` of ``/proc/PID/status`` (nothing is shared,
so it equals ``Pss_Anon``, and it is cheap enough to sample at 100 Hz); for a tree with workers
``Pss_Anon``/``Pss_File`` of ``/proc/PID/smaps_rollup`` (Linux >= 4.14), falling back to the status
fields on older kernels; psutil elsewhere (macOS, Windows: ``rss`` only, an upper bound).

Typical use in a lesson::

    with MemoryMonitor() as mon:
        model.fit(dataset, epochs=1)
    print(mon.summary())
    mon.plot()
"""

from __future__ import annotations

import functools
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import psutil

from helpers.config import MIB
from helpers.lab.sampling import Sampler


@dataclass(frozen=True)
class Sample:
    """One reading of the process tree and of the system, in MiB (``t`` in seconds from entry)."""

    t: float
    anon_mb: float
    """Anonymous memory of the tree (heap, arrays, tensors): what a process owns."""
    file_mb: float
    """File-backed pages mapped by the tree (memmaps, shared libraries): reclaimable."""
    n_procs: int
    """Processes in the tree (the kernel plus its workers)."""
    available_mb: float
    """System-wide memory available to new allocations (``MemAvailable``)."""
    cache_mb: float
    """System-wide page cache (``Cached`` of /proc/meminfo; what vmstat shows as ``cache``)."""


def read_kb_fields(path: str, names: tuple[str, ...]) -> dict[str, int] | None:
    """Read ``Name:  123 kB`` lines of a /proc file; None if it cannot be read or lacks a field."""
    try:
        with open(path, "rb") as f:
            text = f.read().decode("ascii", "replace")
    except OSError:
        return None
    found: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in names:
            found[key] = int(rest.split()[0])
    return found if len(found) == len(names) else None


def process_memory_kb(pid: int, shared: bool = True) -> tuple[int, int] | None:
    """(anonymous kB, file-backed kB) of one process, or None if it has gone.

    ``shared=True`` (a tree of several processes) uses the proportional ``Pss_Anon``/``Pss_File``,
    so pages shared copy-on-write between a parent and its forked children count once in a sum.
    ``shared=False`` (a single process) reads ``RssAnon``/``RssFile`` of /proc/PID/status: the same
    anonymous figure when nothing is shared, and ~400x cheaper (smaps_rollup walks every page
    table: ~10 ms for a TensorFlow process, which would cap sampling and steal CPU from training).
    """
    if _forced_rss():
        return _psutil_rss_kb(pid)
    if shared:
        rollup = read_kb_fields(f"/proc/{pid}/smaps_rollup", ("Pss_Anon", "Pss_File"))
        if rollup is not None:
            return rollup["Pss_Anon"], rollup["Pss_File"]
    status = read_kb_fields(f"/proc/{pid}/status", ("RssAnon", "RssFile"))
    if status is not None:
        return status["RssAnon"], status["RssFile"]
    if sys.platform.startswith("linux") and not os.path.exists(f"/proc/{pid}"):
        return None
    return _psutil_rss_kb(pid)


RSS_ONLY_ENV = "TUTORIAL_MEMORY"
"""``rss``: measure as on macOS/Windows (psutil's RSS, no anonymous/file split), so that the
fallback path of every lesson can be run on Linux too."""


def _forced_rss() -> bool:
    return os.environ.get(RSS_ONLY_ENV, "").strip().lower() == "rss"


@functools.lru_cache(maxsize=1)
def _proc_has_split() -> bool:
    return read_kb_fields(f"/proc/{os.getpid()}/status", ("RssAnon", "RssFile")) is not None


def rss_only() -> bool:
    """True where only psutil's RSS is available (or ``TUTORIAL_MEMORY=rss`` forces it)."""
    return _forced_rss() or not _proc_has_split()


def has_anon_split() -> bool:
    """True where anonymous memory is measured apart from file-backed pages (Linux /proc)."""
    return not rss_only()


def _psutil_rss_kb(pid: int) -> tuple[int, int] | None:
    """macOS, Windows: no split available; rss is an upper bound of anonymous memory."""
    try:
        info = psutil.Process(pid).memory_info()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    return info.rss // 1024, 0


def release_freed_memory() -> None:
    """Give the blocks freed so far back to the system (glibc's ``malloc_trim``; nothing elsewhere).

    glibc keeps blocks a program frees and hands them out again without asking the system, so
    after large arrays are freed a later allocation can reuse tens of MiB the monitor never sees
    come back: call this before a baseline and before a last sample that must show what is held."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: macOS, Windows, musl
        pass


def memory_source() -> str:
    """Which counters :func:`process_memory_kb` uses on this machine (said in lessons)."""
    pid = os.getpid()
    if rss_only():
        return "psutil rss (upper bound: no anonymous/file split on this OS)"
    if read_kb_fields(f"/proc/{pid}/smaps_rollup", ("Pss_Anon", "Pss_File")) is not None:
        return "RssAnon/RssFile (one process) or Pss_Anon/Pss_File (with workers) from /proc"
    if read_kb_fields(f"/proc/{pid}/status", ("RssAnon", "RssFile")) is not None:
        return "RssAnon/RssFile from /proc/PID/status (no Pss: shared pages of workers count twice)"
    return "psutil rss (upper bound: no anonymous/file split on this OS)"


def process_tree(pid: int | None = None) -> list[int]:
    """``pid`` (default: this process) and all its descendants."""
    pid = os.getpid() if pid is None else pid
    try:
        root = psutil.Process(pid)
        return [pid] + [c.pid for c in root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def system_memory_mb() -> tuple[float, float]:
    """(available MiB, page cache MiB) of the whole machine."""
    meminfo = read_kb_fields("/proc/meminfo", ("MemAvailable", "Cached"))
    if meminfo is not None:
        return meminfo["MemAvailable"] / 1024, meminfo["Cached"] / 1024
    vm = psutil.virtual_memory()
    return vm.available / MIB, getattr(vm, "cached", 0) / MIB


def snapshot(pid: int | None = None, t: float = 0.0, pids: list[int] | None = None) -> Sample:
    """One :class:`Sample` of the process tree rooted at ``pid`` (default: this process).

    ``pids`` skips listing the tree (a monitor lists it less often than it samples).
    """
    pids = process_tree(pid) if pids is None else pids
    anon_kb = file_kb = n = 0
    for p in pids:
        mem = process_memory_kb(p, shared=len(pids) > 1)
        if mem is None:  # a worker that exited between listing and reading
            continue
        anon_kb += mem[0]
        file_kb += mem[1]
        n += 1
    available, cache = system_memory_mb()
    return Sample(t, anon_kb / 1024, file_kb / 1024, n, available, cache)


@dataclass(frozen=True)
class Stage:
    """Anonymous memory of one marked stage, MiB above the monitor's entry."""

    label: str
    start_mb: float
    """Held when the stage began."""
    peak_mb: float
    """Highest during the stage."""

    @property
    def added_mb(self) -> float:
        """What the stage added at its peak on top of what was already held."""
        return self.peak_mb - self.start_mb


@dataclass
class MemoryMonitor:
    """Sample the memory of this process and its children in a background thread.

    Enter it *after* building the model, so the peaks are what the data pipeline and training
    add. After exit:

    - ``peak_anon_mb``: highest anonymous memory of the tree, in MiB above the value at entry
    - ``peak_file_mb``: the same for file-backed pages (memmaps): shown apart, not a cost
    - ``samples``: the timeline (:class:`Sample`), ``marks``: labelled moments, ``plot()``

    Args:
        interval: seconds between samples (0.01 = 100 Hz, cheap for a single process; with worker
            processes each sample reads every worker's smaps_rollup and takes longer).
        pid: root of the process tree (default: this process).
        tree_every: seconds between listings of the process tree (listing scans /proc).
        pss_every: with several processes, seconds between readings of ``smaps_rollup`` (the
            proportional share of pages that workers share; ~10 ms per TensorFlow process).
    """

    interval: float = 0.01
    tree_every: float = 0.1
    pid: int | None = None
    samples: list[Sample] = field(default_factory=list, init=False)
    marks: list[tuple[float, str]] = field(default_factory=list, init=False)
    _t0: float = field(default=0.0, init=False, repr=False)
    _sampler: Sampler | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    pss_every: float = 1.0
    _pids: list[int] = field(default_factory=list, init=False, repr=False)
    _pids_t: float = field(default=-1.0, init=False, repr=False)
    _pss_t: float = field(default=-1.0, init=False, repr=False)
    _offsets: dict[int, tuple[int, int]] = field(default_factory=dict, init=False, repr=False)

    def _read(self, now: float, relist: bool) -> Sample:
        """Cheap ``RssAnon``/``RssFile`` of every process at each sample, corrected by the sharing
        seen at the last ``Pss`` reading (``Pss - Rss`` per process, refreshed every ``pss_every``
        seconds, and at once when a process appears): Pss accuracy for pages that forked workers
        share, at the sampling rate of the cheap counters."""
        if relist or now - self._pids_t >= self.tree_every:
            self._pids, self._pids_t = process_tree(self.pid), now
        pids = self._pids
        if len(pids) == 1:  # nothing shared: RssAnon is Pss_Anon
            self._offsets.clear()
            return snapshot(self.pid, now - self._t0, pids=pids)
        refresh = now - self._pss_t >= self.pss_every or any(p not in self._offsets for p in pids)
        anon_kb = file_kb = n = 0
        for p in pids:
            rss = process_memory_kb(p, shared=False)
            if rss is None:
                continue
            if refresh:
                pss = process_memory_kb(p, shared=True)
                if pss is not None:
                    self._offsets[p] = (pss[0] - rss[0], pss[1] - rss[1])
            off = self._offsets.get(p, (0, 0))
            anon_kb += max(rss[0] + off[0], 0)
            file_kb += max(rss[1] + off[1], 0)
            n += 1
        if refresh:
            self._pss_t = now
            self._offsets = {p: o for p, o in self._offsets.items() if p in pids}
        available, cache = system_memory_mb()
        return Sample(now - self._t0, anon_kb / 1024, file_kb / 1024, n, available, cache)

    def sample(self, relist: bool = True) -> Sample:
        """Take one sample now and add it to the timeline (``relist``: list the tree afresh)."""
        now = time.perf_counter()
        s = self._read(now, relist)
        with self._lock:
            self.samples.append(s)
        return s

    def __enter__(self) -> "MemoryMonitor":
        self.samples.clear()
        self.marks.clear()
        self._offsets.clear()
        self._pss_t = -1.0
        self._t0 = time.perf_counter()
        self.sample()
        self._sampler = Sampler(lambda: self.sample(relist=False), self.interval, "MemoryMonitor").start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._sampler is not None:
            self._sampler.stop()
        self.sample()

    def mark(self, label: str) -> None:
        """Label this moment on the timeline (e.g. ``mon.mark("fit starts")``) and sample it."""
        self.marks.append((self.sample().t, label))  # the mark's time is that of its own sample

    # -- figures -------------------------------------------------------------------------------
    def _snapshot_list(self) -> list[Sample]:
        with self._lock:
            if not self.samples:
                raise RuntimeError("MemoryMonitor has no samples: use it as `with MemoryMonitor() as mon:`")
            return list(self.samples)

    @property
    def start(self) -> Sample:
        """The sample taken at entry (the baseline)."""
        return self._snapshot_list()[0]

    @property
    def peak_anon_mb(self) -> float:
        """Highest anonymous memory of the tree, MiB above the value at entry."""
        s = self._snapshot_list()
        return max(x.anon_mb for x in s) - s[0].anon_mb

    @property
    def peak_file_mb(self) -> float:
        """Highest file-backed memory of the tree, MiB above the value at entry."""
        s = self._snapshot_list()
        return max(x.file_mb for x in s) - s[0].file_mb

    @property
    def end_anon_mb(self) -> float:
        """Anonymous memory at the last sample, MiB above the value at entry (what stays held)."""
        s = self._snapshot_list()
        return s[-1].anon_mb - s[0].anon_mb

    @property
    def cache_growth_mb(self) -> float:
        """Growth of the system page cache from entry to its highest sample, MiB."""
        s = self._snapshot_list()
        return max(x.cache_mb for x in s) - s[0].cache_mb

    @property
    def max_procs(self) -> int:
        """Most processes seen in the tree at once."""
        return max(x.n_procs for x in self._snapshot_list())

    @property
    def seconds(self) -> float:
        """Time from entry to the last sample."""
        return self._snapshot_list()[-1].t

    def peak_anon_between(self, t_from: float, t_to: float) -> float:
        """Highest anonymous memory between two times (seconds from entry), MiB above entry."""
        s = self._snapshot_list()
        inside = [x.anon_mb for x in s if t_from <= x.t <= t_to] or [s[-1].anon_mb]
        return max(inside) - s[0].anon_mb

    def stages(self) -> list[Stage]:
        """One :class:`Stage` per mark: from the mark to the next one (the last runs to exit)."""
        s = self._snapshot_list()
        ends = [t for t, _ in self.marks[1:]] + [s[-1].t]
        out = []
        for (t, label), end in zip(self.marks, ends):
            at_start = next(x.anon_mb for x in s if x.t >= t) - s[0].anon_mb  # the mark's sample
            out.append(Stage(label, at_start, self.peak_anon_between(t, end)))
        return out

    def timeline(self) -> dict[str, list[float]]:
        """The samples as columns (``t``, ``anon_mb``, ``file_mb``, ...), relative to entry for
        the process-tree columns, absolute for the system-wide ones."""
        s = self._snapshot_list()
        return {
            "t": [x.t for x in s],
            "anon_mb": [x.anon_mb - s[0].anon_mb for x in s],
            "file_mb": [x.file_mb - s[0].file_mb for x in s],
            "cache_mb": [x.cache_mb for x in s],
            "available_mb": [x.available_mb for x in s],
            "n_procs": [float(x.n_procs) for x in s],
        }

    def summary(self) -> str:
        """One line of the figures a lesson prints."""
        return (
            f"peak anonymous +{self.peak_anon_mb:,.0f} MiB | peak file-backed +{self.peak_file_mb:,.0f} MiB"
            f" | page cache +{self.cache_growth_mb:,.0f} MiB | {self.max_procs} process(es) | {self.seconds:.1f} s"
        )

    def plot(self, ax: Any = None, title: str | None = None) -> Any:
        """Plot the timeline (see :func:`helpers.report.plots.memory_timeline`)."""
        from helpers.report.plots import memory_timeline

        return memory_timeline(self, ax=ax, title=title)
