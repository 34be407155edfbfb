"""Sweep figures: the points are the means over seeds and the bars their standard errors
(pandas computes both here), the legend says so, and log-axis tick labels do not collide."""

import json

import numpy as np
import pandas as pd
import pytest
from figure_checks import agg_backend, overlapping_texts  # noqa: F401 (autouse fixture)
from matplotlib.container import ErrorbarContainer

from bayesloss.plots import (plot_classification, plot_map_vs_mle, plot_regularization_path,
                             plot_robustness)

SEEDS = [0, 1, 2]


def _table(x_name, xs, groups, metrics=("coef_error",)):
    """A sweep's results table: one row per (group, x, seed), metrics drawn at random."""
    rng = np.random.default_rng(0)
    rows = [{"status": "done", "likelihood": "gaussian", "estimator": "map", "prior": "normal",
             "prior_scale": 1.0, **group, x_name: x, "seed": s,
             **{m: float(rng.uniform(0.05, 3.0)) for m in metrics}}
            for group in groups for x in xs for s in SEEDS]
    rows.append({**rows[0], "status": "failed", "coef_error": 1e6})  # failed runs are skipped
    return pd.DataFrame(rows)


MAP_VS_MLE = [{"estimator": "mle", "prior": None, "prior_scale": np.nan},
              {"estimator": "map", "prior_scale": 0.3}, {"estimator": "map", "prior_scale": 1.0}]


def _errorbars(ax):
    return [c for c in ax.containers if isinstance(c, ErrorbarContainer)]


@pytest.mark.parametrize("xs", [[15, 25, 50, 100, 250, 1000, 5000], [15, 20, 30], [10, 10**6]])
def test_map_vs_mle_points_are_seed_means_and_bars_standard_errors(xs):
    table = _table("n", xs, MAP_VS_MLE)
    ax = plot_map_vs_mle(table)
    done = table[table["status"] == "done"]
    legend = ax.get_legend()
    assert legend.get_title().get_text() == \
        "points: mean over 3 seeds; bars: ± 1 standard error"
    assert [t.get_text() for t in legend.get_texts()] == [
        "MAP, normal prior τ = 0.3", "MAP, normal prior τ = 1", "MLE"]
    for container, (_, group) in zip(_errorbars(ax), done.groupby(
            ["estimator", "prior", "prior_scale"], dropna=False, sort=True)):
        stats = group.groupby("n")["coef_error"].agg(["mean", "sem"])
        line, _, (bars,) = container
        np.testing.assert_array_equal(line.get_xdata(), stats.index)
        np.testing.assert_allclose(np.asarray(line.get_ydata(), float), stats["mean"], rtol=1e-12)
        tops = np.array([segment[1][1] for segment in bars.get_segments()])
        np.testing.assert_allclose(tops, stats["mean"] + stats["sem"], rtol=1e-12)
    assert ax.get_xlabel() == "training rows n" and ax.get_title().startswith("MAP vs MLE")
    # plain tick labels ("50", not "5×10¹" in mathtext), none on minor ticks, none touching
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert labels and [float(text) for text in labels]  # float() refuses mathtext
    assert not any(t.get_text() for t in ax.get_xticklabels(minor=True))
    assert overlapping_texts(ax.figure) == []


def test_robustness_and_classification_legends_explain_the_bars():
    table = _table("outliers", [0.0, 0.1, 0.2, 0.3],
                   [{"likelihood": lik, "estimator": "mle"} for lik in
                    ("gaussian", "laplace", "studentt")])
    ax = plot_robustness(table)
    assert "standard error" in ax.get_legend().get_title().get_text()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "gaussian (MSE)", "laplace (MAE)", "studentt (t-loss)"]
    assert overlapping_texts(ax.figure) == []

    classes = _table("n", [40, 80, 160, 320, 1000, 3000], MAP_VS_MLE,
                     metrics=("test_nll", "test_ece"))
    axes = plot_classification(classes)
    for ax in axes:
        assert ax.get_legend().get_title().get_text() == \
            "points: mean over 3 seeds; bars: ± 1 standard error"
        assert ax.get_title() and ax.get_xlabel() == "training rows n"
    assert overlapping_texts(axes[0].figure) == []


def test_regularization_path_plots_the_stored_coefficients_with_readable_ticks():
    taus = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0]
    rng = np.random.default_rng(1)
    rows = []
    for prior in ("laplace", "normal"):
        for tau in taus:
            coef = rng.normal(size=3)
            rows.append({"status": "done", "estimator": "map", "seed": 0, "prior": prior,
                         "prior_scale": tau, "coef": json.dumps(coef.tolist()),
                         "ref_coef": json.dumps((coef + 1e-9).tolist())})
    table = pd.DataFrame(rows)
    axes = plot_regularization_path(table)
    assert len(axes) == 2
    for ax, prior in zip(axes, ("laplace", "normal")):
        coef = np.array([json.loads(c) for c in table[table["prior"] == prior]["coef"]])
        ours = [line for line in ax.lines if line.get_marker() == "o"]
        np.testing.assert_allclose(ours[1].get_ydata(), coef[:, 1], rtol=1e-12)
        assert [t.get_text() for t in ax.get_legend().get_texts()] == [
            "reference solver", "bayesloss MAP"]
    assert overlapping_texts(axes[0].figure) == []
