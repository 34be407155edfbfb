r"""Reference fits: each model's MLE / MAP computed by an independent, trusted solver.

These are the ground truth that our Pyro fits are checked against, so nothing here uses Pyro,
torch or a hand-written optimisation loop: the answers come from closed forms (LAPACK),
scikit-learn, statsmodels, HiGHS, Clarabel (through cvxpy) and ``scipy.optimize``, each run with
tight tolerances and each reporting its own convergence status.

The objective is always the model's −log joint density (constants dropped)

.. math::

    F(w, b, s) = -\sum_i \log p(y_i \mid \eta_i = x_i^\top w + b,\ s)
                 + [\text{MAP}]\ \sum_j -\log p_{\text{prior}}(w_j \mid \tau),

with a flat prior on the intercept ``b`` (unless ``penalize_intercept``: then a column of ones
is appended and fitted with the weights) and on a learned scale ``s`` (σ or b).

Two devices are shared by several solvers:

* **Standardised coordinates.** Columns are centred (when the intercept is free) and scaled,
  and so is a continuous target. This is a linear change of variables, exact for the model:
  a weight ``w_j`` becomes ``v_j = w_j·sx_j/sy``, its prior scale ``τ_j' = τ·sx_j/sy`` and the
  noise scale ``s' = s/sy``. Solvers that take per-column penalties (LAPACK, HiGHS, Clarabel,
  scipy) work there; scikit-learn's uniform penalties force the user's column scales (centred
  columns only, which the free intercept absorbs).
* **Learned scale by the envelope condition.** For the Gaussian and Laplace likelihoods with a
  learned scale, ``∂F/∂s = 0`` gives ``σ² = RSS/n`` and ``b = SAE/n`` at the joint optimum, for
  any prior. The 1-d profile ``s ↦ min_w F(w, s)`` is therefore minimised by a root of
  ``n − RSS(w*(s))/σ²`` (resp. ``n − SAE(w*(s))/b``), found by ``scipy.optimize.brentq`` to
  machine precision on a bracket that is provably valid: ``[MLE scale, intercept-only scale]``.

=====================  ===========================================================  ========
(likelihood, prior)    solver                                                       accuracy
=====================  ===========================================================  ========
gaussian, MLE          LAPACK least squares (``scipy.linalg.lstsq``, SVD)            ~1e-14
gaussian, normal       closed-form ridge: augmented least squares (SVD)              ~1e-14
gaussian, laplace      scikit-learn ``Lasso`` (coordinate descent, tol 1e-14)        ~1e-14
laplace, MLE           HiGHS dual simplex LP (``scipy.optimize.linprog``)            vertex
laplace, laplace       HiGHS dual simplex LP (L1-penalised LAD)                      vertex
laplace, normal        Clarabel QP (cvxpy), tolerances 1e-12                         ~1e-9
bernoulli/categorical  scikit-learn ``LogisticRegression`` (newton-cholesky)         ~1e-10
  MLE / normal
poisson, MLE           statsmodels ``GLM(Poisson)`` IRLS                             ~1e-12
poisson, normal        scikit-learn ``PoissonRegressor`` (newton-cholesky)           ~1e-10
bern./cat./poisson,    Clarabel exponential-cone program (cvxpy), tolerances 1e-12   ~1e-10
  laplace
studentt-likelihood,   ``scipy.optimize.minimize(method="trust-exact")``, analytic   ~1e-12
  and studentt/cauchy  gradient and Hessian, best of several starts
  priors (smooth)
kinked & non-convex    ``trust-constr`` on the slack reformulation, then an          ~1e-12
  (laplace+studentt,   active-set polish: ``trust-exact`` on the manifold of zero
  studentt+laplace)    kinks, accepted only when the KKT conditions verify
=====================  ===========================================================  ========

Non-convex objectives (Student-t / Cauchy priors, the Student-t likelihood) can have several
local optima; the reference returns the best of its starts (named in ``Fit.info["starts"]``).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field, replace
from typing import Callable, Optional

import numpy as np
from scipy import linalg, optimize, sparse
from scipy.special import expit, logsumexp

from .results import Fit
from .spec import ModelSpec, check_data, make_spec, with_changes

#: HiGHS simplex options: feasibility tolerances tightened from 1e-7.
HIGHS_OPTIONS = {
    "primal_feasibility_tolerance": 1e-10,
    "dual_feasibility_tolerance": 1e-10,
}
#: Clarabel interior-point tolerances (its defaults are 1e-8).
CLARABEL_OPTIONS = {
    "tol_gap_abs": 1e-12,
    "tol_gap_rel": 1e-12,
    "tol_feas": 1e-12,
    "tol_ktratio": 1e-10,
    "max_iter": 500,
}
#: ``trust-exact`` stopping rule on ‖∇(F/n)‖₂ in standardised coordinates (before the root polish).
NEWTON_GTOL = 1e-8
#: A smooth local minimum is accepted when ‖∇(F/n)‖∞ ≤ GRAD_TOL and ∇²F is positive definite.
GRAD_TOL = 1e-12
#: scikit-learn tolerances (newton-cholesky: max |∇| and Newton decrement of the mean loss).
SKLEARN_NEWTON_TOL = 1e-12
LASSO_TOL = 1e-14
_EPS = np.finfo(np.float64).eps


# =============================================================================================
# The problem in standardised coordinates
# =============================================================================================


@dataclass(frozen=True)
class _Problem:
    """One fit in standardised coordinates, and the maps back to the user's scale.

    ``Z`` holds the standardised columns, then a column of ones when the intercept is free;
    ``theta`` (shape (p,) or (p, K)) are the coefficients of ``Z``. ``tau`` are the prior scales
    of the rows of ``theta`` (``inf`` for the free intercept). Scales ``s`` are in units of
    ``y_scale``.
    """

    spec: ModelSpec
    X: np.ndarray
    y: np.ndarray
    Z: np.ndarray
    t: np.ndarray
    n_out: int
    tau: np.ndarray
    x_shift: np.ndarray
    x_scale: np.ndarray
    y_shift: float
    y_scale: float

    @property
    def n(self) -> int:
        return self.Z.shape[0]

    @property
    def p(self) -> int:
        return self.Z.shape[1]

    @property
    def free_intercept(self) -> bool:
        return self.spec.fit_intercept

    @property
    def penalised(self) -> np.ndarray:
        return np.isfinite(self.tau)

    @property
    def shape(self) -> tuple:
        return (self.p, self.n_out) if self.spec.family.multiclass else (self.p,)

    @property
    def fixed_scale(self) -> Optional[float]:
        s = self.spec.noise_scale
        return None if s is None else s / self.y_scale

    def to_user(self, theta):
        """``theta`` → ``(coef, intercept)`` on the user's scale."""
        theta = np.asarray(theta, dtype=np.float64).reshape(self.shape)
        d = self.X.shape[1]
        scale = self.y_scale / self.x_scale
        coef = theta[:d] * (scale[:, None] if theta.ndim == 2 else scale)
        if not self.free_intercept:
            return coef, None
        intercept = self.y_shift + self.y_scale * theta[d] - self.x_shift @ coef
        return coef, intercept

    def from_user(self, coef, intercept):
        """``(coef, intercept)`` on the user's scale → ``theta``."""
        coef = np.asarray(coef, dtype=np.float64)
        factor = self.x_scale / self.y_scale
        v = coef * (factor[:, None] if coef.ndim == 2 else factor)
        if not self.free_intercept:
            return v
        c = (np.asarray(intercept, dtype=np.float64) - self.y_shift + self.x_shift @ coef)
        return np.concatenate([v, (c / self.y_scale)[None]], axis=0)

    def eta(self, theta):
        return self.Z @ np.asarray(theta).reshape(self.shape)

    def onehot(self) -> np.ndarray:
        return np.eye(self.n_out)[self.t]


