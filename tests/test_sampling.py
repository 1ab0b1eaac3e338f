"""The background Sampler of the monitors: ticks while started, none after stop()."""

import time

from helpers.lab.sampling import Sampler


def test_ticks_between_start_and_stop_only():
    ticks = []
    sampler = Sampler(lambda: ticks.append(time.perf_counter()), interval=0.005, name="test")
    assert sampler.start() is sampler and sampler.start() is sampler  # a second start does nothing
    deadline = time.perf_counter() + 5
    while len(ticks) < 3 and time.perf_counter() < deadline:
        time.sleep(0.001)
    sampler.stop()
    stopped_at, count = time.perf_counter(), len(ticks)
    time.sleep(0.03)
    assert count >= 3 and len(ticks) == count and all(t <= stopped_at for t in ticks)
    sampler.stop()  # stopping twice is harmless
    sampler.start()
    sampler.stop()
