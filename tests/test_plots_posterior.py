"""Posterior figures show what they claim: one panel per parameter named as the posterior names
it, the plotted data equal to the draws (histograms, HDIs, ranks, observed frequencies), the
MLE where statsmodels puts it, both prior and posterior visible, and no text on top of other
text. Laplace posteriors keep these tests fast; the draws are what is checked."""

import numpy as np
import pytest
import scipy.stats as st
import statsmodels.api as sm
from figure_checks import agg_backend, overlapping_texts  # noqa: F401 (autouse fixture)
from matplotlib.container import ErrorbarContainer

import bayesloss
from bayesloss import plots

NAMES = ["temp_c", "pressure"]


@pytest.fixture(scope="module")
def unscaled():
    """A gaussian posterior on two unscaled columns (sd 8 and 300) under a Normal(0, 1) prior:
    the prior is hundreds of times wider than the posterior of the second weight."""
    rng = np.random.default_rng(0)
    X = np.c_[rng.normal(20, 8, 80), rng.normal(1000, 300, 80)]
    y = 1 + 0.5 * X[:, 0] + 0.002 * X[:, 1] + rng.normal(0, 1, 80)
    post = bayesloss.posterior(X, y, "gaussian", prior="normal", prior_scale=1.0,
                               method="laplace", chains=2, draws=300, seed=0,
                               feature_names=NAMES)
    return post, X, y


@pytest.fixture(scope="module")
def counts():
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, 150)
    y = rng.poisson(np.exp(0.6 + 0.4 * x))
    post = bayesloss.posterior(x[:, None], y, "poisson", prior=None, method="laplace",
                               chains=2, draws=300, seed=0)
    return post, y


def _labels(post):
    return list(post.names) + (["scale"] if "scale" in post.idata.posterior else [])


def _draws(post, site, j=None):
    values = post.idata.posterior[site].values
    return (values if j is None else values[..., j]).ravel()


def _shortest_interval(draws, prob):
    """The narrowest interval holding ``prob`` of the sorted draws (the HDI of a sample)."""
    x = np.sort(draws)
    k = int(np.floor(prob * x.size))
    i = np.argmin(x[k:] - x[:x.size - k])
    return x[i], x[i + k]


def _legend_texts(fig):
    return [t.get_text() for t in fig.legends[0].get_texts()]


def test_posterior_panels_are_the_draws_with_hdi_and_the_statsmodels_mle(unscaled):
    post, X, y = unscaled
    axes = plots.plot_posterior(post)
    fig = axes[0].figure
    titles = [ax.get_title() for ax in axes]
    # the posterior's own names (whatever naming scheme it uses), the columns' names in them
    assert titles == _labels(post) and len(titles) == 4
    assert all(name in title for name, title in zip(NAMES, titles))
    assert _legend_texts(fig) == ["posterior", "94% HDI", "posterior mean", "MLE",
                                  "MAP (constrained space)"]
    ols = sm.OLS(y, sm.add_constant(X)).fit()
    mle = {0: ols.params[1], 1: ols.params[2], 2: ols.params[0]}
    for j, ax in enumerate(axes[:3]):
        draws = _draws(post, "weight", j) if j < 2 else _draws(post, "bias")
        heights, _ = np.histogram(draws, bins=40, density=True)
        np.testing.assert_allclose([p.get_height() for p in ax.patches], heights, rtol=1e-12)
        hdi, mean, mle_line, _ = ax.lines
        np.testing.assert_allclose(hdi.get_xdata(), _shortest_interval(draws, 0.94),
                                   rtol=1e-12)
        assert mean.get_xdata()[0] == pytest.approx(draws.mean(), rel=1e-12)
        # the MLE is least squares: statsmodels' OLS, to the fit's tolerance
        assert mle_line.get_xdata()[0] == pytest.approx(mle[j], rel=1e-6, abs=1e-9)
    assert overlapping_texts(fig) == []


