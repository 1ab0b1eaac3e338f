"""MemmapDataset: every sample once per epoch, X and y aligned, with and without workers, under
fork and spawn; pickles small; bad input fails with an error naming the file."""

import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from helpers.pipelines.memmap_dataset import MemmapDataset

N, BATCH = 1000, 64  # 1000 = 15 x 64 + 40: the last batch is partial
ROOT = Path(__file__).resolve().parent.parent


def _write_pair(folder: Path, n: int = N) -> tuple[Path, Path]:
    """x[i] encodes i in its first two pixels (uint8), y[i] = i: alignment is checkable."""
    i = np.arange(n)
    x = np.zeros((n, 2, 3), np.uint8)
    x[:, 0, 0], x[:, 0, 1] = i % 256, i // 256
    x[:, 1, :] = (i[:, None] * 7 + np.arange(3)) % 256
    x_path, y_path = folder / "x.npy", folder / "y.npy"
    np.save(x_path, x)
    np.save(y_path, i.astype(np.int32))
    return x_path, y_path


@pytest.fixture()
def pair(tmp_path):
    return _write_pair(tmp_path)


def _decode(xb: np.ndarray) -> np.ndarray:
    """The sample index an x batch (float32 in [0, 1]) encodes."""
    pixels = np.rint(np.asarray(xb) * 255).astype(np.int64)
    return pixels[:, 0, 0] + 256 * pixels[:, 0, 1]


def _check_epoch(batches: list[tuple[np.ndarray, np.ndarray]], expected: np.ndarray) -> None:
    ys = np.concatenate([np.asarray(y) for _, y in batches])
    xs = np.concatenate([_decode(x) for x, _ in batches])
    np.testing.assert_array_equal(xs, ys)  # X and y aligned
    np.testing.assert_array_equal(np.sort(ys), np.sort(expected))  # every sample exactly once


# -- in this process --------------------------------------------------------------------------
def test_length_is_a_ceiling_and_the_last_batch_is_partial(pair):
    ds = MemmapDataset(*pair, batch_size=BATCH)
    assert len(ds) == 16
    assert [len(ds[i][1]) for i in range(len(ds))] == [BATCH] * 15 + [40]
    with pytest.raises(IndexError):
        ds[16]


def test_every_index_once_per_epoch_and_a_new_order_each_epoch(pair):
    ds = MemmapDataset(*pair, batch_size=BATCH, seed=3)
    orders = []
    for _ in range(3):
        batches = [ds[i] for i in range(len(ds))]
        _check_epoch(batches, np.arange(N))
        for _, y in batches:
            assert np.all(np.diff(y) > 0), "each batch is read with sorted indices"
        orders.append(np.concatenate([y for _, y in batches]))
        ds.on_epoch_end()
    assert not np.array_equal(orders[0], orders[1]) and not np.array_equal(orders[1], orders[2])
    again = MemmapDataset(*pair, batch_size=BATCH, seed=3)
    np.testing.assert_array_equal(np.concatenate([again[i][1] for i in range(len(again))]), orders[0])


def test_values_are_the_in_memory_recipe_and_dtypes(pair):
    ds = MemmapDataset(*pair, batch_size=BATCH, shuffle=False)
    xb, yb = ds[0]
    assert xb.dtype == np.float32 and yb.dtype == np.int32 and xb.shape == (BATCH, 2, 3)
    full = np.load(pair[0]).astype("float32") / 255
    np.testing.assert_array_equal(xb, full[:BATCH])  # bit for bit


def test_shuffle_false_serves_the_indices_in_the_order_given(pair):
    idx = np.random.default_rng(1).permutation(N)[:300]
    ds = MemmapDataset(*pair, batch_size=BATCH, indices=idx, shuffle=False)
    ys = np.concatenate([ds[i][1] for i in range(len(ds))])
    xs = np.concatenate([_decode(ds[i][0]) for i in range(len(ds))])
    np.testing.assert_array_equal(ys, idx)
    np.testing.assert_array_equal(xs, idx)


def test_a_split_is_two_index_ranges_of_one_file(pair):
    train = MemmapDataset(*pair, batch_size=BATCH, indices=range(900))
    val = MemmapDataset(*pair, batch_size=BATCH, indices=slice(900, None), shuffle=False)
    _check_epoch([train[i] for i in range(len(train))], np.arange(900))
    _check_epoch([val[i] for i in range(len(val))], np.arange(900, N))
    assert len(val) == 2


