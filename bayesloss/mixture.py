r"""Mixture fits: K regression lines, each with its own σₖ, and K mixing weights, by MLE or MAP.

.. math::

    -\log p(y\mid X) = -\sum_i \log \sum_k \pi_k\,
    \mathcal N\big(y_i;\ x_i^\top w_k + b_k,\ \sigma_k^2\big)

The model is :func:`bayesloss.models.build_model`'s (sites ``weight`` (d, K), ``bias`` (K,),
``scale`` (K,), ``mixing`` (K − 1,); the family in :mod:`bayesloss.families.mixture`); this
module only fits it. The likelihood is multimodal (and unbounded where a σₖ shrinks onto one
row), so the fit starts ``MIXTURE_STARTS`` times and keeps the start with the lowest −log
joint: each start clusters residuals by k-means (k-means++ seeding under ``seed + s``) and fits
each cluster by least squares (its line, σₖ and share πₖ). The first start's residuals are
those of the least-squares line; each other start's, those of the line through p random rows
(p coefficients): residuals from one base line split the same way under any seeding, and
without another base every start found the same optimum, a poor one, on two lines with
intercepts ±2 fitted without an intercept.
From each start the engine's driver runs L-BFGS on the delta-guide ELBO, finished by Newton
steps on the model's log joint (exact autograd Hessian over every site, K(d + 3) − 1
parameters), in the engine's :class:`~bayesloss.engine.Preconditioner` (centred, unit-spread
columns and target). The components are then reported in the family's order
(:func:`~bayesloss.families.mixture.component_order`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import pyro
import torch
from pyro.infer.autoguide import AutoDelta
from pyro.infer.autoguide.initialization import init_to_value

from .engine import (
    DTYPE, Objective, Preconditioner, Solver, elbo_loss, run_adam, run_lbfgs, site_newton,
)
from .families.mixture import component_order, relabel
from .models import build_model
from .results import Fit
from .spec import DesignStats, ModelSpec

MIXTURE_STARTS = 5  # seeded starts per fit; the best −log joint is kept
KMEANS_ITER = 50  # Lloyd iterations of the residuals' 1-d k-means
MIN_SHARE = 1e-3  # floor of a start's σₖ (standardised units) and πₖ: no empty component


@dataclass
class MixtureProblem:
    """The mixture model as a :class:`~bayesloss.engine.Problem` in the preconditioned
    coordinates of ``pre`` (``X``, ``y`` as the model takes them)."""

    spec: ModelSpec
    X: torch.Tensor
    y: torch.Tensor
    pre: Preconditioner
    bar: object = None

    stage_iter = None
    quadratic = False  # curvature varies with the responsibilities: Newton steps finish

    def model(self, smoothing: float = 0.0):
        return build_model(self.spec, self.X.shape[1], self.spec.components,
                           smoothing=smoothing, **self.pre.model_kwargs(self.spec))

    def loss(self, guide, model):
        return elbo_loss(model, guide, self.X, self.y, self.bar)

    def newton(self, guide, objective):
        return site_newton(self.model(), guide, objective, self.X, self.y)

    def shift(self, guide):
        return lambda: None


def _kmeans_1d(r: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Labels of a 1-d k-means of ``r`` from a k-means++ seeding drawn from ``rng``."""
    centres = [r[rng.integers(r.size)]]
    for _ in range(1, k):
        d2 = np.min((r[:, None] - np.asarray(centres)) ** 2, axis=1)
        centres.append(r[rng.choice(r.size, p=d2 / d2.sum())] if d2.sum() > 0
                       else r[rng.integers(r.size)])
    centres = np.asarray(centres)
    for _ in range(KMEANS_ITER):
        labels = np.argmin(np.abs(r[:, None] - centres), axis=1)
        new = np.array([r[labels == j].mean() if np.any(labels == j) else centres[j]
                        for j in range(k)])
        if np.array_equal(new, centres):
            break
        centres = new
    return labels


def starts(Z: np.ndarray, t: np.ndarray, k: int, seed: int, n_starts: int = MIXTURE_STARTS
           ) -> list[dict]:
    """Starting points (preconditioned coordinates: ``Z`` the standardised design with its
    column of ones last when there is an intercept, ``t`` the standardised target): for each
    seed ``seed + s``, k-means clusters of the residuals from a base line (least squares for
    s = 0, else the line through p rows drawn under the seed), each cluster fitted by least
    squares. Returns ``[{"theta" (p, K), "scale" (K,), "share" (K,)}, …]``."""
    theta0 = np.linalg.lstsq(Z, t, rcond=None)[0]
    out = []
    for s in range(n_starts):
        rng = np.random.default_rng(seed + s)
        base = theta0
        if s > 0:
            rows = rng.choice(len(t), size=Z.shape[1], replace=False)
            base = np.linalg.lstsq(Z[rows], t[rows], rcond=None)[0]
        labels = _kmeans_1d(t - Z @ base, k, rng)
        theta = np.empty((Z.shape[1], k))
        scale, share = np.empty(k), np.empty(k)
        for j in range(k):
            rows = labels == j
            theta[:, j] = (np.linalg.lstsq(Z[rows], t[rows], rcond=None)[0]
                           if rows.sum() >= Z.shape[1] else theta0)
            r = t[rows] - Z[rows] @ theta[:, j]
            scale[j] = max(math.sqrt(r @ r / max(rows.sum(), 1)), MIN_SHARE)
            share[j] = max(rows.mean(), MIN_SHARE)
        out.append({"theta": theta, "scale": scale, "share": share / share.sum()})
    return out


