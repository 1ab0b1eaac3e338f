"""A real memory budget: run a function in a child process under a memory cgroup, and control the
page cache a file holds.

A memory cgroup limits what the kernel lets a group of processes hold: anonymous memory (heap,
arrays, tensors) *and* page cache (file pages read through ``read`` or a memmap). Page cache is
charged to the cgroup that first read the page, and the kernel reclaims it before it kills: a
child reading a file larger than its limit is slowed, not killed; a child whose anonymous memory
passes the limit is killed (SIGKILL, the OOM killer). That is the difference between "data larger
than memory" that streams and data that does not fit.

- where a cgroup can be made: :func:`find_memory_cgroup` (a :class:`CgroupPlace`, or None) and
  :func:`why_no_cgroup` (the reason, to print), for cgroup v2 and v1
- :func:`memory_cgroup`: a context manager making a :class:`Cgroup` with a limit, removed on exit
  (any process still in it killed first)
- :func:`run_limited`: ``func(*args, **kwargs)`` in a fresh "spawn" child inside such a cgroup; a
  :class:`LimitedRun` says what happened (result, exit status, peak, OOM kills, bytes read), and a
  child killed by the limit does not raise here
- :func:`check_limit`: a clear error for a limit below what the child needs before any data
- the page cache, without root (and the fallback where no cgroup can be made, e.g. Colab or a
  laptop): :func:`evict`, :func:`resident_mb`, :func:`resident_fraction`, :func:`evict_and_check`
- :func:`allocate_mb` and :func:`read_file_mb`: small children to show a limit at work

Making a cgroup needs root or a delegated cgroup, and Linux. The module imports anywhere (macOS,
Windows): there :func:`find_memory_cgroup` returns None and the page-cache functions raise
``NotImplementedError``. It imports neither numpy nor TensorFlow at import time, so a child
imports it in a blink.
"""

from __future__ import annotations

import ctypes
import errno
import itertools
import mmap
import os
import pickle
import re
import signal as signals
import sys
import time
import traceback
import warnings
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from helpers.config import MIB

_names = itertools.count()
NO_CGROUP_ENV = "TUTORIAL_NO_CGROUP"
"""Set (to anything) to behave as where no cgroup can be made: lessons take their fallback."""
"""Numbers the cgroups this process makes (``tutorial-<pid>-<n>``)."""


# -- where a memory cgroup can be made ----------------------------------------------------------
@dataclass(frozen=True)
class CgroupPlace:
    """A folder under which a memory cgroup can be made."""

    version: int
    """1 (a ``cgroup`` mount with the ``memory`` option) or 2 (``cgroup2`` with ``memory``)."""
    parent: Path
    """Where the new cgroup's folder goes."""
    mount: Path
    """The hierarchy's mount point."""
    nested: bool
    """True if ``parent`` is this process's own cgroup or one of its ancestors below the mount
    root: the limits above it still hold. False: the mount root (the new cgroup escapes any limit of
    this process's own cgroup)."""
    enable_memory: bool = False
    """v2 only: write ``+memory`` to ``parent/cgroup.subtree_control`` before making the child."""

    def describe(self) -> str:
        """One line for a lesson: where, which version."""
        where = "under this process's cgroup" if self.nested else "at the hierarchy's root"
        return f"cgroup v{self.version} memory controller, {where}: {self.parent}"


