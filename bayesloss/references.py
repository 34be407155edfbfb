r"""Reference fits: each model's MLE / MAP computed by an independent, trusted solver.

These are the ground truth that our Pyro fits are checked against, so nothing here uses Pyro
or torch, and every minimisation is done by a library solver: closed forms (LAPACK),
scikit-learn, statsmodels, HiGHS and Clarabel (through cvxpy), and ``scipy.optimize``, each run
with tight tolerances and each reporting its own status. Our own loops only choose starting
points, smoothing levels and candidate active sets; where they are used, the answer is accepted
only after its optimality conditions have been verified.

The objective is always the model's −log joint density (constants dropped)

.. math::

    F(w, b, s) = -\sum_i \log p(y_i \mid \eta_i = x_i^\top w + b,\ s)
                 + [\text{MAP}]\ \sum_j -\log p_{\text{prior}}(w_j \mid \tau),

with a flat prior on the intercept ``b`` (unless ``penalize_intercept``: then a column of ones
is appended and fitted with the weights) and on a learned scale ``s`` (σ or b).

Devices shared by several solvers:

* **Standardised coordinates.** Columns are centred (when the intercept is free) and scaled,
  and so is a continuous target. This is a linear change of variables, exact for the model:
  a weight ``w_j`` becomes ``v_j = w_j·sx_j/sy``, its prior scale ``τ_j' = τ·sx_j/sy`` and the
  noise scale ``s' = s/sy``. Solvers that take per-column penalties (LAPACK, HiGHS, Clarabel,
  scipy) work there; scikit-learn's uniform penalties keep the user's column scales (centred
  only, which the free intercept absorbs).
* **Learned scale by the envelope condition** (:func:`_profile_scale`). For the Gaussian and
  Laplace likelihoods, ``∂F/∂s = 0`` gives ``σ² = RSS/n`` and ``b = SAE/n`` at the joint
  optimum, for any prior; ``scipy.optimize.brentq`` finds the root of that condition along the
  profile ``s ↦ min_w F(w, s)`` to machine precision, on a provably valid bracket.
* **Smooth minimisation** (:func:`_minimise`): ``trust-exact`` with the exact Hessian, then
  MINPACK ``lm`` on ``∇F = 0``; accepted as a strict local minimum only with a positive
  definite Hessian and a negligible gradient or Newton correction.
* **Active-set polish** (:func:`_polish`) for kinked objectives (|residual|, |weight|): reads
  the zero kinks off an approximate answer, solves the smooth problem on that face exactly and
  verifies the KKT conditions (subgradient multipliers in range). It sharpens interior-point
  answers (Clarabel) and finishes a smoothing continuation for the non-convex kinked models.

=====================  ============================================================
(likelihood, prior)    solver (see ``reference_method`` for the exact settings)
=====================  ============================================================
gaussian, MLE          LAPACK least squares (``scipy.linalg.lstsq``, SVD)
gaussian, normal       closed-form ridge: augmented least squares (SVD)
gaussian, laplace      scikit-learn ``Lasso`` (coordinate descent) + polish
laplace, MLE           HiGHS dual simplex LP (``scipy.optimize.linprog``)
laplace, laplace       HiGHS dual simplex LP (L1-penalised LAD)
laplace, normal        Clarabel QP (cvxpy) + polish
bernoulli/categorical  scikit-learn ``LogisticRegression`` (newton-cholesky); the MLE
  MLE / normal         is checked for separation (HiGHS LP)
poisson, MLE           statsmodels ``GLM(Poisson)`` IRLS
poisson, normal        scikit-learn ``PoissonRegressor`` (newton-cholesky)
bern./cat./poisson,    Clarabel exponential-cone program (cvxpy) + polish
  laplace
smooth, no classical   :func:`_minimise` from several starts (studentt likelihood;
  solver               studentt and cauchy priors on smooth likelihoods)
kinked and non-convex  smoothing continuation (:func:`_minimise` per stage) + polish,
                       from several starts (laplace + studentt/cauchy prior,
                       studentt + laplace prior)
=====================  ============================================================

Non-convex objectives (Student-t / Cauchy priors, the Student-t likelihood) can have several
local optima; the reference returns the best verified one over its starts (listed in
``Fit.info["starts"]``), which need not be the one another optimiser reaches.
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
from .spec import ModelSpec, check_data, feature_names, make_spec, with_changes

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
#: ``trust-exact`` stopping rule on ‖∇(F/n)‖₂ in standardised coordinates (before ``lm``).
NEWTON_GTOL = 1e-8
#: A smooth local minimum is accepted when ∇²F is positive definite and ‖∇(F/n)‖∞ ≤ GRAD_TOL
#: or the Newton correction ‖(∇²F)⁻¹∇F‖∞ ≤ STEP_TOL·(1 + ‖x‖∞).
GRAD_TOL = 1e-12
STEP_TOL = 1e-12
#: scikit-learn tolerances (newton-cholesky: max |∇| and Newton decrement of the mean loss).
SKLEARN_NEWTON_TOL = 1e-12
LASSO_TOL = 1e-12
_EPS = np.finfo(np.float64).eps
#: Active sets tried by the polish (those after the largest gaps in the kinks' sizes).
POLISH_CANDIDATES = 8
#: ε of the smoothing continuation (standardised units).
CONTINUATION = tuple(10.0 ** -k for k in range(1, 10))


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
        self.fun, self.x, self.out = fun, None, None

    def __call__(self, x):
        if self.x is None or not np.array_equal(x, self.x):
            f, g, H = self.fun(x)
            # a non-finite value (overflow far from the optimum) must read as "worse"
            self.x, self.out = np.array(x, copy=True), (f if np.isfinite(f) else np.inf, g, H)
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
    ``success`` certifies a strict local minimum: MINPACK reports convergence, the Hessian is
    positive definite, ‖∇f‖∞ ≤ :data:`GRAD_TOL` or the Newton correction is below
    :data:`STEP_TOL` relative to ``x``, and ``f`` did not rise beyond rounding
    (trust-exact's own status is kept in ``message``: it often ends on "a bad approximation",
    its report of that rounding floor). Returns an ``OptimizeResult`` with ``x, fun, jac,
    success, nit, message``.
    """
    memo = _Memo(fun)
    x0 = np.asarray(x0, dtype=np.float64)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # their statuses are read below
        try:
            res = optimize.minimize(memo.f, x0, jac=memo.g, hess=memo.h, method="trust-exact",
                                    options={"gtol": gtol, "maxiter": maxiter})
            x1, nit, tr_message = res.x, int(res.nit), res.message
        except (ValueError, np.linalg.LinAlgError) as err:  # e.g. a non-finite Hessian
            x1, nit, tr_message = x0, 0, f"failed: {err}"
        try:
            root = optimize.root(memo.g, x1, jac=memo.h, method="lm",
                                 options={"xtol": 1e-15, "ftol": 1e-15, "gtol": 0.0})
            x2, lm_ok, lm_message = root.x, bool(root.success), root.message
        except (ValueError, np.linalg.LinAlgError) as err:
            x2, lm_ok, lm_message = x1, False, f"failed: {err}"
        f1 = memo(x1)[0]
        f2, g2, H2 = memo(x2)
        finite = bool(np.isfinite(f2) and np.isfinite(g2).all() and np.isfinite(H2).all())
        better = finite and f2 <= f1 + 1e-13 * (1 + abs(f1))
        min_eig = float(np.linalg.eigvalsh(H2).min()) if finite and H2.size else float("nan")
    x = x2 if better else x1
    f, g, H = memo(x)
    small = True
    if x.size:
        # ‖∇f‖ small in absolute terms, or the remaining Newton correction negligible
        # (curvatures of 1e7, as for a fixed σ far below the residuals' spread, put the
        # gradient's rounding floor above any absolute threshold)
        step = np.linalg.solve(H, g) if min_eig > 0 else np.full(x.size, np.inf)
        small = (np.abs(g).max() <= GRAD_TOL
                 or np.abs(step).max() <= STEP_TOL * (1 + np.abs(x).max()))
    ok = bool(lm_ok and better and small and (x.size == 0 or min_eig > 0))
    return optimize.OptimizeResult(
        x=x, fun=float(f), jac=g, success=ok, nit=nit,
        message=f"trust-exact: {tr_message} | lm: {lm_message} | min eig(H) = {min_eig:.3g}",
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
    """Gaussian MAP, normal prior: closed-form ridge; a learned σ by :func:`_profile_scale`."""
    if not pb.spec.learns_scale:
        return _ridge_at(pb, pb.fixed_scale)
    return _profile_scale(pb, _ridge_at, _solve_lstsq(pb))


def _lasso_at(pb: _Problem, scale: float) -> _Solution:
    r"""scikit-learn ``Lasso`` at a fixed σ.

    Lasso minimises ``‖y − Xw − b‖²/(2n) + α‖w‖₁``; times ``n/σ²`` this is the MAP objective
    ``‖y − Xw − b‖²/(2σ²) + ‖w‖₁/τ`` when ``α = σ²/(n·τ)`` (σ, τ on the user's scale). The L1
    penalty is uniform, so Lasso runs on the user's columns (coordinate descent is invariant to
    column scaling); ``tol=1e-12`` on the duality gap (1e-14 is below its rounding floor on
    some sets), then :func:`_polish` makes the support's weights exact and verifies the KKT
    conditions.
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
    fixed = replace(pb, spec=with_changes(pb.spec, noise_scale=sigma))
    return _polished(fixed, _Solution(theta, scale, converged, int(model.n_iter_),
                                      info={"warnings": msgs}))


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
    return _Solution(sol.theta, math.exp(root), converged, len(solves), grad_norm=sol.grad_norm,
                     info=info)


# --- Laplace likelihood: linear and quadratic programmes -----------------------------------


def _lp_l1(pb: _Problem, scale: float, penalise: Optional[bool] = None) -> _Solution:
    r"""LAD (+ L1 prior) as a linear programme, solved by HiGHS' dual simplex.

    ``min Σ_i |t_i − Z_iθ|/s + Σ_{j penalised} |θ_j|/τ_j`` (the MLE has no second sum and does
    not depend on s), written with ``t − Zθ = e⁺ − e⁻``, ``θ_j = a⁺_j − a⁻_j``, all parts ≥ 0.
    On the user's scale this is scikit-learn ``QuantileRegressor(quantile=0.5,
    alpha=s/(2n·τ))`` (whose loss is the pinball loss, half the absolute error, over n).
    The answer is a vertex of the LP (a basic solution), exact up to the final basis solve.
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
    """Solve with Clarabel at :data:`CLARABEL_OPTIONS`: ``(optimal?, iterations, status)``."""
    import cvxpy as cp

    try:
        _catch(problem.solve, solver=cp.CLARABEL, **CLARABEL_OPTIONS)  # status read below
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
    fixed = replace(pb, spec=with_changes(pb.spec, noise_scale=scale * pb.y_scale))
    return _polished(fixed, _Solution(np.asarray(value), scale, ok, iters,
                                      info={"status": status}))


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


