"""Kinked fits, exact and certified (issue 17): least absolute deviations (the Laplace
likelihood), L1-penalised LAD (a Laplace prior) and LAD with a normal prior, on real designs with
integer columns, ties, degenerate vertices and non-unique optima, and on random integer designs.

Each fit must report ``converged=True`` with its certificate and reach the optimum of an
independent solver computed here: HiGHS (``scipy.optimize.linprog``) for the LPs, Clarabel
(cvxpy) for the QP, whose objectives are re-evaluated at their own solutions (so a reference's
feasibility tolerance cannot flatter it). Relative objective gap ≤ 1e-9 either way. Then
:mod:`bayesloss.engine.face` on its own: a degenerate vertex, a non-unique optimum, a
coordinate at exactly zero, the QP bound, the non-convex label.
"""
import warnings

import cvxpy as cp
import numpy as np
import pytest
import scipy.sparse as sp
import statsmodels.api as sm
from scipy.optimize import linprog

import bayesloss
from bayesloss.check import R_RQ_STACKLOSS, stackloss_fit
from bayesloss.compare import comparison_table
from bayesloss.engine.face import Kinks, finish

GAP = 1e-9

FAST = ["stackloss", "engel", "scotland", "cpunish", "ccard", "statecrime"]
LARGE = ["fair", "randhie"]


def load(name):
    data = getattr(sm.datasets, name).load_pandas()
    return data.exog.to_numpy(float), data.endog.to_numpy(float)


def lad_objective(X, y, coef, intercept, sigma=1.0, tau=None, normal=False):
    """Σ|r|/σ (+ Σ|w|/τ, or Σ w²/2τ² with ``normal``): −log joint up to constants."""
    value = np.abs(y - X @ coef - intercept).sum() / sigma
    if tau is not None:
        value += (coef**2).sum() / (2 * tau**2) if normal else np.abs(coef).sum() / tau
    return value


def highs_lad(X, y, sigma=1.0, tau=None):
    """min Σ(r⁺ + r⁻)/σ + Σ a/τ s.t. Xw + b + r⁺ − r⁻ = y, −a ≤ w ≤ a, by HiGHS; the
    objective re-evaluated at its (w, b)."""
    n, d = X.shape
    k = 0 if tau is None else d
    cost = np.r_[np.zeros(d + 1), np.full(2 * n, 1.0 / sigma), np.full(k, 1.0 / (tau or 1.0))]
    A_eq = sp.hstack([sp.csr_matrix(np.c_[X, np.ones(n)]), sp.eye(n), -sp.eye(n),
                      sp.csr_matrix((n, k))]).tocsr()
    A_ub = b_ub = None
    if k:
        eye, zero = sp.eye(d), sp.csr_matrix((d, 1 + 2 * n))
        A_ub = sp.vstack([sp.hstack([eye, zero, -eye]), sp.hstack([-eye, zero, -eye])]).tocsr()
        b_ub = np.zeros(2 * d)
    bounds = [(None, None)] * (d + 1) + [(0, None)] * (2 * n + k)
    res = linprog(cost, A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=y, bounds=bounds, method="highs")
    assert res.status == 0, res.message
    return lad_objective(X, y, res.x[:d], res.x[d], sigma, tau)


def clarabel_lad_ridge(X, y, sigma, tau):
    """min Σ|r|/σ + Σ w²/2τ² by Clarabel (interior point, tight tolerances), re-evaluated."""
    w, b = cp.Variable(X.shape[1]), cp.Variable()
    objective = cp.sum(cp.abs(y - X @ w - b)) / sigma + cp.sum_squares(w) / (2 * tau**2)
    cp.Problem(cp.Minimize(objective)).solve(solver="CLARABEL", tol_gap_abs=1e-12,
                                             tol_gap_rel=1e-12, tol_feas=1e-12)
    return lad_objective(X, y, w.value, float(b.value), sigma, tau, normal=True)


