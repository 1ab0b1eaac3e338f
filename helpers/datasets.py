"""Deterministic, generated data sets: nothing is downloaded.

**Digits** (lessons 01-03, 05): 28x28 grayscale images of 0-9, stored as ``x.npy`` (uint8, N x 28 x 28)
and ``y.npy`` (uint8, N). Each image is a glyph of Pillow's bundled font, drawn at one of three stroke
widths, then rotated, scaled, sheared and shifted at random, with random contrast and noise. Why
rendered glyphs rather than a digits set a package ships: it needs no extra package and no download,
it scales to any N (the lessons need ~1 GB of float32 and 4x that), and the signal is real (a small
CNN learns it; shuffled labels give 10 %), so a mis-ordered X/y shows up as chance accuracy.

**Class-sorted digits** (lesson 07): a file larger than a memory limit, sorted by class as data
often arrives, made fast from the digits' own rows (:func:`make_sorted_digits`).

**Fish** (lessons 04-06): JPEG files ``<root>/<count>/<id>.jpg``, each showing ``count`` fish-like
shapes (an ellipse body and a triangle tail) on a textured water background: a counting (regression)
target a small CNN can learn.

Both are written so that nothing half-written looks complete: arrays are filled chunk by chunk
through ``np.lib.format.open_memmap`` (never the whole array in RAM) under a temporary name, renamed
when full, and a ``meta.json`` written last marks the set complete. Generation is skipped when a
complete set with the same parameters is already there. Every random draw comes from
``np.random.default_rng([seed, chunk])``, so the result does not depend on when it was generated.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from helpers.config import Scale, data_dir, get_scale, write_atomic

CHUNK = 8192
"""Digits generated (and written) per chunk; part of the seed derivation, so keep it fixed."""
FORMAT_VERSION = 1
"""Bump when the generators change, so stale data is regenerated."""


# -- complete sets ----------------------------------------------------------------------------
def _write_meta(folder: Path, params: dict) -> None:
    """``meta.json``, written last: it marks the set complete."""
    write_atomic(folder / "meta.json", json.dumps(params, indent=1))


def _is_complete(folder: Path, params: dict) -> bool:
    meta = folder / "meta.json"
    try:
        return json.loads(meta.read_text()) == params
    except (OSError, ValueError):
        return False


class _Progress:
    """Prints ``label: done/total`` at most every ``every`` seconds (no churning progress bars)."""

    def __init__(self, label: str, total: int, enabled: bool, every: float = 5.0) -> None:
        self.label, self.total, self.enabled, self.every = label, total, enabled, every
        self.t0 = self.last = time.perf_counter()

    def update(self, done: int) -> None:
        now = time.perf_counter()
        if self.enabled and (now - self.last >= self.every or done == self.total):
            self.last = now
            print(f"{self.label}: {done:,}/{self.total:,} ({now - self.t0:.0f} s)", file=sys.stdout, flush=True)


# -- digits -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class DigitFiles:
    """Paths of a complete digits set."""

    x_path: Path
    y_path: Path
    n: int


TEMPLATE = 48  # side of the glyph templates, pixels
_STROKES = (0, 1, 2)


def digit_templates() -> np.ndarray:
    """Glyph templates, float32 in [0, 1], shape (10, len(_STROKES), 48, 48), each glyph centred.

    Uses Pillow's bundled scalable font (Pillow >= 10.1); older Pillow falls back to its bitmap font.
    """
    try:
        font = ImageFont.load_default(size=34)
    except TypeError:  # Pillow < 10.1: no size argument; the bitmap font is tiny but still a digit
        font = ImageFont.load_default()
    out = np.zeros((10, len(_STROKES), TEMPLATE, TEMPLATE), np.float32)
    for d in range(10):
        for k, stroke in enumerate(_STROKES):
            img = Image.new("L", (TEMPLATE * 2, TEMPLATE * 2), 0)
            ImageDraw.Draw(img).text((TEMPLATE // 2, TEMPLATE // 4), str(d), fill=255, font=font,
                                     stroke_width=stroke, stroke_fill=255)
            box = img.getbbox()
            glyph = img.crop(box)
            if max(glyph.size) > TEMPLATE - 4:  # bitmap fallback or big strokes: fit the canvas
                glyph.thumbnail((TEMPLATE - 4, TEMPLATE - 4))
            canvas = Image.new("L", (TEMPLATE, TEMPLATE), 0)
            canvas.paste(glyph, ((TEMPLATE - glyph.width) // 2, (TEMPLATE - glyph.height) // 2))
            out[d, k] = np.asarray(canvas, np.float32) / 255.0
    return out


def render_digits(labels: np.ndarray, rng: np.random.Generator, templates: np.ndarray) -> np.ndarray:
    """Draw one 28x28 uint8 image per label: random affine warp of a template, contrast, noise.

    Vectorised: each output pixel is mapped back into its template and read with bilinear
    interpolation, for the whole chunk at once.
    """
    n = len(labels)
    stroke = rng.integers(0, templates.shape[1], n)
    angle = np.deg2rad(rng.uniform(-20, 20, n))
    scale = rng.uniform(0.75, 1.15, n)  # glyph size relative to the nominal ~20 px height
    shear = rng.uniform(-0.25, 0.25, n)
    shift = rng.uniform(-3, 3, (n, 2))
    ink = rng.uniform(0.6, 1.0, n)
    noise_sd = rng.uniform(0.02, 0.12, n)

    # output pixel centres, relative to the image centre
    g = np.arange(28, dtype=np.float32) - 13.5
    oy, ox = np.meshgrid(g, g, indexing="ij")
    oy = oy.ravel()[None, :] - shift[:, :1]
    ox = ox.ravel()[None, :] - shift[:, 1:]
    # inverse of (rotate . shear . scale), times template pixels per output pixel (34/20)
    k = (1.7 / scale)[:, None]
    c, s = np.cos(angle)[:, None], np.sin(angle)[:, None]
    ry, rx = c * oy + s * ox, -s * oy + c * ox
    rx = rx - shear[:, None] * ry
    ty = ry * k + (TEMPLATE - 1) / 2
    tx = rx * k + (TEMPLATE - 1) / 2

    flat = templates.reshape(10 * templates.shape[1], TEMPLATE * TEMPLATE)[labels * templates.shape[1] + stroke]
    y0 = np.floor(ty).astype(np.int64)
    x0 = np.floor(tx).astype(np.int64)
    fy, fx = (ty - y0).astype(np.float32), (tx - x0).astype(np.float32)

    def at(yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
        inside = (yy >= 0) & (yy < TEMPLATE) & (xx >= 0) & (xx < TEMPLATE)
        idx = np.clip(yy, 0, TEMPLATE - 1) * TEMPLATE + np.clip(xx, 0, TEMPLATE - 1)
        return np.where(inside, np.take_along_axis(flat, idx, axis=1), 0.0)

    img = (at(y0, x0) * (1 - fy) * (1 - fx) + at(y0, x0 + 1) * (1 - fy) * fx
           + at(y0 + 1, x0) * fy * (1 - fx) + at(y0 + 1, x0 + 1) * fy * fx)
    img = img * ink[:, None] + rng.normal(0, 1, img.shape).astype(np.float32) * noise_sd[:, None]
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8).reshape(n, 28, 28)


def make_digits(n: int, out_dir: str | os.PathLike, seed: int = 0, progress: bool = True) -> DigitFiles:
    """Write ``n`` digits to ``out_dir/x.npy`` and ``out_dir/y.npy`` (skipped if already complete)."""
    out = Path(out_dir)
    x_path, y_path = out / "x.npy", out / "y.npy"
    params = {"kind": "digits", "n": int(n), "seed": int(seed), "version": FORMAT_VERSION}
    if _is_complete(out, params) and x_path.exists() and y_path.exists():
        return DigitFiles(x_path, y_path, n)
    out.mkdir(parents=True, exist_ok=True)
    (out / "meta.json").unlink(missing_ok=True)  # from now on the folder is not complete
    x_tmp, y_tmp = out / f"x.npy.{os.getpid()}.tmp", out / f"y.npy.{os.getpid()}.tmp"  # one per writer
    templates = digit_templates()
    x = np.lib.format.open_memmap(x_tmp, mode="w+", dtype=np.uint8, shape=(n, 28, 28))
    y = np.lib.format.open_memmap(y_tmp, mode="w+", dtype=np.uint8, shape=(n,))
    bar = _Progress(f"digits -> {out.name}", n, progress)
    for chunk, start in enumerate(range(0, n, CHUNK)):
        rng = np.random.default_rng([seed, chunk])
        stop = min(start + CHUNK, n)
        labels = rng.integers(0, 10, stop - start)
        x[start:stop] = render_digits(labels, rng, templates)
        y[start:stop] = labels
        bar.update(stop)
    x.flush()
    y.flush()
    del x, y
    os.replace(x_tmp, x_path)
    os.replace(y_tmp, y_path)
    _write_meta(out, params)
    return DigitFiles(x_path, y_path, n)


def ensure_digits(scale: Scale | None = None, progress: bool = True) -> DigitFiles:
    """The digits of a scale (default: ``$TUTORIAL_SCALE``) in ``data/<scale>/digits``."""
    scale = scale or get_scale()
    return make_digits(scale.n_digits, data_dir(scale) / "digits", progress=progress)


TEST_SHARE = 0.1
"""The last tenth of a scale's digits: held out, never copied into the class-sorted file."""


