"""Which reference solver fits which model, and the public entry points.

Each family names its routes (``Family.references``: MLE and each prior with a classical
solver); every other combination goes to the verified general solvers (:mod:`.verified`):
the smooth one, or the kinked one when the likelihood or the prior has kinks. Each route is
registered next to its solver (``@route(name, method)`` in :mod:`.problem`), so a new route
is one function in one module.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..engine.policy import entry_point
from ..results import Fit
from ..spec import ModelSpec, check_data, feature_names, make_spec, with_changes
# the solver modules register their routes in ROUTES on import
from . import (  # noqa: F401
    closed_form, conic, glm, hetero, libraries, lp, mixture, mm, torch_nll, verified,
)
from .problem import _standardise, solver_of


def reference_method(spec: ModelSpec) -> str:
    """The solver (and its settings) that :func:`reference_fit` uses for ``spec``."""
    solver = solver_of(spec)
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
    return solver_of(spec).kind


@entry_point
def reference_fit(
    X,
    y,
    likelihood: str,
    *,
    estimator: str = "mle",
    prior: str = "normal",
    prior_scale: float = 1.0,
    noise_scale: Optional[float] = None,
    trials=None,
    df: float = 4.0,
    prior_df: float = 3.0,
    fit_intercept: bool = True,
    penalize_intercept: bool = False,
    components: Optional[int] = None,
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
                     noise_scale=noise_scale, trials=trials, df=df, prior_df=prior_df,
                     fit_intercept=fit_intercept, penalize_intercept=penalize_intercept,
                     components=components)
    names = feature_names(X)  # a DataFrame's columns label the weights, as in fit()
    X, y = check_data(X, y, spec)
    solver = solver_of(spec)
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
    head = None if sol.head is None else pb.head_to_user(sol.head)
    return Fit.build(spec, X, y, coef, intercept, scale, scale_head=head, mixing=sol.mixing,
                     converged=bool(sol.converged),
                     n_iter=int(sol.n_iter), grad_norm=float(sol.grad_norm),
                     method=reference_method(spec), seed=None, info=info, feature_names=names)
