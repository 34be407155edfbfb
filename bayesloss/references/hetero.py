r"""Heteroscedastic Gaussian (log σ(x) = x·a + c): scipy's trust region + MINPACK, verified.

.. math::

    F(θ, α, γ) = \sum_i \Big[\tfrac12 r_i^2 e^{-2 s_i} + s_i\Big] + [\text{MAP}]\ P(θ),
    \qquad r = t − Zθ,\quad s = Z_x α + γ

in standardised coordinates (:mod:`.problem`), with its exact gradient and Hessian

.. math::

    ∇_θ = −Zᵀ(r e) + ∇P,\ ∇_φ = Wᵀ(1 − r^2 e),\quad
    ∇^2_{θθ} = Zᵀ\operatorname{diag}(e) Z + ∇^2P,\ ∇^2_{θφ} = Zᵀ\operatorname{diag}(2re) W,\
    ∇^2_{φφ} = Wᵀ\operatorname{diag}(2r^2e) W

(``e = exp(−2s)``, ``W = [Z_x, 1]``, φ = (α, γ)), minimised by
``scipy.optimize.minimize(method="trust-exact")`` and then MINPACK ``lm`` on ∇F = 0
(:func:`.verified._minimise`) from the intercept-only model with a constant σ = sd(y)
(θ = 0, α = 0, γ = 0): a different start from our fit's homoscedastic least-squares one, and a
different algorithm (exact-Hessian trust region vs L-BFGS + Newton on autograd). Kind
*verified*: trust-exact alone, stopped at ‖∇(F/n)‖₂ ≤ 1e-8, ended on its rounding floor ("a bad
approximation") in 6 of 160 fits tried (n = 300 / 2,000), so its own status cannot be the
verdict; the accepted answer carries :func:`._minimise`'s certificate (positive definite
Hessian, negligible gradient or Newton correction).
"""

from __future__ import annotations

import numpy as np
from .problem import _Problem, route, _Solution
from .verified import _minimise, _prior_terms



def _scale_design(pb: _Problem) -> np.ndarray:
    d = pb.X.shape[1]
    return np.column_stack([pb.Z[:, :d], np.ones(pb.n)])


def _objective(pb: _Problem, W: np.ndarray, x: np.ndarray):
    """``(F/n, ∇, ∇²)`` at ``x = (θ, α, γ)``."""
    p, n = pb.p, pb.n
    theta, phi = x[:p], x[p:]
    r = pb.t - pb.Z @ theta
    s = W @ phi
    e = np.exp(-2.0 * s)
    f = float(0.5 * (r * r) @ e + s.sum())
    g_theta, g_phi = -pb.Z.T @ (r * e), W.T @ (1.0 - r * r * e)
    H_tt = pb.Z.T @ (pb.Z * e[:, None])
    H_tp = pb.Z.T @ (W * (2 * r * e)[:, None])
    H_pp = W.T @ (W * (2 * r * r * e)[:, None])
    if pb.spec.is_map:
        fp, gp, hp = _prior_terms(pb, theta)
        f, g_theta = f + fp, g_theta + gp
        H_tt[np.diag_indices_from(H_tt)] += hp
    H = np.block([[H_tt, H_tp], [H_tp.T, H_pp]])
    return f / n, np.concatenate([g_theta, g_phi]) / n, H / n


@route("hetero", "scipy.optimize.minimize trust-exact (analytic gradient and Hessian) + MINPACK "
                 "lm on ∇F = 0, from the intercept-only start", kind="verified")
def _solve_hetero(pb: _Problem) -> _Solution:
    """hetero_gaussian MLE / MAP (smooth prior on the mean weights; the scale head flat)."""
    W = _scale_design(pb)
    with np.errstate(over="ignore"):
        res = _minimise(lambda x: _objective(pb, W, x), np.zeros(pb.p + W.shape[1]))
    return _Solution(res.x[:pb.p], None, bool(res.success), int(res.nit),
                     grad_norm=float(np.abs(res.jac).max()), info={"message": res.message},
                     head=(res.x[pb.p:-1], res.x[-1]))
