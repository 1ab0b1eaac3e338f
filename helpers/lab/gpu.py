"""Is the GPU fed? Sample its utilisation and memory during ``fit`` (lesson 06).

:class:`GpuMonitor` reads NVIDIA's management library (NVML) through ``pynvml``, the module of the
``nvidia-ml-py`` package, in a background thread. It is optional: without the package, a driver or
a GPU, the monitor still works as a context manager and says why it has nothing to show::

    with GpuMonitor() as gpu:
        model.fit(dataset, epochs=1)
    print(gpu.summary())   # "GPU 0 (Tesla T4): utilisation mean 87 % ..." or "GPU monitor: not available (...)"

Utilisation is NVML's figure: the share of the last sampling period (1/6 s to 1 s, depending on the
GPU) during which at least one kernel ran on the GPU. A starved GPU shows low utilisation while the
CPU prepares batches.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from helpers.config import MIB
from helpers.lab.sampling import Sampler


class GpuSample(NamedTuple):
    """One reading of one GPU: seconds from entry, utilisation (percent of the last period in which
    a kernel ran) and device memory in use by all processes (MiB)."""

    t: float
    utilisation: float
    memory_used_mb: float


def _load_nvml() -> Any:
    import pynvml  # the nvidia-ml-py package; optional

    return pynvml


@dataclass
class GpuMonitor:
    """Sample one GPU's utilisation and memory every ``interval`` seconds while the block runs.

    Args:
        interval: seconds between samples.
        index: which GPU (NVML's numbering, the same as ``nvidia-smi``).
        nvml: the NVML module to use (default: ``import pynvml``); tests pass a fake one.

    After the block: ``available`` (bool), ``reason`` (why not, if not), ``name``, ``samples``,
    ``mean_utilisation``, ``peak_memory_mb``, ``memory_total_mb``, ``summary()``.
    """

    interval: float = 0.1
    index: int = 0
    nvml: Any = None
    available: bool = field(default=False, init=False)
    reason: str = field(default="not entered", init=False)
    name: str = field(default="", init=False)
    memory_total_mb: float = field(default=float("nan"), init=False)
    samples: list[GpuSample] = field(default_factory=list, init=False)
    _handle: Any = field(default=None, init=False, repr=False)
    _t0: float = field(default=0.0, init=False, repr=False)
    _sampler: Sampler | None = field(default=None, init=False, repr=False)

    def _open(self) -> None:
        """Initialise NVML and find the GPU; on any failure set ``reason`` and stay unavailable."""
        self.available, self.reason = False, ""
        try:
            nvml = self.nvml if self.nvml is not None else _load_nvml()
        except ImportError:
            self.reason = "pynvml is not installed (pip install nvidia-ml-py)"
            return
        self.nvml = nvml
        try:
            nvml.nvmlInit()
        except Exception as exc:  # noqa: BLE001 - NVMLError_LibraryNotFound, DriverNotLoaded, ...
            self.reason = f"NVML could not start ({type(exc).__name__}: {exc}): no NVIDIA driver or GPU"
            return
        try:
            count = nvml.nvmlDeviceGetCount()
            if self.index >= count:
                raise LookupError(f"GPU {self.index} asked for, NVML sees {count}")
            self._handle = nvml.nvmlDeviceGetHandleByIndex(self.index)
            name = nvml.nvmlDeviceGetName(self._handle)
            self.name = name.decode() if isinstance(name, bytes) else str(name)
            self.memory_total_mb = nvml.nvmlDeviceGetMemoryInfo(self._handle).total / MIB
        except Exception as exc:  # noqa: BLE001
            self.reason = f"{type(exc).__name__}: {exc}"
            nvml.nvmlShutdown()
            return
        self.available, self.reason = True, ""

    def sample(self) -> GpuSample | None:
        """Take one reading now (None if the monitor is not available)."""
        if not self.available:
            return None
        util = self.nvml.nvmlDeviceGetUtilizationRates(self._handle)
        mem = self.nvml.nvmlDeviceGetMemoryInfo(self._handle)
        s = GpuSample(time.perf_counter() - self._t0, float(util.gpu), mem.used / MIB)
        self.samples.append(s)
        return s

    def __enter__(self) -> "GpuMonitor":
        self.samples = []
        self._open()
        self._t0 = time.perf_counter()
        if self.available:
            self.sample()
            self._sampler = Sampler(self.sample, self.interval, "GpuMonitor").start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._sampler is not None:
            self._sampler.stop()
            self._sampler = None
        if self.available:
            self.sample()
            self.nvml.nvmlShutdown()

    @property
    def mean_utilisation(self) -> float:
        """Mean utilisation over the samples, percent (NaN without samples)."""
        return sum(s.utilisation for s in self.samples) / len(self.samples) if self.samples else float("nan")

    @property
    def peak_memory_mb(self) -> float:
        """Highest device memory in use, MiB (NaN without samples)."""
        return max((s.memory_used_mb for s in self.samples), default=float("nan"))

    def summary(self) -> str:
        """One line: what the GPU did during the block, or why there is nothing to show."""
        if not self.available:
            return f"GPU monitor: not available ({self.reason})"
        return (f"GPU {self.index} ({self.name}): utilisation mean {self.mean_utilisation:.0f} %, "
                f"memory peak {self.peak_memory_mb:,.0f} of {self.memory_total_mb:,.0f} MiB, "
                f"{len(self.samples)} samples")

    def plot(self, ax: Any = None, title: str | None = None) -> Any:
        """Utilisation (left axis) and memory (right axis) over time; says so if not available."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(7, 3), constrained_layout=True)
        ax.set_title(title or "GPU during fit")
        ax.set_xlabel("seconds")
        if not self.available:
            ax.text(0.5, 0.5, self.summary(), ha="center", va="center", wrap=True, transform=ax.transAxes)
            ax.set_xticks([])
            ax.set_yticks([])
            return ax
        t = [s.t for s in self.samples]
        ax.plot(t, [s.utilisation for s in self.samples], color="C2", label="utilisation %")
        ax.set_ylim(0, 105)
        ax.set_ylabel("utilisation %")
        right = ax.twinx()
        right.plot(t, [s.memory_used_mb for s in self.samples], color="C0", label="memory used")
        right.set_ylabel("MiB")
        return ax
