"""Draw the figure the README and the docs' landing page show: for three likelihoods, the
negative log-likelihood and the classical loss along one weight, sharing their minimiser.

    python docs/make_figures.py        # writes docs/_static/nll_and_loss.png

Run from a checkout (``PYTHONPATH=.``); the data are seeded, so the figure only changes when the
code does. The PNG is committed because GitHub's README cannot run code.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # a script writing a file: no display needed
import matplotlib.pyplot as plt  # noqa: E402

import bayesloss  # noqa: E402
from bayesloss.data import make_synthetic  # noqa: E402
from bayesloss.plots import plot_nll_and_loss  # noqa: E402

TARGET = Path(__file__).resolve().parent / "_static" / "nll_and_loss.png"


def main() -> Path:
    fig, axes = plt.subplots(3, 2, figsize=(9.0, 8.4), constrained_layout=True)
    for row, likelihood in zip(axes, ["gaussian", "bernoulli", "poisson"]):
        data = make_synthetic(likelihood, n=500, d=3, seed=0)
        fit = bayesloss.fit(data.X, data.y, likelihood)
        plot_nll_and_loss(fit, data.X, data.y, coordinate=0, ax=row)
    fig.suptitle("MLE: the negative log-likelihood and the classical loss share their minimiser")
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(TARGET, dpi=110)
    plt.close(fig)
    print(f"wrote {TARGET}")
    return TARGET


if __name__ == "__main__":
    main()
