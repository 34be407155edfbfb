"""Shared checks of the figure tests: the Agg backend for the test's duration, and the texts of
a figure that overlap once it is drawn (titles, axis labels, tick labels, legends)."""

from itertools import combinations

import matplotlib.pyplot as plt
import pytest


@pytest.fixture(autouse=True)
def agg_backend():
    """Render off screen, then give the session its backend back (the library never sets it)."""
    previous = plt.get_backend()
    plt.switch_backend("Agg")
    yield
    plt.close("all")
    plt.switch_backend(previous)


def _boxes(fig, renderer):
    """(name, display bounding box) of every visible, non-empty text block of ``fig``."""
    out = []
    if fig._suptitle is not None and fig._suptitle.get_text():
        out.append(("suptitle", fig._suptitle.get_window_extent(renderer)))
    for i, legend in enumerate(fig.legends):
        out.append((f"figure legend {i}", legend.get_window_extent(renderer)))
    for k, ax in enumerate(fig.axes):
        texts = [ax.title, ax._left_title, ax._right_title]
        for axis in (ax.xaxis, ax.yaxis):
            if axis.get_visible():  # a twin's shared axis is hidden
                texts.append(axis.label)
                # the ticks drawn: those in view (get_ticklabels also lists some outside)
                texts += [label for tick in axis._update_ticks()
                          for label in (tick.label1, tick.label2)]
        for t in texts:
            if t.get_visible() and t.get_text().strip():
                out.append((f"axes {k}: {t.get_text()!r}", t.get_window_extent(renderer)))
        if ax.get_legend() is not None:
            out.append((f"axes {k}: legend", ax.get_legend().get_window_extent(renderer)))
    return out


def overlapping_texts(fig) -> list[tuple[str, str]]:
    """Pairs of text blocks of ``fig`` that overlap by more than a pixel each way."""
    fig.canvas.draw()
    boxes = _boxes(fig, fig.canvas.get_renderer())
    clashes = []
    for (a, box_a), (b, box_b) in combinations(boxes, 2):
        if "legend" in a and "legend" in b:
            continue
        inner = box_a.padded(-1)
        if inner.width > 0 and inner.height > 0 and inner.overlaps(box_b.padded(-1)):
            clashes.append((a, b))
    return clashes
