"""Plot helpers: labels of close marks on rows of their own, room above the data for them."""

import matplotlib

matplotlib.use("Agg")

from helpers.report.plots import label_rows, memory_timeline  # noqa: E402


def test_labels_that_would_overlap_go_on_rows_below():
    # starts and widths in axes fractions: 0 and 0.02 overlap, 0.5 is clear of both, 0.03 overlaps the first two
    assert label_rows([0.0, 0.02, 0.03, 0.5], [0.1, 0.1, 0.1, 0.1]) == [0, 1, 2, 0]
    assert label_rows([0.0, 0.2], [0.1, 0.1]) == [0, 0]
    assert label_rows([], []) == []


class _Monitor:
    marks = [(0.0, "np.load"), (0.2, "astype"), (9.0, "evaluate")]

    def timeline(self):
        t = [i / 10 for i in range(100)]
        return {"t": t, "anon_mb": [100.0] * 100, "file_mb": [5.0] * 100, "cache_mb": [0.0] * 100}


def test_a_timeline_makes_room_above_the_data_for_its_labels():
    ax = memory_timeline(_Monitor(), title="t")
    assert ax.get_ylim()[1] > 100 * 1.05
    labels = [t.get_text() for t in ax.texts]
    assert labels == ["np.load", "astype", "evaluate"]