def _standardise(spec: ModelSpec, X: np.ndarray, y: np.ndarray) -> _Problem:
    """Centre (free intercept only) and scale the columns and a continuous target."""
    family = spec.family
    if spec.fit_intercept:
        x_shift, x_scale = X.mean(axis=0), X.std(axis=0)
    else:
        x_shift, x_scale = np.zeros(X.shape[1]), np.sqrt((X**2).mean(axis=0))
    x_scale = np.where(x_scale > 0, x_scale, 1.0)
    Z = (X - x_shift) / x_scale
    if family.continuous:
        y_shift = float(y.mean()) if spec.fit_intercept else 0.0
        y_scale = float(np.sqrt(((y - y_shift) ** 2).mean()))
        y_scale = y_scale if y_scale > 0 else 1.0
        t = (y - y_shift) / y_scale
    else:
        y_shift, y_scale, t = 0.0, 1.0, y
    tau = spec.prior_scale * x_scale / y_scale
    if spec.fit_intercept:
        Z = np.column_stack([Z, np.ones(X.shape[0])])
        tau = np.append(tau, np.inf)
    n_out = int(y.max()) + 1 if family.multiclass else 1
    if family.multiclass:
        t = y.astype(np.int64)
    return _Problem(spec, X, y, Z, t, n_out, tau, x_shift, x_scale, y_shift, y_scale)


@dataclass
class _Solution:
    """A solver's answer in standardised coordinates."""

    theta: np.ndarray
    scale: Optional[float]  # standardised units; None where the family has no scale
    converged: bool
    n_iter: int
    grad_norm: float = float("nan")
    info: dict = field(default_factory=dict)


def _catch(fn, *args, **kwargs):
    """Run ``fn`` and return ``(result, [warning messages])``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn(*args, **kwargs)
    return out, [f"{w.category.__name__}: {w.message}" for w in caught]


# =============================================================================================
# Smooth pieces of the objective (standardised coordinates), with exact derivatives
# =============================================================================================


def _lik_terms(pb: _Problem, eta: np.ndarray, beta: float):
    """Smooth NLL (constants dropped) and its derivatives in ``η`` and ``β = log s``.

    Returns ``(f, g_eta, h_eta, g_beta, h_beta, h_eta_beta)``; ``h_eta`` is the diagonal of the
    Hessian in ``η`` (the class probabilities ``P`` for categorical, whose Hessian blocks are
    ``diag(P_i) − P_i P_iᵀ``); the β terms are 0 where the family has no scale.
    """
    name, t, n = pb.spec.likelihood, pb.t, pb.n
    if name == "gaussian":
        # Σ r²/(2s²) + n log s
        r = t - eta
        e, rss = math.exp(-2.0 * beta), float(r @ r)
        return 0.5 * e * rss + n * beta, -e * r, np.full(n, e), n - e * rss, 2 * e * rss, 2 * e * r
    if name == "studentt":
        # Σ (ν+1)/2 · log(1 + r²/(ν s²)) + n log s
        nu = pb.spec.df
        r = t - eta
        ns2 = nu * math.exp(2.0 * beta)
        den = ns2 + r * r
        q = r * r / ns2
        f = 0.5 * (nu + 1) * np.log1p(q).sum() + n * beta
        g_eta = -(nu + 1) * r / den
        h_eta = (nu + 1) * (ns2 - r * r) / den**2
        g_beta = n - (nu + 1) * float((r * r / den).sum())
        h_beta = 2 * (nu + 1) * float((q / (1 + q) ** 2).sum())
        h_eta_beta = 2 * (nu + 1) * ns2 * r / den**2
        return f, g_eta, h_eta, g_beta, h_beta, h_eta_beta
    if name == "bernoulli":
        prob = expit(eta)
        f = float(np.logaddexp(0.0, eta).sum() - t @ eta)
        return f, prob - t, prob * (1 - prob), 0.0, 0.0, 0.0
    if name == "poisson":
        with np.errstate(over="ignore"):
            mu = np.exp(eta)
        f = float(mu.sum() - t @ eta)
        return f, mu - t, mu, 0.0, 0.0, 0.0
    if name == "categorical":
        lse = logsumexp(eta, axis=1)
        f = float(lse.sum() - eta[np.arange(n), t].sum())
        prob = np.exp(eta - lse[:, None])
        return f, prob - pb.onehot(), prob, 0.0, 0.0, 0.0
    raise ValueError(f"the {name} likelihood has no smooth NLL")  # laplace: kinks


def _prior_terms(pb: _Problem, theta: np.ndarray):
    """Smooth −log prior of the penalised entries of ``theta`` and its derivatives (diagonal).

    normal: θ²/(2τ²);  studentt(ν) and cauchy (ν = 1): (ν+1)/2 · log(1 + θ²/(ντ²)).
    """
    tau = pb.tau[:, None] if theta.ndim == 2 else pb.tau
    tau = np.broadcast_to(tau, theta.shape)
    on = np.isfinite(tau)
    f, g, h = 0.0, np.zeros_like(theta), np.zeros_like(theta)
    w, s2 = theta[on], tau[on] ** 2
    if pb.spec.prior == "normal":
        f = float((w * w / (2 * s2)).sum())
        g[on], h[on] = w / s2, 1.0 / s2
    elif pb.spec.prior in ("studentt", "cauchy"):
        nu = pb.spec.effective_prior_df
        den = nu * s2 + w * w
        f = float(0.5 * (nu + 1) * np.log1p(w * w / (nu * s2)).sum())
        g[on] = (nu + 1) * w / den
        h[on] = (nu + 1) * (nu * s2 - w * w) / den**2
    else:
        raise ValueError(f"the {pb.spec.prior} prior has no smooth −log density")
    return f, g, h


def _split(pb: _Problem, x: np.ndarray):
    """``x`` → ``(theta, β)``; β = log of the learned or fixed scale (0 without a scale)."""
    k = int(np.prod(pb.shape))
    theta = x[:k].reshape(pb.shape)
    if pb.spec.learns_scale:
        return theta, float(x[k])
    s = pb.fixed_scale
    return theta, (math.log(s) if s is not None else 0.0)


def _pack(pb: _Problem, theta, scale) -> np.ndarray:
    x = np.asarray(theta, dtype=np.float64).ravel()
    return np.append(x, math.log(scale)) if pb.spec.learns_scale else x


def _smooth_objective(pb: _Problem, x: np.ndarray, *, prior: bool = True):
    """``F/n`` for a smooth likelihood (+ a smooth prior when ``prior``), gradient and Hessian.

    ``x`` is ``theta`` flattened (row-major), then ``β = log s`` when the scale is learned.
    """
    theta, beta = _split(pb, x)
    Z, n, K = pb.Z, pb.n, pb.n_out
    eta = Z @ theta
    f, g_eta, h_eta, g_beta, h_beta, h_eb = _lik_terms(pb, eta, beta)
    grad_theta = Z.T @ g_eta
    if pb.spec.family.multiclass:
        p = pb.p
        H4 = np.zeros((p, K, p, K))
        for k in range(K):
            Zk = Z * h_eta[:, k : k + 1]
            H4[:, k, :, k] += Z.T @ Zk
            for m in range(K):
                H4[:, k, :, m] -= Zk.T @ (Z * h_eta[:, m : m + 1])
        H_theta = H4.reshape(p * K, p * K)
    else:
        H_theta = Z.T @ (Z * h_eta[:, None])
    if prior and pb.spec.is_map:
        fp, gp, hp = _prior_terms(pb, theta)
        f += fp
        grad_theta = grad_theta + gp
        H_theta[np.diag_indices_from(H_theta)] += hp.ravel()
    grad = grad_theta.ravel()
    H = H_theta
    if pb.spec.learns_scale:
        grad = np.append(grad, g_beta)
        cross = Z.T @ h_eb
        H = np.block([[H_theta, cross[:, None]], [cross[None, :], np.array([[h_beta]])]])
    return f / n, grad / n, H / n


class _Memo:
    """Evaluate ``fun(x) → (f, g, H)`` once per point for scipy's separate callbacks."""

    def __init__(self, fun):
        self.fun, self.x, self.out, self.calls = fun, None, None, 0

    def __call__(self, x):
        if self.x is None or not np.array_equal(x, self.x):
            f, g, H = self.fun(x)
            # a non-finite value (overflow far from the optimum) must read as "worse"
            self.x, self.out = np.array(x, copy=True), (f if np.isfinite(f) else np.inf, g, H)
            self.calls += 1
        return self.out

    def f(self, x):
        return self(x)[0]

    def g(self, x):
        return self(x)[1]

    def h(self, x):
        return self(x)[2]


