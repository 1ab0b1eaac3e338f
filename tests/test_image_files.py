"""The file-list index and ImageFileDataset of lesson 04 (small generated JPEGs, no training)."""

import pickle
import shutil

import numpy as np
import pytest

from helpers.datasets import make_fish
from helpers.pipelines.caches import BytesBudgetCache, FillOnceCache, LRUCache
from helpers.pipelines.image_files import (BadImageError, ImageFileDataset, decode, label_of, list_images, make_index,
                                           paths_and_targets, read_bytes)


@pytest.fixture(scope="module")
def fish(tmp_path_factory):
    return make_fish(23, tmp_path_factory.mktemp("data") / "fish", image_size=32, progress=False)


def test_index_follows_the_stanford_convention(fish):
    files = list_images(fish)
    assert len(files) == 23 and files == sorted(files)
    partition, labels = make_index(fish, seed=0)
    assert [len(partition[k]) for k in ("train", "validation", "test")] == [18, 2, 3]
    every = partition["train"] + partition["validation"] + partition["test"]
    assert sorted(every) == sorted(labels) and len(set(every)) == 23
    assert all(labels[i] == int(i.split("/")[0]) for i in every)
    assert make_index(fish, seed=0) == (partition, labels)
    assert make_index(fish, seed=1)[0] != partition
    paths, y = paths_and_targets(fish, partition["test"], labels)
    assert [label_of(p) for p in paths] == y.tolist() and y.dtype == np.float32
    with pytest.raises(ValueError):
        make_index(fish, fractions=(0.5, 0.5, 0.5))


def test_batches_are_float32_images_with_aligned_targets(fish):
    paths, y = paths_and_targets(fish, sorted(make_index(fish)[1]), make_index(fish)[1])
    ds = ImageFileDataset(paths, y, batch_size=5, image_size=32, shuffle=False)
    assert ds.workers == 1
    assert len(ds) == 5  # 23 = 4 x 5 + 3: the last partial batch is served
    x, t = ds[4]
    assert x.shape == (3, 32, 32, 3) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    assert t.tolist() == y[20:].tolist()
    small = ImageFileDataset(paths, y, batch_size=4, image_size=(16, 8))
    assert small[0][0].shape == (4, 16, 8, 3)
    with pytest.raises(IndexError):
        ds[5]


@pytest.mark.parametrize("cache", [None, LRUCache(30), FillOnceCache(10), BytesBudgetCache(1)])
def test_every_sample_once_per_epoch_in_a_new_order(fish, cache):
    paths = list_images(fish)
    ids = np.arange(len(paths), dtype=np.float32)  # target = position: shows which file was read
    ds = ImageFileDataset(paths, ids, batch_size=4, image_size=32, cache=cache, shuffle=True, seed=3)
    orders = []
    for _ in range(3):
        seen = np.concatenate([ds[i][1] for i in range(len(ds))])
        assert sorted(seen.tolist()) == ids.tolist()  # every sample exactly once
        orders.append(seen.tolist())
        ds.on_epoch_end()
    assert orders[0] != orders[1] != orders[2]
    # the image matches its file whatever the cache
    x, t = ds[0]
    for image, i in zip(x, t):
        assert np.array_equal(image, decode(read_bytes(paths[int(i)]), (32, 32)))


def test_cache_stores_decoded_or_encoded(fish):
    paths = list_images(fish)
    y = np.zeros(len(paths))
    decoded, encoded = FillOnceCache(100), BytesBudgetCache(1)
    for cache in (decoded, encoded):
        ds = ImageFileDataset(paths, y, batch_size=8, image_size=32, cache=cache, shuffle=False)
        for _ in range(2):
            for i in range(len(ds)):
                ds[i]
        assert (cache.hits, cache.misses, len(cache)) == (23, 23, 23)
    assert decoded.nbytes == 23 * 32 * 32 * 3 * 4
    assert encoded.nbytes == sum(p.stat().st_size for p in paths)
    assert ds.fill_cache() >= 0 and encoded.hits == 46


