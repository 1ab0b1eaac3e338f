"""What this machine is: where it runs, its processor, the CPUs a process may use.

Read by the setup cell (:func:`helpers.session.start` prints them) and by the claims (each run's
figures are stored with the processor they were measured on).
"""

from __future__ import annotations

import os
import platform
import sys


def where() -> str:
    """Colab, Kaggle or this machine's OS."""
    if "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ:
        return "Colab"
    if "KAGGLE_KERNEL_RUN_TYPE" in os.environ:
        return "Kaggle"
    return f"{platform.system()} ({platform.machine()})"


def cpu_model() -> str:
    """The processor's name (``/proc/cpuinfo`` on Linux): speed ratios between the model's step and
    a Python loader differ between processors, e.g. with and without AVX-512."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:  # macOS, Windows
        pass
    return platform.processor() or "unknown processor"


def cpus() -> int:
    """CPUs this process may run on (its affinity, e.g. under ``taskset``), not the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1