def _separation(pb: _Problem) -> float:
    r"""Size of a (quasi-)separating direction; > 0 means the logistic MLE does not exist.

    Albert & Anderson (1984), as an LP (Konis 2007) solved by HiGHS: find ``W`` in the box
    ``[−1, 1]`` with ``z_iᵀ(w_{y_i} − w_k) ≥ 0`` for every row i and class k ≠ y_i that
    maximises ``Σ z_iᵀ(w_{y_i} − w_k)``. Only W = 0 (and shifts common to all classes) is
    feasible when no separation exists, giving 0; any separation gives a positive optimum.
    Bernoulli is the K = 2 case with ``w_0 = 0``. Returned divided by n.
    """
    Z, n = pb.Z, pb.n
    if pb.spec.family.multiclass:
        K, y = pb.n_out, pb.t
        rows = []
        for k in range(K):
            other = y != k
            D = np.zeros((int(other.sum()), pb.p, K))
            D[:, :, k] -= Z[other]
            D[np.arange(other.sum()), :, y[other]] += Z[other]
            rows.append(D.reshape(int(other.sum()), -1))
        M = np.vstack(rows)
    else:
        M = Z * (2 * pb.t - 1)[:, None]
    res = optimize.linprog(-M.sum(axis=0), A_ub=-M, b_ub=np.zeros(M.shape[0]),
                           bounds=(-1, 1), method="highs-ds", options=HIGHS_OPTIONS)
    return float(-res.fun / n) if res.status == 0 else float("nan")


