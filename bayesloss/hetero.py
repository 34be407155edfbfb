r"""Heteroscedastic Gaussian fits: the mean and log σ(x) as two linear heads of one Pyro model.

.. math::

    y_i \mid x_i \sim \mathcal N\big(x_i^\top w + b,\ \sigma(x_i)^2\big),\qquad
    \log\sigma(x) = x^\top a + c,\qquad
    -\log p(y\mid X) = \sum_i \Big[\frac{(y_i - x_i^\top w - b)^2}{2\sigma(x_i)^2}
    + \log\sigma(x_i)\Big] + \frac n2\log 2\pi

The model is :func:`bayesloss.models.build_model`'s (sites ``weight``, ``bias``,
``scale_weight``, ``scale_bias``); this module only fits it. Under MAP the prior is on the mean
weights ``w``; the scale head ``(a, c)`` stays flat, as a learned constant σ does (d + 1
parameters that the data identify; a network's scale head, with as many weights as its mean,
carries the prior too, see :mod:`bayesloss.neural`).

The NLL is not jointly convex in (w, a) but is in each given the other; at its optimum ``w`` is
weighted least squares with weights ``1/σ̂(x_i)²``. The fit is an adapter of
:mod:`bayesloss.engine`: both heads work in the engine's :class:`~bayesloss.engine.Preconditioner`
(centred, unit-spread columns and target: an affine change of variables, exact, in the
parameterisation and not in a copy of X), start from the homoscedastic least-squares fit
(``a = 0``, ``c = log`` of its RMS residual), and run the engine's driver: L-BFGS on the
delta-guide ELBO finished by Newton steps on the model's own log joint (exact autograd Hessian;
2d + 2 parameters), or Adam.
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
    DTYPE, Objective, Preconditioner, Solver, elbo_loss, progress_bar, run_adam, run_lbfgs,
    site_newton,
)
from .models import build_model
from .results import Fit
from .spec import DesignStats, ModelSpec


@dataclass
class HeteroProblem:
    """The heteroscedastic model as a :class:`~bayesloss.engine.Problem`: both linear heads
    in the preconditioned coordinates of ``pre`` (``X``, ``y`` as the model takes them)."""

    spec: ModelSpec
    X: torch.Tensor
    y: torch.Tensor
    pre: Preconditioner
    bar: object = None

    stage_iter = None
    quadratic = False  # curvature 1/σ(x)² per row: Newton steps finish

    def model(self, smoothing: float = 0.0):
        return build_model(self.spec, self.X.shape[1], smoothing=smoothing,
                           **self.pre.model_kwargs(self.spec))

    def loss(self, guide, model):
        return elbo_loss(model, guide, self.X, self.y, self.bar)

    def newton(self, guide, objective):
        return site_newton(self.model(), guide, objective, self.X, self.y)

    def shift(self, guide):
        return lambda: None


def _start(X: np.ndarray, t: np.ndarray, spec: ModelSpec, pre: Preconditioner) -> dict:
    """The homoscedastic least-squares fit (LAPACK) with a constant σ: a = 0, c = log RMS, in
    the preconditioned coordinates (``t`` the standardised target). LAPACK's least squares
    overwrites a matrix of its own: the standardised columns, as well conditioned as the fit."""
    Z = (X - pre.x_mean) / pre.x_scale
    design = np.column_stack([Z, np.ones(len(t))]) if spec.fit_intercept else Z
    theta = np.linalg.lstsq(design, t, rcond=None)[0]
    resid = t - design @ theta
    d = Z.shape[1]
    init = {"weight": torch.as_tensor(theta[:d]),
            "scale_weight": torch.zeros(d, dtype=DTYPE),
            "scale_bias": torch.tensor(math.log(max(np.sqrt(resid @ resid / len(t)), 1e-12)),
                                       dtype=DTYPE)}
    if spec.fit_intercept:
        init["bias"] = torch.tensor(theta[d], dtype=DTYPE)
    return init


def fit_hetero(X: np.ndarray, y: np.ndarray, spec: ModelSpec, solver: Solver, *,
               stats: DesignStats, feature_names) -> Fit:
    """MLE / MAP of hetero_gaussian with linear heads; :func:`bayesloss.fit` calls it with
    validated inputs, their :class:`~bayesloss.spec.DesignStats` and a resolved
    :class:`~bayesloss.engine.Solver` (see the module docstring for the method)."""
    tol, max_iter, lbfgs = solver.tol, solver.max_iter, solver.optimizer == "lbfgs"
    pre = Preconditioner.scaling(X, y, spec, stats)
    Xp, t = pre.data(X, y, spec)
    bar = (progress_bar(None, solver.progress, f"L-BFGS {spec.label()}", delayed=True)
           if lbfgs else None)
    problem = HeteroProblem(spec, Xp, t, pre, bar)
    pyro.set_rng_seed(solver.seed)
    start = time.perf_counter()
    with pyro.get_param_store().scope(), pyro.validation_enabled(False):
        model = problem.model()
        guide = AutoDelta(model, init_loc_fn=init_to_value(
            values=_start(X, t.numpy(), spec, pre)))
        guide(Xp, t)
        params = list(guide.parameters())
        try:
            if lbfgs:
                n_iter, gnorm, converged, info = run_lbfgs(
                    problem, guide, params, tol, max_iter,
                    Objective(problem.loss(guide, model), params))
            else:
                n_iter, gnorm, converged, info = run_adam(problem, guide, params, solver)
        finally:
            if bar is not None:
                bar.close()
        with torch.no_grad():
            point = {k: v.detach().numpy() for k, v in guide.median().items()}
    info["seconds"] = time.perf_counter() - start
    coef, intercept, _ = pre.to_user(point["weight"], point.get("bias"), None)
    head = pre.head_to_user(point["scale_weight"], point["scale_bias"])
    method = solver.method(" + Newton, two linear heads" if lbfgs else ", two linear heads")
    result = Fit.build(spec, X, y, coef, intercept, None, scale_head=head,
                       converged=bool(converged), n_iter=int(n_iter), grad_norm=float(gnorm),
                       method=method, seed=solver.seed, info=info, feature_names=feature_names)
    if not converged:
        solver.warn_unconverged(spec.label(), n_iter, f"|grad|∞ = {gnorm:.2e}", stacklevel=3)
    return result