def _unescape(field: str) -> str:
    """/proc/mounts writes a space as ``\\040`` (octal escapes)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _read_text(path: str | Path) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None


def _own_cgroup(self_cgroup: str, version: int) -> str | None:
    """This process's cgroup path in the v1 memory hierarchy or the v2 one (``/proc/self/cgroup``
    lines ``id:controllers:path``; v2 is ``0::path``)."""
    for line in self_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if version == 2 and parts[0] == "0" and controllers == "":
            return path.strip()
        if version == 1 and "memory" in controllers.split(","):
            return path.strip()
    return None


def _inside(mount: Path, cgroup_path: str | None) -> Path | None:
    """The folder of ``cgroup_path`` in the hierarchy mounted at ``mount``, if it exists. (In a
    container the mount may already be this process's cgroup while /proc/self/cgroup names a
    longer host path: then the folder does not exist and the mount root is used.)"""
    if not cgroup_path:
        return None
    folder = mount / cgroup_path.lstrip("/")
    return folder if folder.is_dir() else None


def _writable(path: Path) -> bool:
    return os.access(path, os.W_OK)  # also False on a read-only mount (EROFS), as in containers


def _words(path: Path) -> list[str]:
    return (_read_text(path) or "").split()


def _locate_v2(mount: Path, self_cgroup: str) -> tuple[CgroupPlace | None, str]:
    """v2: a process may live only in a leaf, and a child gets the memory controller only if its
    parent lists ``memory`` in ``cgroup.subtree_control``. So this process's own cgroup (which
    holds processes) can rarely take a child; the nearest ancestor, from the own cgroup up, that
    already enables ``memory`` for its children and is writable is used (a delegated subtree,
    nested: its limits hold). Else the mount root, enabling ``+memory`` there if needed (the root is
    exempt from the leaf rule)."""
    controllers = _words(mount / "cgroup.controllers")
    if "memory" not in controllers:
        return None, f"the cgroup2 mount {mount} has no memory controller (cgroup.controllers: " \
                     f"{' '.join(controllers) or 'empty'})"
    own = _inside(mount, _own_cgroup(self_cgroup, 2))
    folder = own
    while folder is not None and folder != mount and mount in folder.parents:
        if "memory" in _words(folder / "cgroup.subtree_control") and _writable(folder):
            return CgroupPlace(2, folder, mount, nested=True), ""
        folder = folder.parent
    if "memory" in _words(mount / "cgroup.subtree_control") and _writable(mount):
        return CgroupPlace(2, mount, mount, nested=False), ""
    if _writable(mount) and _writable(mount / "cgroup.subtree_control"):
        return CgroupPlace(2, mount, mount, nested=False, enable_memory=True), ""
    return None, f"the cgroup2 hierarchy {mount} is not writable here (making a memory cgroup needs root " \
                 f"or a delegated cgroup)"


def _locate_v1(mount: Path, self_cgroup: str) -> tuple[CgroupPlace | None, str]:
    """v1: under this process's own memory cgroup if its folder exists and is writable (nested:
    its limit and accounting hold), else the mount root."""
    own = _inside(mount, _own_cgroup(self_cgroup, 1))
    if own is not None and own != mount and _writable(own):
        return CgroupPlace(1, own, mount, nested=True), ""
    if _writable(mount):
        return CgroupPlace(1, mount, mount, nested=False), ""
    if own is not None and own != mount:
        return None, f"neither {own} nor {mount} is writable (making a memory cgroup needs root or a " \
                     f"delegated cgroup)"
    return None, f"{mount} is not writable (making a memory cgroup needs root or a delegated cgroup)"


def _locate(mounts: str | None, self_cgroup: str | None, root: Path | None) -> tuple[CgroupPlace | None, str]:
    if os.environ.get(NO_CGROUP_ENV) and mounts is None:
        return None, f"${NO_CGROUP_ENV} is set"
    if mounts is None:
        mounts = _read_text("/proc/mounts")
        if mounts is None:
            return None, f"no /proc/mounts: not Linux ({sys.platform}), no cgroups"
    if self_cgroup is None:
        self_cgroup = _read_text("/proc/self/cgroup") or ""
    v1: list[Path] = []
    v2: list[Path] = []
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        point = Path(_unescape(fields[1]))
        if root is not None:
            point = Path(root) / point.relative_to(point.anchor)
        if fields[2] == "cgroup2":
            v2.append(point)
        elif fields[2] == "cgroup" and "memory" in fields[3].split(","):
            v1.append(point)
    reasons = []
    for mount in v2:
        place, why = _locate_v2(mount, self_cgroup)
        if place is not None:
            return place, ""
        reasons.append(why)
    for mount in v1:
        place, why = _locate_v1(mount, self_cgroup)
        if place is not None:
            return place, ""
        reasons.append(why)
    if not v1:
        reasons.append("no cgroup v1 mount has the memory controller" if v2 else
                       "no cgroup hierarchy with a memory controller is mounted (/proc/mounts)")
    return None, "; ".join(reasons)


def find_memory_cgroup(mounts: str | None = None, self_cgroup: str | None = None,
                       root: Path | None = None) -> CgroupPlace | None:
    """Where a memory cgroup can be made here, or None (:func:`why_no_cgroup` says why).

    ``mounts`` and ``self_cgroup`` are the texts of ``/proc/mounts`` and ``/proc/self/cgroup``
    (read when None; given by the tests). ``root`` is prepended to every mount point (a fake tree).
    cgroup v2 (a ``cgroup2`` mount whose ``cgroup.controllers`` lists ``memory``) is tried first,
    then v1 (a ``cgroup`` mount with the ``memory`` option). The place is, in order: this
    process's own cgroup (v2: the nearest ancestor that enables ``memory`` for its children), so
    that the limits above still hold; else the mount root. Nothing here is written.
    """
    return _locate(mounts, self_cgroup, root)[0]


def why_no_cgroup(mounts: str | None = None, self_cgroup: str | None = None, root: Path | None = None) -> str:
    """Why :func:`find_memory_cgroup` finds nothing ("" if it finds a place), to print in a lesson:
    ``f"no memory cgroup can be made here ({why_no_cgroup()}): evicting the page cache instead"``."""
    return _locate(mounts, self_cgroup, root)[1]


class NoCgroupError(RuntimeError):
    """No memory cgroup can be made on this machine (the message says why)."""


# -- the cgroup ---------------------------------------------------------------------------------
def _check_positive(limit_mb: float) -> None:
    if not limit_mb > 0:  # also catches NaN
        raise ValueError(f"a memory limit must be a positive number of MiB, not {limit_mb!r}")


def _permission_error(path: Path, exc: OSError, doing: str) -> PermissionError:
    return PermissionError(exc.errno, f"cannot {doing} {path}: making a memory cgroup needs root (or a cgroup "
                                      f"delegated to this user)")


def _parse_flat(text: str | None) -> dict[str, int]:
    """``key value`` lines (memory.stat, memory.events, memory.oom_control) as a dict."""
    found: dict[str, int] = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            found[parts[0]] = int(parts[1])
    return found


@dataclass
class Cgroup:
    """A memory cgroup made by :func:`memory_cgroup` (v1 or v2 interface files, read on demand)."""

    path: Path
    version: int
    limit_mb: float

    def _file(self, name: str) -> Path:
        return self.path / name

    def _read_int(self, name: str) -> int | None:
        text = _read_text(self._file(name))
        try:
            return int(text.split()[0]) if text else None
        except ValueError:
            return None

    def _write(self, name: str, value: str) -> None:
        path = self._file(name)
        try:
            path.write_text(value)
        except PermissionError as exc:
            raise _permission_error(path, exc, f"write {value!r} to") from None

    def add(self, pid: int) -> None:
        """Move process ``pid`` (all its threads) into this cgroup: what it allocates from now on
        counts against the limit (what it already holds stays charged where it was)."""
        self._write("cgroup.procs", str(pid))

    def pids(self) -> list[int]:
        """The processes in this cgroup now (exited processes are not listed, even unreaped)."""
        return [int(p) for p in (_read_text(self._file("cgroup.procs")) or "").split()]

    def usage_mb(self) -> float | None:
        """Memory charged now (anonymous + page cache), MiB."""
        value = self._read_int("memory.usage_in_bytes" if self.version == 1 else "memory.current")
        return None if value is None else value / MIB

    def peak_mb(self) -> float | None:
        """Highest memory charged since creation (anonymous + page cache), MiB: v1
        ``memory.max_usage_in_bytes``, v2 ``memory.peak`` (Linux >= 5.19; None if absent)."""
        value = self._read_int("memory.max_usage_in_bytes" if self.version == 1 else "memory.peak")
        return None if value is None else value / MIB

    def stat(self) -> dict[str, float]:
        """``anon_mb`` (anonymous memory) and ``file_mb`` (page cache) charged now, and every field
        of ``memory.stat`` in its own unit (bytes, or counts). v1 takes the hierarchical
        ``total_rss``/``total_cache`` (this cgroup and any below it), else ``rss``/``cache``; v2
        ``anon``/``file``."""
        fields: dict[str, float] = dict(_parse_flat(_read_text(self._file("memory.stat"))))
        if self.version == 1:
            anon = fields.get("total_rss", fields.get("rss", 0))
            cache = fields.get("total_cache", fields.get("cache", 0))
        else:
            anon, cache = fields.get("anon", 0), fields.get("file", 0)
        return {"anon_mb": anon / MIB, "file_mb": cache / MIB, **fields}

    def oom_kills(self) -> int | None:
        """Processes the OOM killer killed in this cgroup: v1 ``oom_kill`` of ``memory.oom_control``
        (Linux >= 4.13), v2 ``oom_kill`` of ``memory.events``. None if the kernel does not say (then
        :meth:`limit_hits` and a SIGKILL exit are the hints)."""
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        return _parse_flat(_read_text(self._file(name))).get("oom_kill")

    def limit_hits(self) -> int | None:
        """Times usage reached the limit (each one made the kernel reclaim): v1 ``memory.failcnt``
        (with ``memory.memsw.failcnt`` when swap is limited too: the larger), v2 ``max`` of
        ``memory.events``. Not every kernel counts: a v1 cgroup on Linux 6.18 left both failcnt at 0
        through an OOM kill, so a kill is read from :meth:`oom_kills` and the exit signal."""
        if self.version == 2:
            return _parse_flat(_read_text(self._file("memory.events"))).get("max")
        counts = [c for c in (self._read_int("memory.failcnt"), self._read_int("memory.memsw.failcnt"))
                  if c is not None]
        return max(counts) if counts else None

    def remove(self, timeout: float = 5.0) -> None:
        """Kill every process still in the cgroup (SIGKILL), wait until it is empty (``timeout``
        seconds), then ``rmdir`` it. Only ``rmdir``: the kernel's interface files go with the folder
        (a fake tree in a test must delete its own files first). A folder already gone is fine."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                left = self.pids()
            except ValueError:
                left = []
            if not left:
                break
            for pid in left:
                try:
                    os.kill(pid, signals.SIGKILL)
                except ProcessLookupError:
                    pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"processes {left} still in {self.path} {timeout:g} s after SIGKILL")
            time.sleep(0.01)
        while True:
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except PermissionError as exc:
                raise _permission_error(self.path, exc, "remove") from None
            except OSError as exc:  # EBUSY for a moment after the last process has gone
                if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                    raise OSError(exc.errno, f"cannot remove the cgroup {self.path}: {exc.strerror}") from None
                time.sleep(0.01)