@pytest.fixture()
def bad_copy(fish, tmp_path):
    """6 good files, then a truncated JPEG, an empty file and a missing one, mixed in."""
    good = list_images(fish)[:6]
    folder = tmp_path / "bad"
    folder.mkdir()
    paths = []
    for i, p in enumerate(good):
        paths.append(shutil.copy(p, folder / f"good{i}.jpg"))
    data = good[0].read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (folder / "empty.jpg").write_bytes(b"")
    paths = paths[:2] + [folder / "truncated.jpg"] + paths[2:4] + [folder / "empty.jpg", folder / "missing.jpg"] + paths[4:]
    targets = np.array([0, 1, -1, 2, 3, -1, -1, 4, 5], np.float32)
    return paths, targets


@pytest.mark.parametrize("name", ["truncated.jpg", "empty.jpg", "missing.jpg"])
def test_a_bad_file_raises_an_error_naming_it(bad_copy, name):
    paths, targets = bad_copy
    only = [p for p in paths if str(p).endswith(name)]
    ds = ImageFileDataset(only, [0.0], batch_size=4, image_size=32)
    with pytest.raises(BadImageError, match=name):
        ds[0]


@pytest.mark.parametrize("cache", [None, BytesBudgetCache(1), FillOnceCache(100)])
def test_skip_mode_drops_bad_files_keeps_alignment_and_reports(bad_copy, cache):
    paths, targets = bad_copy
    ds = ImageFileDataset(paths, targets, batch_size=4, image_size=32, cache=cache, shuffle=False, skip_bad=True)
    for _ in range(2):  # the second epoch meets them again: still three files reported once
        xs, ys = zip(*(ds[i] for i in range(len(ds))))
        assert [len(x) for x in xs] == [len(y) for y in ys] == [3, 2, 1]
        assert np.concatenate(ys).tolist() == [0, 1, 2, 3, 4, 5]
        for x, y, in zip(np.concatenate(xs), np.concatenate(ys)):
            assert np.array_equal(x, decode(read_bytes(paths[[0, 1, 3, 4, 7, 8][int(y)]]), (32, 32)))
    assert ds.n_skipped == 3
    assert [p.rsplit("/", 1)[-1] for p in ds.skipped] == ["truncated.jpg", "empty.jpg", "missing.jpg"]
    assert "truncated" in ds.skipped[str(paths[2])].lower() and "empty" in ds.skipped[str(paths[5])]


def test_scan_finds_bad_files_before_training(bad_copy):
    paths, targets = bad_copy
    strict = ImageFileDataset(paths, targets, batch_size=4, image_size=32)
    with pytest.raises(BadImageError, match="truncated.jpg"):
        strict.scan()
    ds = ImageFileDataset(paths, targets, batch_size=4, image_size=32, skip_bad=True, shuffle=False)
    bad = ds.scan()
    assert len(bad) == 3 and ds.n_skipped == 3 and len(ds.paths) == 6
    assert np.concatenate([ds[i][1] for i in range(len(ds))]).tolist() == [0, 1, 2, 3, 4, 5]


def test_dataset_pickles_small_for_spawned_workers(fish):
    paths = list_images(fish)
    ds = ImageFileDataset(paths, np.zeros(len(paths)), batch_size=4, image_size=32, cache=LRUCache(5),
                          workers=2, use_multiprocessing=True)
    ds[0]
    copy = pickle.loads(pickle.dumps(ds))
    assert copy.use_multiprocessing and copy.workers == 2 and len(copy.cache) == 0
    assert np.array_equal(copy[1][0], ds[1][0])


def test_mismatched_lengths_are_refused(fish):
    with pytest.raises(ValueError, match="targets"):
        ImageFileDataset(list_images(fish), [1.0], batch_size=4, image_size=32)