def test_pickles_small_without_the_memmaps_and_reads_the_same_after(pair):
    ds = MemmapDataset(*pair, batch_size=BATCH, indices=range(10, N))
    ds.on_epoch_end()
    before = ds[3]  # memmaps and the permutation are held now
    blob = pickle.dumps(ds)
    assert len(blob) < 2_000, len(blob)
    assert b"_reconstruct" not in blob, "no array (memmap or permutation) is pickled"
    copy = pickle.loads(blob)
    assert copy._x is None and copy.epoch == 1
    after = copy[3]
    np.testing.assert_array_equal(before[0], after[0])
    np.testing.assert_array_equal(before[1], after[1])
    # arbitrary (non-contiguous) indices are pickled, but still not the data
    picked = MemmapDataset(*pair, batch_size=BATCH, indices=np.arange(0, N, 2))
    picked[0]
    assert len(pickle.dumps(picked)) < 2_000 + 8 * N // 2


def test_kwargs_reach_pydataset(pair):
    ds = MemmapDataset(*pair, batch_size=BATCH, workers=3, use_multiprocessing=True, max_queue_size=4)
    assert (ds.workers, ds.use_multiprocessing, ds.max_queue_size) == (3, True, 4)


# -- inside model.fit, with and without workers ----------------------------------------------
class _Recorder(keras.Model):
    """Records every (x, y) batch that fit hands to the train step, per epoch (runs eagerly)."""

    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(1)
        self.epochs_seen: list[list[tuple[np.ndarray, np.ndarray]]] = []

    def call(self, x):
        return self.dense(keras.ops.reshape(x, (-1, 6)))

    def train_step(self, data):
        x, y = data
        self.epochs_seen[-1].append((np.asarray(x), np.asarray(y)))
        return {"batches": keras.ops.convert_to_tensor(float(len(self.epochs_seen[-1])))}


