"""Lesson 08: several trainer processes on this machine (standing in for machines), each reading the
fish TFRecord shards (:func:`helpers.pipelines.tfdata.write_jpeg_shards`) and training under
``tf.distribute.MultiWorkerMirroredStrategy`` on 127.0.0.1.

- :func:`run_trainers` starts ``n`` processes (``python -m helpers.lab.trainers``) with a ``TF_CONFIG``
  each, waits for them, and stops every one of them on the way out (a timeout, an interrupt or an
  error included); each writes what it saw to a JSON file, which it returns
- :func:`trainer` is the body of one process: which record ids it reads when sharding by file and
  by element, and under the strategy's ``AutoShardPolicy`` FILE and DATA; Keras 3's ``fit`` under the
  strategy (does it run?); a custom training loop with a Keras model and optimizer (the optimizer
  sums the gradients across trainers itself); and FILE sharding with fewer files than trainers
- :func:`reference_steps` is that custom loop in one process, on the same global batches
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from helpers.config import project_root, write_atomic
from helpers.lab.service import LOOPBACK, die_with_parent, free_port

GLOBAL_BATCH = 16
"""Samples per step over all trainers (each of 2 trainers gets 8)."""
LEARNING_RATE = 0.01


def _ids(ds: Any) -> list[int]:
    return [int(i) for i in ds.as_numpy_iterator()]


def fish_records(files: Sequence[str], image_size: int) -> Any:
    """The shard files in order (one file after the other) -> ``(image, count)`` batches of
    :data:`GLOBAL_BATCH`, no shuffling: the global batches are the same in every process."""
    import tensorflow as tf

    from helpers.pipelines.tfdata import parse_jpeg_example

    ds = tf.data.TFRecordDataset(list(files))
    ds = ds.map(lambda s: parse_jpeg_example(s, image_size)[:2])
    return ds.batch(GLOBAL_BATCH, drop_remainder=True)


def weights_digest(model: Any) -> tuple[float, str]:
    """(sum of all weights, md5 of their bytes): equal digests = the same weights."""
    import numpy as np

    ws = model.get_weights()
    return float(sum(np.sum(w, dtype=np.float64) for w in ws)), hashlib.md5(b"".join(w.tobytes() for w in ws)).hexdigest()


def _model(image_size: int) -> tuple[Any, Any]:
    import keras

    from helpers.models import fish_counter

    model = fish_counter(image_size, seed=0)          # seeded: the same initial weights everywhere
    return model, keras.optimizers.SGD(LEARNING_RATE)


def reference_steps(files: Sequence[str], image_size: int, steps: int) -> dict:
    """The custom loop of :func:`trainer` in one process, on the same global batches (mean loss over
    each global batch): the weights the trainers must end with."""
    from helpers.lab.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    import tensorflow as tf

    model, opt = _model(image_size)
    for x, y in fish_records(files, image_size).take(steps):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(y[:, None] - model(x, training=True)))
        opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
    total, md5 = weights_digest(model)
    return {"weights_sum": total, "weights_md5": md5}


def _first_line(exc: BaseException, limit: int = 400) -> str:
    """``Type: message`` on one line, a tensor's values cut out, at most ``limit`` characters."""
    text = re.sub(r"\(PerReplica:\{.*?\}\)", "(PerReplica:{...})", str(exc), flags=re.S)
    text = " ".join(text.split())
    return f"{type(exc).__name__}: {text}"[:limit]


