"""Benchmark (not a test): block shuffling's byte budget on photo-sized rows, against random rows.

A synthetic file of 224x224x3 uint8 rows (``--rows`` of them, about 2.9 GiB at 20,000), sorted by
class as data often arrives, and lesson 07's 784-byte digits, read by ``MemmapDataset``:

1. **Memory within the budget** (each in a fresh process, the pipeline alone, no model): the peak
   anonymous memory above the pipeline's baseline (the dataset built, its order drawn) over
   ``--batches`` batches, for the default budget and a budget that binds, at both row sizes; the
   target: at most the budget plus one batch (float32, as served).
2. **Speed under a memory limit** (where a memory cgroup can be made): rows/s of the photo file read
   alone by block shuffling and by the default random rows, each in a child under one limit (the
   reader's baseline, the block route's two windows, and ``--cache-mb`` of page cache), the file
   evicted first, in interleaved rounds.
3. **Mixing, by the loss**: a small convolutional model trained ``--steps`` steps on the sorted photo
   file with a full shuffle (random rows) and with block shuffling, ``--seeds`` seeds each, then
   evaluated on held-out rows: the median loss of block shuffling against the full shuffle's worst
   seed plus a quarter of its median (lesson 07's margin).

Writes ``results/benchmarks/block_budget.json`` and prints each figure::

    python tests/bench_block_budget.py [--rows 20000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from helpers.config import MIB, data_dir, get_scale  # noqa: E402
from helpers.lab import budget  # noqa: E402
from helpers.report.results import write_benchmark  # noqa: E402

SIDE, CLASSES, BATCH = 224, 10, 32


def make_photos(folder: Path, rows: int, seed: int = 0, sort: bool = True) -> tuple[str, str]:
    """``x.npy`` of ``rows`` 224x224x3 uint8 images and ``y.npy`` of their classes (sorted by class
    when ``sort``): each class a colour cast under noise and a random brightness, so that a small
    model learns them in a few hundred steps. Written chunk by chunk, under temporary names, then renamed."""
    x_path, y_path = folder / "x.npy", folder / "y.npy"
    if x_path.exists() and y_path.exists():
        return str(x_path), str(y_path)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    y = np.sort(rng.integers(0, CLASSES, rows)) if sort else rng.integers(0, CLASSES, rows)
    colours = np.random.default_rng(99).uniform(-30, 30, (CLASSES, 3)).astype(np.float32)
    tmp_x = folder / f"x.npy.{os.getpid()}.tmp"
    x = np.lib.format.open_memmap(tmp_x, mode="w+", dtype=np.uint8, shape=(rows, SIDE, SIDE, 3))
    for start in range(0, rows, 256):
        stop = min(rows, start + 256)
        base = rng.uniform(90, 160, (stop - start, 1, 1, 1)).astype(np.float32)
        noise = rng.normal(0, 40, (stop - start, SIDE, SIDE, 3)).astype(np.float32)
        x[start:stop] = np.clip(base + colours[y[start:stop]][:, None, None, :] + noise, 0, 255)
    x.flush()
    del x
    np.save(folder / f"y.{os.getpid()}.tmp.npy", y.astype(np.uint8))
    os.replace(tmp_x, x_path)
    os.replace(folder / f"y.{os.getpid()}.tmp.npy", y_path)
    return str(x_path), str(y_path)


def pipeline_peak(x_path: str, y_path: str, batches: int, window_mb: float | None) -> dict:
    """The pipeline alone in this (fresh) process: peak anonymous MiB above its baseline."""
    from helpers.lab.memory import MemoryMonitor
    from helpers.pipelines.memmap_dataset import MemmapDataset

    ds = MemmapDataset(x_path, y_path, BATCH, window_mb=window_mb)
    ds.order()                                     # the epoch's order: part of the baseline
    batch_mb = BATCH * ds.row_bytes * 4 / MIB      # served as float32
    batches = max(batches, 3 * ds.window_blocks * ds.block_rows // BATCH)   # through three windows at least
    with MemoryMonitor() as mon:
        for i in range(min(batches, len(ds))):
            xb, yb = ds[i]
            del xb, yb
    return {"window_mb": window_mb, "batches": min(batches, len(ds)), "row_bytes": ds.row_bytes, "block_rows": ds.block_rows,
            "window_blocks": ds.window_blocks, "windows_mb": 2 * ds.window_bytes() / MIB,
            "batch_mb": batch_mb, "peak_anon_mb": mon.peak_anon_mb}


def read_speed(x_path: str, y_path: str, batches: int, window_mb: float | None) -> dict:
    """Rows/s of ``batches`` batches read alone, and bytes read from storage per row."""
    from helpers.pipelines.memmap_dataset import MemmapDataset

    ds = MemmapDataset(x_path, y_path, BATCH, window_mb=window_mb)
    ds.order()
    t0 = time.perf_counter()
    rows = sum(len(ds[i][1]) for i in range(min(batches, len(ds))))
    seconds = time.perf_counter() - t0
    with open("/proc/self/io") as f:
        read = int(next(line for line in f if line.startswith("read_bytes")).split()[1])
    return {"rows_per_s": rows / seconds, "read_bytes_per_row": read / rows}


def small_cnn():
    import keras

    model = keras.Sequential([keras.Input((SIDE, SIDE, 3)), keras.layers.Conv2D(8, 8, strides=8, activation="relu"),
                              keras.layers.Conv2D(16, 3, strides=2, activation="relu"),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(CLASSES)])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return model


def trained_loss(x_path: str, y_path: str, test_x: str, test_y: str, steps: int, seed: int,
                 window_mb: float | None) -> dict:
    """Loss and accuracy on held-out rows after ``steps`` steps (in a fresh process)."""
    from helpers.lab.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    import keras

    from helpers.lab.order import label_mixing
    from helpers.pipelines.memmap_dataset import MemmapDataset

    keras.utils.set_random_seed(seed)
    ds = MemmapDataset(x_path, y_path, BATCH, seed=seed, window_mb=window_mb)
    model = small_cnn()
    model.fit(ds, steps_per_epoch=steps, epochs=1, shuffle=False, verbose=0)
    test = MemmapDataset(test_x, test_y, 256, shuffle=False)
    loss, accuracy = model.evaluate(test, verbose=0)
    batches = [ds[i][1] for i in range(min(20, len(ds)))]
    return {"loss": float(loss), "accuracy": float(accuracy),
            "label_mixing": float(label_mixing(batches, np.load(y_path, mmap_mode="r")))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--bind-mb", type=float, default=24, help="a budget that binds at both row sizes")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cache-mb", type=float, default=256, help="page-cache room under the limit")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    from helpers.datasets import ensure_sorted_digits
    from helpers.lab.recipes import in_fresh_process
    from helpers.pipelines.memmap_dataset import WINDOW_MB

    folder = data_dir(get_scale("ci")).parent / "benchmarks" / f"photos_{args.rows}_v2"
    t0 = time.perf_counter()
    px, py = make_photos(folder, args.rows)
    tx, ty = make_photos(folder / "test", 1000, seed=1, sort=False)
    digits = ensure_sorted_digits(get_scale("ci"), progress=False)
    dx, dy = str(digits.x_path), str(digits.y_path)
    file_mb = os.path.getsize(px) / MIB
    print(f"photo file: {args.rows:,} rows of {SIDE}x{SIDE}x3 uint8, {file_mb:,.0f} MiB, sorted by class "
          f"(ready in {time.perf_counter() - t0:.0f} s)")
    out: dict = {"rows": args.rows, "file_mb": file_mb, "batch_size": BATCH, "memory": [], "target":
                 "peak anonymous memory above the pipeline's baseline <= the budget + one batch (float32)"}

    # 1. memory within the budget
    for name, (x, y) in {"photos 147 KiB rows": (px, py), "digits 784 B rows": (dx, dy)}.items():
        for window_mb in (WINDOW_MB, args.bind_mb):
            m = in_fresh_process(pipeline_peak, x, y, args.batches, window_mb)
            m["rows"], m["holds"] = name, m["peak_anon_mb"] <= m["window_mb"] + m["batch_mb"]
            out["memory"].append(m)
            print(f"{name:<20} window_mb={window_mb:>5g}: blocks of {m['block_rows']} rows, {m['window_blocks']} a "
                  f"window ({m['windows_mb']:,.1f} MiB for two); peak anon +{m['peak_anon_mb']:,.1f} MiB "
                  f"<= {window_mb:g} + one batch {m['batch_mb']:,.1f}: {m['holds']}")

    # 2. speed under a memory limit, interleaved rounds
    place = budget.find_memory_cgroup()
    if place is None:
        out["limited"] = f"no memory cgroup here: {budget.why_no_cgroup()}"
        print(out["limited"])
    else:
        from helpers.pipelines.memmap_dataset import MemmapDataset

        probe = budget.run_limited(read_speed, px, py, 5, None, limit_mb=4096)
        probe.value()                                   # raises if the probe failed
        baseline = probe.peak_mb if probe.peak_mb is not None else 200.0   # no memory.peak (old cgroup v2)
        windows = 2 * MemmapDataset(px, py, BATCH, window_mb=WINDOW_MB).window_bytes() / MIB
        limit = baseline + windows + args.cache_mb
        speeds: dict[str, list[float]] = {"random rows": [], "blocks": []}
        for _ in range(args.rounds):
            for name, window_mb in (("random rows", None), ("blocks", WINDOW_MB)):
                budget.evict(px)
                run = budget.run_limited(read_speed, px, py, args.batches, window_mb, limit_mb=limit, timeout=1200)
                speeds[name].append(run.value()["rows_per_s"])
        ratios = [b / r for b, r in zip(speeds["blocks"], speeds["random rows"])]
        out["limited"] = {"limit_mb": limit, "baseline_mb": baseline, "windows_mb": windows, "rows_per_s": speeds, "blocks_over_random": ratios,
                          "median_ratio": float(np.median(ratios))}
        print(f"under a {limit:,.0f} MiB limit ({args.cache_mb:g} MiB of page cache room), file {file_mb:,.0f} MiB: "
              f"random rows {np.median(speeds['random rows']):,.0f} rows/s, blocks {np.median(speeds['blocks']):,.0f}"
              f" rows/s: {np.median(ratios):.1f}x (rounds {', '.join(f'{r:.1f}' for r in ratios)})")

    # 3. mixing, by the loss after the same steps
    quality: dict[str, list[dict]] = {"full shuffle": [], "blocks": []}
    for seed in range(args.seeds):
        for name, window_mb in (("full shuffle", None), ("blocks", WINDOW_MB)):
            quality[name].append(in_fresh_process(trained_loss, px, py, tx, ty, args.steps, seed, window_mb))
    full = [q["loss"] for q in quality["full shuffle"]]
    blocks = [q["loss"] for q in quality["blocks"]]
    bound = max(full) + 0.25 * float(np.median(full))
    out["quality"] = {"steps": args.steps, "runs": quality, "blocks_median_loss": float(np.median(blocks)),
                      "full_bound": bound, "holds": float(np.median(blocks)) <= bound}
    for name, qs in quality.items():
        losses = ", ".join(f"{q['loss']:.3f}" for q in qs)
        accuracies = ", ".join(f"{q['accuracy']:.3f}" for q in qs)
        mixing = np.median([q["label_mixing"] for q in qs])
        print(f"{name:<13} after {args.steps} steps: loss {losses}, accuracy {accuracies}, mixing {mixing:.2f}")
    print(f"block shuffling's median loss {np.median(blocks):.3f} <= the full shuffle's worst + a quarter of its median "
          f"{bound:.3f}: {out['quality']['holds']}")

    write_benchmark("block_budget", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
