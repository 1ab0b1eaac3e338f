"""helpers.pipelines.splits: shuffled, stratified, seeded train/validation splits of rows or blocks."""

import numpy as np
import pytest

from helpers.pipelines.splits import class_shares, split_indices

SORTED = np.repeat(np.arange(10), [900, 1100, 1000, 1000, 950, 1050, 1000, 1000, 500, 1500]).astype(np.uint8)
"""A class-sorted file's labels, classes of unequal sizes."""


def shares_within(labels, val, points=0.02):
    overall, in_val = class_shares(labels, np.arange(len(labels))), class_shares(labels, val)
    return max(abs(in_val[c] - overall[c]) for c in overall) <= points


@pytest.mark.parametrize("block_rows", [None, 64], ids=["rows", "blocks"])
def test_a_stratified_split_of_a_class_sorted_file_keeps_every_class_share(block_rows):
    train, val = split_indices(len(SORTED), 0.2, labels=SORTED, seed=0, block_rows=block_rows)
    assert np.array_equal(np.sort(np.r_[train, val]), np.arange(len(SORTED))), "every sample in exactly one set"
    assert np.all(np.diff(train) > 0) and np.all(np.diff(val) > 0), "sorted: a memmap reads them forward"
    assert abs(len(val) / len(SORTED) - 0.2) < 0.01
    assert shares_within(SORTED, val), "each class within 2 percentage points of its share"
    if block_rows:
        blocks = np.unique(val // block_rows)
        covered = np.concatenate([np.arange(b * block_rows, min(len(SORTED), (b + 1) * block_rows)) for b in blocks])
        assert np.array_equal(covered, val), "whole blocks"


def test_a_range_split_of_the_same_file_misses_classes():
    """What the stratified split fixes: the last fifth of a sorted file holds two classes."""
    val = np.arange(int(len(SORTED) * 0.8), len(SORTED))
    assert not shares_within(SORTED, val)
    assert sum(share > 0 for share in class_shares(SORTED, val).values()) <= 2


def test_seeded_and_different_per_seed():
    a = split_indices(len(SORTED), 0.2, labels=SORTED, seed=7)
    b = split_indices(len(SORTED), 0.2, labels=SORTED, seed=7)
    c = split_indices(len(SORTED), 0.2, labels=SORTED, seed=8)
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    assert not np.array_equal(a[1], c[1])


def test_without_labels_a_random_split_and_string_classes_work():
    train, val = split_indices(1000, 0.25, seed=1)
    assert len(val) == 250 and len(train) == 750
    assert 0 < val.min() and val.max() > 900, "drawn from the whole range, not its end"
    names = np.array(["cat", "dog", "cat", "bird"] * 250)
    _, val = split_indices(len(names), 0.2, labels=names, seed=0)
    assert class_shares(names, val) == {"bird": 0.25, "cat": 0.5, "dog": 0.25}
    _, val = split_indices(100, 0.2, labels=np.repeat([0.0, 1.0], 50), seed=0)   # classes stored as floats
    assert len(val) == 20
    assert class_shares(np.repeat([0, 1, 2], 10), np.arange(10)) == {0: 1.0, 1: 0.0, 2: 0.0}, "absent: 0"


def test_a_small_class_keeps_a_sample_on_each_side():
    labels = np.array([0] * 98 + [1, 1])
    train, val = split_indices(100, 0.1, labels=labels, seed=0)
    assert (labels[val] == 1).sum() == 1 and (labels[train] == 1).sum() == 1


@pytest.mark.parametrize("kwargs, match", [
    (dict(validation=0), "fraction between 0 and 1"),
    (dict(validation=1.0), "fraction between 0 and 1"),
    (dict(validation=1.5), "fraction between 0 and 1"),
    (dict(labels=np.zeros(5)), r"labels must be one per sample: 10,000 samples, but labels have shape \(5,\)"),
    (dict(block_rows=0), "block_rows must be a positive integer, got 0"),
    (dict(block_rows=20000), "makes 1 block of 10,000 samples"),
    (dict(labels=np.linspace(0, 1, 10_000)), "floats that are not class numbers"),
])
def test_bad_input_is_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        split_indices(10_000, **({"validation": 0.2} | kwargs))


def test_too_few_samples_or_an_empty_set_is_named():
    with pytest.raises(ValueError, match="at least 2 samples"):
        split_indices(1)
    with pytest.raises(ValueError, match="leaves the validation set empty"):
        split_indices(30, 0.1, labels=np.repeat([0, 1, 2], 10), block_rows=10)   # one block a class