def test_prior_posterior_shows_both_on_unscaled_columns(unscaled):
    post, _, _ = unscaled
    axes = plots.plot_prior_posterior(post)
    fig = axes[0].figure
    assert len(axes) == 2 and [ax.get_title() for ax in axes] == list(post.names[:2])
    assert _legend_texts(fig) == ["posterior", "prior ±2τ = [-2, 2]",
                                  "prior normal(τ = 1) density"]
    twins = [a for a in fig.axes if a not in axes]
    assert len(twins) == 2
    for j, (ax, twin) in enumerate(zip(axes, twins)):
        draws = _draws(post, "weight", j)
        lo, hi = np.percentile(draws, [0.5, 99.5])
        view = ax.get_xlim()
        # the posterior is visible: it spans at least half of the panel (not a spike)
        assert view[0] <= lo and hi <= view[1] and (hi - lo) / (view[1] - view[0]) > 0.5
        heights, _ = np.histogram(draws, bins=40, density=True)
        np.testing.assert_allclose([p.get_height() for p in ax.patches[:40]], heights,
                                   rtol=1e-12)
        # the prior's density over the same span, by scipy, on its own axis
        grid, density = twin.lines[0].get_data()
        assert grid[0] == pytest.approx(view[0]) and grid[-1] == pytest.approx(view[1])
        np.testing.assert_allclose(density, st.norm(0, 1).pdf(grid), rtol=1e-10)
        assert twin.get_ylabel() == "prior density"
    assert overlapping_texts(fig) == []


def test_a_prior_about_as_wide_as_the_posterior_is_shown_whole():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((30, 1))
    y = 0.3 * X[:, 0] + rng.normal(0, 1, 30)
    post = bayesloss.posterior(X, y, "gaussian", prior="normal", prior_scale=0.5,
                               method="laplace", chains=2, draws=200, seed=0)
    (ax,) = plots.plot_prior_posterior(post)
    lo, hi = ax.get_xlim()
    assert lo <= -1.0 and hi >= 1.0  # the prior's ±2τ range is inside the view


def test_flat_prior_says_so_and_draws_no_prior(counts):
    post, _ = counts
    (ax,) = plots.plot_prior_posterior(post)
    assert ax.get_title() == f"{post.names[0]} (flat prior)"
    assert len(ax.figure.axes) == 1 and len(ax.lines) == 0


def test_trace_has_one_row_per_parameter_and_a_line_per_chain(unscaled):
    post, _, _ = unscaled
    axes = plots.plot_trace(post)
    assert axes.shape == (4, 2)
    assert [ax.get_title() for ax in axes[:, 0]] == _labels(post)
    assert axes[0, 1].get_legend() is not None
    # Laplace draws: independent sets, not chains after a warm-up
    assert [t.get_text() for t in axes[0, 1].get_legend().get_texts()] == ["set 0", "set 1"]
    weights = post.idata.posterior["weight"].values
    for j in range(2):
        lines = axes[j, 1].lines
        assert len(lines) == 2
        for c, line in enumerate(lines):
            np.testing.assert_array_equal(line.get_ydata(), weights[c, :, j])
        assert axes[j, 1].get_xlabel() == "draw (independent)"
        assert axes[j, 1].get_ylabel() == post.names[j]
    assert overlapping_texts(axes[0, 0].figure) == []


def test_rank_histograms_count_each_chains_ranks(unscaled):
    post, _, _ = unscaled
    axes = plots.plot_rank(post, bins=10)
    fig = axes[0].figure
    assert [ax.get_title() for ax in axes] == _labels(post)
    assert _legend_texts(fig) == ["chain 0", "chain 1", "uniform (expected per bin)"]
    draws = post.idata.posterior["weight"].values[..., 1]  # (chain, draw)
    ranks = st.rankdata(draws.ravel()).reshape(draws.shape)
    edges = np.linspace(0.5, draws.size + 0.5, 11)
    for c, patch in enumerate(axes[1].patches):
        # a step histogram's outline: its heights are the y of the steps' tops
        tops = patch.get_xy()[1:-1:2, 1]
        np.testing.assert_array_equal(tops, np.histogram(ranks[c], edges)[0])
    assert axes[1].lines[0].get_ydata()[0] == draws.shape[1] / 10
    assert overlapping_texts(fig) == []


