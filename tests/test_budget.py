"""A real memory budget: finding a cgroup (fake v1/v2 trees), making and removing one, a child
killed by a real limit, and the page cache of a file (evicted, measured, kept by a live memmap).

The fake trees stand in for the kernel: ``helpers.lab.budget._make_folder`` is replaced by one that
writes the interface files a kernel would create, and each test deletes its fake files before the
``with`` ends, because :meth:`Cgroup.remove` only ``rmdir``s (as on a real cgroup filesystem).
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from helpers.config import MIB
from helpers.lab import budget
from helpers.lab.budget import (CgroupPlace, NoCgroupError, allocate_mb, check_limit, evict, evict_and_check,
                                find_memory_cgroup, memory_cgroup, read_file_mb, resident_fraction, resident_mb,
                                run_limited, why_no_cgroup)


def fake_kernel(monkeypatch, files: dict[str, str]) -> None:
    """New cgroup folders get ``files`` (name -> text), like the kernel's interface files."""
    def make(path: Path) -> None:
        path.mkdir()
        for name, text in files.items():
            (path / name).write_text(text)
    monkeypatch.setattr(budget, "_make_folder", make)


def empty(folder: Path) -> None:
    """Delete a fake cgroup's files, so that its ``rmdir`` can succeed."""
    for f in folder.iterdir():
        f.unlink()


# -- finding a place: fake trees ----------------------------------------------------------------
def v2_tree(tmp_path: Path, delegated: bool) -> tuple[str, str]:
    """A cgroup2 mount at tmp_path; this process in ``/user.slice/app.scope``. ``delegated``:
    ``user.slice`` enables memory for its children."""
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (tmp_path / "cgroup.subtree_control").write_text("cpu\n")
    (tmp_path / "user.slice" / "app.scope").mkdir(parents=True)
    (tmp_path / "user.slice" / "cgroup.subtree_control").write_text("memory pids\n" if delegated else "\n")
    (tmp_path / "user.slice" / "app.scope" / "cgroup.subtree_control").write_text("\n")
    mounts = f"sysfs /sys sysfs rw 0 0\ncgroup2 {tmp_path} cgroup2 rw,nosuid,nodev 0 0\n"
    return mounts, "0::/user.slice/app.scope\n"


def test_v2_prefers_the_nearest_ancestor_that_delegates_memory(tmp_path):
    mounts, own = v2_tree(tmp_path, delegated=True)
    place = find_memory_cgroup(mounts=mounts, self_cgroup=own)
    assert place == CgroupPlace(2, tmp_path / "user.slice", tmp_path, nested=True, enable_memory=False)
    assert why_no_cgroup(mounts=mounts, self_cgroup=own) == ""


def test_v2_falls_back_to_the_root_and_enables_memory_there(tmp_path, monkeypatch):
    mounts, own = v2_tree(tmp_path, delegated=False)
    place = find_memory_cgroup(mounts=mounts, self_cgroup=own)
    assert place == CgroupPlace(2, tmp_path, tmp_path, nested=False, enable_memory=True)
    fake_kernel(monkeypatch, {"memory.max": "max\n", "memory.swap.max": "max\n", "cgroup.procs": ""})
    with memory_cgroup(50, place=place) as cg:
        assert cg.path.parent == tmp_path and "memory" in (tmp_path / "cgroup.subtree_control").read_text()
        assert (cg.path / "memory.max").read_text() == str(50 * MIB)
        empty(cg.path)
    assert not cg.path.exists()


