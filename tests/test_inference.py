"""What a point fit reports, checked from outside on data the check matrix does not contain:
learned scales at their exact optimum, Laplace fits that are converged only with an optimality
certificate (and stop within their budget), minibatch Adam within its contract, and the
warnings a user should see."""

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy.optimize import brentq, linprog

import bayesloss
from bayesloss import ConvergenceWarning, PriorWarning
from bayesloss.data import load_dataset, make_synthetic

# seeds and sizes the check matrix (seed 0, n = 2,000, d = 10) does not use
DATA = [(11, 700, 5), (12, 1500, 8)]


def _residuals(fit, X, y):
    return y - X @ fit.coef_ - fit.intercept_


def _studentt_scale(r, df):
    """argmin_s of the Student-t NLL at fixed residuals: the root of its s-derivative,
    n − (ν+1) Σ r²/(ν s² + r²), which increases in s."""
    n = len(r)

    def slope(s):
        return n - (df + 1) * np.sum(r**2 / (df * s**2 + r**2))

    hi = np.abs(r).max()
    return brentq(slope, 1e-8 * hi, 10 * hi, xtol=1e-300, rtol=4 * np.finfo(float).eps)


EXACT_SCALE = {
    "gaussian": lambda r, df: np.sqrt(np.mean(r**2)),
    "laplace": lambda r, df: np.mean(np.abs(r)),
    "studentt": _studentt_scale,
}


@pytest.mark.parametrize("seed, n, d", DATA)
@pytest.mark.parametrize("estimator", ["mle", "map"])
@pytest.mark.parametrize("likelihood", sorted(EXACT_SCALE))
def test_learned_scale_is_at_its_exact_optimum(likelihood, estimator, seed, n, d):
    """σ = √(RSS/n), b = mean|r|, and the Student-t 1-d optimum (brentq), given the returned
    coefficients, to 1e-9 relative: the scale's prior is flat under MLE and MAP alike."""
    data = make_synthetic(likelihood, n, d, seed=seed)
    kw = {"estimator": "map", "prior": "normal", "prior_scale": 0.3} if estimator == "map" else {}
    fit = bayesloss.fit(data.X, data.y, likelihood, **kw)
    assert fit.converged
    expected = EXACT_SCALE[likelihood](_residuals(fit, data.X, data.y), 4.0)
    assert fit.scale_ == pytest.approx(expected, rel=1e-9)


def _highs_lad(X, y):
    """Least absolute deviations as an LP solved by HiGHS: min Σ (r⁺ + r⁻), Xw + c + r⁺ − r⁻ = y.

    HiGHS's answer is judged, not its status: its duals u certify the optimum (|u| ≤ 1,
    [X 1]ᵀu = 0, and yᵀu equal to the primal objective), to its 1e-7 feasibility tolerance."""
    n, d = X.shape
    A = sp.hstack([sp.csr_matrix(np.c_[X, np.ones(n)]), sp.eye(n), -sp.eye(n)])
    cost = np.r_[np.zeros(d + 1), np.ones(2 * n)]
    res = linprog(cost, A_eq=A, b_eq=y, bounds=[(None, None)] * (d + 1) + [(0, None)] * (2 * n),
                  method="highs")
    w, c = res.x[:d], res.x[d]
    u = res.eqlin.marginals
    assert res.fun == pytest.approx(np.abs(y - X @ w - c).sum(), rel=1e-9)
    assert np.abs(u).max() <= 1 + 1e-7
    assert np.abs(np.c_[X, np.ones(n)].T @ u).max() <= 1e-7 * np.abs(X).sum(axis=0).max()
    assert y @ u == pytest.approx(res.fun, rel=1e-9)
    return res.fun


@pytest.fixture(scope="module")
def lad():
    d = make_synthetic("laplace", 400, 5, seed=13)
    return d.X, d.y, _highs_lad(d.X, d.y)


