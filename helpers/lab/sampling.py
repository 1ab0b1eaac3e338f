"""A background thread that calls a function every ``interval`` seconds: the sampling loop of
:class:`~helpers.lab.memory.MemoryMonitor`, :class:`~helpers.lab.gpu.GpuMonitor` and :class:`~helpers.lab.workers.WorkerWatch`."""

from __future__ import annotations

import threading
from typing import Callable


class Sampler:
    """Call ``tick()`` every ``interval`` seconds in a daemon thread, from ``start()`` to ``stop()``.

    ``stop()`` waits for the thread, so no ``tick`` runs after it returns.
    """

    def __init__(self, tick: Callable[[], object], interval: float, name: str = "Sampler") -> None:
        self.tick, self.interval, self.name = tick, interval, name
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def _loop(self) -> None:
        while not self._stopping.wait(self.interval):
            self.tick()

    def start(self) -> "Sampler":
        """Start ticking (a second call while running does nothing)."""
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop ticking and wait for the thread to end."""
        self._stopping.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()