def _minimise(fun, x0, gtol=NEWTON_GTOL, maxiter=1000):
    r"""Minimise a smooth ``fun(x) → (f, ∇f, ∇²f)``: trust-exact, then a root polish of ∇f = 0.

    ``scipy.optimize.minimize(method="trust-exact")`` stops at ‖∇f‖₂ ≤ ``gtol`` (1e-8): below
    that its ratio test compares objective changes smaller than the rounding of ``f`` itself
    and fails. MINPACK's Levenberg–Marquardt (``scipy.optimize.root(method="lm")``, Jacobian =
    the exact Hessian, xtol 1e-15) then solves the stationarity equations ``∇f = 0`` from that
    point, which needs no objective values and converges quadratically to ‖∇f‖ ~ 1e-16.
    ``success`` certifies a strict local minimum: MINPACK reports convergence, ‖∇f‖∞ ≤
    :data:`GRAD_TOL`, the Hessian is positive definite and ``f`` did not rise beyond rounding
    (trust-exact's own status is kept in ``message``: it often ends on "a bad approximation",
    its report of that rounding floor). Returns an
    ``OptimizeResult`` with ``x, fun, jac, success, nit, message, warnings``.
    """
    memo = _Memo(fun)
    x0 = np.asarray(x0, dtype=np.float64)
    msgs: list = []
    with np.errstate(all="ignore"):
        try:
            res, msgs = _catch(optimize.minimize, memo.f, x0, jac=memo.g, hess=memo.h,
                               method="trust-exact", options={"gtol": gtol, "maxiter": maxiter})
            x1, nit, tr_message = res.x, int(res.nit), res.message
        except (ValueError, np.linalg.LinAlgError) as err:  # e.g. a non-finite Hessian
            x1, nit, tr_message = x0, 0, f"failed: {err}"
        try:
            root, more = _catch(optimize.root, memo.g, x1, jac=memo.h, method="lm",
                                options={"xtol": 1e-15, "ftol": 1e-15, "gtol": 0.0})
            x2, lm_ok, lm_message = root.x, bool(root.success), root.message
            msgs = msgs + more
        except (ValueError, np.linalg.LinAlgError) as err:
            x2, lm_ok, lm_message = x1, False, f"failed: {err}"
        f1 = memo(x1)[0]
        f2, g2, H2 = memo(x2)
        finite = bool(np.isfinite(f2) and np.isfinite(g2).all() and np.isfinite(H2).all())
        better = finite and f2 <= f1 + 1e-13 * (1 + abs(f1))
        min_eig = float(np.linalg.eigvalsh(H2).min()) if finite and H2.size else float("nan")
    x = x2 if better else x1
    f, g, _ = memo(x)
    g_max = float(np.abs(g).max()) if x.size else 0.0
    ok = bool(lm_ok and better and g_max <= GRAD_TOL and (x.size == 0 or min_eig > 0))
    return optimize.OptimizeResult(
        x=x, fun=float(f), jac=g, success=ok, nit=nit,
        message=f"trust-exact: {tr_message} | lm: {lm_message} | min eig(H) = {min_eig:.3g}",
        warnings=msgs,
    )


# =============================================================================================
# Solvers. Each takes a _Problem and returns a _Solution (standardised coordinates).
# =============================================================================================

# --- Gaussian likelihood -------------------------------------------------------------------


def _gaussian_scale_mle(pb: _Problem, theta) -> float:
    r = pb.t - pb.eta(theta)
    return float(np.sqrt(r @ r / pb.n))


def _solve_lstsq(pb: _Problem) -> _Solution:
    r"""Gaussian MLE: ``min_θ ‖t − Zθ‖²`` by LAPACK ``gelsd`` (SVD), a closed form.

    The MLE of the weights does not depend on σ; a learned σ is ``σ̂² = RSS/n``.
    """
    theta, _, rank, _ = linalg.lstsq(pb.Z, pb.t, lapack_driver="gelsd")
    scale = _gaussian_scale_mle(pb, theta) if pb.spec.learns_scale else pb.fixed_scale
    return _Solution(theta, scale, True, 0, info={"rank": int(rank)})


def _ridge_at(pb: _Problem, scale: float) -> _Solution:
    r"""Closed-form ridge at a fixed σ: ``min_θ ‖t − Zθ‖²/(2σ²) + Σ_j θ_j²/(2τ_j²)``.

    Equivalently ``‖t − Zθ‖² + Σ_j λ_j θ_j²`` with ``λ_j = σ²/τ_j²`` (on the user's scale
    ``λ = σ²/τ²``, scikit-learn ``Ridge(alpha=λ)``), solved as the augmented least-squares
    problem ``[Z; diag(√λ)] θ ≈ [t; 0]`` by LAPACK (SVD), which never forms ``ZᵀZ``. The free
    intercept has no row.
    """
    on = pb.penalised
    lam = scale**2 / pb.tau[on] ** 2
    A = np.vstack([pb.Z, np.eye(pb.p)[on] * np.sqrt(lam)[:, None]])
    b = np.concatenate([pb.t, np.zeros(on.sum())])
    theta = linalg.lstsq(A, b, lapack_driver="gelsd")[0]
    return _Solution(theta, scale, True, 0)


def _solve_ridge(pb: _Problem) -> _Solution:
    """Gaussian MAP with a normal prior: closed-form ridge; a learned σ by :func:`_profile_scale`."""
    if not pb.spec.learns_scale:
        return _ridge_at(pb, pb.fixed_scale)
    return _profile_scale(pb, _ridge_at, _solve_lstsq(pb))