def _guide_values(start: dict, spec: ModelSpec, d: int) -> dict:
    theta, share = start["theta"], start["share"]
    values = {"weight": torch.as_tensor(theta[:d]),
              "scale": torch.as_tensor(start["scale"]),
              "mixing": torch.as_tensor(np.log(share[1:]) - math.log(share[0]))}
    if spec.fit_intercept:
        values["bias"] = torch.as_tensor(theta[d])
    return values


def _run(problem: MixtureProblem, init: dict, solver: Solver) -> tuple:
    """One optimisation from ``init``: ``(−log joint per row, point, n_iter, |grad|∞,
    converged, info)``."""
    with pyro.get_param_store().scope():
        model = problem.model()
        guide = AutoDelta(model, init_loc_fn=init_to_value(values=init))
        guide(problem.X, problem.y)
        params = list(guide.parameters())
        exact = Objective(problem.loss(guide, model), params)
        if solver.optimizer == "lbfgs":
            n_iter, gnorm, converged, info = run_lbfgs(problem, guide, params, solver.tol,
                                                       solver.max_iter, exact)
        else:
            n_iter, gnorm, converged, info = run_adam(problem, guide, params, solver)
        value = float(exact())  # (with its gradient: the objective caches both)
        with torch.no_grad():
            point = {k: v.detach().numpy().copy() for k, v in guide.median().items()}
    return value, point, n_iter, gnorm, converged, info


def fit_mixture(X: np.ndarray, y: np.ndarray, spec: ModelSpec, solver: Solver, *,
                stats: DesignStats, feature_names) -> Fit:
    """MLE / MAP of a mixture of ``spec.components`` linear regressions; :func:`bayesloss.fit`
    calls it with validated inputs, their :class:`~bayesloss.spec.DesignStats` and a resolved
    :class:`~bayesloss.engine.Solver` (see the module docstring for the method). ``info``
    lists each start's ``objective`` (−log joint per row) and ``converged``; the fit is the
    best converged start (the best start where none converged)."""
    k = spec.components
    if X.shape[0] < 2 * k:
        raise ValueError(f"{X.shape[0]} rows cannot identify {k} components (their lines, "
                         "σₖ and weights); use fewer components or more data")
    pre = Preconditioner.scaling(X, y, spec, stats)
    Xp, t = pre.data(X, y, spec)
    Z = (X - pre.x_mean) / pre.x_scale
    if spec.fit_intercept:
        Z = np.column_stack([Z, np.ones(X.shape[0])])
    problem = MixtureProblem(spec, Xp, t, pre)
    pyro.set_rng_seed(solver.seed)
    clock = time.perf_counter()
    runs = []
    with pyro.validation_enabled(False):
        for start in starts(Z, t.numpy(), k, solver.seed):
            runs.append(_run(problem, _guide_values(start, spec, X.shape[1]), solver))
    best = min(runs, key=lambda r: (not r[4], r[0]))
    _, point, n_iter, gnorm, converged, info = best
    info = dict(info, seconds=time.perf_counter() - clock,
                starts=[{"objective": r[0], "converged": bool(r[4])} for r in runs])
    coef, intercept, _ = pre.to_user(point["weight"], point.get("bias"), None)
    scale = point["scale"] * pre.y_scale
    order = component_order(stats.mean, coef, 0.0 if intercept is None else intercept)
    coef, intercept, scale, mixing = relabel(order, coef, intercept, scale, point["mixing"])
    method = solver.method(f", {len(runs)} k-means starts, best kept"
                           + (" + Newton" if solver.optimizer == "lbfgs" else ""))
    result = Fit.build(spec, X, y, coef, intercept, scale, mixing=mixing,
                       converged=bool(converged), n_iter=int(sum(r[2] for r in runs)),
                       grad_norm=float(gnorm), method=method, seed=solver.seed, info=info,
                       feature_names=feature_names)
    if not converged:
        solver.warn_unconverged(spec.label(), n_iter, f"|grad|∞ = {gnorm:.2e}", stacklevel=3)
    return result
