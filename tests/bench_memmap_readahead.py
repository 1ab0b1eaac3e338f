"""Benchmark (not a test): ``MemmapDataset`` with the kernel's read-ahead off (``MADV_RANDOM``, the
default for shuffled reads) and on, in one run, interleaved rounds.

1. Warm page cache, no limit: samples/s of ``fit`` (digits CNN) on the scale's digits, both settings
   in turn, ``--rounds`` times: turning read-ahead off must not make the warm case slower.
2. Lesson 07's class-sorted file (768 MiB) under a memory cgroup leaving ``--cache-mb`` of page cache
   (where a cgroup can be made): random batch reads alone, each setting in a fresh child under the
   limit, the file evicted before each child.

Writes ``results/benchmarks/memmap_readahead.json`` and prints the medians with their spread::

    python tests/bench_memmap_readahead.py [--scale default] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from helpers.config import MIB, get_scale  # noqa: E402
from helpers.lab import budget  # noqa: E402
from helpers.report.results import write_benchmark  # noqa: E402


def fit_speed(x_path: str, y_path: str, readahead: bool, steps: int) -> float:
    """samples/s of fit on a MemmapDataset (run in a fresh process)."""
    from helpers.lab.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    from helpers.lab.throughput import time_fit
    from helpers.models import digits_cnn
    from helpers.pipelines.memmap_dataset import MemmapDataset

    model = digits_cnn()
    ds = MemmapDataset(x_path, y_path, 128, readahead=readahead)
    return time_fit(model, ds, batch_size=128, steps=steps, warmup=10).samples_per_s


def random_reads(x_path: str, y_path: str, readahead: bool, batches: int) -> dict:
    """Rows/s of random batches read alone, and bytes read from storage per row."""
    from helpers.pipelines.memmap_dataset import MemmapDataset

    ds = MemmapDataset(x_path, y_path, 128, readahead=readahead)
    t0 = time.perf_counter()
    rows = sum(len(ds[i][1]) for i in range(batches))
    seconds = time.perf_counter() - t0
    with open("/proc/self/io") as f:
        read = int(next(line for line in f if line.startswith("read_bytes")).split()[1])
    return {"rows_per_s": rows / seconds, "read_bytes_per_row": read / rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="default")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--cache-mb", type=float, default=256, help="page-cache room under the limit")
    args = parser.parse_args()
    from helpers.datasets import ensure_digits
    from helpers.lab.recipes import in_fresh_process

    scale = get_scale(args.scale)
    d = ensure_digits(scale, progress=False)
    xp, yp = str(d.x_path), str(d.y_path)
    out: dict = {"scale": scale.name, "rounds": args.rounds, "steps": args.steps, "warm_fit_samples_per_s": {}}
    warm = {False: [], True: []}
    for _ in range(args.rounds):
        for readahead in (False, True):
            warm[readahead].append(in_fresh_process(fit_speed, xp, yp, readahead, args.steps))
    out["warm_fit_samples_per_s"] = {"readahead_off": warm[False], "readahead_on": warm[True]}
    ratio = float(np.median(warm[False]) / np.median(warm[True]))
    out["warm_ratio_off_over_on"] = ratio
    print(f"warm cache, fit: read-ahead off {np.median(warm[False]):,.0f} ({min(warm[False]):,.0f}-"
          f"{max(warm[False]):,.0f}), on {np.median(warm[True]):,.0f} ({min(warm[True]):,.0f}-{max(warm[True]):,.0f}) "
          f"samples/s: off/on {ratio:.2f}")
    place = budget.find_memory_cgroup()
    if place is None:
        out["limited"] = f"no memory cgroup here: {budget.why_no_cgroup()}"
        print(out["limited"])
    else:
        from helpers.datasets import ensure_sorted_digits

        big = ensure_sorted_digits(get_scale("ci"), progress=False)   # lesson 07's 768 MiB file
        bx, by = str(big.x_path), str(big.y_path)
        out["limited"] = {"file_mb": os.path.getsize(bx) / MIB, "page_cache_room_mb": args.cache_mb}
        for readahead in (False, True):
            budget.evict(bx)
            run = budget.run_limited(random_reads, bx, by, readahead, 200, limit_mb=args.cache_mb + 60)
            out["limited"][f"readahead_{'on' if readahead else 'off'}"] = {**run.value(), "peak_mb": run.peak_mb}
            print(f"limit {args.cache_mb + 60:.0f} MiB, file {out['limited']['file_mb']:,.0f} MiB, read-ahead "
                  f"{'on ' if readahead else 'off'}: {run.value()['rows_per_s']:,.0f} rows/s, "
                  f"{run.value()['read_bytes_per_row']:,.0f} bytes read per 784-byte row")
    write_benchmark("memmap_readahead", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
