"""The histogram of final grades and the mean score per week (``score_histogram.png``)."""

from __future__ import annotations

import statistics
from pathlib import Path

from .book import ClassBook


def plot(book: ClassBook, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    finals = [s.final for s in book.students if s.final is not None]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    left.hist(finals, bins=[i * 5 for i in range(21)], color="#4c72b0", edgecolor="white")
    left.set(xlabel="final grade (%)", ylabel="students", title=f"Final grades ({len(finals)} students)")
    means = []
    for w in book.week_ids:
        values = [s.weeks[w].score for s in book.students if s.weeks[w].score is not None]
        top = book.maxima.get(w)
        means.append(100.0 * statistics.mean(values) / top if values and top else 0.0)
    right.bar(book.week_ids, means, color="#55a868")
    right.set(ylim=(0, 100), ylabel="mean score after the late rule (%)", title="Mean score per week")
    fig.savefig(path, dpi=100)
    plt.close(fig)