def test_v2_root_prefix_and_a_fake_cgroup_read_and_removed(tmp_path, monkeypatch):
    mount = tmp_path / "sys" / "fs" / "cgroup"
    mount.mkdir(parents=True)
    mounts, own = v2_tree(mount, delegated=True)
    mounts = mounts.replace(str(mount), "/sys/fs/cgroup")
    place = find_memory_cgroup(mounts=mounts, self_cgroup=own, root=tmp_path)
    assert place is not None and place.parent == mount / "user.slice" and place.version == 2
    fake_kernel(monkeypatch, {
        "memory.max": "max\n", "memory.swap.max": "max\n", "cgroup.procs": "",
        "memory.peak": f"{123 * MIB}\n", "memory.current": f"{7 * MIB}\n",
        "memory.stat": f"anon {80 * MIB}\nfile {40 * MIB}\nkernel 12345\n",
        "memory.events": "low 0\nhigh 0\nmax 17\noom 1\noom_kill 1\n"})
    with memory_cgroup(100, place=place) as cg:
        assert cg.path.is_dir() and cg.path.name.startswith(f"tutorial-{os.getpid()}-")
        assert cg.version == 2 and cg.limit_mb == 100
        assert (cg.path / "memory.max").read_text() == "104857600"
        assert (cg.path / "memory.swap.max").read_text() == "0"
        assert cg.peak_mb() == 123 and cg.usage_mb() == 7
        stat = cg.stat()
        assert stat["anon_mb"] == 80 and stat["file_mb"] == 40 and stat["kernel"] == 12345
        assert cg.oom_kills() == 1 and cg.limit_hits() == 17 and cg.pids() == []
        empty(cg.path)
    assert not cg.path.exists()


def test_v2_without_a_swap_file_or_peak_file(tmp_path, monkeypatch):
    mounts, own = v2_tree(tmp_path, delegated=True)
    fake_kernel(monkeypatch, {"memory.max": "max\n"})
    with memory_cgroup(1.5, place=find_memory_cgroup(mounts=mounts, self_cgroup=own)) as cg:
        assert not (cg.path / "memory.swap.max").exists()
        assert (cg.path / "memory.max").read_text() == str(int(1.5 * MIB))
        assert cg.peak_mb() is None and cg.oom_kills() is None
        assert cg.stat()["anon_mb"] == 0
        empty(cg.path)


def v1_tree(tmp_path: Path) -> tuple[str, str]:
    (tmp_path / "memory" / "process_api" / "abc").mkdir(parents=True)
    (tmp_path / "cpu").mkdir()
    mounts = (f"cgroup {tmp_path / 'cpu'} cgroup rw,relatime,cpu 0 0\n"
              f"cgroup {tmp_path / 'memory'} cgroup rw,relatime,memory 0 0\n"
              f"cgroup2 {tmp_path / 'unified'} cgroup2 rw,relatime 0 0\n")
    return mounts, "9:name=systemd:/\n4:memory:/process_api/abc\n1:cpu:/\n0::/\n"