def _solve_logistic(pb: _Problem) -> _Solution:
    r"""Bernoulli / categorical MLE or MAP-normal: scikit-learn ``LogisticRegression``.

    It minimises ``C·Σ_i logloss_i + ½‖W‖²``: divided by C this is
    ``NLL + ‖W‖²/(2τ²)`` for ``C = τ²`` (MAP, the user's columns, all K columns of W penalised,
    the intercept not); ``C = inf`` is the MLE, fitted on standardised columns (the MLE is
    invariant). Solver newton-cholesky (exact Newton steps), tol 1e-12 on max |∇| and on the
    Newton decrement of the mean loss. Categorical uses the multinomial (softmax) loss.
    An MLE is reported converged only if :func:`_separation` finds no separated classes.
    """
    from sklearn.linear_model import LogisticRegression

    mle = not pb.spec.is_map
    if mle:
        design = pb.Z[:, :-1] if pb.free_intercept else pb.Z
    else:
        design = _sklearn_design(pb)
    # no MLE exists for separated classes: the solver's answer then only documents that
    separation = _separation(pb) if mle else None
    separated = bool(separation is not None and not separation <= 1e-9)
    # Two classes: scikit-learn fits one logit v = w₁ − w₀. The softmax prior on both columns
    # is minimised by the even split w = (−v/2, v/2), where it equals N(0, 2τ²) on v: C = 2τ².
    two_class = pb.spec.family.multiclass and pb.n_out == 2
    C = pb.spec.prior_scale**2 * (2.0 if two_class else 1.0)
    model = LogisticRegression(C=np.inf if mle else C,
                               solver="newton-cholesky", tol=SKLEARN_NEWTON_TOL,
                               max_iter=50 if separated else 1000,
                               fit_intercept=pb.free_intercept)
    target = pb.t if pb.spec.family.multiclass else pb.t.astype(np.int64)
    model, msgs = _catch(model.fit, design, target)
    coef = model.coef_.T if pb.spec.family.multiclass else model.coef_[0]
    intercept = model.intercept_ if pb.spec.family.multiclass else model.intercept_[0]
    if two_class:
        coef = np.column_stack([-coef[:, 0] / 2, coef[:, 0] / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
    if mle:
        theta = np.vstack([coef.reshape(-1, pb.n_out), np.reshape(intercept, (1, pb.n_out))]) \
            if pb.free_intercept else coef
        theta = theta.reshape(pb.shape)
    else:
        theta = _from_sklearn(pb, coef, intercept if pb.free_intercept else None)
    # a solver can also stop on a tiny gradient where no MLE exists: separation decides
    converged = not separated and not any("ConvergenceWarning" in m for m in msgs)
    info = {"warnings": msgs, "separation": separation}
    return _Solution(theta, None, converged, int(np.max(model.n_iter_)), info=info)


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
    return _polished(pb, _Solution(np.asarray(value), None, ok, iters, info={"status": status}))


# --- identifiability: categorical intercepts ----------------------------------------------


def _free_coords(pb: _Problem) -> np.ndarray:
    """Mask of the coordinates of ``x`` that the general optimisers move.

    With a free (flat-prior) intercept, the categorical likelihood is unchanged when one
    constant is added to all K intercepts: that direction is pinned by fixing the last class's
    intercept at 0 (after shifting the start there), so that Hessians are positive definite.
    """
    free = np.ones(int(np.prod(pb.shape)) + int(pb.spec.learns_scale), bool)
    if pb.spec.family.multiclass and pb.free_intercept:
        free[int(np.prod(pb.shape)) - 1] = False
    return free


def _start_x(pb: _Problem, theta, scale) -> np.ndarray:
    """``x`` for a start, with the categorical intercepts shifted so the pinned one is 0."""
    theta = np.array(theta, dtype=np.float64).reshape(pb.shape)
    if pb.spec.family.multiclass and pb.free_intercept:
        theta[-1] -= theta[-1, -1]
    return _pack(pb, theta, scale)


def _restricted(fun, x_full: np.ndarray, free: np.ndarray):
    """``fun`` of the free coordinates only (the others held at ``x_full``)."""
    if free.all():
        return fun, (lambda z: z)

    def embed(z):
        x = x_full.copy()
        x[free] = z
        return x

    def reduced(z):
        f, g, H = fun(embed(z))
        return f, g[free], H[np.ix_(free, free)]

    return reduced, embed


# --- kinked objectives --------------------------------------------------------------------


@dataclass
class _Kinked:
    r"""``F(x) = S(x) + Σ_k ρ_k ω_k(x) |a_kᵀx − c_k|``, everything divided by n.

    ``S`` is smooth (value, gradient, Hessian); ``ω_k = e^{−β}`` on the ``scaled`` rows (the
    residuals of a Laplace likelihood with learned scale b = e^β, ``β = x[beta_index]``) and 1
    elsewhere. The Laplace likelihood and the Laplace prior are both of this form.
    """

    smooth: Callable
    A: np.ndarray
    c: np.ndarray
    rho: np.ndarray
    scaled: np.ndarray
    beta_index: Optional[int] = None

    def weights(self, x):
        """``ρ_k ω_k(x)`` and its derivative in β (the second derivative is ``−`` that)."""
        if self.beta_index is None:
            return self.rho, np.zeros_like(self.rho)
        with np.errstate(over="ignore"):
            omega = float(np.exp(-x[self.beta_index]))
        w = np.where(self.scaled, self.rho * omega, self.rho)
        return w, np.where(self.scaled, -w, 0.0)

    def assemble(self, x, phi, dphi, d2phi):
        """``S + Σ w_k φ_k(r_k)`` for per-row ``φ`` given by its values and derivatives at r."""
        f, g, H = self.smooth(x)
        w, dw = self.weights(x)
        grad_lin = self.A.T @ (w * dphi)
        g = g + grad_lin
        H = H + self.A.T @ (self.A * (w * d2phi)[:, None])
        if self.beta_index is not None:
            i, lin = self.beta_index, self.A.T @ (dw * dphi)
            g[i] += dw @ phi
            H[i, i] -= dw @ phi
            H[i, :] += lin
            H[:, i] += lin
        return f + float(w @ phi), g, H

    def residual(self, x):
        return self.A @ x - self.c

    def value(self, x):
        return self.smooth(x)[0] + float(self.weights(x)[0] @ np.abs(self.residual(x)))

    def signed(self, x, s):
        """``F`` with ``|r_k|`` replaced by ``s_k r_k`` (s ∈ {−1, 0, 1}): smooth."""
        r = self.residual(x)
        return self.assemble(x, s * r, s, np.zeros_like(r))

    def smoothed(self, x, eps):
        """``F`` with ``|r|`` replaced by ``√(r² + ε²) − ε``: smooth."""
        r = self.residual(x)
        root = np.sqrt(r * r + eps * eps)
        return self.assemble(x, root - eps, r / root, eps * eps / root**3)

    def restrict(self, free: np.ndarray, x_full: np.ndarray) -> "_Kinked":
        """The same objective in the free coordinates (the others held at ``x_full``)."""
        if free.all():
            return self
        smooth, _ = _restricted(self.smooth, x_full, free)
        c = self.c - self.A[:, ~free] @ x_full[~free]
        beta = None if self.beta_index is None else int(np.cumsum(free)[self.beta_index] - 1)
        return _Kinked(smooth, self.A[:, free], c, self.rho, self.scaled, beta)


def _kinked(pb: _Problem) -> _Kinked:
    r"""The :class:`_Kinked` form of a model with a Laplace likelihood and/or Laplace prior.

    Laplace likelihood: rows ``a_i = Z_i``, ``c_i = t_i``, ``ρ_i = 1/(n·b)`` (fixed b) or
    ``1/n`` with ``ω = e^{−β}`` and ``S ∋ β`` (= n log b / n) for a learned b. Laplace prior:
    rows ``e_j`` for the penalised entries of θ, ``c_j = 0``, ``ρ_j = 1/(n·τ_j)``. The rest of
    the objective (a smooth likelihood, a smooth prior) is ``S``.
    """
    spec, n = pb.spec, pb.n
    k = int(np.prod(pb.shape))
    learn = spec.learns_scale
    q = k + int(learn)
    lik_kinked = spec.likelihood == "laplace"
    prior_kinked = spec.is_map and spec.prior == "laplace"
    prior_smooth = spec.is_map and not prior_kinked
    A, c, rho, scaled = [], [], [], []
    if lik_kinked:
        A.append(np.column_stack([pb.Z, np.zeros((n, q - k))]))
        c.append(pb.t)
        rho.append(np.full(n, 1.0 / n if learn else 1.0 / (n * pb.fixed_scale)))
        scaled.append(np.full(n, learn))
    if prior_kinked:
        tau = np.broadcast_to(pb.tau[:, None] if pb.spec.family.multiclass else pb.tau,
                              pb.shape).ravel()
        idx = np.flatnonzero(np.isfinite(tau))
        rows = np.zeros((idx.size, q))
        rows[np.arange(idx.size), idx] = 1.0
        A.append(rows)
        c.append(np.zeros(idx.size))
        rho.append(1.0 / (n * tau[idx]))
        scaled.append(np.zeros(idx.size, bool))

    def smooth(x):
        if not lik_kinked:
            return _smooth_objective(pb, x, prior=prior_smooth)
        theta, beta = _split(pb, x)
        f, g, H = 0.0, np.zeros(q), np.zeros((q, q))
        if prior_smooth:
            fp, gp, hp = _prior_terms(pb, theta)
            f, g[:k], H[np.arange(k), np.arange(k)] = fp / n, gp.ravel() / n, hp.ravel() / n
        if learn:
            f += beta
            g[k] = 1.0
        return f, g, H

    return _Kinked(smooth, np.vstack(A), np.concatenate(c), np.concatenate(rho),
                   np.concatenate(scaled), k if (learn and lik_kinked) else None)


def _continuation(kp: _Kinked, x0: np.ndarray):
    r"""Approach a minimiser of a kinked ``F`` through smooth surrogates.

    Each ``|r|`` becomes ``√(r² + ε²) − ε`` for ε = 1e-1, 1e-2, …, 1e-9 (standardised units)
    in turn, each surrogate minimised by :func:`_minimise` from the previous answer. This only
    locates the active kinks; the answer is :func:`_polish`'s, judged on the exact objective.
    """
    x, iterations = np.asarray(x0, dtype=np.float64), 0
    for eps in CONTINUATION:
        res = _minimise(lambda z, e=eps: kp.smoothed(z, e), x, maxiter=500)
        x, iterations = res.x, iterations + int(res.nit)
    return x, iterations


def _polish(kp: _Kinked, x0: np.ndarray):
    r"""Active-set polish of an approximate minimiser of a :class:`_Kinked` objective.

    Near a local minimum ``x*`` the kinks split into the active set ``𝒵 = {k : a_kᵀx* = c_k}``
    and the rest, whose signs ``s_k`` are fixed; there ``F`` equals the smooth function
    ``F_s`` (:meth:`_Kinked.signed`) on the affine manifold ``A_𝒵 x = c_𝒵``. The candidates
    for ``𝒵`` are the ``j`` kinks nearest to zero at ``x0`` (relative to ``1 + |c_k|``),
    j = 0 … dim x. For each, :func:`_minimise` minimises ``F_s`` on the manifold in null-space
    coordinates (``scipy.linalg.null_space``), and the point is accepted only if the KKT
    conditions of ``F`` hold there: the signs ``s`` are unchanged, ``|a_kᵀx − c_k| ≤ 1e-12``
    on 𝒵, :func:`_minimise` certifies a strict local minimum of ``F_s`` on the manifold
    (positive definite reduced Hessian, negligible Newton correction), and the multipliers
    ``μ`` solving ``A_𝒵ᵀμ = −∇F_s`` (least squares) satisfy ``|μ_k| ≤ ρ_k ω_k`` (the kinks'
    subgradients). The remaining stationarity residual is reported (and, as a sanity check,
    must be below 1e-6 of the largest term in it).
    Candidates are tried in order of the gap between the j-th and (j+1)-th kink sizes (the
    largest first; :data:`POLISH_CANDIDATES` of them) and the first verified one is returned
    as ``(x, KKT residual, report)`` (for a convex problem the KKT point is the minimiser),
    else ``(None, nan, report)``.
    """
    r0 = kp.residual(x0)
    size = np.abs(r0) / (1.0 + np.abs(kp.c))
    order = np.argsort(size, kind="stable")
    sizes = np.concatenate([[0.0], size[order], [np.inf]])
    # the most likely split first: the largest ratio between consecutive kink sizes
    counts = range(min(x0.size, kp.c.size) + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        gap = [sizes[j + 1] / sizes[j] if sizes[j] > 0 else np.inf for j in counts]
    best, report = None, []
    ranked = sorted(counts, key=lambda j: -np.nan_to_num(gap[j], nan=np.inf, posinf=np.inf))
    for j in ranked[:POLISH_CANDIDATES]:
        active = np.zeros(kp.c.size, bool)
        active[order[:j]] = True
        s = np.where(active, 0.0, np.sign(r0))
        AZ, cZ = kp.A[active], kp.c[active]
        xp, N = x0, np.eye(x0.size)
        if j:
            xp = x0 - linalg.lstsq(AZ, AZ @ x0 - cZ)[0]
            N = linalg.null_space(AZ)
        ok, message = True, "vertex"
        x = xp
        if N.shape[1]:
            def reduced(z):
                f, g, H = kp.signed(xp + N @ z, s)
                return f, N.T @ g, N.T @ H @ N

            res = _minimise(reduced, np.zeros(N.shape[1]), maxiter=50)
            x, ok, message = xp + N @ res.x, bool(res.success), res.message
        _, g, _ = kp.signed(x, s)
        r = kp.residual(x)
        w = kp.weights(x)[0]
        # the size of the terms that cancel in the stationarity condition
        magnitude = max(1.0, float((np.abs(kp.smooth(x)[1]) + np.abs(kp.A).T @ w).max()))
        signs_kept = bool(np.all(np.sign(r[~active]) == s[~active]))
        on_manifold = bool(np.all(np.abs(r[active]) <= 1e-12 * (1 + np.abs(cZ))))
        mu = linalg.lstsq(AZ.T, -g)[0] if j else np.zeros(0)
        kkt = float(np.abs(AZ.T @ mu + g).max())
        bounded = bool(np.all(np.abs(mu) <= w[active] * (1 + 1e-9)))
        # stationarity on the manifold is certified by _minimise (scale-aware); the full
        # residual, minus what the multipliers absorb, is a sanity check
        verified = ok and signs_kept and on_manifold and bounded and kkt <= 1e-6 * magnitude
        value = kp.value(x)
        report.append({"active": j, "objective": value, "kkt_residual": kkt,
                       "signs_kept": signs_kept, "multipliers_bounded": bounded,
                       "on_manifold": on_manifold, "minimise": message, "verified": verified})
        if verified:
            best = (x, value, kkt)
            break
    if best is None:
        return None, float("nan"), report
    return best[0], best[2], report


def _polished(pb: _Problem, sol: _Solution) -> _Solution:
    """:func:`_polish` a convex solver's answer; keep the solver's answer if it fails to verify.

    If the solver's answer does not reveal the active set (an inaccurate interior point), the
    polish is retried after :func:`_continuation` from that answer.

    A verified point satisfies the KKT conditions of the (convex) problem, which certifies it
    as the minimiser: ``converged`` is then True whatever the solver's accuracy flag said.
    """
    if not np.isfinite(sol.theta).all():
        return sol
    x_full = _start_x(pb, sol.theta, sol.scale)
    free = _free_coords(pb)
    kp = _kinked(pb).restrict(free, x_full)
    x, kkt, report = _polish(kp, x_full[free])
    if x is None:  # the solver's zeros are too blurred to read the active set: sharpen them
        x, kkt, report = _polish(kp, _continuation(kp, x_full[free])[0])
    info = dict(sol.info, polish=report)
    if x is None:
        return _Solution(sol.theta, sol.scale, sol.converged, sol.n_iter, info=info)
    x_full[free] = x
    theta, _ = _split(pb, x_full)
    return _Solution(theta.copy(), sol.scale, True, sol.n_iter, grad_norm=kkt, info=info)


# --- general optimisers: several starts ---------------------------------------------------


def _relatives(pb: _Problem) -> list[tuple[str, _Solution]]:
    """Starting points for a non-convex fit: its convex (or classical) relatives' fits."""
    spec = pb.spec
    if spec.likelihood == "studentt":
        out = []
        # least squares and least absolute deviations, the scale from their residuals' MAD
        for label, solver in (("least squares", _solve_lstsq), ("LAD", _solve_lad)):
            sol = solver(replace(pb, spec=with_changes(spec, estimator="mle")))
            r = pb.t - pb.eta(sol.theta)
            mad = 1.4826 * float(np.median(np.abs(r - np.median(r))))
            scale = max(mad, 1e-3 * float(r.std())) if spec.learns_scale else pb.fixed_scale
            out.append((label, _Solution(sol.theta, scale, True, 0)))
        if spec.is_map:  # the Gaussian ridge at the same prior scale
            out.append(("ridge", _ridge_at(pb, out[0][1].scale)))
        return out
    others = [("MLE", with_changes(spec, estimator="mle"))]
    if spec.is_map:
        convex = "laplace" if spec.likelihood == "laplace" else "normal"
        others.append((f"{convex}-prior MAP", with_changes(spec, prior=convex)))
    out = []
    for label, other in others:
        sol = _solver(other).solve(replace(pb, spec=other))
        if sol.converged and np.isfinite(sol.theta).all():
            out.append((label, sol))
    return out


def _solve_smooth(pb: _Problem) -> _Solution:
    r"""Smooth objectives without a classical solver, by :func:`_minimise` from several starts.

    Minimises ``F/n`` of the module docstring (Student-t likelihood; Student-t or Cauchy prior;
    a learned scale enters as ``β = log s``) in standardised coordinates with the analytic
    gradient and Hessian: ``scipy.optimize.minimize(method="trust-exact")`` (nearly exact
    trust-region steps, so indefinite Hessians are handled), then MINPACK ``lm`` on ∇F = 0.
    Started from each of :func:`_relatives`; the lowest objective among the certified local
    minima is kept (any other start's result is reported in ``info["starts"]``).
    """
    free = _free_coords(pb)
    best, tried = None, []
    for label, start in _relatives(pb):
        x_full = _start_x(pb, start.theta, start.scale)
        fun, embed = _restricted(lambda x: _smooth_objective(pb, x), x_full, free)
        res = _minimise(fun, x_full[free])
        tried.append({"start": label, "objective": float(res.fun), "success": bool(res.success)})
        if best is None or (res.success, -res.fun) > (best[1].success, -best[1].fun):
            best = (label, res, embed(res.x))
    label, res, x = best
    theta, beta = _split(pb, x)
    scale = math.exp(beta) if pb.spec.family.has_scale else None
    return _Solution(theta.copy(), scale, bool(res.success), int(res.nit),
                     grad_norm=float(np.abs(res.jac).max()),
                     info={"start": label, "starts": tried, "message": res.message})


def _solve_kinked(pb: _Problem) -> _Solution:
    r"""Kinked and non-convex objectives: Laplace likelihood with a Student-t / Cauchy prior,
    Student-t likelihood with a Laplace prior.

    From each of :func:`_relatives` (the MLE, and the convex MAP: L1-LAD LP or the Student-t
    normal-prior MAP), :func:`_continuation` locates the active kinks and :func:`_polish`
    solves for the exact point and verifies its KKT conditions on the exact objective; the
    lowest verified objective is kept. ``converged`` is False if no start verifies.
    """
    free = _free_coords(pb)
    full = _kinked(pb)
    best, tried = None, []
    for label, start in _relatives(pb):
        x_full = _start_x(pb, start.theta, start.scale)
        kp = full.restrict(free, x_full)
        x, iterations = _continuation(kp, x_full[free])
        polished, kkt, report = _polish(kp, x)
        ok = polished is not None
        x = polished if ok else x
        value = kp.value(x)
        x_full[free] = x
        tried.append({"start": label, "objective": value, "verified": ok, "polish": report})
        if best is None or (ok, -value) > (best[0], -best[1]):
            best = (ok, value, x_full, iterations, kkt, label)
    ok, _, x, iterations, kkt, label = best
    theta, beta = _split(pb, x)
    scale = math.exp(beta) if pb.spec.family.has_scale else None
    return _Solution(theta.copy(), scale, ok, iterations, grad_norm=kkt,
                     info={"start": label, "starts": tried})


# =============================================================================================
# Dispatch
# =============================================================================================


@dataclass(frozen=True)
class _Solver:
    solve: Callable[[_Problem], _Solution]
    method: str
    scale_note: str = ""  # appended when the scale is learned
    kind: str = "trusted"  # or "verified": our own loop, accepted on its optimality conditions


_PROFILE = "; scale learned by scipy brentq on the envelope condition (σ² = RSS/n, b = SAE/n)"
_NEWTON = ("scipy.optimize.minimize trust-exact (analytic gradient and Hessian, gtol=1e-8) "
           "+ MINPACK lm root polish of ∇F = 0 (xtol=1e-15), "
           "standardised coordinates, best of several starts")
_KINKED = ("smoothing continuation |r| ≈ √(r²+ε²), ε = 1e-1…1e-9 (each stage scipy trust-exact + "
           "MINPACK lm), then active-set polish on the exact objective (KKT verified), best of "
           "several starts")
_LOGISTIC = "scikit-learn LogisticRegression(solver='newton-cholesky', tol=1e-12, {C})"
_CLARABEL = ("cvxpy + Clarabel ({what}, tolerances 1e-12) + active-set polish (KKT verified; "
             "scipy trust-exact + MINPACK lm)")

_SOLVERS: dict[tuple[str, Optional[str]], _Solver] = {
    ("gaussian", None): _Solver(_solve_lstsq, "scipy.linalg.lstsq (LAPACK gelsd, closed form)",
                                "; σ̂² = RSS/n"),
    ("gaussian", "normal"): _Solver(_solve_ridge, "closed-form ridge (augmented lstsq, "
                                    "λ = σ²/τ²)", _PROFILE),
    ("gaussian", "laplace"): _Solver(_solve_lasso, "scikit-learn Lasso (coordinate descent, "
                                     "tol=1e-12, α = σ²/(n·τ)) + active-set polish (KKT "
                                     "verified)", _PROFILE),
    ("gaussian", "studentt"): _Solver(_solve_smooth, _NEWTON, kind="verified"),
    ("gaussian", "cauchy"): _Solver(_solve_smooth, _NEWTON, kind="verified"),
    ("laplace", None): _Solver(_solve_lad, "HiGHS dual simplex via scipy linprog (LAD LP)",
                               "; b̂ = SAE/n"),
    ("laplace", "laplace"): _Solver(_solve_lad_l1, "HiGHS dual simplex via scipy linprog "
                                    "(L1-penalised LAD LP)", _PROFILE),
    ("laplace", "normal"): _Solver(_solve_lad_ridge, _CLARABEL.format(what="LAD + L2 QP"),
                                   _PROFILE),
    ("laplace", "studentt"): _Solver(_solve_kinked, _KINKED, kind="verified"),
    ("laplace", "cauchy"): _Solver(_solve_kinked, _KINKED, kind="verified"),
    ("bernoulli", None): _Solver(_solve_logistic, _LOGISTIC.format(C="C=inf")),
    ("bernoulli", "normal"): _Solver(_solve_logistic, _LOGISTIC.format(C="C=τ²")),
    ("bernoulli", "laplace"): _Solver(_solve_glm_l1, _CLARABEL.format(what="logistic + L1")),
    ("bernoulli", "studentt"): _Solver(_solve_smooth, _NEWTON, kind="verified"),
    ("bernoulli", "cauchy"): _Solver(_solve_smooth, _NEWTON, kind="verified"),
    ("categorical", None): _Solver(_solve_logistic, _LOGISTIC.format(C="C=inf, multinomial")),
    ("categorical", "normal"): _Solver(_solve_logistic, _LOGISTIC.format(C="C=τ², multinomial")),
    ("categorical", "laplace"): _Solver(_solve_glm_l1, _CLARABEL.format(what="softmax + L1")),
    ("categorical", "studentt"): _Solver(_solve_smooth, _NEWTON, kind="verified"),
    ("categorical", "cauchy"): _Solver(_solve_smooth, _NEWTON, kind="verified"),
    ("poisson", None): _Solver(_solve_poisson_mle, "statsmodels GLM(Poisson) IRLS (tol=1e-14)"),
    ("poisson", "normal"): _Solver(_solve_poisson_ridge, "scikit-learn PoissonRegressor("
                                   "solver='newton-cholesky', tol=1e-12, α = 1/(n·τ²))"),
    ("poisson", "laplace"): _Solver(_solve_glm_l1, _CLARABEL.format(what="Poisson + L1")),
    ("poisson", "studentt"): _Solver(_solve_smooth, _NEWTON, kind="verified"),
    ("poisson", "cauchy"): _Solver(_solve_smooth, _NEWTON, kind="verified"),
    ("studentt", None): _Solver(_solve_smooth, _NEWTON, kind="verified"),
    ("studentt", "normal"): _Solver(_solve_smooth, _NEWTON, kind="verified"),
    ("studentt", "laplace"): _Solver(_solve_kinked, _KINKED, kind="verified"),
    ("studentt", "studentt"): _Solver(_solve_smooth, _NEWTON, kind="verified"),
    ("studentt", "cauchy"): _Solver(_solve_smooth, _NEWTON, kind="verified"),
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
    Categorical intercepts with a flat prior are identified only up to a common shift;
    :meth:`Fit.build` reports them centred (sum zero), as for our fits.
    """
    spec = make_spec(likelihood, estimator=estimator, prior=prior, prior_scale=prior_scale,
                     noise_scale=noise_scale, df=df, prior_df=prior_df,
                     fit_intercept=fit_intercept, penalize_intercept=penalize_intercept)
    names = feature_names(X)  # a DataFrame's columns label the weights, as in fit()
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
    info = dict(sol.info, kind=solver.kind)
    return Fit.build(spec, X, y, coef, intercept, scale, converged=bool(sol.converged),
                     n_iter=int(sol.n_iter), grad_norm=float(sol.grad_norm),
                     method=reference_method(spec), seed=None, info=info, feature_names=names)


__all__ = ["reference_fit", "reference_method"]
