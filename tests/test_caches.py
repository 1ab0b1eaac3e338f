"""The caches of lesson 04: hit/miss counts, capacities and budgets, thread and process use."""

import multiprocessing
import pickle
import threading

import numpy as np
import pytest

from helpers.pipelines.caches import MB, BytesBudgetCache, Counters, FillOnceCache, LRUCache, nbytes_of


def scan(cache, keys, epochs, order=None):
    """Visit ``keys`` ``epochs`` times; return the hit rate of each epoch."""
    rates = []
    for e in range(epochs):
        h0, m0 = cache.hits, cache.misses
        visit = keys if order is None else order(e)
        for k in visit:
            cache.get(k, lambda k: np.zeros(4, np.float32))
        rates.append((cache.hits - h0) / (cache.hits - h0 + cache.misses - m0))
    return rates


def test_lru_thrashes_on_sequential_epochs_and_fill_once_does_not():
    keys = list(range(100))
    assert scan(LRUCache(50), keys, 3) == [0.0, 0.0, 0.0]
    assert scan(FillOnceCache(50), keys, 3) == [0.0, 0.5, 0.5]


def test_shuffled_epochs_lru_below_fill_once():
    keys = np.arange(1000)
    order = lambda e: np.random.default_rng(e).permutation(keys)  # noqa: E731
    lru = scan(LRUCache(500), keys, 4, order)
    fill = scan(FillOnceCache(500), keys, 4, order)
    assert fill[1:] == [0.5, 0.5, 0.5]
    assert all(0.05 < r < 0.45 for r in lru[1:]), lru


def test_lru_counts_come_from_cache_info():
    cache = LRUCache(2)
    load = lambda k: np.ones(3, np.uint8)  # noqa: E731
    for k in "abab":
        cache.get(k, load)
    info = cache.cache_info()
    assert (info.hits, info.misses, info.currsize) == (2, 2, 2)
    assert (cache.hits, cache.misses, len(cache), cache.nbytes) == (2, 2, 2, 6)
    cache.reset_counters()
    assert (cache.hits, cache.misses) == (0, 0) and np.isnan(cache.hit_rate)
    cache.get("a", load)
    assert cache.hits == 1 and cache.hit_rate == 1.0


def test_fill_once_keeps_the_first_items_and_never_evicts():
    cache = FillOnceCache(2)
    calls = []
    load = lambda k: calls.append(k) or np.full(10, k, np.float32)  # noqa: E731
    for k in [1, 2, 3, 1, 2, 3]:
        assert cache.get(k, load)[0] == k
    assert calls == [1, 2, 3, 3] and 1 in cache and 3 not in cache
    assert (cache.hits, cache.misses, len(cache), cache.nbytes) == (2, 4, 2, 80)
    cache.clear()
    assert len(cache) == 0 and cache.nbytes == 0


def test_bytes_budget_is_in_megabytes_and_holds():
    cache = BytesBudgetCache(budget_mb=1)
    blob = b"x" * (300 * 1024)  # 300 KiB: three fit in 1 MiB, the fourth does not
    for k in range(6):
        cache.get(k, lambda k: blob)
    assert len(cache) == 3 and cache.nbytes == 3 * len(blob) <= 1 * MB
    assert cache.stores == "encoded" and cache.misses == 6
    cache.get(0, lambda k: blob)
    cache.get(5, lambda k: blob)
    assert (cache.hits, cache.misses) == (1, 7)
    assert BytesBudgetCache(0).get("k", lambda k: b"abc") == b"abc"


def test_arguments_are_checked():
    with pytest.raises(ValueError):
        FillOnceCache(-1)
    with pytest.raises(ValueError):
        BytesBudgetCache(-1)
    with pytest.raises(ValueError):
        FillOnceCache(3, stores="pixels")
    with pytest.raises(TypeError):
        nbytes_of("text")


def test_thread_workers_share_one_cache():
    cache = FillOnceCache(1000)
    keys = list(range(1000))

    def work():
        for k in keys:
            cache.get(k, lambda k: np.zeros(8, np.float32))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(cache) == 1000
    assert cache.hits + cache.misses == 4000  # no count lost under the lock
    assert cache.misses >= 1000


def test_pickled_caches_keep_contents_but_not_the_lru():
    fill = FillOnceCache(5)
    fill.get("a", lambda k: b"abc")
    copy = pickle.loads(pickle.dumps(fill))
    assert "a" in copy and copy.misses == 1
    copy.get("b", lambda k: b"d")
    assert "b" not in fill  # a copy, as in a worker process
    lru = LRUCache(5)
    lru.get("a", lambda k: b"abc")
    lru_copy = pickle.loads(pickle.dumps(lru))
    assert len(lru_copy) == 0


def _count_in_child(cache):
    for k in range(10):
        cache.get(k, lambda k: b"x")


def test_shared_counters_reach_the_parent_from_a_process():
    ctx = multiprocessing.get_context("fork")
    cache = FillOnceCache(100, shared_counters=True)
    cache.get(0, lambda k: b"x")  # held by the parent before the child starts: inherited
    child = ctx.Process(target=_count_in_child, args=(cache,))
    child.start()
    child.join()
    assert child.exitcode == 0
    assert (cache.hits, cache.misses) == (1, 10)  # the child's 1 hit and 9 misses, plus ours
    assert len(cache) == 1  # what the child added stayed in the child


def test_counters_plain_and_shared():
    for shared in (False, True):
        c = Counters(shared)
        c.add(True)
        c.add(False)
        c.add(False)
        assert (c.hits, c.misses) == (1, 2)
        c.reset()
        assert (c.hits, c.misses) == (0, 0)
