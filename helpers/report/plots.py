"""The three figures the series draws: a memory timeline, throughput bars, memory vs data size.

Each takes an optional matplotlib ``ax`` and returns it, so a lesson can place figures side by side.
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence

import matplotlib.pyplot as plt


class Timeline(Protocol):
    """What :func:`memory_timeline` reads (a :class:`helpers.lab.memory.MemoryMonitor`, which imports
    this module only when it plots: no import goes the other way)."""

    marks: list[tuple[float, str]]

    def timeline(self) -> dict[str, list[float]]: ...


def _ax(ax: Any, figsize: tuple[float, float] = (7, 3.5)) -> Any:
    if ax is None:
        _, ax = plt.subplots(figsize=figsize, constrained_layout=True)
    return ax


def memory_timeline(mon: Timeline, ax: Any = None, title: str | None = None,
                    show_cache: bool = True) -> Any:
    """Anonymous and file-backed memory of the process tree (MiB above entry) over time, and the
    growth of the system page cache; marks as vertical lines."""
    ax = _ax(ax)
    tl = mon.timeline()
    ax.plot(tl["t"], tl["anon_mb"], label="anonymous (owned: heap, arrays, tensors)", color="C3", lw=2)
    ax.plot(tl["t"], tl["file_mb"], label="file-backed, mapped (memmap, libraries)", color="C0")
    if show_cache:
        cache0 = tl["cache_mb"][0]
        ax.plot(tl["t"], [c - cache0 for c in tl["cache_mb"]], label="system page cache (reclaimable)",
                color="C0", ls=":")
    for t, _ in mon.marks:
        ax.axvline(t, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("seconds")
    ax.set_ylabel("MiB above start")
    ax.set_title(title or "Memory of the process tree")
    _mark_labels(ax, mon.marks)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(0, -0.2), frameon=False)   # below: the labels are at the top
    return ax


def label_rows(xs: Sequence[float], widths: Sequence[float], gap: float = 0.01) -> list[int]:
    """Rows for labels that start at ``xs`` and are ``widths`` wide (both in axes fractions, in
    order of ``xs``): each label takes the first row where it starts after the previous label of
    that row ends, so no two labels of a row overlap."""
    ends: list[float] = []
    rows = []
    for x, w in zip(xs, widths):
        row = next((i for i, end in enumerate(ends) if x >= end + gap), len(ends))
        if row == len(ends):
            ends.append(0.0)
        ends[row] = x + w
        rows.append(row)
    return rows


def _mark_labels(ax: Any, marks: Sequence[tuple[float, str]], fontsize: float = 7) -> None:
    """Each mark's label, level, at the top of the axes, right of its line: marks close together
    get their labels on rows below one another instead of on top of each other; the y axis grows
    to make room for the rows above the data."""
    if not marks:
        return
    ax.get_figure().canvas.draw()  # the axes' limits and size in pixels are final
    x0, x1 = ax.get_xlim()
    width_px = ax.get_window_extent().width
    char = fontsize * ax.get_figure().dpi / 72 * 0.6 / width_px      # one character, as an axes fraction
    marks = sorted(marks)
    xs = [(t - x0) / (x1 - x0) for t, _ in marks]
    rows = label_rows(xs, [len(label) * char + 0.01 for _, label in marks])
    lo, hi = ax.get_ylim()
    rows_px = (max(rows) + 1) * (fontsize + 3) * ax.get_figure().dpi / 72 + 4
    height_px = ax.get_window_extent().height
    if rows_px < 0.6 * height_px:   # room above the data for the rows of labels
        ax.set_ylim(lo, hi + (hi - lo) * rows_px / (height_px - rows_px))
    for (t, label), row in zip(marks, rows):
        ax.annotate(label, (t, 1), xycoords=("data", "axes fraction"), xytext=(2, -3 - row * (fontsize + 3)),
                    textcoords="offset points", va="top", ha="left", fontsize=fontsize, color="dimgrey",
                    bbox=dict(boxstyle="square,pad=0.1", fc="white", ec="none", alpha=0.7))


def throughput_bars(names: Sequence[str], samples_per_s: Sequence[float], ax: Any = None,
                    title: str | None = None, reference: float | None = None) -> Any:
    """Horizontal bars of samples/s; with ``reference``, each bar is labelled with its ratio to it."""
    ax = _ax(ax, (7, 0.5 + 0.5 * len(names)))
    bars = ax.barh(list(names), list(samples_per_s), color="C2")
    for bar, v in zip(bars, samples_per_s):
        text = f"{v:,.0f}" + (f"  ({v / reference:.2f}x)" if reference else "")
        ax.annotate(text, (bar.get_width(), bar.get_y() + bar.get_height() / 2), xytext=(3, 0),
                    textcoords="offset points", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("samples/s")
    ax.set_xlim(0, max(samples_per_s) * 1.35)
    ax.set_title(title or "Throughput")
    return ax


def memory_scaling(series: dict[str, tuple[Sequence[float], Sequence[float]]], ax: Any = None,
                   title: str | None = None, limit_mb: float | None = None,
                   limit_label: str = "RAM limit") -> Any:
    """Peak anonymous memory against dataset size, one line per pipeline.

    ``series`` maps a label to ``(dataset_mb values, peak_anon_mb values)``; ``limit_mb`` draws a
    horizontal line (e.g. the RAM of a Colab machine).
    """
    ax = _ax(ax)
    for i, (label, (sizes, peaks)) in enumerate(series.items()):
        ax.plot(sizes, peaks, "o-", label=label, color=f"C{i}")
    if limit_mb is not None:
        ax.axhline(limit_mb, color="black", ls="--", lw=1)
        ax.annotate(limit_label, (0, limit_mb), xytext=(3, 3), textcoords="offset points", fontsize=8)
    ax.set_xlabel("dataset size (float32, MiB)")
    ax.set_ylabel("peak anonymous memory added (MiB)")
    ax.set_title(title or "Peak memory vs dataset size")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    return ax