def test_v1_is_made_under_the_process_own_cgroup_with_swap_limited(tmp_path, monkeypatch):
    mounts, own = v1_tree(tmp_path)
    place = find_memory_cgroup(mounts=mounts, self_cgroup=own)
    assert place == CgroupPlace(1, tmp_path / "memory" / "process_api" / "abc", tmp_path / "memory", nested=True)
    fake_kernel(monkeypatch, {
        "memory.limit_in_bytes": "9223372036854771712\n", "memory.memsw.limit_in_bytes": "9223372036854771712\n",
        "memory.max_usage_in_bytes": f"{200 * MIB}\n", "memory.usage_in_bytes": f"{3 * MIB}\n",
        "memory.failcnt": "4\n", "memory.memsw.failcnt": "9\n", "cgroup.procs": "",
        "memory.oom_control": "oom_kill_disable 1\nunder_oom 0\noom_kill 2\n",
        "memory.stat": f"cache 1\nrss 2\ntotal_cache {30 * MIB}\ntotal_rss {150 * MIB}\n"})
    with memory_cgroup(200, place=place) as cg:
        assert cg.version == 1 and cg.path.parent == place.parent
        assert (cg.path / "memory.limit_in_bytes").read_text() == str(200 * MIB)
        assert (cg.path / "memory.memsw.limit_in_bytes").read_text() == str(200 * MIB)
        assert (cg.path / "memory.oom_control").read_text() == "0"  # the OOM killer switched back on
        assert cg.peak_mb() == 200 and cg.usage_mb() == 3 and cg.limit_hits() == 9
        assert cg.stat()["anon_mb"] == 150 and cg.stat()["file_mb"] == 30
        (cg.path / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
        assert cg.oom_kills() == 2
        empty(cg.path)
    assert not cg.path.exists()


def test_v1_without_its_own_folder_uses_the_mount_root(tmp_path):
    mounts, _ = v1_tree(tmp_path)
    place = find_memory_cgroup(mounts=mounts, self_cgroup="4:memory:/docker/0123\n")
    assert place is not None and place.parent == tmp_path / "memory" and not place.nested


def test_the_cgroup_is_removed_after_an_exception(tmp_path, monkeypatch):
    mounts, own = v1_tree(tmp_path)
    fake_kernel(monkeypatch, {"memory.limit_in_bytes": "0\n"})
    with pytest.raises(KeyError):
        with memory_cgroup(10, place=find_memory_cgroup(mounts=mounts, self_cgroup=own)) as cg:
            empty(cg.path)
            raise KeyError("boom")
    assert not cg.path.exists()


def test_a_permission_error_names_the_path_and_root(tmp_path, monkeypatch):
    mounts, own = v1_tree(tmp_path)

    def refuse(path: Path) -> None:
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(budget, "_make_folder", refuse)
    with pytest.raises(PermissionError, match=r"process_api/abc/tutorial-.*needs root"):
        with memory_cgroup(10, place=find_memory_cgroup(mounts=mounts, self_cgroup=own)):
            pass


# -- no cgroup ----------------------------------------------------------------------------------
def test_no_memory_controller_gives_none_and_a_reason(tmp_path):
    (tmp_path / "cgroup.controllers").write_text("hugetlb\n")
    mounts = f"cgroup {tmp_path}/cpu cgroup rw,cpu 0 0\ncgroup2 {tmp_path} cgroup2 rw 0 0\n"
    assert find_memory_cgroup(mounts=mounts, self_cgroup="0::/\n") is None
    why = why_no_cgroup(mounts=mounts, self_cgroup="0::/\n")
    assert "no memory controller (cgroup.controllers: hugetlb)" in why and "v1" in why
    assert "no cgroup hierarchy" in why_no_cgroup(mounts="proc /proc proc rw 0 0\n", self_cgroup="")


def test_nothing_writable_gives_none_and_says_root(tmp_path, monkeypatch):
    mounts, own = v1_tree(tmp_path)
    monkeypatch.setattr(budget, "_writable", lambda path: False)
    assert find_memory_cgroup(mounts=mounts, self_cgroup=own) is None
    why = why_no_cgroup(mounts=mounts, self_cgroup=own)
    assert f"neither {tmp_path}/memory/process_api/abc nor {tmp_path}/memory is writable" in why
    assert "needs root or a delegated cgroup" in why


def test_without_a_place_a_limit_raises_and_says_why(monkeypatch):
    monkeypatch.setattr(budget, "_locate", lambda *a: (None, "the cgroup tree is read-only"))
    with pytest.raises(NoCgroupError, match="no memory cgroup can be made here: the cgroup tree is read-only"):
        with memory_cgroup(100):
            pass
    with pytest.raises(NoCgroupError, match="read-only"):
        run_limited(allocate_mb, 1, limit_mb=100)


# -- bad input ----------------------------------------------------------------------------------
@pytest.mark.parametrize("limit", [0, -5, float("nan")])
def test_a_limit_that_is_not_positive_is_refused(limit, tmp_path):
    with pytest.raises(ValueError, match="positive"):
        with memory_cgroup(limit, place=CgroupPlace(1, tmp_path, tmp_path, nested=False)):
            pass
    with pytest.raises(ValueError, match="positive"):
        run_limited(allocate_mb, 1, limit_mb=limit)
    assert list(tmp_path.iterdir()) == []


def test_check_limit_names_both_figures():
    with pytest.raises(ValueError, match=r"a memory limit of 300 MiB is below the 450 MiB that TensorFlow and the "
                                         r"model need"):
        check_limit(300, 450)
    check_limit(500, 450)
    with pytest.raises(ValueError, match="positive"):
        check_limit(0, 450)


# -- a real cgroup (root, Linux, a writable memory controller: as on the tutorial's build machine) ---
PLACE = find_memory_cgroup() if sys.platform.startswith("linux") else None
real = pytest.mark.skipif(PLACE is None or os.geteuid() != 0,
                          reason=f"no memory cgroup can be made here ({why_no_cgroup()})")


def leftovers() -> list[str]:
    """Cgroups of this process still in the place (there must be none after each run)."""
    return [p.name for p in PLACE.parent.iterdir() if p.name.startswith(f"tutorial-{os.getpid()}-")]


@real
def test_a_child_over_its_limit_is_killed_and_the_parent_goes_on():
    t0 = time.monotonic()
    run = run_limited(allocate_mb, 400, limit_mb=200)
    assert time.monotonic() - t0 < 10
    assert run.killed and run.exitcode == -9 and run.signal == "SIGKILL" and not run.timed_out
    assert run.result is None and run.limit_kind == "cgroup" and run.limit_mb == 200
    assert 180 <= run.peak_mb <= 200 + 1
    assert run.oom_kills in (None, 1) and run.read_mb is None
    with pytest.raises(RuntimeError, match=r"allocate_mb killed by SIGKILL \(exit code -9\).*200 MiB"):
        run.value()
    assert leftovers() == []


@real
def test_a_child_within_its_limit_returns_its_result():
    run = run_limited(allocate_mb, 20, limit_mb=200)
    assert run.ok and not run.killed and run.exitcode == 0 and run.value() == 20.0
    assert 20 <= run.peak_mb < 200 and isinstance(run.read_mb, float) and run.oom_kills in (None, 0)
    unlimited = run_limited(allocate_mb, 20, limit_mb=None)
    assert unlimited.value() == 20.0 and unlimited.limit_kind == "none" and unlimited.peak_mb is None
    assert leftovers() == []


@real
def test_an_error_in_the_child_comes_back_as_text():
    run = run_limited(read_file_mb, "/nonexistent/file", limit_mb=100)
    assert not run.ok and not run.killed and run.error.startswith("FileNotFoundError")
    with pytest.raises(RuntimeError, match="read_file_mb raised FileNotFoundError"):
        run.value()


@real
def test_a_child_past_its_timeout_is_killed_and_the_cgroup_removed():
    run = run_limited(time.sleep, 30, limit_mb=100, timeout=1)
    assert run.timed_out and run.killed and run.signal == "SIGKILL" and run.seconds < 5
    assert leftovers() == []


@real
def test_a_process_still_in_the_cgroup_at_exit_is_killed():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        with memory_cgroup(100) as cg:
            cg.add(proc.pid)
            assert cg.pids() == [proc.pid]
        assert proc.wait(timeout=5) == -9 and not cg.path.exists()
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def big_file(tmp_path):
    """64 MiB of random bytes (incompressible), on disk."""
    path = tmp_path / "big.bin"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 64 * MIB, dtype=np.uint8).tobytes())
    return path