def fit_quietly(X, y, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("error", bayesloss.ConvergenceWarning)
        return bayesloss.fit(X, y, "laplace", **kw)


def assert_at_optimum(fit, X, y, reference, **objective_kw):
    assert fit.converged and fit.info["certified"], fit.info
    assert fit.info["gap"] <= GAP
    ours = lad_objective(X, y, fit.coef_, fit.intercept_, **objective_kw)
    assert abs(ours - reference) <= GAP * abs(reference), (ours, reference)


def penalty_scales(X, y):
    """σ the mean absolute deviation of y; τ a size of the coefficients that makes some, not
    all, zero on these designs (the smallest column's scale sets a weight's typical size)."""
    sigma = float(np.abs(y - np.median(y)).mean()) or 1.0
    tau = 0.05 * sigma / float(np.abs(X - np.median(X, axis=0)).mean(axis=0).max())
    return sigma, tau


@pytest.mark.parametrize("name", FAST + [pytest.param(n, marks=pytest.mark.slow) for n in LARGE])
@pytest.mark.parametrize("learned", [False, True], ids=["sigma-fixed", "sigma-learned"])
def test_lad_mle_reaches_the_lp_optimum(name, learned):
    X, y = load(name)
    fit = fit_quietly(X, y, **({} if learned else {"noise_scale": 1.0}))
    assert_at_optimum(fit, X, y, highs_lad(X, y))
    if learned:  # the scale's exact optimum given the residuals: mean |r|
        r = y - X @ fit.coef_ - fit.intercept_
        assert fit.scale_ == pytest.approx(np.abs(r).mean(), rel=1e-12)


def test_fair_lad_mle_reaches_the_lp_optimum():
    """fair: n = 6,366, integer-valued columns, 4,313 rows on the optimum (massive ties)."""
    X, y = load("fair")
    fit = fit_quietly(X, y, noise_scale=1.0)
    assert_at_optimum(fit, X, y, highs_lad(X, y))
    assert fit.info["active_rows"] > X.shape[0] // 2


@pytest.mark.slow
def test_randhie_non_unique_lad_ends_at_a_vertex():
    """randhie: the smoothing path's face has 9 independent rows for p = 10 (the optimum is
    not unique); the finish walks the flat face to a vertex, p rows interpolated."""
    X, y = load("randhie")
    fit = fit_quietly(X, y, noise_scale=1.0)
    assert_at_optimum(fit, X, y, highs_lad(X, y))
    assert fit.info["face_rank"] == X.shape[1] + 1


def test_stackloss_matches_r_rq():
    """R's ``rq`` answer (printed to 8 decimals) is an optimum: ours is no worse, and no
    better than the rounding of R's printed coefficients allows."""
    X, y = load("stackloss")
    fit = fit_quietly(X, y, noise_scale=1.0)
    ours = lad_objective(X, y, fit.coef_, fit.intercept_)
    r_value = lad_objective(X, y, R_RQ_STACKLOSS[1:], R_RQ_STACKLOSS[0])
    rounding = 0.5e-8 * (np.abs(X).sum() + X.shape[0])  # |δ objective| ≤ Σ|x_ij||δw_j| + n|δb|
    assert ours <= r_value and r_value - ours <= rounding
    assert fit.info["active_rows"] >= X.shape[1] + 1  # a vertex: p interpolated rows, as rq's


def test_check_matrix_stackloss_row_passes_against_r():
    """``bayesloss check``'s published-answer row: our fit against R's, objective judged."""
    X, y = load("stackloss")
    ours, r_rq = stackloss_fit()
    table = comparison_table(ours, r_rq, X, y, data="stackloss (R rq)")
    assert table["passed"].all() and table["converged"].all()


@pytest.mark.parametrize("name", FAST + [pytest.param(n, marks=pytest.mark.slow) for n in LARGE])
def test_l1_penalised_lad_reaches_the_lp_optimum(name):
    X, y = load(name)
    sigma, tau = penalty_scales(X, y)
    fit = fit_quietly(X, y, estimator="map", prior="laplace", prior_scale=tau, noise_scale=sigma)
    assert_at_optimum(fit, X, y, highs_lad(X, y, sigma, tau), sigma=sigma, tau=tau)
    assert fit.info["zero_weights"] == (fit.coef_ == 0.0).sum()  # zeros are exact


@pytest.mark.parametrize("name", FAST + [pytest.param(n, marks=pytest.mark.slow) for n in LARGE])
def test_lad_with_a_normal_prior_reaches_the_qp_optimum(name):
    X, y = load(name)
    sigma, tau = penalty_scales(X, y)
    fit = fit_quietly(X, y, estimator="map", prior="normal", prior_scale=tau, noise_scale=sigma)
    assert_at_optimum(fit, X, y, clarabel_lad_ridge(X, y, sigma, tau), sigma=sigma, tau=tau,
                      normal=True)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("n,d", [(12, 2), (60, 4), (400, 6),
                                 pytest.param(5000, 10, marks=pytest.mark.slow)])
def test_random_integer_designs_with_ties(seed, n, d):
    """Columns and target in {0, …, 4}: repeated rows, many residuals tied at the optimum,
    degenerate vertices and non-unique minimisers."""
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 3, (n, d)).astype(float)
    y = rng.integers(0, 5, n).astype(float)
    assert_at_optimum(fit_quietly(X, y, noise_scale=1.0), X, y, highs_lad(X, y))
    sigma, tau = 1.0, 0.3
    fit = fit_quietly(X, y, estimator="map", prior="laplace", prior_scale=tau, noise_scale=sigma)
    assert_at_optimum(fit, X, y, highs_lad(X, y, sigma, tau), sigma=sigma, tau=tau)


# --- engine/face.py on its own -------------------------------------------------------------