def _make_folder(path: Path) -> None:
    """``mkdir``: the kernel fills a new cgroup folder with its interface files (a test's fake tree
    replaces this function to write fake ones)."""
    path.mkdir()


@contextmanager
def memory_cgroup(limit_mb: float, place: CgroupPlace | None = None) -> Iterator[Cgroup]:
    """A new memory cgroup limited to ``limit_mb`` MiB (anonymous memory + page cache), removed on
    exit, also after an exception; any process still in it is killed first (:meth:`Cgroup.remove`).

    Named ``tutorial-<pid>-<n>`` under ``place`` (default: :func:`find_memory_cgroup`;
    :class:`NoCgroupError` if there is none). Swap cannot dodge the limit: v1 sets
    ``memory.memsw.limit_in_bytes`` to the same value and v2 ``memory.swap.max`` to 0 when the file
    exists. v1 also re-enables the OOM killer if the parent had it disabled (else a child at the limit
    would hang instead of dying).
    """
    _check_positive(limit_mb)
    if place is None:
        place, why = _locate(None, None, None)
        if place is None:
            raise NoCgroupError(f"no memory cgroup can be made here: {why}")
    if place.enable_memory and "memory" not in _words(place.parent / "cgroup.subtree_control"):
        control = place.parent / "cgroup.subtree_control"
        try:
            control.write_text("+memory")
        except PermissionError as exc:
            raise _permission_error(control, exc, "write '+memory' to") from None
    path = place.parent / f"tutorial-{os.getpid()}-{next(_names)}"
    try:
        _make_folder(path)
    except PermissionError as exc:
        raise _permission_error(path, exc, "create") from None
    group = Cgroup(path, place.version, float(limit_mb))
    limit = str(int(limit_mb * MIB))
    try:
        if place.version == 1:
            group._write("memory.limit_in_bytes", limit)
            if group._file("memory.memsw.limit_in_bytes").exists():
                group._write("memory.memsw.limit_in_bytes", limit)
            if _parse_flat(_read_text(group._file("memory.oom_control"))).get("oom_kill_disable"):
                group._write("memory.oom_control", "0")
        else:
            group._write("memory.max", limit)
            if group._file("memory.swap.max").exists():
                group._write("memory.swap.max", "0")
        yield group
    except BaseException:
        try:
            group.remove()
        except OSError as exc:  # do not hide the body's exception behind a failed removal
            warnings.warn(f"could not remove the memory cgroup: {exc}", RuntimeWarning, stacklevel=3)
        raise
    group.remove()


