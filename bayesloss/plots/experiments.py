"""Figures of sweeps: one function per canonical comparison, each reading only the results
table of :func:`bayesloss.experiments.run_sweep` (one row per run; failed runs are skipped).

Points are means over seeds; error bars are standard errors over seeds, and each legend says
so. Log axes are ticked at 1, 2, 5 × 10ᵏ (or whole decades on long spans) with plain labels
and no minor labels, which collide on short spans.
"""

from __future__ import annotations

import json

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter


def _done(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["status"] == "done"]


def _label(row) -> str:
    if row["estimator"] == "mle":
        return "MLE"
    return f"MAP, {row['prior']} prior τ = {row['prior_scale']:g}"


def _log_ticks(axis, lo, hi):
    """Plain labels on a log axis spanning [lo, hi]: at 1, 2, 5 × 10ᵏ over up to two and a
    half decades, at whole decades beyond (more labels would touch); minor ticks unlabelled."""
    subs = (1.0, 2.0, 5.0) if np.log10(hi / lo) <= 2.5 else (1.0,)
    axis.set_major_locator(LogLocator(subs=subs))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _lines(ax, table, x, metric, by, label, logx=True, logy=True):
    """One line per group of ``by``: mean ± standard error over seeds of ``metric`` vs ``x``;
    the legend's title says what the points and bars are."""
    data = _done(table).dropna(subset=[metric])
    for _, group in data.groupby(by, dropna=False, sort=True):
        stats = group.groupby(x)[metric].agg(["mean", "sem", "count"]).reset_index()
        ax.errorbar(stats[x], stats["mean"], yerr=stats["sem"].fillna(0.0), marker="o",
                    ms=4, capsize=2, label=label(group.iloc[0]))
    if logx:
        ax.set_xscale("log")
        _log_ticks(ax.xaxis, data[x].min(), data[x].max())
    if logy:
        ax.set_yscale("log")
        _log_ticks(ax.yaxis, *ax.get_ylim())
    ax.grid(True, which="both", alpha=0.3)
    seeds = data["seed"].nunique()
    ax.legend(fontsize=8, title_fontsize=8,
              title=f"points: mean over {seeds} seeds; bars: ± 1 standard error")
    return ax


def _axes(ax, ncols=1):
    if ax is not None:
        return ax
    _, ax = plt.subplots(1, ncols, figsize=(5.5 * ncols, 4), squeeze=True)
    return ax


def plot_map_vs_mle(table: pd.DataFrame, metric: str = "coef_error", ax=None):
    """Estimation error (``metric``, default ‖ŵ − w*‖₂) against n: MLE and MAP per prior scale."""
    ax = _axes(ax)
    _lines(ax, table, "n", metric, ["estimator", "prior", "prior_scale"], _label)
    ax.set_xlabel("training rows n")
    ax.set_ylabel({"coef_error": "‖ŵ − w*‖₂ (mean over seeds)"}.get(metric, metric))
    lik = ", ".join(sorted(_done(table)["likelihood"].unique()))
    ax.set_title(f"MAP vs MLE ({lik} likelihood)")
    return ax


def plot_regularization_path(table: pd.DataFrame, axes=None, seed=None):
    """MAP coefficients (markers) and the reference solver's (lines) against the prior scale τ,
    one panel per prior: closed-form ridge at λ = σ²/τ², scikit-learn Lasso at α = σ²/(n·τ).

    Uses one seed (the smallest, unless ``seed`` is given): a path belongs to one data set.
    """
    data = _done(table)
    data = data[data["estimator"] == "map"]
    seed = data["seed"].min() if seed is None else seed
    data = data[data["seed"] == seed]
    priors = sorted(data["prior"].unique())
    if axes is None:
        _, axes = plt.subplots(1, len(priors), figsize=(5.5 * len(priors), 4), squeeze=False)
        axes = axes[0]
    names = {"normal": "normal prior = ridge, λ = σ²/τ²",
             "laplace": "Laplace prior = lasso, α = σ²/(n·τ)"}
    for ax, prior in zip(np.atleast_1d(axes), priors):
        rows = data[data["prior"] == prior].sort_values("prior_scale")
        tau = rows["prior_scale"].to_numpy()
        ours = np.array([json.loads(c) for c in rows["coef"]])
        ref = np.array([json.loads(c) for c in rows["ref_coef"]]) if rows["ref_coef"].notna().all() \
            else None
        for j in range(ours.shape[1]):
            color = f"C{j % 10}"
            if ref is not None:
                ax.plot(tau, ref[:, j], "-", color=color, lw=1,
                        label="reference solver" if j == 0 else None)
            ax.plot(tau, ours[:, j], "o", color=color, ms=3, mfc="none",
                    label="bayesloss MAP" if j == 0 else None)
        ax.set_xscale("log")
        _log_ticks(ax.xaxis, tau.min(), tau.max())
        ax.set_xlabel("prior scale τ")
        ax.set_ylabel("coefficient")
        ax.set_title(names.get(prior, f"{prior} prior"), fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    return axes


def plot_robustness(table: pd.DataFrame, metric: str = "coef_error", ax=None):
    """Estimation error against the share of outliers, one line per fitted likelihood."""
    ax = _axes(ax)
    loss = {"gaussian": "MSE", "laplace": "MAE", "studentt": "t-loss"}
    _lines(ax, table, "outliers", metric, ["likelihood"],
           lambda r: f"{r['likelihood']} ({loss.get(r['likelihood'], r['likelihood'])})",
           logx=False)
    ax.set_xlabel("share of outliers in y")
    ax.set_ylabel({"coef_error": "‖ŵ − w*‖₂ (mean over seeds)"}.get(metric, metric))
    ax.set_title("Robustness: likelihood = loss under gross errors")
    return ax


def plot_classification(table: pd.DataFrame, axes=None):
    """Held-out log-loss (left) and expected calibration error (right) against n, for the
    Bernoulli MLE and MAP (L2 logistic) per prior scale."""
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(11, 4))
    by = ["estimator", "prior", "prior_scale"]
    _lines(axes[0], table, "n", "test_nll", by, _label)
    axes[0].set_ylabel("held-out log-loss (mean NLL per row)")
    _lines(axes[1], table, "n", "test_ece", by, _label)
    axes[1].set_ylabel("expected calibration error (10 bins)")
    for ax in axes:
        ax.set_xlabel("training rows n")
    axes[0].set_title("Log-loss: MAP vs MLE")
    axes[1].set_title("Calibration: MAP vs MLE")
    return axes


def save_figure(axes, path, dpi: int = 120):
    """Save the figure that ``axes`` belong to as a PNG and close it; return the path."""
    fig = np.ravel(axes)[0].figure  # one Axes, a row of them, or a grid (trace, pair)
    if fig.get_layout_engine() is None:  # figures drawn with a layout engine keep theirs
        fig.tight_layout()
    fig.savefig(path, dpi=dpi, format="png")
    plt.close(fig)
    return path


#: the figure function of each canonical comparison (``[sweep] comparison``)
COMPARISON_PLOTS = {
    "map_vs_mle": plot_map_vs_mle,
    "regularization_path": plot_regularization_path,
    "robustness": plot_robustness,
    "classification": plot_classification,
}
