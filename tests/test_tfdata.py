"""The tf.data building blocks of lesson 05: same rows as the memmap, aligned, each index once, atomic."""

import io
import pickle

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from helpers.lab import order
from helpers.pipelines import tfdata

N = 1000


@pytest.fixture()
def pair(tmp_path):
    """A small .npy pair whose rows say who they are: x[i] holds i in its first two pixels, y = i % 251."""
    i = np.arange(N)
    x = np.random.default_rng(0).integers(0, 256, (N, 28, 28), dtype=np.uint8)
    x[:, 0, 0], x[:, 0, 1] = i // 256, i % 256
    y = (i % 251).astype(np.uint8)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    return tmp_path / "x.npy", tmp_path / "y.npy", x, y


def _ids(xb):
    """Row index encoded in the first two pixels of float32 / 255 images."""
    px = np.rint(np.asarray(xb)[:, 0, :2] * 255).astype(np.int64)
    return px[:, 0] * 256 + px[:, 1]


def _epoch(ds):
    xs, ys = zip(*[(xb.numpy(), yb.numpy()) for xb, yb in ds])
    return np.concatenate(xs), np.concatenate(ys)


def _check_rows(x_got, y_got, x, y):
    ids = _ids(x_got)
    np.testing.assert_array_equal(x_got, x[ids].astype(np.float32) / 255)  # the memmap's rows, scaled
    np.testing.assert_array_equal(y_got, y[ids])  # y of the same row: aligned
    return ids


def test_generator_dataset_yields_the_rows_in_file_order(pair):
    x_path, y_path, x, y = pair
    ds = tfdata.generator_dataset(x_path, y_path, batch_size=128)
    xg, yg = _epoch(ds)
    ids = _check_rows(xg, yg, x, y)
    np.testing.assert_array_equal(ids, np.arange(N))


def test_index_dataset_reads_every_index_once_per_epoch_aligned_and_reshuffled(pair):
    x_path, y_path, x, y = pair
    ds = tfdata.index_dataset(x_path, y_path, batch_size=96, seed=1, num_parallel_calls=2)
    epochs = [_check_rows(*_epoch(ds), x, y) for _ in range(2)]
    for ids in epochs:
        assert sorted(ids.tolist()) == list(range(N))  # every index exactly once
        assert not np.array_equal(ids, np.arange(N))  # shuffled
    assert not np.array_equal(epochs[0], epochs[1])  # a new order each epoch
    batches = [b.numpy() for b, _ in ds.take(1)]
    assert len(batches[0]) == 96
    in_order = _check_rows(*_epoch(tfdata.index_dataset(x_path, y_path, 100, shuffle=False)), x, y)
    np.testing.assert_array_equal(in_order, np.arange(N))


def test_row_reader_pickles_small_and_opens_lazily(pair):
    x_path, y_path, x, y = pair
    reader = tfdata.RowReader(x_path, y_path)
    xb, yb = reader(np.array([5, 2, 9]))
    np.testing.assert_array_equal(_ids(xb), [2, 5, 9])  # sorted read, x and y in the same order
    np.testing.assert_array_equal(yb, y[[2, 5, 9]])
    blob = pickle.dumps(reader)
    assert len(blob) < 1000
    assert pickle.loads(blob)(np.array([3]))[1][0] == y[3]


def test_mismatched_files_raise_an_error_naming_them(pair, tmp_path):
    x_path, _, _, _ = pair
    np.save(tmp_path / "short.npy", np.zeros(N - 1, np.uint8))
    with pytest.raises(ValueError, match="short.npy"):
        tfdata.index_dataset(x_path, tmp_path / "short.npy", 10)


def test_tfrecord_round_trip_equals_the_memmap_rows(pair, tmp_path):
    x_path, y_path, x, y = pair
    shards = tfdata.write_tfrecord_shards(x_path, y_path, tmp_path / "tfr", n_shards=3, chunk=128)
    assert shards.n == N and len(shards.paths) == 3 and shards.image_shape == (28, 28)
    assert not list((tmp_path / "tfr").glob("*.tmp"))
    ordered = tfdata.tfrecord_dataset(shards, 64, shuffle_buffer=0, cycle_length=1)
    ids = _check_rows(*_epoch(ordered), x, y)
    np.testing.assert_array_equal(ids, tfdata.write_order(N, 0))  # shards in turn: the order written
    assert sorted(ids.tolist()) == list(range(N)) and not np.array_equal(ids, np.arange(N))  # shuffled once
    in_file_order = tfdata.write_tfrecord_shards(x_path, y_path, tmp_path / "tfr-file-order", n_shards=3, chunk=128,
                                                 seed=None)
    ids = _check_rows(*_epoch(tfdata.tfrecord_dataset(in_file_order, 64, shuffle_buffer=0, cycle_length=1)), x, y)
    np.testing.assert_array_equal(ids, np.arange(N))  # seed=None: the file's order
    for _ in range(2):
        ids = _check_rows(*_epoch(tfdata.tfrecord_dataset(shards, 64, shuffle_buffer=200, seed=3)), x, y)
        assert sorted(ids.tolist()) == list(range(N)) and not np.array_equal(ids, np.arange(N))
    assert tfdata.read_manifest(tmp_path / "tfr").paths == shards.paths