def check_limit(limit_mb: float, baseline_mb: float, what: str = "TensorFlow and the model") -> None:
    """Raise ValueError if ``limit_mb`` is not above ``baseline_mb``, what the child needs before any
    data (measured beforehand, e.g. a run with ``limit_mb=None``). :func:`run_limited` cannot know
    it: call this before, so that a too small limit fails with a clear message rather than as an OOM
    kill at start-up."""
    _check_positive(limit_mb)
    if limit_mb <= baseline_mb:
        raise ValueError(f"a memory limit of {limit_mb:.0f} MiB is below the {baseline_mb:.0f} MiB that {what} "
                         f"need before any data: give the child more than {baseline_mb:.0f} MiB")


# -- a child under the limit --------------------------------------------------------------------
def _status_mb(field: str) -> float | None:
    text = _read_text("/proc/self/status") or ""
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return None


def _read_bytes() -> int | None:
    """``read_bytes`` of /proc/self/io: bytes this process made the kernel fetch from storage (not
    those served from the page cache)."""
    return _parse_flat((_read_text("/proc/self/io") or "").replace(":", "")).get("read_bytes")


def _limited_child(conn: Any, procs: str | None) -> None:
    """Body of :func:`run_limited`'s child: join the cgroup (write its own pid to ``procs``), say
    so, then only receive ``func`` and its arguments, run it, and send back a dict."""
    reply: dict[str, Any] = {"ok": False, "result": None, "error": None, "traceback": None}
    if procs is not None:
        try:
            Path(procs).write_text(str(os.getpid()))
        except OSError as exc:
            conn.send(f"could not join the memory cgroup ({procs}): {exc}")
            conn.close()
            return
    conn.send("joined")
    try:
        func, args, kwargs = pickle.loads(conn.recv_bytes())  # imports func's module: charged here
        reply.update(ok=True, result=func(*args, **kwargs))
    except Exception as exc:  # noqa: BLE001 - sent back as text
        reply.update(ok=False, error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
    reply.update(read_bytes=_read_bytes(), peak_rss_mb=_status_mb("VmHWM"))
    try:
        conn.send(reply)
    except Exception as exc:  # noqa: BLE001 - an unpicklable result
        reply.update(ok=False, result=None, error=f"{type(exc).__name__} sending the result back: {exc}")
        conn.send(reply)
    conn.close()


@dataclass(frozen=True)
class LimitedRun:
    """What happened to a child of :func:`run_limited`. Figures in MiB, None where unknown."""

    func: str
    """``module.name`` of the function run."""
    result: Any
    """What it returned; None if it raised or died."""
    exitcode: int | None
    """The child's exit code: 0, or ``-N`` when signal N killed it (``-9``: SIGKILL, the OOM killer)."""
    killed: bool
    """Killed by a signal, or the cgroup counted an OOM kill (also of a worker of the child)."""
    signal: str | None
    """Name of the signal that ended the child (``"SIGKILL"``), if any."""
    timed_out: bool
    """The child ran past ``timeout`` and was killed."""
    limit_mb: float | None
    limit_kind: str
    """``"cgroup"`` (a real limit) or ``"none"``."""
    peak_mb: float | None
    """The cgroup's highest charge, anonymous memory + page cache (at a kill: close to the limit).
    None without a cgroup."""
    anon_mb: float | None
    """Anonymous memory charged to the cgroup at the end (after the child exited: ~0)."""
    file_mb: float | None
    """Page cache charged to the cgroup at the end (pages the child read first, still cached)."""
    oom_kills: int | None
    limit_hits: int | None
    """Times the cgroup's usage reached the limit (the kernel reclaimed page cache each time)."""
    read_mb: float | None
    """MiB the child read from storage (``read_bytes`` of its /proc/self/io, not page-cache hits;
    its own reads, not those of its workers). None if it died: the cgroup v1 blkio counters are not
    reliable for buffered reads."""
    child_peak_rss_mb: float | None
    """The child's own ``VmHWM`` (peak resident set: anonymous + mapped files, not page cache read
    through ``read``), as it reported it at its end; None if it died."""
    seconds: float
    """From the child's start to its end."""
    error: str | None = None
    """``"Type: message"`` if ``func`` raised (or the child could not start it)."""
    traceback: str | None = None
    """The child's traceback of that exception."""

    @property
    def ok(self) -> bool:
        """The child returned a result."""
        return self.error is None and self.exitcode == 0 and not self.timed_out

    def summary(self) -> str:
        """One line for a lesson: how the child ended, under which limit, at which peak."""
        limit = f"under a {self.limit_mb:.0f} MiB cgroup limit" if self.limit_kind == "cgroup" else "without a limit"
        if self.timed_out:
            end = f"killed after the {self.seconds:.1f} s timeout"
        elif self.exitcode is not None and self.exitcode < 0:
            end = f"killed by {self.signal} (exit code {self.exitcode})"
            if self.oom_kills:
                end += f", {self.oom_kills} OOM kill"
        elif self.error is not None:
            end = f"raised {self.error}"
        elif self.exitcode:
            end = f"exited with code {self.exitcode}"
        else:
            end = "returned"
        peak = f", peak {self.peak_mb:.1f} MiB (anonymous + page cache)" if self.peak_mb is not None else ""
        read = f", read {self.read_mb:.1f} MiB from storage" if self.read_mb is not None else ""
        return f"{self.func} {end} {limit}{peak}{read}, {self.seconds:.2f} s"

    def value(self) -> Any:
        """The result; RuntimeError if the child raised, was killed, timed out or exited badly,
        naming the function, the exit status, the limit and the peak."""
        if self.ok:
            return self.result
        message = self.summary()
        if self.traceback:
            message += f"\n--- the child's traceback ---\n{self.traceback}"
        raise RuntimeError(message)


def _ask(conn: Any, deadline: float | None) -> tuple[bool, Any]:
    """(True, message) or (False, None) when the deadline passed; EOFError if the child died."""
    wait = None if deadline is None else max(0.0, deadline - time.monotonic())
    if not conn.poll(wait):
        return False, None
    return True, conn.recv()


def _signal_name(exitcode: int | None) -> str | None:
    if exitcode is None or exitcode >= 0:
        return None
    try:
        return signals.Signals(-exitcode).name
    except ValueError:
        return f"signal {-exitcode}"


def run_limited(func: Callable[..., Any], *args: Any, limit_mb: float | None, timeout: float | None = None,
                place: CgroupPlace | None = None, **kwargs: Any) -> LimitedRun:
    """Run ``func(*args, **kwargs)`` in a fresh "spawn" child under a memory cgroup of ``limit_mb``
    MiB (``None``: the same child, no limit) and report how it ended (:class:`LimitedRun`).

    The child joins the cgroup first (it writes its own pid into ``cgroup.procs``), says so, and
    only then receives ``func`` and its arguments: loading them (importing ``func``'s module) and
    all the work count against the limit. Only the bare interpreter start-up (~10 MiB, charged where
    this process is) comes before. ``func`` must be importable (module level), its arguments and
    result picklable; ``timeout`` seconds (from the start) kills it. A child killed by the limit does
    not raise here: read ``killed``, ``peak_mb``, :meth:`LimitedRun.summary`, or call
    :meth:`LimitedRun.value` to get the result or an error. No cgroup can be made:
    :class:`NoCgroupError`. ``func`` cannot take keywords named ``limit_mb``, ``timeout`` or
    ``place`` (pass them positionally). Page cache is charged to the cgroup that first read a page:
    :func:`evict` a file first so that the child's reads count.
    """
    if limit_mb is not None:
        _check_positive(limit_mb)
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds or None, not {timeout!r}")
    name = f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', repr(func))}"
    payload = pickle.dumps((func, args, kwargs))  # fails here, clearly, if something cannot travel
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    with ExitStack() as stack:
        group = stack.enter_context(memory_cgroup(limit_mb, place)) if limit_mb is not None else None
        parent_end, child_end = ctx.Pipe(duplex=True)
        child = ctx.Process(target=_limited_child, name=f"run_limited {name}",
                            args=(child_end, None if group is None else str(group.path / "cgroup.procs")))
        t0 = time.monotonic()
        deadline = None if timeout is None else t0 + timeout
        child.start()
        child_end.close()  # only the child holds it now: recv() ends with EOFError if it dies
        reply: dict[str, Any] | None = None
        setup_error: str | None = None
        timed_out = False
        try:
            answered, hello = _ask(parent_end, deadline)
            if not answered:
                timed_out = True
            elif hello != "joined":
                setup_error = str(hello)
            else:
                parent_end.send_bytes(payload)
                answered, reply = _ask(parent_end, deadline)
                timed_out = not answered
        except (EOFError, BrokenPipeError, ConnectionResetError):
            pass  # the child died (e.g. the OOM killer): its exit code says how
        except BaseException:  # interrupted here (KeyboardInterrupt): do not leave the child running
            child.kill()
            child.join()
            raise
        finally:
            parent_end.close()
        if timed_out:
            child.kill()
        child.join(60)  # it has replied; give its exit (atexit handlers, its own children) a minute
        if child.is_alive():
            child.kill()
            child.join()
        seconds = time.monotonic() - t0
        stat = group.stat() if group is not None else {}
        oom_kills = group.oom_kills() if group is not None else None
        exitcode = child.exitcode
        reply = reply or {}
        read_bytes = reply.get("read_bytes")
        return LimitedRun(
            func=name, result=reply.get("result"), exitcode=exitcode,
            killed=(exitcode is not None and exitcode < 0) or bool(oom_kills),
            signal=_signal_name(exitcode), timed_out=timed_out, limit_mb=limit_mb,
            limit_kind="none" if group is None else "cgroup",
            peak_mb=None if group is None else group.peak_mb(),
            anon_mb=stat.get("anon_mb"), file_mb=stat.get("file_mb"), oom_kills=oom_kills,
            limit_hits=None if group is None else group.limit_hits(),
            read_mb=None if read_bytes is None else read_bytes / MIB,
            child_peak_rss_mb=reply.get("peak_rss_mb"), seconds=seconds,
            error=setup_error or reply.get("error"), traceback=reply.get("traceback"))


def allocate_mb(mb: float, seconds: float = 0.0) -> float:
    """Allocate ``mb`` MiB with numpy and touch every page (so it is really held), hold it
    ``seconds``; return the MiB held. A child to show a limit killing."""
    import numpy as np

    block = np.ones(int(mb * MIB), dtype=np.uint8)
    time.sleep(seconds)
    return block.nbytes / MIB


def read_file_mb(path: str | os.PathLike, chunk_mb: float = 4.0) -> float:
    """Read the file ``path`` through in chunks (page cache fills, nothing is kept); return the MiB
    read. A child to show that page cache counts against a limit but is reclaimed, not killed."""
    total = 0
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(int(chunk_mb * MIB)):
            total += len(chunk)
    return total / MIB


# -- the page cache -----------------------------------------------------------------------------
def evict(path: str | os.PathLike) -> None:
    """Ask the kernel to drop the page cache of the file ``path`` (no root needed): ``fdatasync``
    (dirty pages are not dropped; Linux allows it on a read-only descriptor, and an error there is
    ignored), then ``posix_fadvise(POSIX_FADV_DONTNEED)``. Pages still mapped by a live mmap
    (a ``np.memmap`` that has been read, in any process) stay: :func:`evict_and_check` says so.
    ``NotImplementedError`` where ``posix_fadvise`` is missing (macOS, Windows)."""
    if not hasattr(os, "posix_fadvise"):
        raise NotImplementedError(f"cannot evict {path} from the page cache on {sys.platform}: "
                                  f"no posix_fadvise (Linux only)")
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            os.fdatasync(fd)
        except OSError:
            pass
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


_WINDOW = 256 * MIB
"""Bytes of the file mapped at a time by :func:`resident_mb` (a multi-GiB file in windows)."""
_LOW_BIT = bytes(i & 1 for i in range(256))
"""``bytes.translate`` table keeping bit 0 of each ``mincore`` byte (page resident)."""


def _libc() -> Any:
    """libc's ``mmap``, ``munmap`` and ``mincore`` through ctypes; NotImplementedError without."""
    if os.name != "posix":
        raise NotImplementedError(f"no mincore on {sys.platform}: cannot tell which pages are cached")
    libc = ctypes.CDLL(None, use_errno=True)
    if not hasattr(libc, "mincore"):
        raise NotImplementedError(f"no mincore in this libc ({sys.platform})")
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int64]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    return libc


