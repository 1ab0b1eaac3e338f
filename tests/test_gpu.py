"""GpuMonitor without a GPU (it says why) and with a fake NVML (what it samples and reports)."""

import sys
import time
from types import SimpleNamespace

import matplotlib
import pytest

matplotlib.use("Agg")

from helpers.lab import gpu as gpu_module  # noqa: E402
from helpers.lab.gpu import GpuMonitor  # noqa: E402

MIB = 2**20


class FakeNVML:
    """The few NVML calls GpuMonitor makes, with readings taken in turn from lists."""

    def __init__(self, utilisation=(10, 50, 90), used_mb=(100, 300, 200), count=1, init_error=None):
        self.utilisation, self.used_mb = list(utilisation), list(used_mb)
        self.count, self.init_error = count, init_error
        self.reads = 0
        self.inits = self.shutdowns = 0

    def nvmlInit(self):
        self.inits += 1
        if self.init_error:
            raise self.init_error

    def nvmlShutdown(self):
        self.shutdowns += 1

    def nvmlDeviceGetCount(self):
        return self.count

    def nvmlDeviceGetHandleByIndex(self, i):
        return f"handle {i}"

    def nvmlDeviceGetName(self, handle):
        return b"Fake T4"

    def nvmlDeviceGetUtilizationRates(self, handle):  # one call per sample, before the memory
        self.reads += 1
        return SimpleNamespace(gpu=self.utilisation[(self.reads - 1) % len(self.utilisation)], memory=0)

    def nvmlDeviceGetMemoryInfo(self, handle):
        used = self.used_mb[max(self.reads - 1, 0) % len(self.used_mb)]
        return SimpleNamespace(total=16_000 * MIB, used=used * MIB, free=(16_000 - used) * MIB)


def test_without_pynvml_it_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError
    with GpuMonitor(interval=0.01) as gpu:
        pass
    assert not gpu.available and gpu.samples == [] and gpu.sample() is None
    assert "nvidia-ml-py" in gpu.reason and gpu.summary().startswith("GPU monitor: not available")
    assert gpu.mean_utilisation != gpu.mean_utilisation  # NaN without samples
    gpu.plot()


def test_a_driver_that_does_not_start_is_reported():
    fake = FakeNVML(init_error=RuntimeError("NVML Shared Library Not Found"))
    with GpuMonitor(nvml=fake) as gpu:
        pass
    assert not gpu.available and "Library Not Found" in gpu.reason and fake.shutdowns == 0


def test_a_missing_gpu_index_is_reported_and_nvml_shut_down():
    fake = FakeNVML(count=1)
    with GpuMonitor(index=3, nvml=fake) as gpu:
        pass
    assert not gpu.available and "GPU 3" in gpu.reason and fake.inits == fake.shutdowns == 1


def test_samples_utilisation_and_memory_at_entry_on_demand_and_at_exit():
    fake = FakeNVML()
    with GpuMonitor(interval=60, nvml=fake) as gpu:  # the thread never wakes: samples are ours
        assert gpu.available and gpu.name == "Fake T4" and gpu.memory_total_mb == 16_000
        gpu.sample()
    assert [s.utilisation for s in gpu.samples] == [10, 50, 90]
    assert [s.memory_used_mb for s in gpu.samples] == [100, 300, 200]
    assert gpu.mean_utilisation == 50 and gpu.peak_memory_mb == 300
    assert all(a.t <= b.t for a, b in zip(gpu.samples, gpu.samples[1:]))
    assert fake.inits == fake.shutdowns == 1
    assert gpu.summary() == "GPU 0 (Fake T4): utilisation mean 50 %, memory peak 300 of 16,000 MiB, 3 samples"
    gpu.plot()


def test_the_thread_samples_while_the_block_runs():
    fake = FakeNVML()
    with GpuMonitor(interval=0.005, nvml=fake) as gpu:
        deadline = time.perf_counter() + 5
        while len(gpu.samples) < 4 and time.perf_counter() < deadline:
            time.sleep(0.001)
    assert len(gpu.samples) >= 5  # entry, at least 3 from the thread, exit


def test_the_default_loader_imports_pynvml(monkeypatch):
    fake = FakeNVML()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    assert gpu_module._load_nvml() is fake
    with GpuMonitor(interval=60) as gpu:
        pass
    assert gpu.available and len(gpu.samples) == 2


@pytest.mark.parametrize("name", [b"Tesla T4", "Tesla T4"])
def test_names_as_bytes_or_str(name):
    fake = FakeNVML()
    fake.nvmlDeviceGetName = lambda handle: name
    with GpuMonitor(interval=60, nvml=fake) as gpu:
        pass
    assert gpu.name == "Tesla T4"