def test_an_interrupted_tfrecord_write_leaves_no_complete_looking_shard_set(pair, tmp_path, monkeypatch):
    x_path, y_path, _, _ = pair
    out = tmp_path / "tfr"
    tfdata.write_tfrecord_shards(x_path, y_path, out, n_shards=2)  # a complete older set
    calls = {"n": 0}
    real = tfdata._example

    def failing(*args):
        calls["n"] += 1
        if calls["n"] == N // 2 + 10:  # inside the second shard
            raise KeyboardInterrupt("interrupted midway")
        return real(*args)

    monkeypatch.setattr(tfdata, "_example", failing)
    with pytest.raises(KeyboardInterrupt):
        tfdata.write_tfrecord_shards(x_path, y_path, out, n_shards=2)
    assert not (out / tfdata.MANIFEST).exists()
    assert len(list(out.glob("*.tfrecord"))) == 1  # the first new shard; the second only as *.tmp
    with pytest.raises(FileNotFoundError, match="no complete TFRecord shard set"):
        tfdata.read_manifest(out)
    monkeypatch.setattr(tfdata, "_example", real)
    assert tfdata.write_tfrecord_shards(x_path, y_path, out, n_shards=2).n == N


def write_jpegs(folder, labels, brightness, size=40):
    """One JPEG per label in ``folder``, of mean brightness ``brightness(i)``; (paths, labels)."""
    paths = []
    for i in range(len(labels)):
        buf = io.BytesIO()
        Image.fromarray(np.full((size, size, 3), brightness(i), np.uint8)).save(buf, "JPEG", quality=95)
        paths.append(folder / f"{i:04d}.jpg")
        paths[-1].write_bytes(buf.getvalue())
    return paths, [float(v) for v in labels]


@pytest.fixture()
def jpegs(tmp_path):
    """12 small JPEGs whose mean brightness encodes their label."""
    return write_jpegs(tmp_path, range(12), lambda i: 20 * i)


@pytest.mark.parametrize("cache", [None, "", "file"])
def test_jpeg_dataset_keeps_images_and_labels_aligned(jpegs, tmp_path, cache):
    paths, labels = jpegs
    if cache == "file":
        cache = tmp_path / "cache"
    counter = tf.Variable(0, dtype=tf.int64)
    ds = tfdata.jpeg_dataset(paths, labels, batch_size=5, image_size=32, cache=cache, read_counter=counter)
    for _ in range(2):
        xs, ys = _epoch(ds)
        assert xs.shape == (12, 32, 32, 3) and xs.dtype == np.float32 and 0 <= xs.min() <= xs.max() <= 1
        np.testing.assert_allclose(xs.mean(axis=(1, 2, 3)) * 255 / 20, ys, atol=0.1)  # aligned
        assert sorted(ys.tolist()) == labels
    assert int(counter.numpy()) == (12 if cache is not None else 24)  # a cache replays the 2nd epoch
    with pytest.raises(ValueError, match="12 paths but 11 labels"):
        tfdata.jpeg_dataset(paths, labels[:-1], 5, 32)


def test_sequential_turns_map_parallelization_off():
    ds = tfdata.sequential(tf.data.Dataset.range(3).map(lambda i: i + 1))
    assert ds.options().experimental_optimization.map_parallelization is False
    assert list(ds.as_numpy_iterator()) == [1, 2, 3]


@pytest.fixture(scope="module")
def sorted_jpegs(tmp_path_factory):
    """400 tiny JPEGs listed sorted by label (10 labels, 40 each), as a folder-per-class set is."""
    return write_jpegs(tmp_path_factory.mktemp("sorted"), [i // 40 for i in range(400)], lambda i: 0, size=8)


@pytest.mark.parametrize("cache", [None, "", "file"])
def test_jpeg_dataset_mixes_a_sorted_file_list_like_a_full_shuffle(sorted_jpegs, tmp_path, cache):
    """A shuffle buffer after the cache alone would serve batches of one or two labels."""
    paths, labels = sorted_jpegs
    if cache == "file":
        cache = tmp_path / "cache"
    ds = tfdata.jpeg_dataset(paths, labels, batch_size=20, image_size=8, cache=cache, shuffle_buffer=16)
    for _ in range(2):   # the epoch that fills the cache and one that replays it
        batches = order.batch_labels(ds, 20)
        assert sorted(np.concatenate(batches).tolist()) == labels
        assert order.label_mixing(batches, labels) >= 0.9
