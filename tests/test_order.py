"""helpers.lab.order: the order study's generators, IndexDataset and the identity model (lesson 03)."""

import os
import pickle
import subprocess
import sys
import textwrap
import time
from multiprocessing.pool import ThreadPool
from pathlib import Path

import numpy as np
import pytest

from helpers.lab import order
from helpers.lab.order import (
    IndexDataset,
    Recorder,
    SlowStep,
    as_ints,
    cycling_generator,
    cycling_generator_reset,
    identity_model,
    load_sample,
    pooled_generator,
    read_log,
    take,
)

ROOT = Path(__file__).resolve().parent.parent


def values(batch):
    x, y = batch
    assert x.dtype == np.float32 and x.shape == (len(x), 1)
    np.testing.assert_array_equal(x, y)
    return as_ints(x)


def test_cycling_generator_spans_passes_and_records_what_it_served():
    served = []
    gen = cycling_generator(7, served=served)
    assert values(next(gen)) == list(range(7))
    assert values(next(gen)) == [7, 8, 9, 0, 1, 2, 3]
    assert served == [list(range(7)), [7, 8, 9, 0, 1, 2, 3]]


def test_cache_reset_generator_never_serves_the_tail():
    seen = {v for batch in take(cycling_generator_reset(7), 20) for v in values(batch)}
    assert seen == set(range(7))


def test_take_is_a_generator_that_stops():
    import types

    gen = take(cycling_generator(3), 4)
    assert isinstance(gen, types.GeneratorType)
    assert len(list(gen)) == 4


def test_pooled_generator_keeps_order_with_imap_and_loses_it_with_imap_unordered():
    assert load_sample(3) == 3
    with ThreadPool(2) as pool:
        ordered = [v for b in take(pooled_generator(5, pool, ordered=True), 4) for v in values(b)]
        unordered = [v for b in take(pooled_generator(5, pool, ordered=False), 4) for v in values(b)]
    assert ordered == list(range(10)) * 2
    assert sorted(unordered) == sorted(ordered)  # the same samples...
    assert unordered != ordered  # ...in another order (odd samples overtake the slow even ones)


def test_index_dataset_serves_every_index_once_with_a_partial_last_batch(tmp_path):
    log = tmp_path / "log.txt"
    ds = IndexDataset(10, 4, log_path=log)
    assert len(ds) == 3
    got = [values(ds[i]) for i in range(len(ds))]
    assert got == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert ds.calls == [0, 1, 2]
    assert read_log(log) == [(os.getpid(), 0), (os.getpid(), 1), (os.getpid(), 2)]
    with pytest.raises(IndexError, match="batch index 3 out of range for 3 batches"):
        ds[3]
    with pytest.raises(ValueError, match="batch_size > 0"):
        IndexDataset(10, 0)


def test_index_dataset_passes_worker_options_to_pydataset_and_pickles_small():
    ds = IndexDataset(1000, 7, workers=3, use_multiprocessing=True, max_queue_size=4)
    assert (ds.workers, ds.use_multiprocessing, ds.max_queue_size) == (3, True, 4)
    assert len(pickle.dumps(ds)) < 2000  # no data inside: indices are computed per batch


def test_read_log_rejects_a_malformed_line(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("12 3\nnot a line\n")
    with pytest.raises(ValueError, match="line 2"):
        read_log(bad)
    assert read_log(tmp_path / "missing.txt") == []


def test_identity_model_predicts_its_input_and_the_recorder_sees_fit_batches():
    model = identity_model()
    x = np.arange(12, dtype="float32").reshape(-1, 1)
    assert as_ints(model.predict(x, batch_size=5, verbose=0)) == list(range(12))

    recorder = Recorder()
    model = identity_model(recorder)
    ds = IndexDataset(10, 4)
    model.fit(ds, epochs=1, shuffle=False, verbose=0)
    assert recorder.batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert as_ints(model.predict(x, verbose=0)) == list(range(12))  # lr 0: still the identity


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_predict_keeps_order_with_process_workers(tmp_path, start_method):
    """The class must unpickle in a fresh interpreter (spawn) and log from the workers."""
    script = textwrap.dedent(f"""
        import multiprocessing, os, sys
        multiprocessing.set_start_method({start_method!r}, force=True)
        from helpers.lab.order import IndexDataset, as_ints, identity_model, read_log
        if __name__ == "__main__":
            ds = IndexDataset(50, 7, delay_s=0.02, log_path=sys.argv[1], workers=2, use_multiprocessing=True)
            out = as_ints(identity_model().predict(ds, verbose=0))
            assert out == list(range(50)), out
            pids = {{pid for pid, _ in read_log(sys.argv[1])}} - {{os.getpid()}}
            assert pids, "no batch came from a worker process"
            print("ok", len(pids))
    """)
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "log.txt")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0 and done.stdout.startswith("ok"), done.stderr[-3000:]


def test_label_mixing_is_one_for_a_full_shuffle_and_low_for_sorted_batches():
    labels = np.repeat(np.arange(10), 100)                 # 1,000 labels, sorted
    sorted_batches = np.split(labels, 50)                  # batches of 20: one label each
    shuffled = np.split(np.random.default_rng(1).permutation(labels), 50)
    assert order.distinct_per_batch(sorted_batches) == 1.0
    assert 0.9 < order.label_mixing(shuffled, labels) < 1.1
    assert order.label_mixing(sorted_batches, labels) < 0.2
    with pytest.raises(ValueError, match="only 10"):
        order.label_mixing(sorted_batches, labels[:10])


def test_batch_labels_reads_a_pydataset_by_index_and_a_dataset_by_iteration():
    import tensorflow as tf

    class Indexed:
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return np.zeros((2, 1)), np.array([i, i])

    assert [b.tolist() for b in order.batch_labels(Indexed(), 4)] == [[0, 0], [1, 1], [2, 2], [0, 0]]
    ds = tf.data.Dataset.from_tensor_slices((np.zeros((6, 1)), np.arange(6))).batch(4)
    assert [b.tolist() for b in order.batch_labels(ds, 3)] == [[0, 1, 2, 3], [4, 5], [0, 1, 2, 3]]


def test_slow_step_makes_each_predict_step_take_its_time_and_keeps_the_order():
    # whether prefetch reads ahead meanwhile depends on timing: lesson 03 states it as a claim
    served: list[list[int]] = []
    model = identity_model()
    started = time.perf_counter()
    out = as_ints(model.predict(cycling_generator(7, served=served), steps=2, verbose=0, callbacks=[SlowStep(0.2)]))
    assert time.perf_counter() - started >= 0.4
    assert out == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3]
    assert len(served) >= 2
    with pytest.raises(ValueError, match="seconds must be >= 0"):
        SlowStep(-1)
