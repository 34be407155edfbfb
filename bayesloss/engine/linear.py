"""The linear-mean adapter: a spec bound to preconditioned data as a
:class:`~bayesloss.engine.problem.Problem`, and one run of the driver from one start."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import pyro
import torch
from pyro.infer import Trace_ELBO
from pyro.infer.autoguide import AutoDelta
from pyro.infer.autoguide.initialization import init_to_value

from ..models import build_model
from ..results import Fit
from ..spec import ModelSpec
from .driver import (
    DTYPE, STAGE_ITER, Objective, Solver, as_objective, elbo_loss, progress_bar, run_adam,
    run_lbfgs,
)
from .kink import kink_finish
from .newton import (
    autograd_newton, class_shift, newton_polish, newton_start, polish_active_set, profile_scale, same_curvature,
)
from .precondition import Preconditioner

FINISH_FROM = 1e-1  # smoothing level from which each stage tries the exact finish (an LP)
FINISH_FROM_SMOOTH_PRIOR = 1e-3  # with a smooth prior the face shows only at smaller ε


@dataclass
class LinearProblem:
    """A linear-mean spec bound to preconditioned data (``X``, ``y`` as the model takes them):
    models per smoothing level, the guide's loss, and the hooks the driver calls (Newton
    finish, softmax shift, the kinked finish after each smoothing stage and its judgement)."""

    spec: ModelSpec
    X: torch.Tensor
    y: torch.Tensor
    n_outputs: int
    model_kwargs: dict
    pre: Preconditioner
    bar: object = None  # the run's progress bar: one tick per objective evaluation
    _certificate: Optional[dict] = field(default=None, init=False, repr=False, compare=False)

    stage_iter = STAGE_ITER

    @classmethod
    def of(cls, X: np.ndarray, y: np.ndarray, spec: ModelSpec, stats=None,
           sigma_unit: bool = True) -> "LinearProblem":
        """Precondition ``(X, y)`` for ``spec`` (see :meth:`Preconditioner.from_data`)."""
        pre = Preconditioner.from_data(X, y, spec, stats, sigma_unit=sigma_unit)
        Xp, yp = pre.data(X, y, spec)
        n_outputs = int(y.max()) + 1 if spec.family.multiclass else 1
        return cls(spec, Xp, yp, n_outputs, pre.model_kwargs(spec), pre)

    def model(self, smoothing: float = 0.0):
        return build_model(
            self.spec, self.X.shape[1], self.n_outputs, smoothing=smoothing, **self.model_kwargs
        )

    def eta(self, point: dict) -> torch.Tensor:
        """The linear predictor at a point of the guide (preconditioned units)."""
        return self.model_kwargs["mean_fn"](self.X, point["weight"], point.get("bias"))

    @functools.cached_property
    def design(self) -> torch.Tensor:
        """The centred design ``X − m`` (of the preconditioned variables: ``η' = design · A w'
        + b'``), for the solvers that read the design itself; copied on first use where the
        centring is in the intercept."""
        return self.X if self.pre.centred_data else self.pre.centre(self.X)

    @property
    def quadratic(self) -> bool:
        """Least squares in whitened variables: a Hessian of about the identity."""
        return same_curvature(self.spec) and self.pre.whiten is not None

    def loss(self, guide, model):
        return elbo_loss(model, guide, self.X, self.y, self.bar)

    def newton(self, guide, objective) -> Optional[float]:
        if self.spec.family.inner_link is not None:  # η not linear in w: the full Hessian
            return autograd_newton(as_objective(objective, guide.parameters()))
        return newton_polish(self, guide, objective)

    def shift(self, guide):
        return class_shift(self, guide)

    def after_stage(self, guide, eps: float, tol: float, budget: int):
        """Shift softmax weights to their optimum; from :data:`FINISH_FROM` on, try a Laplace
        likelihood's exact finish: its certificate ends the schedule."""
        self.shift(guide)()
        spec = self.spec
        smooth_prior = spec.is_map and not spec.prior_spec.kinked
        if spec.family.kinked and eps <= (FINISH_FROM_SMOOTH_PRIOR if smooth_prior
                                          else FINISH_FROM):
            self._certificate = kink_finish(self, guide, eps, tol, budget)
            return self._certificate["newton_steps"], self._certificate["certified"]
        return 0, False

    def judge(self, guide, exact, tol, max_iter, total, gnorm, eps):
        """A Laplace likelihood converged with its certificate; a Laplace prior on a smooth
        likelihood is finished by the active-set polish."""
        if self.spec.family.kinked:
            info = {"smoothing": eps, **(self._certificate or {"certified": False})}
            self._certificate = None
            if total >= max_iter and not info["certified"]:
                info["stop"] = "max_iter"
            return total, gnorm, info["certified"], info
        return polish_active_set(self, guide, exact, tol, max(max_iter - total, 0), total,
                                 {"smoothing": eps})


def initial_values(problem: LinearProblem, y_raw: np.ndarray) -> dict:
    """The start: zero weights, the family's intercept-only fit, a unit learned scale."""
    spec, pre, d, k = problem.spec, problem.pre, problem.X.shape[1], problem.n_outputs
    shape = (d, k) if spec.family.multiclass else (d,)
    values = {"weight": torch.zeros(shape, dtype=DTYPE)}
    if spec.fit_intercept:
        b0 = spec.family.initial_bias(y_raw)
        if spec.family.continuous:
            b0 = (b0 - pre.y_mean) / pre.y_scale
        values["bias"] = torch.as_tensor(b0, dtype=DTYPE)
        if spec.penalize_intercept:
            values["bias"] = torch.zeros_like(values["bias"])
    if spec.learns_scale:
        values["scale"] = torch.tensor(1.0, dtype=DTYPE)
    return values


@dataclass
class Run:
    """One optimisation from one starting point (parameters in the preconditioned units)."""

    point: dict
    objective: Optional[float]  # −log joint, when asked for (comparing starts)
    n_iter: int
    grad_norm: float
    converged: bool
    info: dict


def optimize(problem: LinearProblem, init: dict, solver: Solver, newton=False,
             need_objective=False) -> Run:
    """One run from ``init``: optionally a Newton start, the driver, then the exact scale.
    ``need_objective`` asks for the final −log joint (to pick the best of several starts)."""
    pyro.clear_param_store()  # two fits never share parameters
    model = problem.model()
    guide = AutoDelta(model, init_loc_fn=init_to_value(values=init))
    # creates the guide's parameters: their shapes need one row of data (all rows when
    # per-row σᵢ shape the likelihood)
    rows = slice(None) if problem.spec.row_scales else slice(1)
    guide(problem.X[rows], problem.y[rows])
    params = list(guide.parameters())
    lbfgs = solver.optimizer == "lbfgs"
    bar = (progress_bar(None, solver.progress, f"L-BFGS {problem.spec.label()}", delayed=True)
           if lbfgs else None)
    problem.bar = bar  # this run's (problem.loss reads it); the problem keeps its cached design
    exact = Objective(problem.loss(guide, model), params)
    with pyro.validation_enabled(False):  # inputs were validated by fit(); skip per-step checks
        newton = newton and newton_start(problem, guide, exact)  # (the scale follows it)
        if lbfgs:
            try:
                n_iter, gnorm, converged, info = run_lbfgs(
                    problem, guide, params, solver.tol, solver.max_iter - int(newton), exact)
            finally:
                problem.bar = None
                if bar is not None:
                    bar.close()
        else:
            n_iter, gnorm, converged, info = run_adam(problem, guide, params, solver)
        if newton:  # the Newton step counts as an iteration
            n_iter += 1
            info["newton_start"] = True
        class_shift(problem, guide)()
        profile_scale(problem, guide)
        objective = None
        with torch.no_grad():
            if need_objective:
                objective = float(Trace_ELBO().differentiable_loss(problem.model(), guide,
                                                                    problem.X, problem.y))
            point = {k: v.detach().clone() for k, v in guide.median().items()}
    return Run(point, objective, n_iter, gnorm, converged, info)


def check_separation(spec: ModelSpec, fit: Fit, X: np.ndarray, y: np.ndarray) -> None:
    """A logistic MLE that classifies every training row correctly means the classes are
    separable, and then the MLE does not exist (the likelihood rises towards 1 forever)."""
    if spec.is_map or not spec.family.classifier:
        return
    eta = spec.family.class_logits(torch.as_tensor(fit.linear_predictor(X))).numpy()
    labels = np.asarray(y, dtype=np.int64)
    own = eta[np.arange(len(labels)), labels]
    rival = np.where(np.eye(eta.shape[1], dtype=bool)[labels], -np.inf, eta).max(axis=1)
    margin = np.min(own - rival)
    if margin > 0:
        raise ValueError(
            f"the {spec.likelihood} MLE does not exist: the training data are perfectly "
            "separable, so the likelihood increases without bound as the weights grow. "
            "Use estimator='map' (a prior keeps the weights finite)."
        )