def test_laplace_fit_is_converged_with_its_certificate(lad):
    X, y, optimum = lad
    fit = bayesloss.fit(X, y, "laplace")
    assert fit.converged and fit.info["certified"]
    assert fit.info["dual_bound"] <= fit.info["objective"]  # weak duality
    assert fit.info["gap"] <= 1e-9
    assert fit.info["active_rows"] >= X.shape[1] + 1  # an LP vertex: p residuals at zero
    assert np.abs(_residuals(fit, X, y)).sum() == pytest.approx(optimum, rel=1e-9)


def test_laplace_fit_stopped_by_max_iter_is_not_converged_and_warns(lad):
    X, y, optimum = lad
    with pytest.warns(ConvergenceWarning, match="stopped after 2 iterations"):
        fit = bayesloss.fit(X, y, "laplace", max_iter=2)
    assert not fit.converged and fit.n_iter == 2
    assert fit.info["stop"] == "max_iter"


@pytest.mark.parametrize("kw", [{"tol": 0.1}, {"tol": 0.1, "max_iter": 8}, {"max_iter": 5}])
def test_laplace_converged_means_optimal(lad, kw):
    """Whatever budget or tolerance, a fit reporting converged=True is at the LP optimum;
    one that is not warns."""
    X, y, optimum = lad
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = bayesloss.fit(X, y, "laplace", **kw)
    warned = any(issubclass(w.category, ConvergenceWarning) for w in caught)
    assert fit.n_iter <= kw.get("max_iter", 5000)
    if fit.converged:
        assert not warned
        assert np.abs(_residuals(fit, X, y)).sum() == pytest.approx(optimum, rel=1e-9)
    else:
        assert warned


@pytest.mark.filterwarnings("error::bayesloss.ConvergenceWarning")
@pytest.mark.parametrize("offset", [0.0, 8.0, 1e3])  # column means in spreads: 1e3 is copied
@pytest.mark.parametrize("sigma_over_sd", [1e-5, 1e-3, 1.0, 1e3])
@pytest.mark.parametrize("estimator", ["mle", "map"])
def test_fixed_scale_fits_converge_whatever_sigma_and_offsets(estimator, sigma_over_sd,
                                                              offset):
    """A fixed σ far below sd(y) once left the gradient's rounding floor above tol (the
    curvature is (sd/σ)² per row in units of sd(y)); offsets are centred in the intercept or,
    large, in a copy of X. Against LAPACK: lstsq (MLE) or ridge with λ = σ²/τ² (MAP)."""
    rng = np.random.default_rng(7)
    n, d = 400, 4
    X = offset * np.array([1.0, -2.0, 0.5, 3.0]) + rng.standard_normal((n, d)) * [1, 3, 0.2, 7]
    y = X @ rng.standard_normal(d) + 5.0 + rng.standard_normal(n)
    sigma = sigma_over_sd * y.std()
    kw = {"estimator": "map", "prior_scale": 0.3} if estimator == "map" else {}
    fit = bayesloss.fit(X, y, "gaussian", noise_scale=sigma, **kw)
    Xc = X - X.mean(axis=0)
    lam = (sigma / 0.3) ** 2 if estimator == "map" else 0.0
    coef = np.linalg.solve(Xc.T @ Xc + lam * np.eye(d), Xc.T @ (y - y.mean()))
    assert fit.converged and fit.grad_norm <= 1e-9
    np.testing.assert_allclose(fit.coef_, coef, rtol=1e-8, atol=1e-10 * np.abs(coef).max())
    np.testing.assert_allclose(fit.intercept_, y.mean() - X.mean(axis=0) @ coef, rtol=1e-8)


@pytest.mark.filterwarnings("error::bayesloss.ConvergenceWarning")
@pytest.mark.parametrize("sigma_over_sd", [1e-2, 1.0, 1e2])
def test_full_batch_adam_with_a_fixed_scale_far_from_sd(sigma_over_sd):
    """Adam's steps have an absolute size (lr): its weights stay O(1) in units of sd(y),
    whatever the fixed σ (in units of σ = sd/100 they would be ~100 and out of its reach)."""
    d = make_synthetic("gaussian", 500, 4, seed=13, scale_range=(0.1, 10.0))
    sigma = sigma_over_sd * d.y.std()
    fit = bayesloss.fit(d.X, d.y, "gaussian", noise_scale=sigma, optimizer="adam")
    lstsq = np.linalg.lstsq(np.c_[d.X, np.ones(len(d.y))], d.y, rcond=None)[0]
    unit = d.y.std() / d.X.std(axis=0)  # a weight's natural scale
    assert fit.converged
    assert np.max(np.abs(fit.coef_ - lstsq[:-1]) / unit) <= 1e-4


