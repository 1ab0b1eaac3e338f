"""Lesson 06's CPU-heavy augmentation: shapes, seeding per (seed, epoch, row), every fish kept."""

import pickle

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from helpers.datasets import make_fish
from helpers.pipelines.augment import AugmentedImageDataset, augment, augment_tf, augmented_jpeg_dataset, open_rgb
from helpers.pipelines.image_files import BadImageError, ImageFileDataset, list_images


@pytest.fixture(scope="module")
def fish(tmp_path_factory):
    root = make_fish(12, tmp_path_factory.mktemp("data") / "fish", image_size=32, progress=False)
    paths = list_images(root)
    return paths, np.arange(len(paths), dtype=np.float32)  # target = row: shows which file came out


def corner_blob(size: int = 32) -> Image.Image:
    """Black, with a white 6x6 square in a corner: the part a crop or a rotation would lose first."""
    a = np.zeros((size, size, 3), np.uint8)
    a[1:7, 1:7] = 255
    return Image.fromarray(a)


def test_augment_is_a_float_image_in_range_and_seeded():
    img = corner_blob()
    out = augment(img, np.random.default_rng([0, 0, 3]), 24)
    assert out.shape == (24, 24, 3) and out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
    assert np.array_equal(out, augment(img, np.random.default_rng([0, 0, 3]), 24))
    assert not np.array_equal(out, augment(img, np.random.default_rng([0, 1, 3]), 24))


def test_augment_keeps_the_corner_in_the_frame():
    img = corner_blob()
    for s in range(30):  # any angle, padding and offset: the white square is still there
        assert augment(img, np.random.default_rng(s), 32).max() > 0.45, s
        out = augment_tf(tf.constant(np.asarray(img)), tf.constant([s, 1], tf.int64), 32)
        assert float(tf.reduce_max(out)) > 0.45, s


def test_dataset_is_a_pydataset_with_worker_arguments(fish):
    paths, y = fish
    ds = AugmentedImageDataset(paths, y, batch_size=5, out_size=16, workers=2, use_multiprocessing=True,
                               max_queue_size=3)
    assert isinstance(ds, ImageFileDataset) and (ds.workers, ds.use_multiprocessing, ds.max_queue_size) == (2, True, 3)
    assert len(ds) == 3
    x, t = ds[2]
    assert x.shape == (2, 16, 16, 3) and x.dtype == np.float32 and t.tolist() == y[ds.order[10:]].tolist()
    with pytest.raises(IndexError):
        ds[3]


def test_a_batch_does_not_depend_on_who_computes_it_or_when(fish):
    paths, y = fish
    ds = AugmentedImageDataset(paths, y, batch_size=4, out_size=16)
    copy = pickle.loads(pickle.dumps(ds))  # what a spawned worker receives
    later = copy[2][0], copy[0][0]           # another order
    assert np.array_equal(later[0], ds[2][0]) and np.array_equal(later[1], ds[0][0])
    assert len(pickle.dumps(ds)) < 4096      # paths and targets, no pixels


def test_every_epoch_a_new_order_and_new_pixels(fish):
    paths, y = fish
    ds = AugmentedImageDataset(paths, y, batch_size=4, out_size=16)
    first = {int(t): image for i in range(len(ds)) for image, t in zip(*ds[i])}
    order = ds.order.copy()
    ds.on_epoch_end()
    second = {int(t): image for i in range(len(ds)) for image, t in zip(*ds[i])}
    assert sorted(first) == sorted(second) == list(range(12))  # every sample once per epoch
    assert not np.array_equal(order, ds.order)
    assert all(not np.array_equal(first[r], second[r]) for r in first)


def test_augmented_false_only_decodes_and_resizes(fish):
    paths, y = fish
    plain = AugmentedImageDataset(paths, y, batch_size=4, out_size=16, shuffle=False, augmented=False)
    expected = np.asarray(Image.open(paths[0]).convert("RGB").resize((16, 16), Image.LANCZOS), np.float32) / 255
    assert np.allclose(plain[0][0][0], expected)


def test_a_bad_file_is_named(tmp_path):
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(BadImageError, match="bad.jpg"):
        AugmentedImageDataset([tmp_path / "bad.jpg"], [0.0], 1, 8)[0]
    with pytest.raises(BadImageError, match="x.jpg"):
        open_rgb(b"", "x.jpg")


def _epochs(ds):
    xs, ys = zip(*[(xb.numpy(), yb.numpy()) for xb, yb in ds])
    return np.concatenate(xs), np.concatenate(ys)


def test_tf_twin_is_the_same_whatever_the_parallelism(fish):
    paths, y = fish
    one = _epochs(augmented_jpeg_dataset(paths, y, 5, 16, num_parallel_calls=1, epochs=2))
    many = _epochs(augmented_jpeg_dataset(paths, y, 5, 16, num_parallel_calls=4, epochs=2))
    assert np.array_equal(one[0], many[0]) and np.array_equal(one[1], many[1])
    x, t = one
    assert x.shape == (24, 16, 16, 3) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    e1, e2 = t[:12], t[12:]
    assert sorted(e1.tolist()) == sorted(e2.tolist()) == list(range(12)) and e1.tolist() != e2.tolist()
    by_row_1 = {int(r): img for r, img in zip(e1, x[:12])}
    by_row_2 = {int(r): img for r, img in zip(e2, x[12:])}
    assert all(not np.array_equal(by_row_1[r], by_row_2[r]) for r in by_row_1)


def test_tf_twin_in_file_order_and_endless(fish):
    paths, y = fish
    _, t = _epochs(augmented_jpeg_dataset(paths, y, 5, 16, shuffle=False, epochs=1))
    assert t.tolist() == list(range(12))
    endless = augmented_jpeg_dataset(paths, y, 5, 16).take(7)  # more batches than one epoch holds
    assert sum(1 for _ in endless) == 7
    with pytest.raises(ValueError, match="labels"):
        augmented_jpeg_dataset(paths, y[:3], 5, 16)