def lp_value(C, c, omega):
    """min Σ ω|c − Cθ| by HiGHS (re-evaluated)."""
    n, p = C.shape
    res = linprog(np.r_[np.zeros(p), omega, omega],
                  A_eq=np.c_[C, np.eye(n), -np.eye(n)], b_eq=c,
                  bounds=[(None, None)] * p + [(0, None)] * (2 * n), method="highs")
    return float(omega @ np.abs(c - C @ res.x[:p]))


def test_face_degenerate_vertex():
    """Six of ten rows lie exactly on y = 1 + 2x (p = 2): the optimal vertex has more rows on
    it than parameters; the finish lands on it exactly, its dual certifies."""
    x = np.arange(10.0)
    c = 1 + 2 * x
    c[[1, 4, 6, 9]] += np.array([3.0, -2.0, 5.0, -1.0])
    C = np.c_[np.ones(10), x]
    out = finish(Kinks(C, c, np.ones(10)), np.zeros(2))
    assert out.certified and out.gap <= GAP
    np.testing.assert_allclose(out.theta, [1.0, 2.0], rtol=0, atol=1e-12)
    assert out.active == 6 and out.face_rank == 2
    assert out.primal == pytest.approx(lp_value(C, c, np.ones(10)), rel=1e-12)


def test_face_non_unique_optimum():
    """The median of an even sample, with ties: every θ in [1, 2] is optimal; the finish ends
    at one of the two vertices (two rows interpolated) and its bound meets the optimum 5."""
    c = np.array([0.0, 1.0, 1.0, 2.0, 2.0, 3.0])
    out = finish(Kinks(np.ones((6, 1)), c, np.ones(6)), np.array([10.0]))
    assert out.certified and out.theta[0] in (1.0, 2.0) and out.active == 2
    assert out.primal == pytest.approx(5.0, rel=1e-12)
    assert out.bound <= out.primal and out.bound == pytest.approx(5.0, rel=GAP)


def test_face_l1_coordinate_at_exactly_zero():
    """An L1 weight too heavy for a coordinate's small effect puts it at exactly 0.0."""
    rng = np.random.default_rng(3)
    C = np.c_[np.ones(40), rng.standard_normal((40, 2))]
    c = 2 + 3 * C[:, 1] + 0.05 * C[:, 2] + rng.laplace(size=40)
    nu = np.array([20.0])
    out = finish(Kinks(C, c, np.ones(40), l1=np.array([2]), nu=nu), np.zeros(3))
    assert out.certified and out.theta[2] == 0.0
    # HiGHS with θ₂ split as a⁺ − a⁻
    A = np.c_[C, -C[:, 2], np.eye(40), -np.eye(40)]
    cost = np.r_[0.0, 0.0, nu, nu, np.ones(80)]
    res = linprog(cost, A_eq=A, b_eq=c, bounds=[(None, None)] * 2 + [(0, None)] * 82,
                  method="highs")
    theta = np.r_[res.x[:2], res.x[2] - res.x[3]]
    reference = np.abs(c - C @ theta).sum() + nu[0] * abs(theta[2])
    assert out.primal == pytest.approx(reference, rel=GAP)


def test_face_qp_bound_and_nonconvex_label():
    """With a quadratic P the bound uses P's conjugate and meets Clarabel's optimum; a
    non-convex P is certified only as stationary, and says so."""
    rng = np.random.default_rng(5)
    C = np.c_[np.ones(50), rng.standard_normal((50, 3))]
    c = C @ np.array([1.0, 2.0, -1.0, 0.5]) + rng.laplace(size=50)
    M = np.diag([0.0, 4.0, 4.0, 4.0])  # the intercept is free
    out = finish(Kinks(C, c, np.ones(50), quadratic=M), np.zeros(4))
    theta = cp.Variable(4)
    cp.Problem(cp.Minimize(cp.sum(cp.abs(c - C @ theta)) + 2 * cp.sum_squares(theta[1:]))).solve(
        solver="CLARABEL", tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
    t = theta.value
    reference = np.abs(c - C @ t).sum() + 0.5 * t @ M @ t
    assert out.certified and out.optimality == "global (convex)"
    assert out.bound <= reference * (1 + 1e-12) and out.primal == pytest.approx(reference,
                                                                                  rel=GAP)

    def cauchy(th):  # Σ log(1 + θ_j²) on the slopes: non-convex
        v = th[1:]
        return (np.log1p(v * v).sum(), np.r_[0.0, 2 * v / (1 + v * v)],
                np.diag(np.r_[0.0, 2 * (1 - v * v) / (1 + v * v) ** 2]))

    out = finish(Kinks(C, c, np.ones(50), smooth=cauchy), np.zeros(4))
    assert out.certified and out.optimality == "stationary (non-convex)"
    assert np.isnan(out.bound)