def test_prior_given_to_an_mle_fit_warns():
    d = make_synthetic("gaussian", 100, 3, seed=3)
    with pytest.warns(PriorWarning, match="prior_scale= given to an MLE fit"):
        bayesloss.fit(d.X, d.y, "gaussian", prior_scale=2.0)
    with pytest.warns(PriorWarning, match="prior="):
        bayesloss.fit(d.X, d.y, "gaussian", prior="laplace")
    with warnings.catch_warnings():
        warnings.simplefilter("error", PriorWarning)
        bayesloss.fit(d.X, d.y, "gaussian", estimator="map", prior_scale=2.0)
        bayesloss.fit(d.X, d.y, "gaussian")


@pytest.mark.filterwarnings("ignore::bayesloss.ConvergenceWarning")  # 5 iterations
def test_prior_given_to_a_network_mle_warns():
    d = make_synthetic("gaussian", 60, 2, seed=4)
    with pytest.warns(PriorWarning, match="prior_scale= given to an MLE fit"):
        bayesloss.fit(d.X, d.y, "gaussian", mean="mlp", hidden=(3,), prior_scale=2.0,
                      max_iter=5)


@pytest.mark.filterwarnings("error")
def test_read_only_inputs_fit_without_torch_warnings():
    """statsmodels' cpunish and pandas columns (copy-on-write) arrive as read-only arrays."""
    d = load_dataset("cpunish")
    assert bayesloss.fit(d.X, d.y, "poisson").converged
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(80, 3)), columns=["a", "b", "c"])
    target = frame["a"] * 2.0 + rng.normal(size=80)
    assert bayesloss.fit(frame[["b", "c"]], target, "gaussian").converged


def _minibatch_error(likelihood, n, batch_size, seed, d=5):
    """Max error of minibatch Adam against the exact MLE (L-BFGS, verified against scikit-learn
    in the check matrix), in standardised units, over sd(y): |Δw_j|·sd(x_j), and the intercept
    of the standardised model, i.e. the prediction at the column means (the raw intercept is
    the prediction at x = 0, here several standard deviations outside the data, where every
    weight error is amplified by the offsets)."""
    data = make_synthetic(likelihood, n, d, seed=seed)
    kw = {"noise_scale": 1.0} if likelihood == "gaussian" else {}
    exact = bayesloss.fit(data.X, data.y, likelihood, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = bayesloss.fit(data.X, data.y, likelihood, optimizer="adam", batch_size=batch_size,
                             seed=seed, **kw)
    sy = data.y.std() if likelihood == "gaussian" else 1.0
    effect = np.abs(ours.coef_ - exact.coef_) * data.X.std(axis=0)
    centre = data.X.mean(axis=0)
    d_centre = abs((ours.intercept_ + centre @ ours.coef_)
                   - (exact.intercept_ + centre @ exact.coef_))
    return max(effect.max(), d_centre) / sy


def test_minibatch_adam_within_1e2_off_the_check_matrix():
    """The case the issue measured at 3.9e-2 (bernoulli, n = 3,000, d = 5, batch 256)."""
    assert _minibatch_error("bernoulli", 3000, 256, seed=1) <= 1e-2


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("batch_size", [128, 1024])
@pytest.mark.parametrize("n", [3000, 30000])
@pytest.mark.parametrize("likelihood", ["gaussian", "bernoulli"])
def test_minibatch_adam_grid(likelihood, n, batch_size, seed):
    assert _minibatch_error(likelihood, n, batch_size, seed) <= 1e-2
