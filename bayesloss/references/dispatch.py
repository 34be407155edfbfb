"""Which reference solver fits which model, and the public entry points.

Each family names its routes (``Family.references``: MLE and each prior with a classical
solver); every other combination goes to the verified general solvers (:mod:`.verified`):
the smooth one, or the kinked one when the likelihood or the prior has kinks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Union

import numpy as np

from ..results import Fit
from ..spec import ModelSpec, check_data, feature_names, make_spec, with_changes
from .closed_form import _solve_lstsq, _solve_ridge
from .conic import _solve_glm_l1, _solve_lad_ridge
from .libraries import (
    _solve_lasso, _solve_logistic, _solve_poisson_mle, _solve_poisson_ridge,
)
from .lp import _solve_lad, _solve_lad_l1
from .problem import _Problem, _Solution, _standardise
from .verified import _solve_kinked, _solve_smooth


@dataclass(frozen=True)
class _Solver:
    """A reference route: its solver, its description (or ``spec → description``), the note
    added when the scale is learned, and its kind."""

    solve: Callable[[_Problem], _Solution]
    method: Union[str, Callable[[ModelSpec], str]]
    scale_note: str = ""
    kind: str = "trusted"  # or "verified": our own loop, accepted on its optimality conditions


_PROFILE = "; scale learned by scipy brentq on the envelope condition (σ² = RSS/n, b = SAE/n)"
_CLARABEL = ("cvxpy + Clarabel ({what}, tolerances 1e-12; an optimal_inaccurate answer is "
             "finished by the active-set polish and labelled verified)")


def _logistic_method(spec: ModelSpec) -> str:
    C = "C=inf" if not spec.is_map else (
        "C=τ² (C=2τ² for two classes)" if spec.family.multiclass else "C=τ²")
    return ("scikit-learn LogisticRegression(solver='newton-cholesky', tol=1e-12, "
            + C + (", multinomial" if spec.family.multiclass else "") + ")")


#: Every reference route by name (``Family.references`` points here).
ROUTES: dict[str, _Solver] = {
    "lstsq": _Solver(_solve_lstsq, "scipy.linalg.lstsq (LAPACK gelsd, closed form)",
                     "; σ̂² = RSS/n"),
    "ridge": _Solver(_solve_ridge, "closed-form ridge (augmented lstsq, λ = σ²/τ²)", _PROFILE),
    "lasso": _Solver(_solve_lasso, "scikit-learn Lasso (coordinate descent, tol=1e-12, "
                     "α = σ²/(n·τ))", _PROFILE),
    "lad": _Solver(_solve_lad, "HiGHS dual simplex via scipy linprog (LAD LP)", "; b̂ = SAE/n"),
    "lad-l1": _Solver(_solve_lad_l1, "HiGHS dual simplex via scipy linprog (L1-penalised LAD "
                      "LP)", _PROFILE),
    "lad-ridge": _Solver(_solve_lad_ridge, _CLARABEL.format(what="LAD + L2 QP"), _PROFILE),
    "logistic": _Solver(_solve_logistic, _logistic_method),
    "glm-l1": _Solver(_solve_glm_l1, lambda spec: _CLARABEL.format(
        what=f"{spec.likelihood} + L1, exponential cones")),
    "poisson-glm": _Solver(_solve_poisson_mle, "statsmodels GLM(Poisson) IRLS (tol=1e-14)"),
    "poisson-ridge": _Solver(_solve_poisson_ridge, "scikit-learn PoissonRegressor("
                             "solver='newton-cholesky', tol=1e-12, α = 1/(n·τ²))"),
    "smooth": _Solver(_solve_smooth, "verified (KKT-checked): scipy.optimize.minimize "
                      "trust-exact (analytic gradient and Hessian, gtol=1e-8) + MINPACK lm "
                      "root polish of ∇F = 0 (xtol=1e-15), standardised coordinates, best of "
                      "several starts", kind="verified"),
    "kinked": _Solver(_solve_kinked, "verified (KKT-checked): smoothing continuation |r| ≈ "
                      "√(r²+ε²), ε = 1e-1…1e-9 (each stage scipy trust-exact + MINPACK lm), "
                      "then active-set polish on the exact objective, best of several starts",
                      kind="verified"),
}


def route(spec: ModelSpec) -> str:
    """The name of the :data:`ROUTES` entry that fits ``spec``."""
    named = spec.family.references.get(spec.prior if spec.is_map else None)
    if named is not None:
        return named
    return "kinked" if spec.kinked else "smooth"


def _solver(spec: ModelSpec) -> _Solver:
    return ROUTES[route(spec)]


def reference_method(spec: ModelSpec) -> str:
    """The solver (and its settings) that :func:`reference_fit` uses for ``spec``."""
    solver = _solver(spec)
    method = solver.method if isinstance(solver.method, str) else solver.method(spec)
    if spec.learns_scale:
        method += solver.scale_note
    if spec.is_map and spec.penalize_intercept:
        method += "; intercept penalised as an appended column of ones"
    return method


def reference_kind(spec: ModelSpec) -> str:
    """"trusted" or "verified": the kind of :func:`reference_fit`'s route for ``spec`` (a
    trusted route whose solver reports an inaccurate answer is verified for that fit, see
    ``Fit.info["kind"]``)."""
    return _solver(spec).kind


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
    ``method`` names the solver, whose ``info["kind"]`` is "trusted" (one call of an
    established solver) or "verified" (our own loop, accepted on its optimality conditions),
    and whose ``converged`` is the solver's own verdict.
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
    info = dict(sol.info)
    info.setdefault("kind", solver.kind)
    return Fit.build(spec, X, y, coef, intercept, scale, converged=bool(sol.converged),
                     n_iter=int(sol.n_iter), grad_norm=float(sol.grad_norm),
                     method=reference_method(spec), seed=None, info=info, feature_names=names)