def _lasso_at(pb: _Problem, scale: float) -> _Solution:
    r"""scikit-learn ``Lasso`` at a fixed σ.

    Lasso minimises ``‖y − Xw − b‖²/(2n) + α‖w‖₁``; times ``n/σ²`` this is the MAP objective
    ``‖y − Xw − b‖²/(2σ²) + ‖w‖₁/τ`` when ``α = σ²/(n·τ)`` (σ, τ on the user's scale). The L1
    penalty is uniform, so Lasso runs on the user's columns (coordinate descent is invariant to
    column scaling); ``tol=1e-14`` on the duality gap.
    """
    from sklearn.linear_model import Lasso

    sigma = scale * pb.y_scale
    alpha = sigma**2 / (pb.n * pb.spec.prior_scale)
    model = Lasso(alpha=alpha, fit_intercept=pb.free_intercept, tol=LASSO_TOL,
                  max_iter=1_000_000, selection="cyclic")
    model, msgs = _catch(model.fit, pb.X, pb.y)
    intercept = model.intercept_ if pb.free_intercept else None
    theta = pb.from_user(model.coef_, intercept)
    converged = not any("ConvergenceWarning" in m for m in msgs)
    return _Solution(theta, scale, converged, int(model.n_iter_), info={"warnings": msgs})


def _solve_lasso(pb: _Problem) -> _Solution:
    """Gaussian MAP with a Laplace prior: Lasso; a learned σ by :func:`_profile_scale`."""
    if not pb.spec.learns_scale:
        return _lasso_at(pb, pb.fixed_scale)
    return _profile_scale(pb, _lasso_at, _solve_lstsq(pb))


# --- learned scale: the envelope condition -------------------------------------------------


def _scale_loss(pb: _Problem, theta) -> tuple[float, int]:
    """``(L, k)`` with the NLL ∝ ``L/s^k + n log s``: (RSS/2, 2) gaussian, (SAE, 1) laplace."""
    r = pb.t - pb.eta(theta)
    if pb.spec.likelihood == "gaussian":
        return 0.5 * float(r @ r), 2
    return float(np.abs(r).sum()), 1


def _profile_scale(pb: _Problem, solve_at: Callable, mle: _Solution) -> _Solution:
    r"""Joint MAP over (w, s) for the Gaussian / Laplace likelihood, by the envelope condition.

    With ``F(w, s) = L(w)/s^k + n log s + pen(w)`` (k = 2, L = RSS/2 for gaussian; k = 1,
    L = SAE for laplace) the profile ``φ(s) = min_w F(w, s)`` has ``φ'(s) = (n − k L(w*(s))/s^k)/s``
    (envelope theorem). Its sign changes from − to + on ``[s_MLE, s_0]``, where ``s_MLE`` is the
    MLE scale (L(w*) ≥ L_MLE) and ``s_0`` the scale of the prior mode w = 0 with the best free
    intercept (L(w*) ≤ L(0)). ``scipy.optimize.brentq`` finds the sign change to ~1e-15
    relative; a minimiser of φ would only reach ~1e-8 (the square root of machine precision).
    Any root it returns has φ' going from − to +, so a local minimum of the profile.
    """
    n = pb.n
    L_mle, k = _scale_loss(pb, mle.theta)
    zero = np.zeros(pb.shape)
    if pb.free_intercept:
        zero[-1] = np.median(pb.t) if k == 1 else pb.t.mean()
    L_0, _ = _scale_loss(pb, zero)
    lo, hi = (k * L_mle / n) ** (1 / k), (k * L_0 / n) ** (1 / k)
    solves: dict[float, _Solution] = {}

    def h(log_s):
        s = math.exp(log_s)
        sol = solves.setdefault(log_s, solve_at(pb, s))
        return n - k * _scale_loss(pb, sol.theta)[0] / s**k

    a, b = math.log(lo), math.log(hi)
    ha = h(a)
    if ha >= 0 or hi <= lo:  # the prior does not move the fit: the MLE scale is optimal
        root, rr = a, None
    else:
        hb = h(b)
        if hb <= 0:
            root, rr = b, None
        else:
            root, rr = optimize.brentq(h, a, b, xtol=1e-15, rtol=4 * _EPS, maxiter=200,
                                       full_output=True, disp=False)
    sol = solves.get(root) or solve_at(pb, math.exp(root))
    converged = sol.converged and (rr is None or rr.converged)
    info = dict(sol.info, scale_bracket=(lo * pb.y_scale, hi * pb.y_scale),
                profile_solves=len(solves), brentq_iterations=None if rr is None else rr.iterations)
    return _Solution(sol.theta, math.exp(root), converged, len(solves), info=info)


# --- Laplace likelihood: linear and quadratic programmes -----------------------------------


def _lp_l1(pb: _Problem, scale: float, penalise: Optional[bool] = None) -> _Solution:
    r"""LAD (+ L1 prior) as a linear programme, solved by HiGHS' dual simplex.

    ``min Σ_i |t_i − Z_iθ|/s + Σ_{j penalised} |θ_j|/τ_j`` (the MLE has no second sum and does
    not depend on s), written with ``t − Zθ = e⁺ − e⁻``, ``θ_j = a⁺_j − a⁻_j``, all parts ≥ 0.
    On the user's scale this is scikit-learn ``QuantileRegressor(quantile=0.5,
    alpha=s/(2n·τ))`` (whose loss is the pinball loss, half the absolute error, over n).
    The answer is a vertex: every LAD fit interpolates at least rank(Z) points.
    """
    n, p = pb.Z.shape
    penalise = pb.spec.is_map if penalise is None else penalise
    on = pb.penalised if penalise else np.zeros(p, bool)
    free = ~on
    Zs = sparse.csr_matrix(pb.Z)
    eye = sparse.identity(n, format="csr")
    blocks = [Zs[:, free], Zs[:, on], -Zs[:, on], eye, -eye]
    A = sparse.hstack(blocks, format="csc")
    cost = np.concatenate([np.zeros(free.sum()), 1 / pb.tau[on], 1 / pb.tau[on],
                           np.full(2 * n, 1.0 / scale)])
    bounds = [(None, None)] * int(free.sum()) + [(0, None)] * (2 * int(on.sum()) + 2 * n)
    res = optimize.linprog(cost, A_eq=A, b_eq=pb.t, bounds=bounds, method="highs-ds",
                           options=HIGHS_OPTIONS)
    theta = np.zeros(p)
    if res.x is not None:
        k = int(free.sum()), int(on.sum())
        theta[free] = res.x[: k[0]]
        theta[on] = res.x[k[0] : k[0] + k[1]] - res.x[k[0] + k[1] : k[0] + 2 * k[1]]
    return _Solution(theta, scale, res.status == 0, int(res.nit),
                     info={"status": res.message})


def _solve_lad(pb: _Problem) -> _Solution:
    """Laplace MLE: the LAD LP (HiGHS); a learned scale is ``b̂ = SAE/n``."""
    sol = _lp_l1(pb, 1.0, penalise=False)
    sol.scale = (float(np.abs(pb.t - pb.eta(sol.theta)).mean()) if pb.spec.learns_scale
                 else pb.fixed_scale)
    return sol