class _NewEpoch(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.model.epochs_seen.append([])


@pytest.mark.parametrize("kwargs", [{}, {"workers": 2}, {"workers": 2, "use_multiprocessing": True}],
                         ids=["no-workers", "threads", "processes-fork"])
def test_fit_serves_every_index_once_per_epoch(pair, kwargs):
    if kwargs.get("use_multiprocessing") and sys.platform != "linux":
        pytest.skip("fork start method is Linux's")
    ds = MemmapDataset(*pair, batch_size=BATCH, indices=range(7, N), **kwargs)
    model = _Recorder()
    model.compile(run_eagerly=True)
    model.fit(ds, epochs=2, verbose=0, callbacks=[_NewEpoch()])
    assert len(model.epochs_seen) == 2
    for batches in model.epochs_seen:
        assert len(batches) == len(ds)
        _check_epoch(batches, np.arange(7, N))
    first, second = (np.concatenate([y for _, y in e]) for e in model.epochs_seen)
    assert not np.array_equal(first, second), "a new sample order each epoch"


SPAWN_SCRIPT = textwrap.dedent("""
    import json, multiprocessing, sys
    multiprocessing.set_start_method("spawn", force=True)
    import numpy as np
    sys.path.insert(0, {tests!r})
    from test_memmap_dataset import _Recorder, _NewEpoch
    from helpers.pipelines.memmap_dataset import MemmapDataset

    if __name__ == "__main__":
        ds = MemmapDataset({x!r}, {y!r}, batch_size=64, workers=2, use_multiprocessing=True)
        model = _Recorder()
        model.compile(run_eagerly=True)
        model.fit(ds, epochs=1, verbose=0, callbacks=[_NewEpoch()])
        batches = model.epochs_seen[0]
        print(json.dumps({{"start": multiprocessing.get_start_method(),
                          "y": np.concatenate([y for _, y in batches]).tolist(),
                          "x": np.concatenate([np.rint(x[:, 0, 0] * 255) + 256 * np.rint(x[:, 0, 1] * 255)
                                               for x, _ in batches]).astype(int).tolist()}}))
""")


def test_fit_with_worker_processes_under_spawn(tmp_path):
    """Spawned workers unpickle the dataset (paths only) and open the memmaps themselves."""
    x_path, y_path = _write_pair(tmp_path)
    script = tmp_path / "spawn_fit.py"
    script.write_text(SPAWN_SCRIPT.format(tests=str(Path(__file__).parent), x=str(x_path), y=str(y_path)))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=180, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["start"] == "spawn"
    assert out["x"] == out["y"]
    assert sorted(out["y"]) == list(range(N))


# -- bad input --------------------------------------------------------------------------------
def test_x_and_y_of_different_lengths_name_both_files(tmp_path):
    x_path, _ = _write_pair(tmp_path)
    short = tmp_path / "y_short.npy"
    np.save(short, np.arange(N - 1))
    with pytest.raises(ValueError, match=r"x\.npy.*1,000.*y_short\.npy.*999"):
        MemmapDataset(x_path, short, batch_size=BATCH)


def test_missing_and_unreadable_files_are_named(tmp_path, pair):
    with pytest.raises(FileNotFoundError, match="nope.npy"):
        MemmapDataset(tmp_path / "nope.npy", pair[1], batch_size=BATCH)
    raw = tmp_path / "raw.dat"
    raw.write_bytes(b"\x00" * 100)  # a raw memmap file: no .npy header
    with pytest.raises(ValueError, match="raw.dat"):
        MemmapDataset(raw, pair[1], batch_size=BATCH)
    objects = tmp_path / "objects.npy"
    np.save(objects, np.array([{"a": 1}] * N, dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="objects.npy"):
        MemmapDataset(pair[0], objects, batch_size=BATCH)


def test_wrong_dtypes_are_named(tmp_path, pair):
    wide = tmp_path / "x_int64.npy"
    np.save(wide, np.zeros((N, 2, 3), np.int64))
    with pytest.raises(TypeError, match=r"x_int64\.npy.*int64"):
        MemmapDataset(wide, pair[1], batch_size=BATCH)
    text = tmp_path / "y_text.npy"
    np.save(text, np.array(["a"] * N))
    with pytest.raises(TypeError, match=r"y_text\.npy.*<U1"):
        MemmapDataset(pair[0], text, batch_size=BATCH)


def test_bad_indices_and_batch_size(pair):
    with pytest.raises(IndexError, match=r"out of range.*x\.npy"):
        MemmapDataset(*pair, batch_size=BATCH, indices=[0, N])
    with pytest.raises(IndexError, match="out of range"):
        MemmapDataset(*pair, batch_size=BATCH, indices=range(N - 5, N + 5))
    with pytest.raises(ValueError, match="empty"):
        MemmapDataset(*pair, batch_size=BATCH, indices=[])
    with pytest.raises(TypeError, match="integers"):
        MemmapDataset(*pair, batch_size=BATCH, indices=[0.5, 1.5])
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="batch_size"):
            MemmapDataset(*pair, batch_size=bad)


def test_a_file_changed_after_pickling_is_reported(tmp_path):
    x_path, y_path = _write_pair(tmp_path)
    blob = pickle.dumps(MemmapDataset(x_path, y_path, batch_size=BATCH))
    _write_pair(tmp_path, n=N // 2)
    with pytest.raises(ValueError, match="changed"):
        pickle.loads(blob)[0]


def test_random_reads_turn_the_read_ahead_off(tmp_path):
    """shuffle=True advises MADV_RANDOM (a random row reads its pages, not ~128 KiB around it);
    reading in order keeps the kernel's read-ahead; both can be forced; pickling keeps the choice."""
    import mmap
    import pickle

    from helpers.pipelines import memmap_dataset

    x, y = tmp_path / "x.npy", tmp_path / "y.npy"
    np.save(x, np.zeros((64, 28, 28), np.uint8))
    np.save(y, np.zeros(64, np.uint8))
    assert MemmapDataset(x, y, 8).readahead is False
    assert MemmapDataset(x, y, 8, shuffle=False).readahead is True
    assert MemmapDataset(x, y, 8, readahead=True).readahead is True
    assert pickle.loads(pickle.dumps(MemmapDataset(x, y, 8))).readahead is False

    class Mapping:
        advice: list = []

        def madvise(self, option):
            self.advice.append(option)

    class FakeMemmap:
        _mmap = Mapping()

    if hasattr(mmap, "MADV_RANDOM"):
        memmap_dataset._advise(FakeMemmap(), readahead=False)
        memmap_dataset._advise(FakeMemmap(), readahead=True)
        assert Mapping.advice == [mmap.MADV_RANDOM]


def test_block_shuffling_serves_every_row_once_aligned_and_mixes_a_sorted_file(tmp_path):
    """block_rows: each epoch every row once, x and y aligned, batches of a class-sorted file mixed
    (near a full shuffle's 10 classes per batch), a new order each epoch, bad arguments named."""
    import pickle

    n = 6000
    x = np.zeros((n, 28, 28), np.uint8)
    x[:, 0, 0], x[:, 0, 1] = np.arange(n) % 256, np.arange(n) // 256   # the row number, in the pixels
    y = np.repeat(np.arange(10), n // 10).astype(np.uint8)               # sorted by class
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    ds = MemmapDataset(tmp_path / "x.npy", tmp_path / "y.npy", 100, block_rows=20)
    orders = []
    for _ in range(2):
        rows, distinct = [], []
        for i in range(len(ds)):
            xb, yb = ds[i]
            r = np.rint(xb[:, 0, 0] * 255).astype(int) + 256 * np.rint(xb[:, 0, 1] * 255).astype(int)
            assert np.array_equal(y[r], yb), "x and y stay aligned"
            rows += list(r)
            distinct.append(len(set(yb.tolist())))
        assert sorted(rows) == list(range(n)), "every row once per epoch"
        assert np.mean(distinct) > 9, "batches mix the classes of a sorted file"
        orders.append(rows)
        ds.on_epoch_end()
    assert orders[0] != orders[1], "a new order each epoch"
    assert pickle.loads(pickle.dumps(ds))[0][0].shape == (100, 28, 28), "pickles without its windows"
    with pytest.raises(ValueError, match="block_rows"):
        MemmapDataset(tmp_path / "x.npy", tmp_path / "y.npy", 100, block_rows=0)


def write_numbered(tmp_path, n: int, row_shape=(28, 28)):
    """x.npy whose row r holds r in its first two bytes, y.npy sorted by class (10 classes)."""
    x = np.zeros((n, *row_shape), np.uint8)
    flat = x.reshape(n, -1)
    flat[:, 0], flat[:, 1] = np.arange(n) % 256, np.arange(n) // 256
    y = np.repeat(np.arange(10), -(-n // 10))[:n].astype(np.uint8)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    return y


def rows_served(ds) -> tuple[list[int], int]:
    """Every row one epoch serves (read from its bytes), checking x/y alignment; the most MiB of
    window buffers held at any batch."""
    y = np.load(ds.y_path)
    rows, held = [], 0.0
    for i in range(len(ds)):
        xb, yb = ds[i]
        flat = np.rint(xb.reshape(len(xb), -1)[:, :2] * 255).astype(int)
        r = flat[:, 0] + 256 * flat[:, 1]
        assert np.array_equal(y[r], yb), "x and y stay aligned"
        rows += r.tolist()
        held = max(held, ds.held_mb())
    return rows, held


@pytest.mark.parametrize("split", ["rows", "blocks", "range", "unaligned range", "unsorted"])
def test_block_shuffling_serves_any_set_of_indices_once(tmp_path, split):
    """A stratified split of rows, of whole blocks, a range not starting at 0 or not on a block's
    edge, an unsorted array: every served row once per epoch, aligned, and nothing else."""
    from helpers.pipelines.splits import split_indices

    n = 6000
    y = write_numbered(tmp_path, n)
    if split == "range":
        train = np.arange(1000, 5000)
    elif split == "unaligned range":
        train = np.arange(1003, 4987)
    else:
        train, _ = split_indices(n, 0.2, labels=y, seed=3, block_rows=20 if split == "blocks" else None)
    if split == "unsorted":
        train = np.random.default_rng(0).permutation(train)
    ds = MemmapDataset(tmp_path / "x.npy", tmp_path / "y.npy", 100, indices=train, window_mb=1, block_rows=20)
    for _ in range(2):
        rows, _ = rows_served(ds)
        assert sorted(rows) == sorted(train.tolist()), "every row of the set once, no other row"
        ds.on_epoch_end()


@pytest.mark.parametrize("row_shape", [(28, 28), (224, 224, 3)], ids=["784 B", "147 KiB"])
def test_block_shuffling_keeps_its_windows_within_the_budget(tmp_path, row_shape):
    """The window buffers held (two windows, spare buffers) never exceed ``window_mb``, at 784-byte
    rows and at photo-sized rows; the block follows the row's size."""
    n = 6000 if row_shape == (28, 28) else 300
    write_numbered(tmp_path, n, row_shape)
    budget = 2.0 if row_shape == (28, 28) else 8.0
    ds = MemmapDataset(tmp_path / "x.npy", tmp_path / "y.npy", 16, window_mb=budget)
    assert ds.block_rows == (512 if row_shape == (28, 28) else 2)
    assert 2 * ds.window_bytes() + ds._reserve_bytes(ds.block_rows) <= budget * 2**20, "windows + working memory"
    for _ in range(2):
        rows, held = rows_served(ds)
        assert sorted(rows) == list(range(n))
        assert 0 < held <= budget, f"{held:.2f} MiB of window buffers for a {budget} MiB budget"
        ds.on_epoch_end()


def test_block_shuffling_with_worker_threads_keeps_rows_and_labels_together(tmp_path):
    """Batches asked for by several threads at once, across many small windows: every batch's rows
    match its labels and the epoch serves every row once (a window is not refilled mid-copy)."""
    from concurrent.futures import ThreadPoolExecutor

    n = 6000
    write_numbered(tmp_path, n)
    ds = MemmapDataset(tmp_path / "x.npy", tmp_path / "y.npy", 50, window_mb=1, block_rows=8)   # 54 blocks a window
    y = np.load(tmp_path / "y.npy")

    def rows_of(i):
        xb, yb = ds[i]
        r = np.rint(xb[:, 0, 0] * 255).astype(int) + 256 * np.rint(xb[:, 0, 1] * 255).astype(int)
        assert np.array_equal(y[r], yb), "x and y stay aligned"
        return r.tolist()

    with ThreadPoolExecutor(4) as pool:
        rows = [r for batch in pool.map(rows_of, range(len(ds))) for r in batch]
    assert sorted(rows) == list(range(n))


def test_a_budget_too_small_is_refused_with_the_figures(tmp_path):
    write_numbered(tmp_path, 2000)
    x, y = tmp_path / "x.npy", tmp_path / "y.npy"
    with pytest.raises(ValueError, match=r"window_mb=0.05 is smaller than one batch: 100 rows of .*x.npy"):
        MemmapDataset(x, y, 100, window_mb=0.05)
    with pytest.raises(ValueError, match=r"after 0.3\d MiB of working memory\), but one block of 512 rows of "
                                         r".*x.npy' takes 0.38 MiB: raise window_mb to at least 1.0\d"):
        MemmapDataset(x, y, 100, window_mb=0.5)
    for bad in (0, -1, float("nan"), True, "64"):
        with pytest.raises(ValueError, match="window_mb must be a positive number"):
            MemmapDataset(x, y, 100, window_mb=bad)
    with pytest.raises(IndexError, match="out of range"):
        MemmapDataset(x, y, 100, indices=[0, 5, 2000], window_mb=1)
    with pytest.raises(ValueError, match=r"window_mb=256 \(the default\) .* one block of 200000 rows"):
        MemmapDataset(x, y, 100, block_rows=200_000)
    np.save(tmp_path / "xf.npy", np.asfortranarray(np.zeros((2000, 28, 28), np.uint8)))
    with pytest.raises(ValueError, match="Fortran order"):
        MemmapDataset(tmp_path / "xf.npy", y, 100, window_mb=2)


def test_block_shuffling_holds_at_most_two_windows_and_drops_them_at_the_epoch_end(tmp_path, monkeypatch):
    n = 6000   # 20-row blocks, 64 blocks a window: 5 windows an epoch
    np.save(tmp_path / "x.npy", np.zeros((n, 28, 28), np.uint8))
    np.save(tmp_path / "y.npy", np.zeros(n, np.uint8))
    ds = MemmapDataset(tmp_path / "x.npy", tmp_path / "y.npy", 100, block_rows=20)
    held_while_reading = []
    read = ds._read_window
    monkeypatch.setattr(ds, "_read_window", lambda w: (held_while_reading.append(len(ds._windows)), read(w))[1])
    for i in range(len(ds)):
        ds[i]
        assert len(ds._windows) <= 2
    assert len(held_while_reading) >= 5 and max(held_while_reading) <= 1, "the one being read is the second"
    ds.on_epoch_end()
    assert not ds._windows, "an ended epoch's windows are never read again"


def test_block_shuffling_reads_every_window_into_one_of_two_buffers(tmp_path):
    n = 6000   # 20-row blocks, 64 blocks a window: 5 windows an epoch, the last one partial
    np.save(tmp_path / "x.npy", np.zeros((n, 28, 28), np.uint8))
    np.save(tmp_path / "y.npy", np.zeros(n, np.uint8))
    ds = MemmapDataset(tmp_path / "x.npy", tmp_path / "y.npy", 100, block_rows=20)
    buffers = set()
    for _ in range(3):
        for i in range(len(ds)):
            ds[i]
            buffers |= {id(rows) for rows, _ in ds._windows.values()}
        ds.on_epoch_end()
    assert len(buffers) == 2, "a new window reuses a dropped window's buffer: no new array per window"
    assert len(ds._spare) == 2 and not ds._windows
