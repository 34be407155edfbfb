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
weighted least squares with weights ``1/σ̂(x_i)²``. The fit works on standardised columns and
target (an affine change of variables, exact), starts from the homoscedastic least-squares fit
(``a = 0``, ``c = log`` of its RMS residual), runs L-BFGS on the delta-guide ELBO (or Adam), and
finishes with Newton steps on the model's own log joint (exact autograd Hessian; 2d + 2
parameters), each kept only if it lowers the gradient.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import pyro
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO
from pyro.infer.autoguide import AutoDelta
from pyro.infer.autoguide.initialization import init_to_value

from .models import build_model
from .results import Fit
from .spec import ModelSpec

DTYPE = torch.float64
NEWTON_STEPS = 5  # after L-BFGS the Newton steps converge quadratically: 1-2 are used


@dataclass(frozen=True)
class _Standardised:
    """``z = (x − m)/s``, ``t = (y − m_y)/s_y`` and the maps of both heads back to the user's
    scale (centring only with a free intercept, as :class:`~bayesloss.inference.Preconditioner`)."""

    x_mean: np.ndarray
    x_scale: np.ndarray
    y_mean: float
    y_scale: float

    @classmethod
    def of(cls, X: np.ndarray, y: np.ndarray, spec: ModelSpec) -> "_Standardised":
        centre = spec.fit_intercept and not spec.penalize_intercept
        x_mean = X.mean(axis=0) if centre else np.zeros(X.shape[1])
        x_scale = np.sqrt(((X - x_mean) ** 2).mean(axis=0))
        y_mean = float(y.mean()) if centre else 0.0
        y_scale = float(np.sqrt(((y - y_mean) ** 2).mean())) or 1.0
        return cls(x_mean, np.where(x_scale > 0, x_scale, 1.0), y_mean, y_scale)

    def to_user(self, point: dict):
        """``(coef, intercept, (a, c))`` from the standardised sites."""
        coef = self.y_scale * point["weight"] / self.x_scale
        intercept = None
        if "bias" in point:
            intercept = self.y_mean + self.y_scale * float(point["bias"]) - self.x_mean @ coef
        a = point["scale_weight"] / self.x_scale
        c = float(point["scale_bias"]) + math.log(self.y_scale) - self.x_mean @ a
        return coef, intercept, (a, c)


@dataclass
class _HeteroProblem:
    """What the shared optimiser loops of :mod:`bayesloss.inference` read."""

    spec: ModelSpec
    X: torch.Tensor
    y: torch.Tensor
    std: _Standardised

    def model(self):
        tau = self.spec.prior_scale * self.std.x_scale / self.std.y_scale
        return build_model(self.spec, self.X.shape[1], prior_scale=torch.as_tensor(tau),
                           intercept_prior_scale=self.spec.prior_scale / self.std.y_scale)


def _start(problem: _HeteroProblem) -> dict:
    """The homoscedastic least-squares fit (LAPACK) with a constant σ: a = 0, c = log RMS."""
    Z, t = problem.X.numpy(), problem.y.numpy()
    design = np.column_stack([Z, np.ones(len(t))]) if problem.spec.fit_intercept else Z
    theta = np.linalg.lstsq(design, t, rcond=None)[0]
    resid = t - design @ theta
    d = Z.shape[1]
    init = {"weight": torch.as_tensor(theta[:d]),
            "scale_weight": torch.zeros(d, dtype=DTYPE),
            "scale_bias": torch.tensor(math.log(max(np.sqrt(resid @ resid / len(t)), 1e-12)),
                                       dtype=DTYPE)}
    if problem.spec.fit_intercept:
        init["bias"] = torch.tensor(theta[d], dtype=DTYPE)
    return init


