"""Conic programmes solved by Clarabel through cvxpy: trusted.

LAD with a normal prior (a QP) and the GLMs with a Laplace prior (exponential cones). Clarabel
runs at tolerances 1e-12; its answer is the reference as it stands. Only where Clarabel itself
reports ``optimal_inaccurate`` is the answer finished by the active-set polish of
:mod:`.verified` and then labelled *verified* (KKT-checked) instead of trusted. Measured: the
polish moved no "optimal" answer of the check matrix by more than 1e-8 of a parameter's unit
(so it is not applied to them); the one inaccurate case (synthetic bernoulli, Laplace prior)
it moves by 2.7e-7.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..spec import with_changes
from .closed_form import _profile_scale
from .lp import _solve_lad
from .problem import _catch, _Problem, PROFILE_NOTE, route, _Solution
from .verified import _polished

#: Clarabel interior-point tolerances (its defaults are 1e-8).
_CLARABEL = ("cvxpy + Clarabel ({what}, tolerances 1e-12; an optimal_inaccurate answer is "
             "finished by the active-set polish and labelled verified)")
#: Clarabel interior-point tolerances (its defaults are 1e-8).
CLARABEL_OPTIONS = {
    "tol_gap_abs": 1e-12,
    "tol_gap_rel": 1e-12,
    "tol_feas": 1e-12,
    "tol_ktratio": 1e-10,
    "max_iter": 500,
}


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
    return _finish(fixed, _Solution(np.asarray(value), scale, ok, iters,
                                    info={"status": status}))


@route("lad-ridge", _CLARABEL.format(what="LAD + L2 QP"), PROFILE_NOTE)
def _solve_lad_ridge(pb: _Problem) -> _Solution:
    """Laplace likelihood, normal prior: Clarabel QP; learned b by the profile."""
    if not pb.spec.learns_scale:
        return _lad_ridge_at(pb, pb.fixed_scale)
    return _profile_scale(pb, _lad_ridge_at, _solve_lad(pb))


@route("glm-l1", lambda spec: _CLARABEL.format(
    what=f"{spec.likelihood} + L1, exponential cones"))
def _solve_glm_l1(pb: _Problem) -> _Solution:
    r"""Bernoulli / categorical / Poisson with a Laplace prior: Clarabel (exponential cones).

    ``min_θ NLL(θ) + Σ_{j penalised} |θ_j|/τ_j`` (all K columns for categorical), with
    the family's ``convex_nll`` (Σ log(1 + e^η) − tη with cvxpy ``logistic``,
    Σ log Σ_k e^{η_ik} − η_{i,t_i} with ``log_sum_exp``, Σ e^η − tη with ``exp``); divided by n;
    standardised coordinates.
    """
    import cvxpy as cp

    name, on = pb.spec.likelihood, np.flatnonzero(pb.penalised)
    theta = cp.Variable(pb.shape)
    eta = pb.Z @ theta
    onehot = pb.onehot() if pb.spec.family.multiclass else None
    nll = pb.spec.family.convex_nll(cp, eta, pb.t, onehot)
    rho = 1.0 / pb.tau[on]
    if pb.spec.family.multiclass:
        rho = rho[:, None]
    penalty = cp.sum(cp.multiply(rho, cp.abs(theta[on])))
    problem = cp.Problem(cp.Minimize((nll + penalty) / pb.n))
    ok, iters, status = _cvxpy_solve(problem, f"{name} + L1")
    value = theta.value if theta.value is not None else np.full(pb.shape, np.nan)
    return _finish(pb, _Solution(np.asarray(value), None, ok, iters, info={"status": status}))


def _finish(pb: _Problem, sol: _Solution) -> _Solution:
    """Clarabel's answer as it stands when it reports optimal; else polished and *verified*."""
    if sol.converged:
        return sol
    return _polished(pb, sol)