def trainer(index: int, n: int, files: Sequence[str], out: str, image_size: int, steps: int) -> None:
    """Body of trainer process ``index`` of ``n`` (its ``TF_CONFIG`` is set): write what it saw to ``out``."""
    from helpers.lab.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    import keras
    import tensorflow as tf

    t0 = time.perf_counter()
    strategy = tf.distribute.MultiWorkerMirroredStrategy()   # first: before any TensorFlow op runs
    got: dict[str, Any] = {"index": index, "tensorflow": tf.__version__, "keras": keras.__version__,
                           "strategy_s": time.perf_counter() - t0, "replicas": strategy.num_replicas_in_sync}
    ids = lambda d: d.map(lambda s: tf.io.parse_single_example(  # noqa: E731
        s, {"id": tf.io.FixedLenFeature([], tf.int64)})["id"])
    file_ds = tf.data.Dataset.from_tensor_slices(list(files))
    # 1. plain tf.data: by file (shard the file list, then read) and by element (read all, keep every n-th)
    got["by_file"] = _ids(ids(file_ds.shard(n, index).interleave(tf.data.TFRecordDataset)))
    got["by_element"] = _ids(ids(file_ds.interleave(tf.data.TFRecordDataset).shard(n, index)))
    got["one_file_by_file"] = _ids(ids(file_ds.take(1).shard(n, index).interleave(tf.data.TFRecordDataset)))

    # 2. the strategy's auto-sharding of a dataset of files
    def distributed_ids(policy: str, file_list: Sequence[str]) -> list[int]:
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = getattr(tf.data.experimental.AutoShardPolicy, policy)
        ds = ids(tf.data.Dataset.from_tensor_slices(list(file_list)).interleave(tf.data.TFRecordDataset))
        dist = strategy.experimental_distribute_dataset(ds.batch(GLOBAL_BATCH).with_options(options))
        return [int(i) for batch in dist for t in strategy.experimental_local_results(batch) for i in t.numpy()]

    got["auto_file"] = distributed_ids("FILE", files)
    got["auto_data"] = distributed_ids("DATA", files)

    # 3. a custom training loop: a Keras model and optimizer made in the strategy's scope
    with strategy.scope():
        model, opt = _model(image_size)

    @tf.function
    def step(x: Any, y: Any) -> Any:
        with tf.GradientTape() as tape:
            per_sample = tf.square(y[:, None] - model(x, training=True))[:, 0]
            loss = tf.nn.compute_average_loss(per_sample, global_batch_size=GLOBAL_BATCH)  # sum / global batch
        opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    data = strategy.experimental_distribute_dataset(fish_records(files, image_size).take(steps).with_options(options))
    t0 = time.perf_counter()
    for batch in data:
        strategy.run(step, args=batch)
    got["loop_s"] = time.perf_counter() - t0
    got["local_batch"] = GLOBAL_BATCH // strategy.num_replicas_in_sync
    got["weights_sum"], got["weights_md5"] = weights_digest(model)

    # 4. Keras 3's fit under the strategy
    try:
        with strategy.scope():
            fit_model, _ = _model(image_size)
        fit_model.fit(fish_records(files, image_size).with_options(options), steps_per_epoch=2, verbose=0)
        got["fit"] = "ran"
    except Exception as exc:  # noqa: BLE001 - what Keras raises is the finding
        got["fit"] = _first_line(exc)

    write_atomic(out, json.dumps(got))   # what the trainer saw, before the step that may break the cluster
    # 5. FILE sharding with fewer files than trainers (last: a failed collective ends the cluster)
    try:
        got["one_file_auto_file"] = distributed_ids("FILE", files[:1])
    except Exception as exc:  # noqa: BLE001 - the error is the finding
        got["one_file_auto_file"] = _first_line(exc)
    write_atomic(out, json.dumps(got))


def run_trainers(files: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *, n: int = 2,
                 image_size: int = 64, steps: int = 4, timeout_s: float = 300) -> list[dict]:
    """Start ``n`` trainer processes on 127.0.0.1 (free ports, a ``TF_CONFIG`` each), wait for them
    (at most ``timeout_s``), and return what each wrote, with its ``exitcode``. Every process is
    stopped before this returns, whatever happens."""
    ports = [free_port() for _ in range(n)]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    outs = [out_dir / f"trainer-{i}.json" for i in range(n)]
    for o in outs:
        o.unlink(missing_ok=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(project_root()), os.environ.get("PYTHONPATH")])))
    procs: list[subprocess.Popen] = []
    try:
        for i in range(n):
            tf_config = {"cluster": {"worker": [f"{LOOPBACK}:{p}" for p in ports]}, "task": {"type": "worker", "index": i}}
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "helpers.lab.trainers", str(i), str(n), str(outs[i]), str(image_size), str(steps),
                 *map(os.fspath, files)],
                env={**env, "TF_CONFIG": json.dumps(tf_config)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + timeout_s
        for p in procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                break
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
    results = []
    for o, p in zip(outs, procs):
        got = json.loads(o.read_text()) if o.exists() else {}
        results.append({**got, "exitcode": p.returncode})
    return results


if __name__ == "__main__":
    i, n, out, size, steps, *files = sys.argv[1:]
    die_with_parent()
    trainer(int(i), int(n), files, out, int(size), int(steps))
