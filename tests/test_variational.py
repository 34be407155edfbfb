"""Variational posteriors against exact ones computed here: a conjugate Gaussian model (numpy's
closed form), a logistic and a Laplace-likelihood model (quadrature grids in numpy), and the
known failure of mean-field on a correlated posterior (its 1/Λᵢᵢ variances, a large Pareto
k̂). Then the guide's draws through every posterior figure, reproducibility and the caller's
state, refusals, and the CLI."""

import io
import warnings

import numpy as np
import pyro
import pytest
import torch
from figure_checks import agg_backend, overlapping_texts  # noqa: F401 (autouse fixture)
from scipy.optimize import minimize
from scipy.special import expit

import bayesloss
from bayesloss import ApproximationWarning, plots
from bayesloss.posterior import check_sampling_args

SIGMA, TAU = 1.0, 1.0


def _vi(*args, **kwargs):
    """posterior(method="vi") with its warnings recorded: (posterior, {category: the file
    the warning names})."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        post = bayesloss.posterior(*args, method="vi", **kwargs)
    return post, {w.category: w.filename for w in caught}


@pytest.fixture(scope="module")
def conjugate():
    """y = Xw + b + N(0, σ²), σ known, w ~ N(0, τ²), b flat, on two unscaled columns
    (means 50 and 300, sds 10 and 100, correlation 0.95): every pair of parameters is
    strongly correlated. The exact posterior: precision Λ = AᵀA/σ² + diag(1/τ², 1/τ², 0) of
    A = [X, 1], mean Λ⁻¹Aᵀy/σ²."""
    rng = np.random.default_rng(0)
    n = 60
    x1 = rng.normal(50, 10, n)
    x2 = 300 + 100 * (0.95 * (x1 - 50) / 10 + np.sqrt(1 - 0.95**2) * rng.normal(size=n))
    X = np.c_[x1, x2]
    y = 2 + 0.05 * x1 - 0.002 * x2 + rng.normal(0, SIGMA, n)
    A = np.c_[X, np.ones(n)]
    precision = A.T @ A / SIGMA**2 + np.diag([1 / TAU**2, 1 / TAU**2, 0.0])
    cov = np.linalg.inv(precision)
    mean = cov @ A.T @ y / SIGMA**2
    return X, y, mean, cov, precision


def test_full_rank_vi_is_the_exact_gaussian_posterior(conjugate):
    X, y, mean, cov, _ = conjugate
    post, caught = _vi(X, y, "gaussian", noise_scale=SIGMA, prior_scale=TAU, guide="mvn",
                       seed=0)
    sd = np.sqrt(np.diag(cov))
    assert np.all(np.abs(post.mean_ - mean) <= 0.1 * sd)
    vi_sd = np.sqrt(np.diag(post.cov_))
    np.testing.assert_allclose(vi_sd, sd, rtol=0.1)
    exact_corr = cov / np.outer(sd, sd)
    assert np.abs(exact_corr[np.triu_indices(3, 1)]).min() > 0.6  # every pair correlated
    np.testing.assert_allclose(post.cov_ / np.outer(vi_sd, vi_sd), exact_corr, atol=0.02)
    # the draws are the guide's: their moments agree with its exact ones to Monte Carlo error
    draws = np.c_[post.draws("weight"), post.draws("bias")]
    assert np.all(np.abs(draws.mean(0) - post.mean_) <= 4 * vi_sd / np.sqrt(len(draws)))
    assert post.info["khat"] < 0.5 and ApproximationWarning not in caught


def test_mean_field_vi_has_the_exact_means_the_conditional_variances_and_a_large_khat(
        conjugate):
    X, y, mean, cov, precision = conjugate
    post, caught = _vi(X, y, "gaussian", noise_scale=SIGMA, prior_scale=TAU, guide="diagonal",
                       seed=0)
    sd = np.sqrt(np.diag(cov))
    assert np.all(np.abs(post.mean_ - mean) <= 0.1 * sd)
    vi_sd = np.sqrt(np.diag(post.cov_))
    # the mean-field optimum for a Gaussian target: variances 1/Λᵢᵢ, not Σᵢᵢ
    np.testing.assert_allclose(vi_sd, 1 / np.sqrt(np.diag(precision)), rtol=0.1)
    assert np.all(vi_sd < 0.5 * sd)
    np.testing.assert_array_equal(post.cov_, np.diag(np.diag(post.cov_)))
    assert post.info["khat"] > 0.7 and caught[ApproximationWarning] == __file__


def _grid_moments(log_density, *axes):
    """Mean and sd of each axis under a density known up to a constant on a product grid."""
    grids = np.meshgrid(*axes, indexing="ij")
    lp = log_density(*grids)
    p = np.exp(lp - lp.max())
    p /= p.sum()
    mean = np.array([(p * g).sum() for g in grids])
    sd = np.sqrt(np.array([(p * g**2).sum() for g in grids]) - mean**2)
    return mean, sd


@pytest.fixture(scope="module")
def logistic():
    """25 rows, one feature: a skewed posterior, whose Laplace approximation misses the mean
    by about a fifth of an sd; its moments by quadrature on a 700 × 700 grid that holds it."""
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, 25)
    y = (rng.random(25) < expit(1.5 + 2 * x)).astype(float)

    def log_density(w, b):
        eta = w[..., None] * x + b[..., None]
        return (y * eta - np.logaddexp(0, eta)).sum(-1) - w**2 / (2 * 3.0**2)

    mean, sd = _grid_moments(log_density, np.linspace(-3, 12, 700), np.linspace(-4, 10, 700))
    return x[:, None], y, mean, sd


@pytest.mark.parametrize("guide", ["mvn", "flow"])
def test_vi_matches_the_quadrature_posterior_of_a_logistic_model(logistic, guide):
    X, y, mean, sd = logistic
    laplace = bayesloss.posterior(X, y, "bernoulli", prior_scale=3.0, method="laplace")
    assert np.max(np.abs(laplace.mean_ - mean) / sd) > 0.15  # what SVI has to correct
    post, _ = _vi(X, y, "bernoulli", prior_scale=3.0, guide=guide, seed=0)
    assert np.all(np.abs(post.mean_ - mean) <= 0.1 * sd)
    np.testing.assert_allclose(np.sqrt(np.diag(post.cov_)), sd, rtol=0.1)


def test_mean_field_vi_is_the_best_diagonal_gaussian_of_a_logistic_posterior(logistic):
    """The mean-field optimum for a non-Gaussian posterior has no closed form: scipy's BFGS
    on the ELBO of N(m₁, s₁²) N(m₂, s₂²), its expectation by 40 × 40 Gauss–Hermite quadrature.
    The guide starts at the Laplace mode with sds 1/√Hᵢᵢ, about 0.2 sd away: SVI must move."""
    X, y, *_ = logistic
    x = X[:, 0]
    nodes, weights = np.polynomial.hermite.hermgauss(40)
    z1, z2 = np.meshgrid(np.sqrt(2) * nodes, np.sqrt(2) * nodes, indexing="ij")
    w2 = np.outer(weights, weights) / np.pi

    def negative_elbo(p):
        w, b = p[0] + np.exp(p[2]) * z1, p[1] + np.exp(p[3]) * z2
        eta = w[..., None] * x + b[..., None]
        log_joint = (y * eta - np.logaddexp(0, eta)).sum(-1) - w**2 / (2 * 3.0**2)
        return -((w2 * log_joint).sum() + p[2] + p[3])  # + the entropy, up to a constant

    best = minimize(negative_elbo, [0.0, 0.0, 0.0, 0.0], method="BFGS", options={"gtol": 1e-8})
    mean, sd = best.x[:2], np.exp(best.x[2:])
    laplace = bayesloss.posterior(X, y, "bernoulli", prior_scale=3.0, method="laplace")
    assert np.max(np.abs(laplace.mean_ - mean) / sd) > 0.15
    post, _ = _vi(X, y, "bernoulli", prior_scale=3.0, guide="diagonal", seed=0)
    assert np.all(np.abs(post.mean_ - mean) <= 0.05 * sd)
    np.testing.assert_allclose(np.sqrt(np.diag(post.cov_)), sd, rtol=0.05)


def test_vi_works_on_a_kinked_posterior():
    """A Laplace likelihood (b = 1 known), one weight, no intercept: the posterior by
    quadrature on a grid; the Laplace approximation refuses this model."""
    rng = np.random.default_rng(2)
    x = rng.normal(0, 1, 40)
    y = 0.7 * x + rng.laplace(0, 1, 40)
    grid = np.linspace(-2, 3, 20001)
    mean, sd = _grid_moments(
        lambda w: -np.abs(y - w[..., None] * x).sum(-1) - w**2 / 2, grid)
    kw = dict(noise_scale=1.0, fit_intercept=False, seed=0)
    with pytest.raises(ValueError, match="kinks"):
        bayesloss.posterior(x[:, None], y, "laplace", method="laplace", **kw)
    post, _ = _vi(x[:, None], y, "laplace", guide="diagonal", **kw)
    assert abs(post.mean_[0] - mean[0]) <= 0.1 * sd[0]
    assert np.sqrt(post.cov_[0, 0]) == pytest.approx(sd[0], rel=0.1)


def test_categorical_vi_with_a_proper_posterior_is_near_its_laplace_approximation():
    """Softmax with every parameter under a prior (proper): 300 rows make the posterior
    close to Gaussian, so the full-rank guide lands on the Laplace approximation."""
    rng = np.random.default_rng(4)
    X = rng.normal(size=(300, 2))
    y = np.argmax(X @ np.array([[1.0, -1.0, 0.0], [0.5, 0.5, -1.0]])
                  + rng.gumbel(size=(300, 3)), axis=1)
    kw = dict(penalize_intercept=True, seed=0, chains=1, draws=100)
    laplace = bayesloss.posterior(X, y, "categorical", method="laplace", **kw)
    post, _ = _vi(X, y, "categorical", guide="mvn", **kw)
    sd = np.sqrt(np.diag(laplace.cov_))
    assert post.names == laplace.names and len(sd) == 9
    assert np.all(np.abs(post.mean_ - laplace.mean_) <= 0.15 * sd)
    np.testing.assert_allclose(np.sqrt(np.diag(post.cov_)), sd, rtol=0.15)


def test_info_reports_the_elbo_trace_the_steps_and_the_plateau(conjugate):
    X, y, *_ = conjugate
    post, _ = _vi(X, y, "gaussian", guide="diagonal", seed=0, chains=2, draws=100)
    info = post.info
    assert info["guide"] == "diagonal" and info["converged"]
    assert len(info["elbo"]) == info["steps"] and info["steps"] % 50 == 0
    # the ELBO rose from the start (the guide is fitted) and is a lower bound: finite
    assert np.isfinite(info["elbo"]).all() and info["elbo"][-50:].mean() > info["elbo"][:10].mean()
    assert post.method == "vi" and post.idata.posterior.sizes == {
        "chain": 2, "draw": 100, "feature": 2}


def test_a_run_that_ends_before_its_plateau_says_so(conjugate, monkeypatch):
    from bayesloss import variational

    X, y, *_ = conjugate
    monkeypatch.setattr(variational, "MAX_STEPS", 120)  # a plateau takes 200 steps at least
    post, caught = _vi(X, y, "gaussian", guide="mvn", seed=0, chains=1, draws=60)
    assert not post.info["converged"] and post.info["steps"] == 120
    assert caught[bayesloss.ConvergenceWarning] == __file__


def test_vi_is_seeded_and_leaves_the_caller_state_alone(conjugate):
    X, y, *_ = conjugate
    pyro.clear_param_store()
    pyro.param("callers", torch.ones(2))
    np.random.seed(5)
    torch.manual_seed(5)
    before = np.random.get_state()[1].copy(), torch.get_rng_state().clone()
    first, _ = _vi(X, y, "gaussian", noise_scale=SIGMA, guide="diagonal", seed=3, chains=1,
                   draws=60)
    second, _ = _vi(X, y, "gaussian", noise_scale=SIGMA, guide="diagonal", seed=3, chains=1,
                    draws=60)
    other, _ = _vi(X, y, "gaussian", noise_scale=SIGMA, guide="diagonal", seed=4, chains=1,
                   draws=60)
    np.testing.assert_array_equal(first.draws("weight"), second.draws("weight"))
    np.testing.assert_array_equal(first.info["elbo"], second.info["elbo"])
    assert not np.array_equal(first.draws("weight"), other.draws("weight"))
    np.testing.assert_array_equal(np.random.get_state()[1], before[0])
    assert torch.equal(torch.get_rng_state(), before[1])
    assert list(pyro.get_param_store().keys()) == ["callers"]
    pyro.clear_param_store()


@pytest.fixture(scope="module")
def counts_vi():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(80, 2))
    y = rng.poisson(np.exp(0.3 + 0.4 * X[:, 0]))
    post, _ = _vi(X, y, "poisson", guide="lowrank", seed=0, chains=2, draws=200,
                  feature_names=["a", "b"])
    return post


FIGURES = ["plot_trace", "plot_rank", "plot_posterior", "plot_prior_posterior", "plot_pair",
           "plot_ppc", "plot_forest"]  # every figure of a Posterior (save_figures draws these)


@pytest.mark.parametrize("name", FIGURES)
def test_every_posterior_figure_renders_a_vi_posterior(counts_vi, name):
    axes = np.ravel(getattr(plots, name)(counts_vi))
    fig = axes[0].figure
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=60)
    assert len(png.getvalue()) > 5_000
    empty = 1 if name == "plot_pair" else 0  # the pair grid's upper corner (3 parameters)
    assert sum(not ax.has_data() for ax in axes) == empty
    assert overlapping_texts(fig) == []


def test_vi_figures_and_summary_are_the_guides_draws(counts_vi):
    post = counts_vi
    axes = plots.plot_posterior(post)
    assert [ax.get_title() for ax in axes] == ["a", "b", "intercept"]
    heights, _ = np.histogram(post.draws("weight")[:, 1], bins=40, density=True)
    np.testing.assert_allclose([p.get_height() for p in axes[1].patches], heights, rtol=1e-12)
    assert axes[0].figure.get_suptitle().endswith(", vi")
    summary = post.summary()
    assert list(summary["parameter"]) == ["a", "b", "intercept"]
    # the draws' means are the guide's exact means to Monte Carlo error (400 draws)
    assert np.all(np.abs(summary["mean"].to_numpy(float) - post.mean_)
                  <= 4 * np.sqrt(np.diag(post.cov_) / 400))


def test_bad_guides_and_improper_posteriors_are_refused_before_fitting():
    X = np.random.default_rng(0).normal(size=(30, 2))
    with pytest.raises(ValueError, match="unknown guide 'iaf'"):
        check_sampling_args("vi", 4, 500, 1000, "iaf")
    with pytest.raises(ValueError, match="unknown guide"):
        bayesloss.posterior(X, X[:, 0], "gaussian", method="vi", guide="full")
    y = np.arange(30) % 3
    with pytest.raises(ValueError, match="improper along it"):
        bayesloss.posterior(X, y, "categorical", method="vi")
    with pytest.raises(ValueError, match="at least two parameters"):
        bayesloss.posterior(X[:, :1], X[:, 0], "gaussian", noise_scale=1.0,
                            fit_intercept=False, method="vi", guide="flow")


def test_cli_posterior_by_vi(conjugate, tmp_path, capsys):
    from bayesloss.cli import main

    X, y, *_ = conjugate
    path = tmp_path / "data.csv"
    np.savetxt(path, np.c_[X, y], delimiter=",", header="temp,pressure,y", comments="")
    rc = main(["posterior", "gaussian", "--data", str(path), "--target", "y", "--method", "vi",
               "--guide", "mvn", "--chains", "2", "--draws", "100", "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0 and "method='vi'" in out and "guide mvn:" in out and "Pareto k̂" in out
    assert "temp" in out and "pressure" in out
    # the mean-field guide on this correlated posterior: k̂ > 0.7, exit 1 as an unhealthy sampler
    rc = main(["posterior", "gaussian", "--data", str(path), "--target", "y", "--method",
               "vi", "--guide", "diagonal", "--chains", "2", "--draws", "100", "--quiet"])
    assert rc == 1 and "ApproximationWarning" in capsys.readouterr().err


def test_vi_fits_the_model_with_its_inner_link():
    """von_mises' mean is b + 2·atan(x·w): the guide's particles go through the same link as
    the model (without it SVI fitted b + x·w, 5 sds off). Near-Gaussian posterior (n = 400):
    the full-rank guide's means sit within 0.2 sd of the Laplace approximation's."""
    from bayesloss.data import make_synthetic

    d = make_synthetic("von_mises", n=400, d=3, seed=2)
    X = (d.X - d.X.mean(0)) / d.X.std(0)
    laplace = bayesloss.posterior(X, d.y, "von_mises", method="laplace", draws=100, chains=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bayesloss.ApproximationWarning)
        vi = bayesloss.posterior(X, d.y, "von_mises", method="vi", guide="mvn", seed=1)
    sd = np.sqrt(np.diag(laplace.cov_))
    assert np.abs((vi.mean_ - laplace.mean_) / sd).max() < 0.2


def test_vi_starts_on_unscaled_columns_where_the_prior_draw_is_invalid():
    """beta's shapes underflow at a start drawn from the prior on columns scaled up to 1000;
    the guide is created without validating that start and then placed at the Laplace mode."""
    from bayesloss.data import make_synthetic

    d = make_synthetic("beta", n=400, d=3, seed=2)
    laplace = bayesloss.posterior(d.X, d.y, "beta", method="laplace", draws=100, chains=1)
    vi = bayesloss.posterior(d.X, d.y, "beta", method="vi", guide="mvn")
    sd = np.sqrt(np.diag(laplace.cov_))
    assert np.abs((vi.mean_ - laplace.mean_) / sd).max() < 0.2