def _solve_lad_l1(pb: _Problem) -> _Solution:
    """Laplace likelihood, Laplace prior: the L1-penalised LAD LP; learned b by the profile."""
    if not pb.spec.learns_scale:
        return _lp_l1(pb, pb.fixed_scale)
    return _profile_scale(pb, _lp_l1, _solve_lad(pb))


def _cvxpy_solve(problem, name: str) -> tuple[bool, int, str]:
    """Solve a cvxpy problem with Clarabel at :data:`CLARABEL_OPTIONS`; (optimal?, iters, status)."""
    import cvxpy as cp

    try:
        _, msgs = _catch(problem.solve, solver=cp.CLARABEL, **CLARABEL_OPTIONS)
    except cp.error.SolverError as err:
        raise RuntimeError(f"Clarabel failed on the {name} problem: {err}") from err
    iters = problem.solver_stats.num_iters if problem.solver_stats is not None else 0
    return problem.status == cp.OPTIMAL, int(iters or 0), str(problem.status)


def _lad_ridge_at(pb: _Problem, scale: float) -> _Solution:
    r"""Laplace likelihood, normal prior, fixed b: a QP solved by Clarabel (via cvxpy).

    ``min_θ Σ_i |t_i − Z_iθ|/b + Σ_{j penalised} θ_j²/(2τ_j²)``, divided by n.
    """
    import cvxpy as cp

    on = pb.penalised
    theta = cp.Variable(pb.p)
    objective = cp.sum(cp.abs(pb.t - pb.Z @ theta)) / scale + cp.sum(
        cp.multiply(0.5 / pb.tau[on] ** 2, cp.square(theta[np.flatnonzero(on)]))
    )
    problem = cp.Problem(cp.Minimize(objective / pb.n))
    ok, iters, status = _cvxpy_solve(problem, "LAD + L2")
    value = theta.value if theta.value is not None else np.full(pb.p, np.nan)
    return _Solution(np.asarray(value), scale, ok, iters, info={"status": status})


def _solve_lad_ridge(pb: _Problem) -> _Solution:
    """Laplace likelihood, normal prior: Clarabel QP; learned b by the profile."""
    if not pb.spec.learns_scale:
        return _lad_ridge_at(pb, pb.fixed_scale)
    return _profile_scale(pb, _lad_ridge_at, _solve_lad(pb))


# --- GLMs: scikit-learn, statsmodels, Clarabel -------------------------------------------


def _sklearn_design(pb: _Problem):
    """The user's columns, centred when the intercept is free (the intercept absorbs it)."""
    return pb.X - pb.X.mean(axis=0) if pb.free_intercept else pb.X


def _from_sklearn(pb: _Problem, coef, intercept) -> np.ndarray:
    """Map a fit on :func:`_sklearn_design` columns to ``theta``."""
    coef = np.asarray(coef, dtype=np.float64)
    if pb.free_intercept:
        intercept = np.asarray(intercept, dtype=np.float64) - pb.X.mean(axis=0) @ coef
    return pb.from_user(coef, intercept)


def _solve_logistic(pb: _Problem) -> _Solution:
    r"""Bernoulli / categorical MLE or MAP-normal: scikit-learn ``LogisticRegression``.

    It minimises ``C·Σ_i logloss_i + ½‖W‖²``: divided by C this is
    ``NLL + ‖W‖²/(2τ²)`` for ``C = τ²`` (MAP, the user's columns, all K columns of W penalised,
    the intercept not); ``C = inf`` is the MLE, fitted on standardised columns (the MLE is
    invariant). Solver newton-cholesky (exact Newton steps), tol 1e-12 on max |∇| and on the
    Newton decrement of the mean loss. Categorical uses the multinomial (softmax) loss.
    """
    from sklearn.linear_model import LogisticRegression

    mle = not pb.spec.is_map
    if mle:
        design = pb.Z[:, :-1] if pb.free_intercept else pb.Z
    else:
        design = _sklearn_design(pb)
    model = LogisticRegression(C=np.inf if mle else pb.spec.prior_scale**2,
                               solver="newton-cholesky", tol=SKLEARN_NEWTON_TOL, max_iter=1000,
                               fit_intercept=pb.free_intercept)
    target = pb.t if pb.spec.family.multiclass else pb.t.astype(np.int64)
    model, msgs = _catch(model.fit, design, target)
    coef = model.coef_.T if pb.spec.family.multiclass else model.coef_[0]
    intercept = model.intercept_ if pb.spec.family.multiclass else model.intercept_[0]
    if mle:
        theta = np.vstack([coef.reshape(-1, pb.n_out), np.reshape(intercept, (1, pb.n_out))]) \
            if pb.free_intercept else coef
        theta = theta.reshape(pb.shape)
    else:
        theta = _from_sklearn(pb, coef, intercept if pb.free_intercept else None)
    converged = not any("ConvergenceWarning" in m for m in msgs)
    n_iter = int(np.max(model.n_iter_))
    return _Solution(theta, None, converged, n_iter, info={"warnings": msgs})


def _solve_poisson_mle(pb: _Problem) -> _Solution:
    r"""Poisson MLE: statsmodels ``GLM(family=Poisson())`` by IRLS on standardised columns.

    IRLS is Newton's method for the canonical log link; stopping rule: relative change of the
    deviance below 1e-14 (its quadratic convergence then leaves the weights at full precision).
    """
    import statsmodels.api as sm

    model = sm.GLM(pb.t, pb.Z, family=sm.families.Poisson())
    res, msgs = _catch(model.fit, method="IRLS", tol=1e-14, maxiter=1000)
    converged = bool(res.converged) and not any("ConvergenceWarning" in m for m in msgs)
    return _Solution(np.asarray(res.params), None, converged,
                     int(res.fit_history["iteration"]), info={"warnings": msgs})


def _solve_poisson_ridge(pb: _Problem) -> _Solution:
    r"""Poisson MAP with a normal prior: scikit-learn ``PoissonRegressor``.

    It minimises ``Σ_i deviance_i/(2n) + α‖w‖²/2``; times n (deviance/2 = NLL + const) this is
    ``NLL + ‖w‖²/(2τ²)`` for ``α = 1/(n·τ²)``. Solver newton-cholesky, tol 1e-12, on the
    user's (centred) columns, since the penalty is uniform there.
    """
    from sklearn.linear_model import PoissonRegressor

    model = PoissonRegressor(alpha=1.0 / (pb.n * pb.spec.prior_scale**2),
                             solver="newton-cholesky", tol=SKLEARN_NEWTON_TOL, max_iter=1000,
                             fit_intercept=pb.free_intercept)
    model, msgs = _catch(model.fit, _sklearn_design(pb), pb.t)
    theta = _from_sklearn(pb, model.coef_, model.intercept_ if pb.free_intercept else None)
    converged = not any("ConvergenceWarning" in m for m in msgs)
    return _Solution(theta, None, converged, int(model.n_iter_), info={"warnings": msgs})


