"""approximations(): each method against the exact posterior of a conjugate model (computed here
by scikit-learn, statsmodels and linear algebra), within each method's own tolerance — the
Newton and L-BFGS stopping rules, NUTS's Monte Carlo error — and the CLI and the figure that
show it."""

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from figure_checks import agg_backend, overlapping_texts  # noqa: F401 (autouse fixture)
from scipy.stats import norm
from sklearn.linear_model import Ridge

import bayesloss
from bayesloss import plots
from bayesloss.approximations import COLUMNS, laplace_khat
from bayesloss.cli import main

SIGMA, TAU = 1.5, 0.5
NAMES = ["dose", "weight_kg"]


def _correlated(n=60, seed=0):
    """Two correlated columns (r ≈ 0.95) on scales 100 apart, far from the origin."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n)
    X = np.c_[z + 0.3 * rng.normal(size=n), 70 + 15 * (z + 0.3 * rng.normal(size=n))]
    y = 2.0 + X @ [0.8, 0.03] + rng.normal(0, SIGMA, n)
    return X, y


def _exact_ridge(X, y):
    """The conjugate posterior N(m, Λ⁻¹) of (w, b), prior N(0, τ²) on w, flat b, σ known: its
    mean is scikit-learn's ridge with λ = σ²/τ² (intercept unpenalised), its precision
    Λ = DᵀD/σ² + diag(1/τ², …, 0)."""
    ridge = Ridge(alpha=SIGMA**2 / TAU**2).fit(X, y)
    D = np.c_[X, np.ones(len(y))]
    precision = D.T @ D / SIGMA**2 + np.diag([1 / TAU**2] * X.shape[1] + [0.0])
    return np.r_[ridge.coef_, ridge.intercept_], precision


@pytest.fixture(scope="module")
def conjugate():
    X, y = _correlated()
    table = bayesloss.approximations(
        X, y, "gaussian", methods=["map", "laplace", "vi-mvn", "nuts"], reference="exact",
        prior="normal", prior_scale=TAU, noise_scale=SIGMA, chains=1, warmup=100, draws=300,
        seed=1, feature_names=NAMES)
    return X, y, table


def _rows(table, method):
    return table[table["method"] == method].set_index("parameter").loc[NAMES + ["intercept"]]


def test_table_is_tidy_and_its_exact_reference_is_the_ridge_posterior(conjugate):
    X, y, table = conjugate
    assert list(table.columns) == COLUMNS
    assert list(dict.fromkeys(table["method"])) == ["map", "laplace", "vi-mvn", "nuts", "exact"]
    assert (table.groupby("method").size() == 3).all()
    mean, precision = _exact_ridge(X, y)
    exact = _rows(table, "exact")
    np.testing.assert_allclose(exact["mean"], mean, rtol=1e-8)
    np.testing.assert_allclose(exact["sd"], np.sqrt(np.diag(np.linalg.inv(precision))),
                               rtol=1e-10)
    assert (exact["mean_error_sd"] == 0).all() and (exact["sd_ratio"] == 1).all()
    # the errors are in units of the reference's sd, by definition
    for method in ("map", "laplace", "vi-mvn", "nuts"):
        rows = _rows(table, method)
        np.testing.assert_allclose(rows["mean_error_sd"],
                                   (rows["mean"] - exact["mean"]) / exact["sd"], rtol=1e-12)
        np.testing.assert_allclose(rows["sd_ratio"], rows["sd"] / exact["sd"], rtol=1e-12)
    assert (table["seconds"] > 0).all()
    assert set(table.posteriors) == {"map", "laplace", "vi-mvn", "nuts"}
    # k̂ of log p − log q: for the approximations with a q, one per method
    khat = table.groupby("method", sort=False)["khat"].agg(["first", "nunique"])
    assert khat.loc[["map", "nuts", "exact"], "first"].isna().all()
    assert (khat.loc[["laplace", "vi-mvn"], "nunique"] == 1).all()
    assert khat.loc["vi-mvn", "first"] == table.posteriors["vi-mvn"].info["khat"]
    # the Laplace q is this Gaussian posterior itself: log p − log q is constant, no tail
    assert khat.loc["laplace", "first"] == -np.inf


def test_laplace_and_map_are_exact_to_their_stopping_rules(conjugate):
    X, y, table = conjugate
    mean, precision = _exact_ridge(X, y)
    laplace = _rows(table, "laplace")
    # Newton stops at half the squared decrement ≤ 1e-10 · max(1, |U|) at worst (the float64
    # exit; 1e-20 otherwise); the decrement is the squared distance to the mode in the
    # posterior's own metric, which bounds every coordinate's error in sds
    resid = y - X @ mean[:2] - mean[2]
    U = (resid @ resid / (2 * SIGMA**2) + len(y) * np.log(SIGMA * np.sqrt(2 * np.pi))
         + mean[:2] @ mean[:2] / (2 * TAU**2) + 2 * np.log(TAU * np.sqrt(2 * np.pi)))
    assert np.abs(laplace["mean_error_sd"]).max() <= np.sqrt(2e-10 * max(1.0, abs(U)))
    # a quadratic log density: its Hessian is the exact precision
    np.testing.assert_allclose(laplace["sd_ratio"], 1.0, rtol=1e-8)
    # L-BFGS stops at |∇ per row|∞ ≤ 1e-9 (100 × that when float64 stalls): the mode is then
    # off by Σ g with |g_k| ≤ n · 1e-7, in sds at most Σ_k |Σ_jk| n 1e-7 / sd_j
    cov = np.linalg.inv(precision)
    bound = np.abs(cov).sum(axis=1) * len(y) * 1e-7 / np.sqrt(np.diag(cov))
    point = _rows(table, "map")
    assert (np.abs(point["mean_error_sd"]).to_numpy() <= bound).all(), (point, bound)
    # its standard errors are the Hessian's: with σ known, the exact sds
    np.testing.assert_allclose(point["sd_ratio"], 1.0, rtol=1e-6)


def test_nuts_matches_the_exact_posterior_within_its_monte_carlo_error(conjugate):
    _, _, table = conjugate
    nuts = _rows(table, "nuts")
    ess = table.posteriors["nuts"].info["health"]["min_ess_bulk"]
    # 4 Monte Carlo standard errors: of a mean, sd/√ESS; of an sd, about sd/√(2 ESS)
    assert np.abs(nuts["mean_error_sd"]).max() < 4 / np.sqrt(ess)
    assert np.abs(nuts["sd_ratio"] - 1).max() < 4 / np.sqrt(2 * ess)


def test_flat_prior_exact_reference_is_statsmodels_ols():
    X, y = _correlated(seed=3)
    table = bayesloss.approximations(X, y, "gaussian", methods=["laplace"], reference="exact",
                                     prior=None, noise_scale=SIGMA)
    ols = sm.OLS(y, sm.add_constant(X)).fit()
    exact = table[table["method"] == "exact"]
    assert list(exact["parameter"]) == ["x0", "x1", "intercept"]
    np.testing.assert_allclose(exact["mean"], np.r_[ols.params[1:], ols.params[0]], rtol=1e-8)
    sd = np.sqrt(np.diag(ols.normalized_cov_params) * SIGMA**2)
    np.testing.assert_allclose(exact["sd"], np.r_[sd[1:], sd[0]], rtol=1e-8)


@pytest.mark.parametrize("kwargs, match", [
    (dict(likelihood="bernoulli", noise_scale=None), "conjugate"),
    (dict(noise_scale=None), "conjugate"),
    (dict(prior="laplace", methods=["map"]), "conjugate"),
    (dict(methods=["laplace", "mcmc"]), "unknown method"),
    (dict(methods=["laplace", "laplace"]), "once"),
    (dict(reference="advi"), "reference must be"),
    (dict(likelihood="laplace", reference="nuts"), "leave 'laplace' out"),
    (dict(likelihood="gaussian_mixture", noise_scale=None, reference="nuts",
          methods=["map", "laplace"]), "label-permuted"),
])
def test_bad_requests_are_clear_value_errors(kwargs, match):
    X, y = _correlated(n=30)
    args = dict(likelihood="gaussian", methods=["laplace"], reference="exact",
                noise_scale=SIGMA)
    args.update(kwargs)
    if args["likelihood"] == "bernoulli":
        y = (y > np.median(y)).astype(float)
    with pytest.raises(ValueError, match=match):
        bayesloss.approximations(X, y, **args)


def test_cli_writes_the_table_and_the_figure(tmp_path, capsys):
    X, y = _correlated(n=40)
    path = tmp_path / "doses.csv"
    pd.DataFrame({"dose": X[:, 0], "weight_kg": X[:, 1], "response": y}).to_csv(path,
                                                                                index=False)
    code = main(["approximations", "gaussian", "--data", str(path), "--target", "response",
                 "--methods", "map,laplace", "--reference", "exact", "--noise-scale",
                 str(SIGMA), "--prior-scale", str(TAU), "--out", str(tmp_path / "out")])
    assert code == 0
    printed = capsys.readouterr().out
    written = pd.read_csv(tmp_path / "out" / "approximations.csv")
    assert list(written.columns) == COLUMNS
    assert list(dict.fromkeys(written["method"])) == ["map", "laplace", "exact"]
    assert list(dict.fromkeys(written["parameter"])) == NAMES + ["intercept"]
    mean, _ = _exact_ridge(X, y)
    np.testing.assert_allclose(written.loc[written["method"] == "exact", "mean"], mean,
                               rtol=1e-8)
    assert "weight_kg" in printed and "reference: exact" in printed
    assert (tmp_path / "out" / "approximations.png").stat().st_size > 10_000


def test_cli_exact_on_a_non_conjugate_model_exits_2(capsys):
    code = main(["approximations", "bernoulli", "--data", "synthetic-bernoulli",
                 "--reference", "exact", "--methods", "laplace"])
    assert code == 2
    assert "conjugate" in capsys.readouterr().err


def test_plot_overlays_each_method_and_draws_error_vs_time(conjugate):
    X, y, table = conjugate
    axes = plots.plot_approximations(table)
    fig = axes[0].figure
    assert [ax.get_title() for ax in axes[:-1]] == NAMES + ["intercept"]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["map", "laplace", "vi-mvn",
                                                                   "nuts", "exact"]
    point = _rows(table, "map")
    exact = _rows(table, "exact")
    nuts = table.posteriors["nuts"].draws("weight")
    for j, (ax, name) in enumerate(zip(axes, NAMES + ["intercept"])):
        vline, laplace, vi, kde, density = ax.lines
        assert vline.get_xdata()[0] == point.loc[name, "mean"]
        grid = density.get_xdata()
        np.testing.assert_allclose(density.get_ydata(),
                                   norm.pdf(grid, exact.loc[name, "mean"],
                                            exact.loc[name, "sd"]), rtol=1e-12)
        if j < 2:  # NUTS's draws, smoothed: most of their mass is on the grid, peaked there
            assert np.trapezoid(kde.get_ydata(), grid) > 0.99
            peak = grid[np.argmax(kde.get_ydata())]
            assert abs(peak - np.median(nuts[:, j])) < 0.5 * exact.loc[name, "sd"]
    cost = axes[-1]
    worst = {}
    for line in cost.lines:
        worst.setdefault(line.get_color(), []).append((line.get_xdata()[0],
                                                       line.get_ydata()[0]))
    nuts_rows = _rows(table, "nuts")
    assert (nuts_rows["seconds"].iloc[0], np.abs(nuts_rows["mean_error_sd"]).max()) \
        in worst["tab:red"]
    assert cost.get_xscale() == "log" and cost.get_yscale() == "log"
    assert overlapping_texts(fig) == []


def test_plot_of_a_table_read_back_draws_gaussians(conjugate, tmp_path):
    _, _, table = conjugate
    table.to_csv(tmp_path / "t.csv", index=False)
    plain = pd.read_csv(tmp_path / "t.csv")
    axes = plots.plot_approximations(plain, parameters=["dose"])
    nuts_line = axes[0].lines[3]
    row = _rows(table, "nuts").loc["dose"]
    grid = nuts_line.get_xdata()
    assert nuts_line.get_linestyle() == "--"
    np.testing.assert_allclose(nuts_line.get_ydata(), norm.pdf(grid, row["mean"], row["sd"]))
    with pytest.raises(ValueError, match="no parameter"):
        plots.plot_approximations(plain, parameters=["age"])


def test_laplace_khat_flags_a_skewed_posterior_and_passes_a_near_gaussian_one():
    """15 logistic rows leave the posterior skewed (the mode is ~0.7 sd from the mean); with
    2,000 rows it is close to its Laplace approximation (Bernstein–von Mises)."""
    khat = {}
    for n in (15, 2000):
        rng = np.random.default_rng(2)
        X = rng.normal(size=(n, 2))
        y = (rng.random(n) < 1 / (1 + np.exp(-(X @ [2.0, -1.0] + 0.5)))).astype(float)
        post = bayesloss.posterior(X, y, "bernoulli", prior_scale=5.0, method="laplace",
                                   chains=1, draws=100)
        khat[n] = laplace_khat(post, seed=0)
    assert khat[15] > 0.5 > khat[2000], khat


def test_error_panel_within_one_decade_labels_only_whole_decades():
    """Errors and times each within one decade: a log axis would label its minor ticks, on top
    of one another; the panel spans whole decades instead, and no text overlaps."""
    rows = [("laplace", "x0", 0.5, 0.9, -0.7, 0.82, 0.6, 0.3),
            ("vi-mvn", "x0", 1.1, 1.0, -0.05, 0.9, 0.4, 0.9),
            ("nuts", "x0", 1.2, 1.1, 0.0, 1.0, np.nan, 0.8)]
    table = pd.DataFrame(rows, columns=COLUMNS)
    axes = plots.plot_approximations(table)
    cost = axes[-1]
    assert cost.get_xlim() == (0.1, 1.0) and cost.get_ylim() == (0.01, 1.0)
    assert [(line.get_xdata()[0], line.get_ydata()[0]) for line in cost.lines] == [
        (0.3, 0.7), (0.3, pytest.approx(0.18)), (0.9, 0.05), (0.9, pytest.approx(0.1))]
    assert overlapping_texts(axes[0].figure) == []