def make_sorted_digits(source: DigitFiles, n: int, out_dir: str | os.PathLike, seed: int = 0,
                       progress: bool = True) -> DigitFiles:
    """Write ``n`` digits **sorted by class** (all 0s, then all 1s, ...) to ``out_dir`` (lesson 07):
    data as it often arrives, larger than a memory limit, generated fast.

    Each row is a row of ``source`` (its first 90 %, :data:`TEST_SHARE` held out) of that class,
    shifted by -2..2 pixels each way, so the signal is the digits' own. Written chunk by chunk through
    a memmap under a temporary name, renamed when full, ``meta.json`` last (skipped if complete).
    """
    out = Path(out_dir)
    x_path, y_path = out / "x.npy", out / "y.npy"
    params = {"kind": "sorted-digits", "n": int(n), "seed": int(seed), "source_n": int(source.n),
              "version": FORMAT_VERSION}
    if _is_complete(out, params) and x_path.exists() and y_path.exists():
        return DigitFiles(x_path, y_path, n)
    out.mkdir(parents=True, exist_ok=True)
    (out / "meta.json").unlink(missing_ok=True)
    sx, sy = np.load(source.x_path, mmap_mode="r"), np.load(source.y_path)
    n_train = int(len(sy) * (1 - TEST_SHARE))
    by_class = [np.flatnonzero(sy[:n_train] == c) for c in range(10)]
    x_tmp, y_tmp = out / f"x.npy.{os.getpid()}.tmp", out / f"y.npy.{os.getpid()}.tmp"
    x = np.lib.format.open_memmap(x_tmp, mode="w+", dtype=np.uint8, shape=(n, 28, 28))
    y = np.lib.format.open_memmap(y_tmp, mode="w+", dtype=np.uint8, shape=(n,))
    bounds = np.linspace(0, n, 11).astype(np.int64)  # class c fills rows bounds[c]:bounds[c + 1]
    bar = _Progress(f"class-sorted digits -> {out.name}", n, progress)
    for chunk, start in enumerate(range(0, n, CHUNK)):
        rng = np.random.default_rng([seed, 1, chunk])
        stop = min(start + CHUNK, n)
        labels = np.searchsorted(bounds, np.arange(start, stop), side="right") - 1
        rows = np.empty((stop - start, 28, 28), np.uint8)
        for c in np.unique(labels):
            where = labels == c
            picked = np.sort(rng.choice(by_class[c], int(where.sum())))
            rows[where] = sx[picked]
        shift = rng.integers(0, 25, len(rows))  # one of 5 x 5 shifts per row
        for k in set(range(25)) - {12}:  # 12: no shift
            pick = shift == k
            rows[pick] = np.roll(rows[pick], (k // 5 - 2, k % 5 - 2), axis=(1, 2))
        x[start:stop], y[start:stop] = rows, labels
        bar.update(stop)
    x.flush()
    y.flush()
    del x, y
    os.replace(x_tmp, x_path)
    os.replace(y_tmp, y_path)
    _write_meta(out, params)
    return DigitFiles(x_path, y_path, n)


def ensure_sorted_digits(scale: Scale | None = None, progress: bool = True) -> DigitFiles:
    """Lesson 07's class-sorted file of a scale: ``over_ram_mb`` MiB in ``data/<scale>/sorted_digits``."""
    scale = scale or get_scale()
    return make_sorted_digits(ensure_digits(scale, progress), scale.over_ram_mb * 2**20 // (28 * 28),
                              data_dir(scale) / "sorted_digits", progress=progress)


# -- fish -------------------------------------------------------------------------------------
MAX_FISH = 9
"""Counts run from 0 to MAX_FISH."""


def render_fish(count: int, size: int, rng: np.random.Generator) -> Image.Image:
    """One RGB image with ``count`` fish on a textured water background."""
    # background: a vertical blue-green gradient plus blurred (upsampled) noise
    low = rng.normal(0, 18, (size // 8 + 1, size // 8 + 1, 3))
    texture = np.asarray(Image.fromarray(np.clip(low + 128, 0, 255).astype(np.uint8)).resize((size, size), Image.BILINEAR),
                         np.float32) - 128
    top, bottom = rng.uniform([20, 90, 120], [60, 140, 190]), rng.uniform([5, 40, 70], [30, 90, 120])
    grad = top[None, :] + (bottom - top)[None, :] * np.linspace(0, 1, size)[:, None]
    bg = np.clip(grad[:, None, :] + texture + rng.normal(0, 6, (size, size, 3)), 0, 255).astype(np.uint8)
    img = Image.fromarray(bg, "RGB")
    draw = ImageDraw.Draw(img)
    placed: list[tuple[float, float, float]] = []
    for _ in range(count):
        for _attempt in range(50):  # keep fish apart so that the count is unambiguous
            length = rng.uniform(0.10, 0.18) * size
            cx, cy = rng.uniform(length * 0.7, size - length * 0.7, 2)
            if all((cx - px) ** 2 + (cy - py) ** 2 > (0.6 * (length + pl)) ** 2 for px, py, pl in placed):
                break
        placed.append((cx, cy, length))
        h = length * rng.uniform(0.35, 0.5)
        facing = 1 if rng.random() < 0.5 else -1
        color = tuple(int(v) for v in rng.uniform([170, 60, 0], [255, 200, 90]))
        body = [cx - length / 2, cy - h / 2, cx + length / 2, cy + h / 2]
        tail_x = cx - facing * length / 2
        tail = [(tail_x + facing * length * 0.08, cy), (tail_x - facing * length * 0.3, cy - h * 0.6),
                (tail_x - facing * length * 0.3, cy + h * 0.6)]
        draw.polygon(tail, fill=color)
        draw.ellipse(body, fill=color)
        eye = (cx + facing * length * 0.28, cy - h * 0.12)
        r = max(1.0, length * 0.05)
        draw.ellipse([eye[0] - r, eye[1] - r, eye[0] + r, eye[1] + r], fill=(10, 10, 10))
    return img


def make_fish(n: int, root: str | os.PathLike, image_size: int = 128, seed: int = 0,
              quality: int = 90, progress: bool = True) -> Path:
    """Write ``n`` JPEGs to ``root/<count>/<id>.jpg`` (skipped if already complete); return ``root``.

    The images are written into ``<root>.<pid>.tmp`` and the folder is renamed when all are there.
    """
    root = Path(root)
    params = {"kind": "fish", "n": int(n), "size": int(image_size), "seed": int(seed),
              "quality": int(quality), "version": FORMAT_VERSION}
    if _is_complete(root, params):
        return root
    tmp = root.with_name(f"{root.name}.{os.getpid()}.tmp")  # one per writer
    shutil.rmtree(tmp, ignore_errors=True)
    for count in range(MAX_FISH + 1):
        (tmp / str(count)).mkdir(parents=True)
    bar = _Progress(f"fish -> {root.name}", n, progress)
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        count = int(rng.integers(0, MAX_FISH + 1))
        buf = io.BytesIO()
        render_fish(count, image_size, rng).save(buf, "JPEG", quality=quality)
        (tmp / str(count) / f"{i:06d}.jpg").write_bytes(buf.getvalue())
        bar.update(i + 1)
    _write_meta(tmp, params)
    shutil.rmtree(root, ignore_errors=True)
    os.replace(tmp, root)
    return root


def ensure_fish(scale: Scale | None = None, progress: bool = True) -> Path:
    """The fish JPEGs of a scale (default: ``$TUTORIAL_SCALE``) in ``data/<scale>/fish``."""
    scale = scale or get_scale()
    return make_fish(scale.n_fish, data_dir(scale) / "fish", image_size=scale.fish_image_size, progress=progress)


def main() -> None:
    """``python -m helpers.datasets``: generate every data set of ``$TUTORIAL_SCALE``."""
    scale = get_scale()
    print(f"scale {scale.name}: {ensure_digits(scale).x_path.parent} and {ensure_fish(scale)}")


if __name__ == "__main__":
    main()