def _solve_glm_l1(pb: _Problem) -> _Solution:
    r"""Bernoulli / categorical / Poisson with a Laplace prior: Clarabel (exponential cones).

    ``min_θ NLL(θ) + Σ_{j penalised} |θ_j|/τ_j`` (all K columns for categorical), with
    NLL = Σ log(1 + e^η) − tη (cvxpy ``logistic``), Σ log Σ_k e^{η_ik} − η_{i,t_i}
    (``log_sum_exp``) or Σ e^η − tη (``exp``); divided by n; standardised coordinates.
    """
    import cvxpy as cp

    name, on = pb.spec.likelihood, np.flatnonzero(pb.penalised)
    theta = cp.Variable(pb.shape)
    eta = pb.Z @ theta
    if name == "bernoulli":
        nll = cp.sum(cp.logistic(eta)) - pb.t @ eta
    elif name == "poisson":
        nll = cp.sum(cp.exp(eta)) - pb.t @ eta
    else:
        nll = cp.sum(cp.log_sum_exp(eta, axis=1)) - cp.sum(cp.multiply(pb.onehot(), eta))
    rho = 1.0 / pb.tau[on]
    if pb.spec.family.multiclass:
        rho = rho[:, None]
    penalty = cp.sum(cp.multiply(rho, cp.abs(theta[on])))
    problem = cp.Problem(cp.Minimize((nll + penalty) / pb.n))
    ok, iters, status = _cvxpy_solve(problem, f"{name} + L1")
    value = theta.value if theta.value is not None else np.full(pb.shape, np.nan)
    return _Solution(np.asarray(value), None, ok, iters, info={"status": status})


# --- smooth non-convex objectives: trust-exact from several starts ------------------------


def _starts(pb: _Problem) -> list[tuple[str, _Solution]]:
    """Starting points for the non-convex smooth fits: convex relatives of the model."""
    spec = pb.spec
    out = []
    if spec.likelihood == "studentt":
        # the least-squares and least-absolute-deviations fits, scale from the residual MAD
        for label, solver in (("least squares", _solve_lstsq), ("LAD", _solve_lad)):
            sol = solver(pb)
            r = pb.t - pb.eta(sol.theta)
            mad = 1.4826 * float(np.median(np.abs(r - np.median(r))))
            scale = pb.fixed_scale if not spec.learns_scale else max(mad, 1e-3 * float(r.std()))
            out.append((label, _Solution(sol.theta, scale, True, 0)))
        if spec.is_map:
            # the Gaussian ridge at the same prior scale, σ from its residuals
            ridge = _ridge_at(pb, out[0][1].scale if spec.learns_scale else pb.fixed_scale)
            out.append(("ridge", ridge))
        return out
    relatives = [("MLE", with_changes(spec, estimator="mle"))]
    if spec.is_map:
        relatives.append(("normal-prior MAP", with_changes(spec, prior="normal")))
    for label, other in relatives:
        sol = _SOLVERS[_key(other)].solve(replace(pb, spec=other))
        if sol.converged and np.isfinite(sol.theta).all():
            out.append((label, sol))
    return out


def _solve_smooth(pb: _Problem) -> _Solution:
    r"""Smooth objectives without a classical solver: ``scipy.optimize.minimize(trust-exact)``.

    Minimises ``F/n`` exactly as in the module docstring (Student-t likelihood; Student-t or
    Cauchy prior; a learned scale enters as ``β = log s``) in standardised coordinates, with
    the analytic gradient and Hessian, stopping at ‖∇‖₂ ≤ 1e-12. trust-exact solves each
    trust-region subproblem nearly exactly, so indefinite Hessians are handled. It is run from
    each start of :func:`_starts` and the lowest objective among the converged runs is kept.
    """
    best, tried = None, []
    fun = lambda x: _smooth_objective(pb, x)  # noqa: E731
    for label, start in _starts(pb):
        res = _minimise(fun, _pack(pb, start.theta, start.scale))
        tried.append((label, float(res.fun), bool(res.success)))
        if best is None or (res.success, -res.fun) > (best[1].success, -best[1].fun):
            best = (label, res)
    label, res = best
    theta, beta = _split(pb, res.x)
    scale = math.exp(beta) if pb.spec.family.has_scale else None
    return _Solution(theta.copy(), scale, bool(res.success), int(res.nit),
                     grad_norm=float(np.abs(res.jac).max()),
                     info={"start": label, "starts": tried, "message": res.message,
                           "warnings": res.warnings})


# --- kinked, non-convex objectives: trust-constr + active-set polish ----------------------


@dataclass
class _Kinked:
    r"""``F(x) = S(x) + ω(x) Σ_k ρ_k |a_kᵀx − c_k|`` (all divided by n).

    ``S`` is smooth (with gradient and Hessian), ``ω(x) = e^{−β}`` for a learned Laplace
    scale (else 1), ``ρ`` fixed positive weights. Every kinked model here has this form.
    """

    smooth: Callable  # x -> (f, g, H)
    A: np.ndarray
    c: np.ndarray
    rho: np.ndarray
    omega_index: Optional[int] = None  # index of β in x when ω(x) = e^{−β}

    def omega(self, x):
        """``(ω, ∇ω, ∇²ω)`` as (value, coefficient on e_β, coefficient on e_β e_βᵀ)."""
        if self.omega_index is None:
            return 1.0, 0.0, 0.0
        with np.errstate(over="ignore"):
            w = float(np.exp(-x[self.omega_index]))
        return w, -w, w

    def value(self, x):
        w = self.omega(x)[0]
        return self.smooth(x)[0] + w * float(self.rho @ np.abs(self.A @ x - self.c))

    def signed(self, x, s):
        """``F`` with ``|·|`` replaced by ``s·(·)`` (s ∈ {−1, 0, 1}): smooth, with derivatives."""
        f, g, H = self.smooth(x)
        w, dw, d2w = self.omega(x)
        lin = self.rho * s
        val = float(lin @ (self.A @ x - self.c))
        grad_lin = self.A.T @ lin
        g = g + w * grad_lin
        H = H.copy()
        if self.omega_index is not None:
            i = self.omega_index
            g[i] += dw * val
            H[i, i] += d2w * val
            H[i, :] += dw * grad_lin
            H[:, i] += dw * grad_lin
        return f + w * val, g, H


def _smoothed(kp: _Kinked, eps: float, x: np.ndarray):
    r"""``F`` with each ``|r|`` replaced by ``√(r² + ε²) − ε``: value, gradient and Hessian."""
    f, g, H = kp.smooth(x)
    w, dw, d2w = kp.omega(x)
    r = kp.A @ x - kp.c
    root = np.sqrt(r * r + eps * eps)
    val = float(kp.rho @ (root - eps))
    d1 = kp.rho * r / root
    d2 = kp.rho * eps * eps / root**3
    grad_lin = kp.A.T @ d1
    g = g + w * grad_lin
    H = H + w * (kp.A.T @ (kp.A * d2[:, None]))
    if kp.omega_index is not None:
        i = kp.omega_index
        g[i] += dw * val
        H[i, i] += d2w * val
        H[i, :] += dw * grad_lin
        H[:, i] += dw * grad_lin
    return f + w * val, g, H


#: ε of the smoothing continuation (standardised units).
CONTINUATION = tuple(10.0 ** -k for k in range(1, 10))


def _continuation(kp: _Kinked, x0: np.ndarray):
    r"""Approach a minimiser of a kinked ``F`` through smooth surrogates.

    Each ``|r|`` becomes ``√(r² + ε²) − ε`` for ε = 1e-1, 1e-2, …, 1e-9 in turn, and each
    surrogate is minimised by :func:`_minimise` (trust-exact with the exact Hessian, then the
    root polish) from the previous stage's answer. This only locates the active kinks; the
    answer is :func:`_polish`'s, judged on the exact objective.
    """
    x, stages = np.asarray(x0, dtype=np.float64), []
    for eps in CONTINUATION:
        res = _minimise(lambda z, e=eps: _smoothed(kp, e, z), x, maxiter=500)
        x = res.x
        stages.append({"eps": eps, "success": bool(res.success), "iterations": int(res.nit)})
    return x, stages


