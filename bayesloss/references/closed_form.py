"""Closed forms (LAPACK): least squares, ridge, and a learned scale by the envelope condition.

Every answer here is one LAPACK call (``scipy.linalg.lstsq``, SVD) or, for a learned scale
with a prior, ``scipy.optimize.brentq`` on the envelope condition over such calls: trusted.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
from scipy import linalg, optimize

from .problem import _Problem, PROFILE_NOTE, route, _Solution

_EPS = np.finfo(np.float64).eps


def _gaussian_scale_mle(pb: _Problem, theta) -> float:
    r = pb.t - pb.eta(theta)
    return float(np.sqrt(r @ r / pb.n))


@route("lstsq", "scipy.linalg.lstsq (LAPACK gelsd, closed form)", "; σ̂² = RSS/n")
def _solve_lstsq(pb: _Problem) -> _Solution:
    r"""Gaussian MLE: ``min_θ ‖t − Zθ‖²`` by LAPACK ``gelsd`` (SVD), a closed form.

    The MLE of the weights does not depend on σ; a learned σ is ``σ̂² = RSS/n``.
    """
    theta, _, rank, _ = linalg.lstsq(pb.Z, pb.t, lapack_driver="gelsd")
    scale = _gaussian_scale_mle(pb, theta) if pb.spec.learns_scale else pb.fixed_scale
    return _Solution(theta, scale, True, 0, info={"rank": int(rank)})


def _ridge_at(pb: _Problem, scale) -> _Solution:
    r"""Closed-form ridge at a fixed σ: ``min_θ ‖t − Zθ‖²/(2σ²) + Σ_j θ_j²/(2τ_j²)``.

    Equivalently ``‖t − Zθ‖² + Σ_j λ_j θ_j²`` with ``λ_j = σ²/τ_j²`` (on the user's scale
    ``λ = σ²/τ²``, scikit-learn ``Ridge(alpha=λ)``), solved as the augmented least-squares
    problem ``[Z/σ; diag(1/τ)] θ ≈ [t/σ; 0]`` by LAPACK (SVD), which never forms ``ZᵀZ``. The
    free intercept has no row. ``scale`` may be one σᵢ per row (an (n,) array): weighted ridge,
    ``Σ_i (t_i − z_iᵀθ)²/(2σ_i²) + Σ_j θ_j²/(2τ_j²)``, the same solve with each row scaled by
    its own 1/σᵢ.
    """
    on = pb.penalised
    rows = np.broadcast_to(1.0 / np.asarray(scale, dtype=np.float64), (pb.n,))
    A = np.vstack([pb.Z * rows[:, None], np.eye(pb.p)[on] / pb.tau[on][:, None]])
    b = np.concatenate([pb.t * rows, np.zeros(on.sum())])
    theta = linalg.lstsq(A, b, lapack_driver="gelsd")[0]
    return _Solution(theta, scale if np.ndim(scale) == 0 else None, True, 0)


@route("wls", "weighted least squares: scipy.linalg.lstsq (LAPACK gelsd) on rows scaled by "
              "1/σᵢ")
def _solve_wls(pb: _Problem) -> _Solution:
    r"""Gaussian MLE with known per-row σᵢ: ``min_θ Σ_i (t_i − z_iᵀθ)²/σ_i²``, the least-squares
    problem ``diag(1/σ) Z θ ≈ t/σ`` by LAPACK ``gelsd`` (SVD), a closed form."""
    rows = 1.0 / pb.fixed_scale
    theta, _, rank, _ = linalg.lstsq(pb.Z * rows[:, None], pb.t * rows, lapack_driver="gelsd")
    return _Solution(theta, None, True, 0, info={"rank": int(rank)})


@route("weighted-ridge", "closed-form weighted ridge (augmented lstsq on rows scaled by 1/σᵢ, "
                         "λ = 1/τ²)")
def _solve_weighted_ridge(pb: _Problem) -> _Solution:
    """Gaussian MAP, normal prior, known per-row σᵢ: :func:`_ridge_at` with the (n,) scales."""
    return _ridge_at(pb, pb.fixed_scale)


@route("ridge", "closed-form ridge (augmented lstsq, λ = σ²/τ²)", PROFILE_NOTE)
def _solve_ridge(pb: _Problem) -> _Solution:
    """Gaussian MAP, normal prior: closed-form ridge; a learned σ by :func:`_profile_scale`."""
    if not pb.spec.learns_scale:
        return _ridge_at(pb, pb.fixed_scale)
    return _profile_scale(pb, _ridge_at, _solve_lstsq(pb))


def _scale_loss(pb: _Problem, theta) -> tuple[float, int]:
    """``(L, k)`` with the NLL ∝ ``L/s^k + n log s``: ``L = Σ|r|^k / k`` with the family's
    ``scale_power`` k ((RSS/2, 2) gaussian, (SAE, 1) laplace)."""
    k = pb.spec.family.scale_power
    return float((np.abs(pb.t - pb.eta(theta)) ** k).sum()) / k, k


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