def _resident_pages(path: str | os.PathLike) -> tuple[int, int]:
    """(resident pages, pages) of the file: ``mincore`` on a ``PROT_READ`` shared map of each window
    of the file (mapping reads nothing; the map is undone at once)."""
    libc = _libc()
    page = mmap.PAGESIZE
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        resident = 0
        for offset in range(0, size, _WINDOW):
            length = min(_WINDOW, size - offset)
            addr = libc.mmap(None, length, mmap.PROT_READ, mmap.MAP_SHARED, fd, offset)
            if addr in (None, ctypes.c_void_p(-1).value):
                err = ctypes.get_errno()
                raise OSError(err, f"mmap of {path} failed: {os.strerror(err)}")
            try:
                vec = ctypes.create_string_buffer(-(-length // page))
                if libc.mincore(ctypes.c_void_p(addr), length, vec) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"mincore on {path} failed: {os.strerror(err)}")
                resident += vec.raw.translate(_LOW_BIT).count(1)
            finally:
                libc.munmap(ctypes.c_void_p(addr), length)
        return resident, -(-size // page)
    finally:
        os.close(fd)


def resident_mb(path: str | os.PathLike) -> float:
    """MiB of the file ``path`` in the page cache now (``mincore``; NotImplementedError without)."""
    return _resident_pages(path)[0] * mmap.PAGESIZE / MIB


def resident_fraction(path: str | os.PathLike) -> float:
    """Fraction of the file's pages in the page cache now, 0 to 1 (0 for an empty file)."""
    resident, pages = _resident_pages(path)
    return resident / pages if pages else 0.0


def evict_and_check(path: str | os.PathLike, max_fraction: float = 0.05) -> float:
    """:func:`evict` the file, then return the fraction of it still cached; RuntimeError naming the
    file if more than ``max_fraction`` stays (mapped by a live memmap that has been read, in this
    process or another, or being written)."""
    evict(path)
    left = resident_fraction(path)
    if left > max_fraction:
        raise RuntimeError(f"{left:.0%} of {path} is still in the page cache after eviction (more than "
                           f"{max_fraction:.0%}): pages mapped by a live mmap (a np.memmap that has been read, "
                           f"here or in another process) cannot be dropped; delete the memmap first")
    return left