def _polish(kp: _Kinked, x0: np.ndarray):
    r"""Active-set polish of an approximate minimiser of a :class:`_Kinked` objective.

    Near a local minimum ``x*`` the kinks split into the active set ``𝒵 = {k : a_kᵀx* = c_k}``
    and the rest, whose signs ``s_k`` are fixed; there ``F`` equals the smooth function
    ``F_s`` on the affine manifold ``A_𝒵 x = c_𝒵``. The candidates for ``𝒵`` are the ``j``
    kinks nearest to zero at ``x0`` (relative to ``1 + |c_k|``), for j = 0 … dim x. For each,
    this minimises ``F_s`` on that manifold with :func:`_minimise` in null-space coordinates,
    then accepts the point only if the KKT conditions of ``F`` hold: the signs ``s`` are
    unchanged, the point lies on the manifold, and the multipliers ``μ`` solving
    ``A_𝒵ᵀμ = −∇F_s`` leave a stationarity residual ≤ 1e-10 with ``|μ_k| ≤ ω ρ_k`` (the
    subgradient of the kinks). Returns ``(x, report)`` for the verified candidate with the
    lowest objective, or ``(None, report)``.
    """
    r0 = kp.A @ x0 - kp.c
    order = np.argsort(np.abs(r0) / (1.0 + np.abs(kp.c)), kind="stable")
    best, report = None, []
    for j in range(min(x0.size, kp.c.size) + 1):
        active = np.zeros(kp.c.size, bool)
        active[order[:j]] = True
        s = np.where(active, 0.0, np.sign(r0))
        AZ, cZ = kp.A[active], kp.c[active]
        if j:
            xp = x0 - linalg.lstsq(AZ, AZ @ x0 - cZ)[0]
            N = linalg.null_space(AZ)
        else:
            xp, N = x0.copy(), np.eye(x0.size)
        if N.shape[1]:
            fun = lambda z: _reduced(kp, s, xp, N, z)  # noqa: E731
            res = _minimise(fun, np.zeros(N.shape[1]), maxiter=200)
            x, ok, nit = xp + N @ res.x, bool(res.success), int(res.nit)
        else:
            x, ok, nit = xp, True, 0
        f, g, _ = kp.signed(x, s)
        r = kp.A @ x - kp.c
        signs_kept = bool(np.all(np.sign(r[~active]) == s[~active]))
        w = kp.omega(x)[0]
        if j:
            mu = linalg.lstsq(AZ.T, -g)[0]
            resid = float(np.abs(AZ.T @ mu + g).max())
            bound_ok = bool(np.all(np.abs(mu) <= w * kp.rho[active] * (1 + 1e-9)))
        else:
            resid, bound_ok = float(np.abs(g).max()), True
        on_manifold = bool(np.all(np.abs(r[active]) <= 1e-12 * (1 + np.abs(cZ))))
        verified = ok and signs_kept and bound_ok and on_manifold and resid <= 1e-10
        value = kp.value(x)
        report.append({"active": j, "objective": value, "stationarity": resid,
                       "signs_kept": signs_kept, "multipliers_ok": bound_ok,
                       "on_manifold": on_manifold, "solver_ok": ok,
                       "solver": None if not N.shape[1] else res.message,
                       "verified": verified, "iterations": nit})
        if verified and (best is None or value < best[1]):
            best = (x, value)
    return (None if best is None else best[0]), report


def _reduced(kp: _Kinked, s, xp, N, z):
    f, g, H = kp.signed(xp + N @ z, s)
    return f, N.T @ g, N.T @ H @ N


def _kinked_fit(kp: _Kinked, x0: np.ndarray) -> tuple[np.ndarray, bool, int, dict]:
    """:func:`_continuation` from ``x0``, then :func:`_polish`; converged iff the polish verifies."""
    x, stages = _continuation(kp, x0)
    polished, report = _polish(kp, x)
    nit = sum(st["iterations"] for st in stages)
    info = {"continuation": stages, "polish": report}
    if polished is None:
        return x, False, nit, info
    return polished, True, nit, info


def _solve_lad_smooth_prior(pb: _Problem) -> _Solution:
    r"""Laplace likelihood with a Student-t / Cauchy prior (kinked and non-convex).

    ``F/n`` with ``F = Σ_i |t_i − Z_iθ|/b + n log b + Σ_j (ν+1)/2 log(1 + θ_j²/(ντ_j²))``
    (the ``n log b`` term and β = log b only when b is learned). Started from the LAD LP fit
    (HiGHS); solved by ``trust-constr`` on the slack reformulation, then polished and verified
    by :func:`_polish`.
    """
    learn = pb.spec.learns_scale
    start = _solve_lad(pb)
    x0 = _pack(pb, start.theta, start.scale)
    q = x0.size

    def smooth(x):
        theta, beta = _split(pb, x)
        f, g, h = _prior_terms(pb, theta)
        grad = np.zeros(q)
        H = np.zeros((q, q))
        grad[: pb.p] = g
        H[np.arange(pb.p), np.arange(pb.p)] = h
        if learn:
            f += pb.n * beta
            grad[-1] = pb.n
        return f / pb.n, grad / pb.n, H / pb.n

    A = np.zeros((pb.n, q))
    A[:, : pb.p] = pb.Z
    rho = np.full(pb.n, 1.0 / pb.n if learn else 1.0 / (pb.n * pb.fixed_scale))
    kp = _Kinked(smooth, A, pb.t, rho, omega_index=q - 1 if learn else None)
    x, converged, nit, info = _kinked_fit(kp, x0)
    theta, beta = _split(pb, x)
    return _Solution(theta.copy(), math.exp(beta), converged, nit, info=info)


def _solve_t_l1(pb: _Problem) -> _Solution:
    r"""Student-t likelihood with a Laplace prior (kinked at θ_j = 0, non-convex).

    ``F/n`` with ``F = NLL_t(θ, s) + Σ_{j penalised} |θ_j|/τ_j``. Started from the best of the
    Student-t MLE runs (:func:`_solve_smooth` on the MLE), solved by ``trust-constr`` on the
    slack reformulation (one slack per weight), then polished and verified by :func:`_polish`.
    """
    mle_pb = replace(pb, spec=with_changes(pb.spec, estimator="mle"))
    start = _solve_smooth(mle_pb)
    x0 = _pack(pb, start.theta, start.scale)
    q, on = x0.size, np.flatnonzero(pb.penalised)
    A = np.zeros((on.size, q))
    A[np.arange(on.size), on] = 1.0
    kp = _Kinked(lambda x: _smooth_objective(pb, x, prior=False), A, np.zeros(on.size),
                 1.0 / (pb.n * pb.tau[on]))
    x, converged, nit, info = _kinked_fit(kp, x0)
    theta, beta = _split(pb, x)
    return _Solution(theta.copy(), math.exp(beta), converged, nit, info=info)


# =============================================================================================
# Dispatch
# =============================================================================================