def _newton_finish(problem: _HeteroProblem, point: dict, max_steps: int):
    """Newton steps on ``F/n`` (the model's −log joint per row) over all sites at once.

    Returns ``(point, |grad|∞, steps)``; a step is kept only if it lowers the gradient's
    ∞-norm (near the optimum Newton converges quadratically; elsewhere it is not trusted).
    """
    names = list(point)
    sizes = [point[k].numel() for k in names]
    model, n = problem.model(), problem.X.shape[0]

    def objective(vec):
        parts = torch.split(vec, sizes)
        values = {k: p.reshape(point[k].shape) for k, p in zip(names, parts)}
        trace = poutine.trace(poutine.condition(model, data=values)).get_trace(problem.X,
                                                                                problem.y)
        return -trace.log_prob_sum() / n

    vec = torch.cat([point[k].reshape(-1) for k in names]).detach()

    def grad(v):
        return torch.autograd.functional.jacobian(objective, v)

    g = grad(vec)
    steps = 0
    for _ in range(max_steps):
        H = torch.autograd.functional.hessian(objective, vec)
        try:
            step = torch.linalg.solve(H, g)
        except RuntimeError:  # singular Hessian: leave the L-BFGS answer
            break
        new = vec - step
        g_new = grad(new)
        if not g_new.abs().max() < g.abs().max():
            break
        vec, g, steps = new, g_new, steps + 1
    parts = torch.split(vec, sizes)
    return ({k: p.reshape(point[k].shape).clone() for k, p in zip(names, parts)},
            float(g.abs().max()), steps)


def fit_hetero(X: np.ndarray, y: np.ndarray, spec: ModelSpec, solver, *,
               feature_names) -> Fit:
    """MLE / MAP of hetero_gaussian with linear heads; :func:`bayesloss.fit` calls it with
    validated inputs and a resolved :class:`~bayesloss.inference.Solver` (see the module
    docstring for the method)."""
    from .inference import _lbfgs_stage, _run_adam, _stop

    tol, max_iter, lbfgs = solver.tol, solver.max_iter, solver.optimizer == "lbfgs"

    std = _Standardised.of(X, y, spec)
    Z = torch.as_tensor((X - std.x_mean) / std.x_scale)
    t = torch.as_tensor((y - std.y_mean) / std.y_scale)
    problem = _HeteroProblem(spec, Z, t, std)
    pyro.set_rng_seed(solver.seed)
    start = time.perf_counter()
    n = Z.shape[0]
    with pyro.get_param_store().scope(), pyro.validation_enabled(False):
        guide = AutoDelta(problem.model(), init_loc_fn=init_to_value(values=_start(problem)))
        guide(Z, t)
        params = list(guide.parameters())
        if lbfgs:
            model = problem.model()
            n_iter, gnorm = _lbfgs_stage(
                lambda: Trace_ELBO().differentiable_loss(model, guide, Z, t) / n, params, tol,
                max_iter)
            info = {}
        else:
            n_iter, gnorm, converged, info = _run_adam(problem, guide, params, solver)
        with torch.no_grad():
            point = {k: v.detach().clone() for k, v in guide.median().items()}
    if lbfgs:
        point, gnorm, newton = _newton_finish(problem, point, NEWTON_STEPS)
        converged, stop = _stop(n_iter, gnorm, tol, max_iter)
        info.update(stop, newton_steps=newton)
        n_iter += newton
    info["seconds"] = time.perf_counter() - start
    coef, intercept, head = std.to_user({k: v.numpy() for k, v in point.items()})
    method = solver.method(" + Newton, two linear heads" if lbfgs else ", two linear heads")
    result = Fit.build(spec, X, y, coef, intercept, None, scale_head=head,
                       converged=bool(converged), n_iter=int(n_iter), grad_norm=float(gnorm),
                       method=method, seed=solver.seed, info=info, feature_names=feature_names)
    if not converged:
        solver.warn_unconverged(spec.label(), n_iter, f"|grad|∞ = {gnorm:.2e}", stacklevel=3)
    return result