def test_count_ppc_is_bars_of_observed_and_replicated_frequencies(counts):
    post, y = counts
    ax = plots.plot_ppc(post, prob=0.9)
    heights = [p.get_height() for p in ax.patches]
    observed = np.bincount(y) / y.size
    np.testing.assert_allclose(heights[:observed.size], observed, rtol=1e-12)
    replicated = post.idata.posterior_predictive["obs"].values.reshape(-1, y.size)
    assert len(heights) >= observed.size and len(heights) - 1 >= np.percentile(replicated, 99.5)
    shares = np.stack([np.bincount(r.astype(int), minlength=len(heights))[:len(heights)]
                       for r in replicated]) / y.size
    (points, _, (bars,)), = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    np.testing.assert_allclose(points.get_ydata(), np.median(shares, 0), rtol=1e-12)
    lows = np.array([seg[0][1] for seg in bars.get_segments()])
    np.testing.assert_allclose(lows, np.quantile(shares, 0.05, 0), rtol=1e-12, atol=1e-15)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "observed", "replicated: median and 90% interval (600 draws)"]
    assert ax.get_xlabel() == "y (count)" and ax.get_ylabel() == "share of rows"
    assert ax.get_title().startswith("Posterior predictive check")
    assert overlapping_texts(ax.figure) == []


def test_class_ppc_is_bars_per_class():
    rng = np.random.default_rng(3)
    x = rng.standard_normal(120)
    y = (rng.random(120) < 1 / (1 + np.exp(-x))).astype(float)
    post = bayesloss.posterior(x[:, None], y, "bernoulli", prior="normal", method="laplace",
                               chains=2, draws=100, seed=0)
    ax = plots.plot_ppc(post)
    np.testing.assert_allclose([p.get_height() for p in ax.patches],
                               [np.mean(y == 0), np.mean(y == 1)], rtol=1e-12)
    assert ax.get_xlabel() == "y (class)"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1"]


def test_continuous_ppc_is_labelled(unscaled):
    post, _, _ = unscaled
    ax = plots.plot_ppc(post)
    assert ax.get_title().startswith("Posterior predictive check")
    assert ax.get_xlabel() == "y" and ax.get_ylabel() == "density"
    assert len(ax.get_legend().get_texts()) == 3


def test_positive_targets_get_a_density_ppc_not_count_bars():
    # gamma's y is not standardised by the fit (Family.continuous is False), yet it is a density
    from bayesloss.data import make_synthetic

    d = make_synthetic("gamma", n=120, d=2, seed=4)
    post = bayesloss.posterior(d.X, d.y, "gamma", method="laplace", draws=100, chains=2)
    ax = plots.plot_ppc(post)
    assert ax.get_xlabel() == "y" and ax.get_ylabel() == "density"
    assert not ax.patches  # no bars of integer counts


def test_save_figure_takes_a_grid_of_axes(unscaled, tmp_path):
    post, _, _ = unscaled
    axes = plots.plot_trace(post)
    assert np.ndim(axes) == 2
    path = plots.save_figure(axes, tmp_path / "trace.png")
    assert path.stat().st_size > 0


def test_forest_rows_are_named_by_the_posterior(unscaled):
    post, _, _ = unscaled
    ax = plots.plot_forest(post)
    assert [t.get_text() for t in ax.get_yticklabels()] == list(post.names)
    assert ax.get_xlabel() == "coefficient value" and ax.get_title().startswith("Estimates")
    assert {t.get_text() for t in ax.get_legend().get_texts()} == {
        "posterior 94% HDI", "posterior mean", "MLE ± 2 SE", "MAP (constrained)"}
    assert overlapping_texts(ax.figure) == []


def test_shrinkage_legend_explains_the_band():
    import pandas as pd

    table = pd.DataFrame({"prior_scale": [0.1, 1.0, 0.1, 1.0], "parameter": ["a", "a", "b", "b"],
                          "map": [0.1, 0.5, -0.1, -0.4], "lower": [0, 0.3, -0.2, -0.6],
                          "upper": [0.2, 0.7, 0, -0.2]})
    ax = plots.plot_shrinkage(table)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "a", "b", "band: central posterior interval (Laplace)"]
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), [0.1, 0.5])
    assert ax.get_title() and ax.get_xlabel() == "prior scale τ"


def test_figures_leave_the_pyplot_backend_alone(unscaled):
    import matplotlib

    before = matplotlib.get_backend()
    plots.plot_forest(unscaled[0])
    assert matplotlib.get_backend() == before
