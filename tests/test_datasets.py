"""Generated data: deterministic, learnable, atomic, and skipped when already complete."""

import json

import numpy as np
import pytest

from helpers import datasets
from helpers.datasets import MAX_FISH, make_digits, make_fish


def test_digits_are_deterministic_for_a_seed(tmp_path):
    a = make_digits(9000, tmp_path / "a", seed=3, progress=False)
    b = make_digits(9000, tmp_path / "b", seed=3, progress=False)
    c = make_digits(9000, tmp_path / "c", seed=4, progress=False)
    xa, xb, xc = (np.load(f.x_path) for f in (a, b, c))
    assert xa.shape == (9000, 28, 28) and xa.dtype == np.uint8
    assert np.array_equal(xa, xb) and np.array_equal(np.load(a.y_path), np.load(b.y_path))
    assert not np.array_equal(xa, xc)


def test_digits_carry_a_learnable_signal(tmp_path):
    """A nearest-centroid classifier (no training) is far above the 10 % of chance."""
    f = make_digits(6000, tmp_path, seed=0, progress=False)
    x = np.load(f.x_path).reshape(6000, -1).astype(np.float32)
    y = np.load(f.y_path)
    assert set(np.unique(y)) == set(range(10))
    centroids = np.stack([x[:5000][y[:5000] == d].mean(0) for d in range(10)])
    pred = np.argmin(((x[5000:, None, :] - centroids[None]) ** 2).sum(-1), axis=1)
    assert (pred == y[5000:]).mean() > 0.3


def test_existing_complete_digits_are_not_rewritten(tmp_path):
    f = make_digits(100, tmp_path, progress=False)
    mtime = f.x_path.stat().st_mtime_ns
    make_digits(100, tmp_path, progress=False)
    assert f.x_path.stat().st_mtime_ns == mtime
    make_digits(120, tmp_path, progress=False)  # other parameters: regenerated
    assert np.load(f.x_path).shape[0] == 120


def test_an_interrupted_digits_write_leaves_no_complete_looking_file(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = datasets.render_digits

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("interrupted midway")
        return real(*args, **kwargs)

    monkeypatch.setattr(datasets, "render_digits", failing)
    with pytest.raises(KeyboardInterrupt):
        make_digits(3 * datasets.CHUNK, tmp_path, progress=False)
    assert not (tmp_path / "x.npy").exists() and not (tmp_path / "y.npy").exists()
    assert not (tmp_path / "meta.json").exists()
    monkeypatch.setattr(datasets, "render_digits", real)
    f = make_digits(3 * datasets.CHUNK, tmp_path, progress=False)  # a later run completes it
    assert np.load(f.y_path).shape == (3 * datasets.CHUNK,)


def test_an_interrupted_fish_write_leaves_no_complete_looking_folder(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = datasets.render_fish

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt("interrupted midway")
        return real(*args, **kwargs)

    monkeypatch.setattr(datasets, "render_fish", failing)
    with pytest.raises(KeyboardInterrupt):
        make_fish(10, tmp_path / "fish", image_size=32, progress=False)
    assert not (tmp_path / "fish").exists()


def test_fish_layout_labels_and_determinism(tmp_path):
    a = make_fish(40, tmp_path / "a", image_size=64, seed=1, progress=False)
    b = make_fish(40, tmp_path / "b", image_size=64, seed=1, progress=False)
    files = sorted(a.glob("*/*.jpg"))
    assert len(files) == 40
    assert {int(p.parent.name) for p in files} <= set(range(MAX_FISH + 1))
    assert [p.read_bytes() for p in files] == [p.read_bytes() for p in sorted(b.glob("*/*.jpg"))]
    assert json.loads((a / "meta.json").read_text())["n"] == 40
    from PIL import Image

    with Image.open(files[0]) as im:
        assert im.size == (64, 64) and im.mode == "RGB"


def test_sorted_digits_are_sorted_by_class_made_of_the_training_rows_and_complete(tmp_path):
    from helpers.datasets import TEST_SHARE, make_digits, make_sorted_digits

    source = make_digits(2_000, tmp_path / "digits", progress=False)
    out = make_sorted_digits(source, 30_000, tmp_path / "sorted", progress=False)
    x, y = np.load(out.x_path, mmap_mode="r"), np.load(out.y_path)
    assert x.shape == (30_000, 28, 28) and x.dtype == np.uint8
    assert np.all(np.diff(y.astype(int)) >= 0) and set(np.unique(y)) == set(range(10)), "sorted, all classes"
    assert (tmp_path / "sorted" / "meta.json").exists() and not list((tmp_path / "sorted").glob("*.tmp"))
    sx, sy = np.load(source.x_path), np.load(source.y_path)
    held_out = {sx[i].tobytes() for i in range(int(len(sy) * (1 - TEST_SHARE)), len(sy))}
    unshifted = [x[i].tobytes() for i in range(0, 30_000, 97)]
    assert not held_out & set(unshifted), "the held-out tenth is never copied"
    assert make_sorted_digits(source, 30_000, tmp_path / "sorted", progress=False).n == 30_000   # complete: kept
