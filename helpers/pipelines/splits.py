"""Train/validation splits that keep every class: shuffled, stratified, seeded. Needs NumPy; copy alone.

A file sorted by class (or by time) split by index range validates on its last classes only: the
``validation_split`` trap of lesson 03. :func:`split_indices` draws the validation set at random
instead, per class when labels are given, so each class keeps its share in both sets:

    train_idx, val_idx = split_indices(len(y), 0.2, labels=y, seed=0)
    train = MemmapDataset("x.npy", "y.npy", 128, indices=train_idx)
    val = MemmapDataset("x.npy", "y.npy", 128, indices=val_idx, shuffle=False)

With ``block_rows=K`` the split is made of whole blocks of ``K`` consecutive rows (row ``r`` is in
block ``r // K``), drawn at random and stratified by each block's most common label: each set then
reads whole blocks, as block shuffling does. Both index arrays come back sorted (a memmap reads
them forward).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def _check(n: int, validation: float, labels: Any, block_rows: int | None) -> np.ndarray | None:
    """``labels`` as an array (or None), after checking every argument; errors name the value."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"n must be an integer of at least 2 samples to split, got {n!r}")
    if isinstance(validation, bool) or not isinstance(validation, (int, float, np.floating)) \
            or not 0 < validation < 1:
        raise ValueError(f"validation must be a fraction between 0 and 1 (exclusive), got {validation!r}")
    if block_rows is not None and (isinstance(block_rows, bool) or not isinstance(block_rows, (int, np.integer))
                                   or block_rows < 1):
        raise ValueError(f"block_rows must be a positive integer, got {block_rows!r}")
    if labels is None:
        return None
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != n:
        raise ValueError(f"labels must be one per sample: {n:,} samples, but labels have shape {labels.shape}")
    if np.issubdtype(labels.dtype, np.floating) and not np.all(np.isfinite(labels) & (labels == np.round(labels))):
        raise ValueError("labels are floats that are not class numbers (regression targets?): a stratified split "
                         "needs classes; pass labels=None for one random draw")
    return labels


def _draw(groups: np.ndarray, validation: float, rng: np.random.Generator) -> np.ndarray:
    """A boolean mask over ``len(groups)`` items: in each group, ``round(validation * size)`` items
    drawn at random (at least one item of a group of two or more stays on each side)."""
    mask = np.zeros(len(groups), bool)
    order = np.argsort(groups, kind="stable")
    ordered = groups[order]
    bounds = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1], True])
    for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        members = order[a:b]
        k = int(round(float(validation) * len(members)))
        if len(members) >= 2:
            k = min(max(k, 1), len(members) - 1)
        mask[rng.permutation(members)[:k]] = True
    return mask


def _block_labels(labels: np.ndarray, block_rows: int) -> np.ndarray:
    """The most common label of each block of ``block_rows`` rows (the smallest label on a tie)."""
    codes = np.unique(labels, return_inverse=True)[1].reshape(-1).astype(np.int64)
    n_codes = int(codes.max()) + 1
    key = (np.arange(len(codes)) // block_rows) * n_codes + codes
    pairs, counts = np.unique(key, return_counts=True)
    block, code = pairs // n_codes, pairs % n_codes
    best = np.lexsort((code, -counts, block))          # per block: most rows first, then the smallest label
    first = best[np.r_[True, block[best][1:] != block[best][:-1]]]
    return code[first]


def split_indices(n: int, validation: float = 0.2, *, labels: Any = None, seed: int = 0,
                  block_rows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(train, validation)``: sorted int64 indices of ``n`` samples, the validation set about
    ``validation`` of them, drawn at random with ``seed``.

    Args:
        n: samples to split (``len(y)``).
        validation: the validation share, strictly between 0 and 1.
        labels: one class per sample (any values ``np.unique`` sorts: ints, strings): the split is
            stratified, each class keeps its share in both sets (within one sample or block of it).
            ``None``: one random draw over all samples (use it for regression targets).
        seed: the same seed gives the same split on every machine.
        block_rows: split whole blocks of this many consecutive rows, for a ``MemmapDataset`` with
            block shuffling; stratified by each block's most common label.

    Raises ``ValueError`` naming the value for a fraction outside (0, 1), labels of another length,
    fewer than two samples or blocks, or a split that would leave a set empty.
    """
    labels = _check(n, validation, labels, block_rows)
    rng = np.random.default_rng(seed)
    if block_rows is None:
        val = _draw(np.zeros(n, np.int64) if labels is None else labels, validation, rng)
    else:
        n_blocks = math.ceil(n / block_rows)
        if n_blocks < 2:
            raise ValueError(f"block_rows={block_rows} makes {n_blocks} block of {n:,} samples: at least 2 are needed")
        groups = np.zeros(n_blocks, np.int64) if labels is None else _block_labels(labels, block_rows)
        val = np.repeat(_draw(groups, validation, rng), block_rows)[:n]
    train_idx, val_idx = np.flatnonzero(~val), np.flatnonzero(val)
    if len(train_idx) == 0 or len(val_idx) == 0:
        raise ValueError(f"validation={validation} of {n:,} samples leaves the "
                         f"{'validation' if len(val_idx) == 0 else 'training'} set empty")
    return train_idx.astype(np.int64), val_idx.astype(np.int64)


def class_shares(labels: Any, indices: np.ndarray) -> dict[Any, float]:
    """Each class's share of ``labels[indices]`` (0 for a class absent there), keyed by class."""
    labels = np.asarray(labels)
    present, counts = np.unique(labels[np.asarray(indices, dtype=np.int64)], return_counts=True)
    held = dict(zip(present.tolist(), counts.tolist()))
    return {c: held.get(c, 0) / max(1, len(indices)) for c in np.unique(labels).tolist()}