@real
def test_page_cache_counts_against_the_limit_but_is_reclaimed(big_file):
    evict_and_check(big_file)
    run = run_limited(read_file_mb, big_file, limit_mb=32)
    assert run.ok and run.value() == 64 and run.peak_mb <= 32 + 1  # read twice the limit, not killed
    assert run.read_mb >= 60
    # pages first read here are charged here: the limited child reads them for free
    evict(big_file)
    read_file_mb(big_file)
    again = run_limited(read_file_mb, big_file, limit_mb=32)
    assert again.ok and again.read_mb < 8 and again.peak_mb < 24


# -- the page cache (no root) -------------------------------------------------------------------
linux = pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="no posix_fadvise (not Linux)")


@linux
def test_evict_drops_a_file_from_the_page_cache(big_file):
    big_file.read_bytes()
    assert resident_fraction(big_file) > 0.95 and resident_mb(big_file) > 60
    evict(big_file)
    assert resident_fraction(big_file) < 0.05
    big_file.read_bytes()
    assert evict_and_check(big_file) < 0.05


@linux
def test_a_live_memmap_that_was_read_keeps_its_pages(big_file):
    x = np.memmap(big_file, dtype=np.uint8, mode="r")
    int(x[::4096].sum())  # touch every page: now mapped by this process
    with pytest.raises(RuntimeError, match=r"100% of .*big\.bin is still in the page cache.*live mmap"):
        evict_and_check(big_file)
    del x
    assert evict_and_check(big_file) < 0.05


@linux
def test_an_empty_file_has_nothing_cached(tmp_path):
    (tmp_path / "empty").write_bytes(b"")
    assert resident_fraction(tmp_path / "empty") == 0.0 and evict_and_check(tmp_path / "empty") == 0.0


def test_the_switch_makes_a_machine_without_cgroups(monkeypatch):
    """TUTORIAL_NO_CGROUP: a lesson takes its fallback (evicting) here too, so that path is tested."""
    monkeypatch.setenv(budget.NO_CGROUP_ENV, "1")
    assert budget.find_memory_cgroup() is None
    assert budget.NO_CGROUP_ENV in budget.why_no_cgroup()
