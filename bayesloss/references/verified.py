r"""Our own loops, labelled *verified*: accepted only on their optimality conditions.

Where no established solver fits a model in one call (the Student-t likelihood at a fixed
scale, Student-t and Cauchy priors on smooth likelihoods, the kinked non-convex pairs), the
reference is computed here and checked, not trusted:

* **Smooth minimisation** (:func:`_minimise`): ``scipy.optimize.minimize(method=
  "trust-exact")`` with the exact Hessian (from the family's ``numpy_terms``), then MINPACK
  ``lm`` on ``∇F = 0``; accepted as a strict local minimum only with a positive definite
  Hessian and a negligible gradient or Newton correction.
* **Active-set polish** (:func:`_polish`) for kinked objectives (|residual|, |weight|): reads
  the zero kinks off an approximate answer, solves the smooth problem on that face exactly and
  verifies the KKT conditions (subgradient multipliers in range).
* **Several starts** (:func:`_relatives`): non-convex objectives can have several local
  optima; the best verified one over the starts is returned (``Fit.info["starts"]``).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace
from typing import Callable, Optional

import numpy as np
from scipy import linalg, optimize

from ..spec import with_changes
from .closed_form import _ridge_at, _solve_lstsq
from .lp import _solve_lad
from .problem import (
    _free_coords, _Problem, _restricted, route, _Solution, _split, _start_x, solver_of,
)

#: ``trust-exact`` stopping rule on ‖∇(F/n)‖₂ in standardised coordinates (before ``lm``).
NEWTON_GTOL = 1e-8


#: A smooth local minimum is accepted when ∇²F is positive definite and ‖∇(F/n)‖∞ ≤ GRAD_TOL
#: or the Newton correction ‖(∇²F)⁻¹∇F‖∞ ≤ STEP_TOL·(1 + ‖x‖∞).
GRAD_TOL = 1e-12


STEP_TOL = 1e-12


#: Active sets tried by the polish (those after the largest gaps in the kinks' sizes).
POLISH_CANDIDATES = 8


#: ε of the smoothing continuation (standardised units).
CONTINUATION = tuple(10.0 ** -k for k in range(1, 10))


def _lik_terms(pb: _Problem, eta: np.ndarray, beta: float):
    """The family's smooth NLL and its derivatives in ``η`` and ``β = log s``
    (``Family.numpy_terms``)."""
    terms = pb.spec.family.numpy_terms
    if terms is None:
        raise ValueError(f"the {pb.spec.likelihood} likelihood has no smooth NLL")  # kinks
    return terms(pb.t, eta, beta, pb.spec.df)


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


def _certify(pb: _Problem, x: np.ndarray):
    """``(ok, ‖∇(F/n)‖∞, message)``: the smooth first-order certificate of :func:`_minimise`
    (positive definite Hessian; ‖∇‖∞ ≤ :data:`GRAD_TOL` or a Newton correction ≤
    :data:`STEP_TOL`·(1 + ‖x‖∞)) at a point found by another loop."""
    f, g, H = _smooth_objective(pb, x)
    if not (np.isfinite(f) and np.isfinite(g).all() and np.isfinite(H).all()):
        return False, float("nan"), "non-finite objective"
    min_eig = float(np.linalg.eigvalsh(H).min())
    step = np.linalg.solve(H, g) if min_eig > 0 else np.full(x.size, np.inf)
    ok = min_eig > 0 and (np.abs(g).max() <= GRAD_TOL
                          or np.abs(step).max() <= STEP_TOL * (1 + np.abs(x).max()))
    return bool(ok), float(np.abs(g).max()), (
        f"min eig(H) = {min_eig:.3g}, Newton correction {np.abs(step).max():.2e}")


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
    lik_kinked = spec.family.kinked
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
    as the minimiser: ``converged`` is then True whatever the solver's accuracy flag said, and
    the answer is labelled *verified* (``info["kind"]``), no longer the solver's.
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
    return _Solution(theta.copy(), sol.scale, True, sol.n_iter, grad_norm=kkt,
                     info=dict(info, kind="verified"))


def _relatives(pb: _Problem) -> list[tuple[str, _Solution]]:
    """Starting points for a non-convex fit: its convex (or classical) relatives' fits."""
    spec = pb.spec
    if spec.family.continuous and spec.family.scale_power is None:
        # a robust location family (Student-t): its classical relatives
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
    # the relatives' own references
    others = [("MLE", with_changes(spec, estimator="mle"))]
    if spec.is_map:
        convex = "laplace" if spec.family.kinked else "normal"
        others.append((f"{convex}-prior MAP", with_changes(spec, prior=convex)))
    out = []
    for label, other in others:
        if solver_of(other).kind == "verified" and other.is_map:
            continue  # a start must come from a trusted relative (and never from itself)
        sol = solver_of(other).solve(replace(pb, spec=other))
        if sol.converged and np.isfinite(sol.theta).all():
            out.append((label, sol))
    return out


@route("smooth", "verified (KKT-checked): scipy.optimize.minimize trust-exact (analytic "
       "gradient and Hessian, gtol=1e-8) + MINPACK lm root polish of ∇F = 0 (xtol=1e-15), "
       "standardised coordinates, best of several starts", kind="verified")
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


@route("kinked", "verified (KKT-checked): smoothing continuation |r| ≈ √(r²+ε²), "
       "ε = 1e-1…1e-9 (each stage scipy trust-exact + MINPACK lm), then active-set polish on "
       "the exact objective, best of several starts", kind="verified")
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