@dataclass(frozen=True)
class _Solver:
    solve: Callable[[_Problem], _Solution]
    method: str
    scale_note: str = ""  # appended when the scale is learned


_PROFILE = "; scale learned by scipy brentq on the envelope condition (σ² = RSS/n, b = SAE/n)"
_NEWTON = ("scipy.optimize.minimize trust-exact (analytic gradient and Hessian, gtol=1e-8) "
           "+ MINPACK lm root polish of ∇F = 0 (xtol=1e-15), "
           "standardised coordinates, best of several starts")
_KINKED = ("smoothing continuation |r| ≈ √(r²+ε²), ε = 1e-1…1e-9 (each stage scipy trust-exact + "
           "MINPACK lm), then active-set polish on the exact objective (KKT verified)")
_LOGISTIC = "scikit-learn LogisticRegression(solver='newton-cholesky', tol=1e-12, {C})"
_CLARABEL = "cvxpy + Clarabel ({what}, tolerances 1e-12)"

_SOLVERS: dict[tuple[str, Optional[str]], _Solver] = {
    ("gaussian", None): _Solver(_solve_lstsq, "scipy.linalg.lstsq (LAPACK gelsd, closed form)",
                                "; σ̂² = RSS/n"),
    ("gaussian", "normal"): _Solver(_solve_ridge, "closed-form ridge (augmented lstsq, "
                                    "λ = σ²/τ²)", _PROFILE),
    ("gaussian", "laplace"): _Solver(_solve_lasso, "scikit-learn Lasso (coordinate descent, "
                                     "tol=1e-14, α = σ²/(n·τ))", _PROFILE),
    ("gaussian", "studentt"): _Solver(_solve_smooth, _NEWTON),
    ("gaussian", "cauchy"): _Solver(_solve_smooth, _NEWTON),
    ("laplace", None): _Solver(_solve_lad, "HiGHS dual simplex via scipy linprog (LAD LP)",
                               "; b̂ = SAE/n"),
    ("laplace", "laplace"): _Solver(_solve_lad_l1, "HiGHS dual simplex via scipy linprog "
                                    "(L1-penalised LAD LP)", _PROFILE),
    ("laplace", "normal"): _Solver(_solve_lad_ridge, _CLARABEL.format(what="LAD + L2 QP"),
                                   _PROFILE),
    ("laplace", "studentt"): _Solver(_solve_lad_smooth_prior, _KINKED),
    ("laplace", "cauchy"): _Solver(_solve_lad_smooth_prior, _KINKED),
    ("bernoulli", None): _Solver(_solve_logistic, _LOGISTIC.format(C="C=inf")),
    ("bernoulli", "normal"): _Solver(_solve_logistic, _LOGISTIC.format(C="C=τ²")),
    ("bernoulli", "laplace"): _Solver(_solve_glm_l1, _CLARABEL.format(what="logistic + L1")),
    ("bernoulli", "studentt"): _Solver(_solve_smooth, _NEWTON),
    ("bernoulli", "cauchy"): _Solver(_solve_smooth, _NEWTON),
    ("categorical", None): _Solver(_solve_logistic, _LOGISTIC.format(C="C=inf, multinomial")),
    ("categorical", "normal"): _Solver(_solve_logistic, _LOGISTIC.format(C="C=τ², multinomial")),
    ("categorical", "laplace"): _Solver(_solve_glm_l1, _CLARABEL.format(what="softmax + L1")),
    ("categorical", "studentt"): _Solver(_solve_smooth, _NEWTON),
    ("categorical", "cauchy"): _Solver(_solve_smooth, _NEWTON),
    ("poisson", None): _Solver(_solve_poisson_mle, "statsmodels GLM(Poisson) IRLS (tol=1e-14)"),
    ("poisson", "normal"): _Solver(_solve_poisson_ridge, "scikit-learn PoissonRegressor("
                                   "solver='newton-cholesky', tol=1e-12, α = 1/(n·τ²))"),
    ("poisson", "laplace"): _Solver(_solve_glm_l1, _CLARABEL.format(what="Poisson + L1")),
    ("poisson", "studentt"): _Solver(_solve_smooth, _NEWTON),
    ("poisson", "cauchy"): _Solver(_solve_smooth, _NEWTON),
    ("studentt", None): _Solver(_solve_smooth, _NEWTON),
    ("studentt", "normal"): _Solver(_solve_smooth, _NEWTON),
    ("studentt", "laplace"): _Solver(_solve_t_l1, _KINKED),
    ("studentt", "studentt"): _Solver(_solve_smooth, _NEWTON),
    ("studentt", "cauchy"): _Solver(_solve_smooth, _NEWTON),
}


def _key(spec: ModelSpec) -> tuple[str, Optional[str]]:
    return (spec.likelihood, spec.prior if spec.is_map else None)


def _solver(spec: ModelSpec) -> _Solver:
    try:
        return _SOLVERS[_key(spec)]
    except KeyError:
        raise NotImplementedError(
            f"no reference solver for likelihood {spec.likelihood!r} with "
            f"{'prior ' + repr(spec.prior) if spec.is_map else 'MLE'}"
        ) from None


def reference_method(spec: ModelSpec) -> str:
    """The solver (and its settings) that :func:`reference_fit` uses for ``spec``."""
    solver = _solver(spec)
    method = solver.method
    if spec.learns_scale:
        method += solver.scale_note
    if spec.is_map and spec.penalize_intercept:
        method += "; intercept penalised as an appended column of ones"
    return method


def reference_fit(
    X,
    y,
    likelihood: str,
    *,
    estimator: str = "mle",
    prior: str = "normal",
    prior_scale: float = 1.0,
    noise_scale: Optional[float] = None,
    df: float = 4.0,
    prior_df: float = 3.0,
    fit_intercept: bool = True,
    penalize_intercept: bool = False,
) -> Fit:
    """MLE or MAP of the model by an independent, trusted solver (see the module docstring).

    Same keywords and the same model as ``bayesloss.fit``; returns a :class:`Fit` whose
    ``method`` names the solver and whose ``converged`` is the solver's own verdict.
    A penalised intercept is fitted as an appended column of ones with the weights' prior.
    """
    spec = make_spec(likelihood, estimator=estimator, prior=prior, prior_scale=prior_scale,
                     noise_scale=noise_scale, df=df, prior_df=prior_df,
                     fit_intercept=fit_intercept, penalize_intercept=penalize_intercept)
    X, y = check_data(X, y, spec)
    solver = _solver(spec)
    augment = spec.is_map and spec.penalize_intercept
    if augment:
        inner = with_changes(spec, fit_intercept=False, penalize_intercept=False)
        pb = _standardise(inner, np.column_stack([X, np.ones(X.shape[0])]), y)
    else:
        pb = _standardise(spec, X, y)
    sol = solver.solve(pb)
    coef, intercept = pb.to_user(sol.theta)
    if augment:
        coef, intercept = coef[:-1], coef[-1]
    scale = None if sol.scale is None else sol.scale * pb.y_scale
    info = dict(sol.info)
    return Fit.build(spec, X, y, coef, intercept, scale, converged=bool(sol.converged),
                     n_iter=int(sol.n_iter), grad_norm=float(sol.grad_norm),
                     method=reference_method(spec), seed=None, info=info)


__all__ = ["reference_fit", "reference_method"]
