"""The start of every lesson: what the setup cell calls once the helpers are on ``sys.path``.

:func:`start` silences TensorFlow's start-up log, imports TensorFlow, Keras and NumPy, refuses a
TensorFlow without Keras 3, lets a GPU's memory grow on demand (a lesson's child processes use the
same GPU), forgets the claims of an earlier run of the kernel and prints one line per fact a reader
needs to compare figures: versions, where it runs, the CPUs and GPUs, the scale, how memory is
read, how claims are checked and how worker processes start. Safe to call again.
"""

from __future__ import annotations

import multiprocessing
import os
import platform
from types import ModuleType

from helpers.lab.machine import cpu_model, cpus, where

START_METHOD_ENV = "TUTORIAL_START_METHOD"
"""``fork``, ``spawn`` or ``forkserver``: the start method worker processes use in this kernel (e.g.
``forkserver``, Python 3.14's default on Linux, tried on an older Python). Unset: Python's default."""

MIN_TENSORFLOW = "2.16"
"""The first TensorFlow whose ``tf.keras`` is Keras 3."""


def start() -> tuple[ModuleType, ModuleType, ModuleType]:
    """Import and check TensorFlow, Keras and NumPy; print what the lesson runs on. Returns the
    three modules (``tf, keras, np = start()``)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")  # children inherit it
    from helpers.lab.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    import keras
    import numpy as np
    import tensorflow as tf
    from packaging import version

    if version.parse(tf.__version__) < version.parse(MIN_TENSORFLOW) or not keras.__version__.startswith("3."):
        raise RuntimeError(f"this series needs TensorFlow >= {MIN_TENSORFLOW} with Keras 3; found TensorFlow "
                           f"{tf.__version__}, Keras {keras.__version__}: pip install -U 'tensorflow>=2.20'")
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised by an earlier run of this cell: growth is set
            pass

    from helpers.config import get_scale
    from helpers.lab.memory import memory_source
    from helpers.report import claims

    claims.reset()
    scale = get_scale()
    forced = os.environ.get(START_METHOD_ENV, "").strip()
    if forced:
        if forced not in multiprocessing.get_all_start_methods():
            raise ValueError(f"{START_METHOD_ENV}={forced!r}: one of {multiprocessing.get_all_start_methods()}")
        multiprocessing.set_start_method(forced, force=True)
    method = multiprocessing.get_start_method(allow_none=True) or multiprocessing.get_context().get_start_method()
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, NumPy {np.__version__}, "
          f"Python {platform.python_version()} on {where()}, {cpu_model()}: {cpus()} CPUs, {len(gpus)} GPU(s)")
    print(f"scale {scale.name!r} (TUTORIAL_SCALE); memory read from {memory_source()}")
    print(f"worker processes start by {method!r}; machine-dependent claims "
          + ("raise (TUTORIAL_CLAIMS=strict, the test run)" if claims.strict() else "are reported and the lesson goes on"))
    return tf, keras, np
