"""Linear programmes solved by HiGHS' dual simplex (``scipy.optimize.linprog``): trusted.

Least absolute deviations (+ an L1 prior), and the separation check of a logistic MLE.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from scipy import optimize, sparse

from .closed_form import _profile_scale
from .problem import _Problem, PROFILE_NOTE, route, _Solution

#: HiGHS simplex options: feasibility tolerances tightened from 1e-7.
HIGHS_OPTIONS = {
    "primal_feasibility_tolerance": 1e-10,
    "dual_feasibility_tolerance": 1e-10,
}


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


@route("lad", "HiGHS dual simplex via scipy linprog (LAD LP)", "; b̂ = SAE/n")
def _solve_lad(pb: _Problem) -> _Solution:
    """Laplace MLE: the LAD LP (HiGHS); a learned scale is ``b̂ = SAE/n``."""
    sol = _lp_l1(pb, 1.0, penalise=False)
    sol.scale = (float(np.abs(pb.t - pb.eta(sol.theta)).mean()) if pb.spec.learns_scale
                 else pb.fixed_scale)
    return sol


@route("lad-l1", "HiGHS dual simplex via scipy linprog (L1-penalised LAD LP)",
       PROFILE_NOTE)
def _solve_lad_l1(pb: _Problem) -> _Solution:
    """Laplace likelihood, Laplace prior: the L1-penalised LAD LP; learned b by the profile."""
    if not pb.spec.learns_scale:
        return _lp_l1(pb, pb.fixed_scale)
    return _profile_scale(pb, _lp_l1, _solve_lad(pb))


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
