r"""Point inference (MLE / MAP) with Pyro's ``AutoDelta`` guide.

The delta-guide ELBO is exactly the negative log joint density at the guide's point (a Delta
has log-density 0), so minimising ``Trace_ELBO().differentiable_loss(model, guide)`` finds the
mode of ``p(y, θ)`` in the *constrained* space: the MLE with the prior masked off, the MAP with
it on.

Two optimisers:

* ``"lbfgs"`` (default): full-batch ``torch.optim.LBFGS`` with a strong-Wolfe line search on that
  loss (Pyro's ``SVI`` cannot drive L-BFGS: ``PyroOptim`` passes no closure). Stops when the
  ∞-norm of the gradient of the per-row objective falls below ``tol`` (or, with it within
  100 × ``tol``, when the line search stalls because float64 no longer resolves a decrease).
* ``"adam"``: ``pyro.infer.SVI`` with ``pyro.optim.ClippedAdam`` and a geometrically decaying
  learning rate, full batch or minibatches (``batch_size``). Stops when the full-data gradient
  ∞-norm falls below ``tol`` (checked every ``check_every`` steps), or at ``num_steps``.

Kinked objectives (a Laplace likelihood, a Laplace prior) are smoothed for L-BFGS,
``|r| ≈ sqrt(r² + ε²) − ε``, and solved for ε = 1e-1 … 1e-8 in turn, each stage warm-started;
they are judged on the exact objective, whose relative change over the last stage must fall
below 1e-8. A Laplace *prior* on a smooth likelihood is then finished exactly: weights left at
~0 become exact zeros and the rest are refined on the exact objective, kept only if the
optimality (KKT) conditions verify. Adam runs kinked objectives through its whole schedule.

Preconditioning: the fit works on standardised columns (and a standardised target for the
real-valued families), with the prior and the fixed noise scale mapped through the same linear
change of variables, so the optimum is the user's MLE / MAP exactly; MLE fits also whiten the
columns (see :class:`Preconditioner`). Results are mapped back to the user's scale.

Non-convex MAP problems (Student-t / Cauchy priors) are started three ways (zero, the MLE, the
normal-prior MAP) and the best optimum is kept.
"""

from __future__ import annotations

import functools
import math
import time
import warnings
from dataclasses import dataclass, replace
from typing import Optional

import numpy as np
import pyro
import torch
from pyro.infer import SVI, Trace_ELBO
from pyro.infer.autoguide import AutoDelta
from pyro.infer.autoguide.initialization import init_to_value
from pyro.optim import ClippedAdam

from .models import build_model
from .results import Fit
from .spec import ConvergenceWarning, ModelSpec, check_data, feature_names, make_spec

OPTIMIZERS = ("lbfgs", "adam")
DTYPE = torch.float64
SMOOTHING_SCHEDULE = tuple(10.0**-k for k in range(1, 9))
STAGE_ITER = 200  # per smoothing stage: later stages refine what earlier ones leave
STALL_FACTOR = 100.0
KINKED_TOL = 1e-8  # relative change of the exact objective over the last smoothing stage
ZERO_THRESHOLD = 1e-6  # |w| (standardised units) the continuation leaves for an exact zero
WHITEN_MIN_PIVOT = 1e-7  # whiten only designs with cond(Gram) below ~1e14
PROGRESS_DELAY = 1.0  # seconds before an L-BFGS progress bar appears: quick fits stay quiet


class DivergenceError(RuntimeError):
    """The objective became NaN or infinite during a fit."""


@dataclass(frozen=True)
class Preconditioner:
    """The affine change of variables ``x' = (x − m)/s · U``, ``y' = (y − m_y)/s_y``.

    Weights map as ``w = U w'·s_y/s``; the intercept absorbs the offsets. When the intercept is
    penalised the offsets stay at zero, so its prior maps by scaling alone. For MAP, ``s`` also
    carries the prior's curvature (Jacobi scaling): a tight prior on one column would otherwise
    make that direction far stiffer than the others, and ``U`` is the identity, which keeps
    each weight's prior its own. Where no separable prior needs keeping (MLE) or the prior is
    normal, whose image under any linear map is again normal (a ``MultivariateNormal``),
    ``U = L⁻ᵀ`` with ``L Lᵀ`` the standardised Gram matrix / n plus the prior's curvature:
    the Hessian becomes about the identity, and ill-conditioned designs (Longley, collinear
    real data) are as easy as any.
    """

    x_mean: np.ndarray
    x_scale: np.ndarray
    y_mean: float
    y_scale: float
    whiten: Optional[np.ndarray] = None

    @classmethod
    def from_data(cls, X: np.ndarray, y: np.ndarray, spec: ModelSpec) -> "Preconditioner":
        centre = spec.fit_intercept and not spec.penalize_intercept
        x_mean = X.mean(axis=0) if centre else np.zeros(X.shape[1])
        x_scale = X.std(axis=0) if centre else np.sqrt((X**2).mean(axis=0))
        x_scale = np.where(x_scale > 0, x_scale, 1.0)
        y_mean, y_scale = 0.0, 1.0
        if spec.family.continuous:
            y_mean = float(y.mean()) if centre else 0.0
            y_scale = float(np.sqrt(((y - y_mean) ** 2).mean())) or 1.0
        # per-row curvature of the data term and of the prior, in standardised units
        data_curv = (y_scale / spec.noise_scale) ** 2 if spec.noise_scale else 1.0
        prior_curv = np.zeros(X.shape[1])
        if spec.is_map:
            tau = spec.prior_scale * x_scale / y_scale
            prior_curv = spec.prior_spec.curvature(tau, spec.effective_prior_df) / X.shape[0]
        whitenable = not spec.is_map or (
            spec.prior == "normal" and not spec.family.multiclass and not spec.penalize_intercept
        )
        if whitenable:
            # the standardised Gram matrix from one pass over X; it need not be exact (any
            # invertible U gives the same model), only close enough to condition it
            gram = (X.T @ X / X.shape[0] - np.outer(x_mean, x_mean)) / np.outer(x_scale, x_scale)
            hessian = gram + np.diag(prior_curv / data_curv)
            try:
                L = np.linalg.cholesky(hessian)
            except np.linalg.LinAlgError:  # singular design (warned about): scaling only
                L = None
            if L is not None and np.diag(L).min() >= WHITEN_MIN_PIVOT * np.diag(L).max():
                U = np.linalg.solve(L, np.eye(X.shape[1])).T
                return cls(x_mean, x_scale, y_mean, y_scale, U)
        # Jacobi: scale each column by the square root of its Hessian diagonal
        x_scale = x_scale * np.sqrt(1.0 + prior_curv / data_curv)
        return cls(x_mean, x_scale, y_mean, y_scale)

    def data(self, X: np.ndarray, y: np.ndarray, spec: ModelSpec):
        if self.whiten is None:
            Xp = (X - self.x_mean) / self.x_scale
        else:  # ((X − m)/s) U in one product
            A = self.whiten / self.x_scale[:, None]
            Xp = X @ A - self.x_mean @ A
        Xp = torch.as_tensor(Xp, dtype=DTYPE)
        yp = (y - self.y_mean) / self.y_scale if spec.family.continuous else y
        return Xp, torch.as_tensor(yp, dtype=DTYPE)

    def model_kwargs(self, spec: ModelSpec) -> dict:
        """The prior (per-column scales, or a precision matrix when whitened) and the fixed
        noise scale in the preconditioned variables."""
        tau = spec.prior_scale * self.x_scale / self.y_scale
        kw = {
            "prior_scale": torch.as_tensor(tau),
            "intercept_prior_scale": spec.prior_scale / self.y_scale,
        }
        if self.whiten is not None and spec.is_map:  # w_std = U w' with w_std ~ N(0, diag τ²)
            kw["prior_precision"] = torch.as_tensor(self.whiten.T @ (self.whiten / tau[:, None]**2))
        if spec.noise_scale is not None:
            kw["noise_scale"] = spec.noise_scale / self.y_scale
        return kw

    def to_user(self, weight: np.ndarray, bias, scale):
        if self.whiten is not None:
            weight = self.whiten @ weight
        s = self.x_scale[:, None] if weight.ndim == 2 else self.x_scale
        coef = weight * self.y_scale / s
        intercept = None
        if bias is not None:
            intercept = self.y_mean + self.y_scale * np.asarray(bias) - self.x_mean @ coef
        return coef, intercept, None if scale is None else float(scale) * self.y_scale


@dataclass
class _Problem:
    """A spec bound to preconditioned data: models per smoothing level, guide, loss."""

    spec: ModelSpec
    X: torch.Tensor
    y: torch.Tensor
    n_outputs: int
    model_kwargs: dict

    def model(self, smoothing: float = 0.0):
        return build_model(
            self.spec, self.X.shape[1], self.n_outputs, smoothing=smoothing, **self.model_kwargs
        )


def _initial_values(problem: _Problem, y_raw: np.ndarray, pre: Preconditioner) -> dict:
    spec, d, k = problem.spec, problem.X.shape[1], problem.n_outputs
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


def _raise_if_bad(value: torch.Tensor, where: str):
    if not torch.isfinite(value):
        raise DivergenceError(
            f"the objective became {value.item()} during {where}; the model may be ill-posed "
            "for these data (e.g. counts far too large for a log link, or a prior scale too "
            "small or large), or the data need rescaling"
        )


def _flat_grad(params) -> torch.Tensor:
    return torch.cat([p.grad.reshape(-1) for p in params if p.grad is not None])


def _lbfgs_stage(
    loss_fn, params, tol: float, max_iter: int, ftol: float = 0.0
) -> tuple[int, float]:
    """Minimise ``loss_fn`` with L-BFGS + strong Wolfe; return (iterations, final |grad|∞).

    Stops when |grad|∞ ≤ ``tol``, or when an iteration changes the loss by less than ``ftol``.
    """
    opt = torch.optim.LBFGS(
        params,
        lr=1.0,
        max_iter=max_iter,
        max_eval=int(max_iter * 1.5),
        tolerance_grad=tol,
        tolerance_change=ftol,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def closure():
        opt.zero_grad()
        loss = loss_fn()
        _raise_if_bad(loss.detach(), "L-BFGS")
        loss.backward()
        return loss

    opt.step(closure)
    n_iter = opt.state[opt._params[0]].get("n_iter", 0)
    closure()
    return int(n_iter), float(_flat_grad(params).abs().max())


def _run_lbfgs(problem, guide, params, tol, max_iter, bar=None):
    elbo = Trace_ELBO()
    n = problem.X.shape[0]
    args = (problem.X, problem.y)

    def loss_of(model):
        def loss():
            if bar is not None:  # progress: one tick per objective evaluation
                bar.update(1)
            return elbo.differentiable_loss(model, guide, *args) / n
        return loss

    exact = loss_of(problem.model())
    if not problem.spec.kinked:
        n_iter, gnorm = _lbfgs_stage(exact, params, tol, max_iter)
        return (n_iter, gnorm) + _stop(n_iter, gnorm, tol, max_iter)
    total, previous, rel_change = 0, None, math.inf
    shift = _class_shift(problem, guide)
    for eps in SMOOTHING_SCHEDULE:
        # A stage need not be solved more finely than its smoothing perturbs the optimum; near
        # the kinks the per-row loss stops resolving further progress at ~1e-13.
        n_iter, gnorm = _lbfgs_stage(
            loss_of(problem.model(eps)), params, max(tol, 1e-2 * eps), STAGE_ITER, ftol=1e-13
        )
        total += n_iter
        shift()
        with torch.no_grad():
            current = float(exact())
        if previous is not None:
            rel_change = abs(previous - current) / max(abs(current), 1.0)
        previous = current
    info = {"smoothing": SMOOTHING_SCHEDULE[-1], "objective_rel_change": rel_change}
    if problem.spec.family.kinked:  # kinks in the residuals: judged on the objective
        return total, gnorm, rel_change <= KINKED_TOL, info
    return _polish_active_set(problem, guide, exact, tol, max_iter, total, info)


def _class_shift(problem, guide):
    """For softmax weights, a shift common to the K classes of one feature leaves the
    likelihood unchanged, so only the prior pins it down: through a kink (laplace), or with
    almost no curvature when the prior is wide, poorly for a gradient method. Return a step
    that sets each feature's shift to its exact optimum, the median (laplace) or the mean
    (normal) of its K weights; it can only lower the objective."""
    spec = problem.spec
    named = dict(guide.named_parameters())
    if not (spec.family.multiclass and spec.is_map and spec.prior in ("laplace", "normal")
            and "weight_unconstrained" in named):  # (a network mean has no such weight)
        return lambda: None
    weight = named["weight_unconstrained"]

    def shift():
        with torch.no_grad():
            if spec.prior == "laplace":
                weight.sub_(weight.median(dim=1, keepdim=True).values)
            else:
                weight.sub_(weight.mean(dim=1, keepdim=True))

    return shift


def _stop(n_iter, gnorm, tol, max_iter):
    """(converged, info) for a smooth L-BFGS run. Near the optimum float64 may stop resolving
    the objective just above ``tol`` and the line search stalls: that counts as converged only
    with the gradient within ``STALL_FACTOR`` of ``tol``."""
    if gnorm <= tol:
        stop = "gradient"
    elif n_iter >= max_iter:
        stop = "max_iter"
    else:  # the line search stalled before max_iter
        stop = "precision" if gnorm <= STALL_FACTOR * tol else "stalled"
    return stop in ("gradient", "precision"), {"stop": stop}


def _polish_active_set(problem, guide, exact, tol, max_iter, n_iter, info):
    """Finish a kinked-prior (lasso-type) MAP exactly: weights the continuation left at ~0 are
    set to exactly 0, the others are refined on the exact objective, which is smooth there, and
    the result is kept only if the zero weights satisfy the optimality condition
    |∂NLL/∂w_j| ≤ 1/(n·b_j) and the objective did not get worse."""
    named = dict(guide.named_parameters())
    kinked_sites = ["weight"] + (["bias"] if problem.spec.penalize_intercept else [])
    scales = {"weight": problem.model_kwargs["prior_scale"],
              "bias": problem.model_kwargs["intercept_prior_scale"]}
    params = list(named.values())
    saved = [p.detach().clone() for p in params]
    with torch.no_grad():
        before = float(exact())
    masks, hooks = {}, []
    for site in kinked_sites:
        p = named[f"{site}_unconstrained"]
        with torch.no_grad():
            masks[site] = (p.abs() > ZERO_THRESHOLD).to(p.dtype)
            p.mul_(masks[site])
        hooks.append(p.register_hook(lambda g, m=masks[site]: g * m))
    try:
        polish_iter, gnorm = _lbfgs_stage(exact, params, tol, max_iter)
    finally:
        for h in hooks:
            h.remove()
    # optimality at the zeros: the data gradient must not exceed the L1 slope 1/(n·b)
    for p in params:
        p.grad = None
    exact().backward()
    n = problem.X.shape[0]
    kkt = -math.inf
    for site in kinked_sites:
        grad = named[f"{site}_unconstrained"].grad
        scale = torch.as_tensor(scales[site])
        scale = scale[:, None] if grad.dim() == 2 and scale.dim() == 1 else scale
        slack = (grad.abs() - 1.0 / (n * scale)) * (1 - masks[site])
        kkt = max(kkt, float(slack.max()))
    with torch.no_grad():
        after = float(exact())
    converged, stop = _stop(polish_iter, gnorm, tol, max_iter)
    ok = kkt <= STALL_FACTOR * tol and after <= before + 1e-15 * max(1.0, abs(before))
    info.update(stop, polish="accepted" if ok else "rejected", kkt_violation=kkt,
                zeros=int(sum(float((1 - m).sum()) for m in masks.values())))
    if not ok:  # keep the continuation's answer, judged as for a kinked likelihood
        with torch.no_grad():
            for p, v in zip(params, saved):
                p.copy_(v)
        return n_iter + polish_iter, gnorm, info["objective_rel_change"] <= KINKED_TOL, info
    return n_iter + polish_iter, gnorm, converged, info


def _full_grad_norm(elbo, model, guide, params, X, y) -> float:
    for p in params:
        p.grad = None
    loss = elbo.differentiable_loss(model, guide, X, y) / X.shape[0]
    _raise_if_bad(loss.detach(), "Adam")
    loss.backward()
    g = float(_flat_grad(params).abs().max())
    for p in params:
        p.grad = None
    return g


def _run_adam(problem, guide, params, tol, num_steps, lr, batch_size, check_every, progress):
    """SVI with ClippedAdam, the learning rate decaying geometrically over ``num_steps``.

    Full-batch smooth objectives stop once the full-data gradient ∞-norm is ≤ ``tol``. At a
    kink no gradient gets small, and minibatch gradients are noisy: either way the iterate
    hovers within about one learning rate of the optimum, so those fits run the whole schedule
    (down to 1e-4 of ``lr``). Kinked ones count as converged when the exact objective changed
    by ≤ ``tol`` (relative) over the last check window, minibatch ones when the full-data
    gradient ∞-norm ends ≤ ``tol``.
    """
    spec = problem.spec
    model = problem.model()
    # Kinks and minibatch noise both keep the iterate within about one learning rate of the
    # optimum: those runs take their whole schedule, decaying further.
    whole_schedule = spec.kinked or batch_size is not None
    final_lr_ratio = 1e-4 if whole_schedule else 1e-3
    optim = ClippedAdam({"lr": lr, "lrd": final_lr_ratio ** (1.0 / num_steps), "clip_norm": 1e6})
    svi = SVI(model, guide, optim, Trace_ELBO())
    elbo = Trace_ELBO()
    X, y = problem.X, problem.y
    bar = _progress(num_steps, progress, f"adam {spec.label()}")
    shift = _class_shift(problem, guide)
    exact_prev, rel_change, gnorm, step = None, math.inf, math.inf, 0
    for step in range(1, num_steps + 1):
        loss = svi.step(X, y, batch_size)
        if not math.isfinite(loss):
            _raise_if_bad(torch.tensor(loss), "Adam (SVI)")
        if bar is not None:
            bar.update(1)
        if step % check_every == 0:
            shift()
        if spec.kinked:
            if step > num_steps - check_every:  # the last window, to measure its change
                with torch.no_grad():
                    exact = float(elbo.differentiable_loss(model, guide, X, y)) / X.shape[0]
                exact_prev = exact if exact_prev is None else exact_prev
                rel_change = abs(exact_prev - exact) / max(abs(exact), 1.0)
        elif not whole_schedule and (step % check_every == 0 or step == num_steps):
            gnorm = _full_grad_norm(elbo, model, guide, params, X, y)
            if gnorm <= tol:
                break
    if bar is not None:
        bar.close()
    if whole_schedule:
        gnorm = _full_grad_norm(elbo, model, guide, params, X, y)
    converged = rel_change <= tol if spec.kinked else gnorm <= tol
    info = {"lr": lr, "final_lr_ratio": final_lr_ratio}
    if spec.kinked:
        info["objective_rel_change"] = rel_change
    return step, gnorm, converged, info


def _progress(total, enabled, desc, delay=0.0):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=False, delay=delay)


@dataclass
class _Run:
    """One optimisation from one starting point (parameters in the preconditioned units)."""

    point: dict
    objective: float
    n_iter: int
    grad_norm: float
    converged: bool
    info: dict


def _optimize(problem: _Problem, init: dict, *, optimizer, tol, max_iter, num_steps, lr,
              batch_size, check_every, progress) -> _Run:
    pyro.clear_param_store()  # two fits never share parameters
    guide = AutoDelta(problem.model(), init_loc_fn=init_to_value(values=init))
    guide(problem.X, problem.y)  # creates the guide's parameters
    params = list(guide.parameters())
    with pyro.validation_enabled(False):  # inputs were validated by fit(); skip per-step checks
        if optimizer == "lbfgs":
            bar = _progress(None, progress, f"L-BFGS {problem.spec.label()}", PROGRESS_DELAY)
            try:
                n_iter, gnorm, converged, info = _run_lbfgs(problem, guide, params, tol,
                                                            max_iter, bar)
            finally:
                if bar is not None:
                    bar.close()
        else:
            n_iter, gnorm, converged, info = _run_adam(
                problem, guide, params, tol, num_steps, lr, batch_size, check_every, progress
            )
        _class_shift(problem, guide)()
        with torch.no_grad():
            objective = float(Trace_ELBO().differentiable_loss(problem.model(), guide,
                                                                problem.X, problem.y))
            point = {k: v.detach().clone() for k, v in guide.median().items()}
    return _Run(point, objective, n_iter, gnorm, converged, info)


def _check_separation(spec: ModelSpec, fit: Fit, X: np.ndarray, y: np.ndarray) -> None:
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


def fit(
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
    optimizer: str = "lbfgs",
    batch_size: Optional[int] = None,
    seed: int = 0,
    tol: Optional[float] = None,
    max_iter: int = 1000,
    num_steps: Optional[int] = None,
    lr: float = 0.02,
    check_every: int = 100,
    progress: bool = False,
    mean: str = "linear",
    hidden=(32, 32),
    activation: str = "tanh",
) -> Fit:
    r"""Fit the Pyro model of ``likelihood`` by MLE (prior off) or MAP (prior on).

    Parameters
    ----------
    X, y:
        Design (n, d) and target (n,): real values, 0/1 (bernoulli), labels 0..K-1
        (categorical) or counts (poisson).
    likelihood:
        ``gaussian``, ``laplace``, ``bernoulli``, ``categorical``, ``poisson``, ``studentt``.
    estimator:
        ``"mle"`` masks the prior off; ``"map"`` turns it on.
    prior, prior_scale, prior_df:
        ``normal``, ``laplace``, ``studentt`` (``prior_df`` degrees of freedom) or ``cauchy``,
        centred at 0 with scale τ = ``prior_scale``, on the weights (and on the intercept if
        ``penalize_intercept``; flat otherwise).
    noise_scale:
        Fixed σ (gaussian, studentt) or b (laplace); None learns it (flat prior on (0, ∞)).
    df:
        Degrees of freedom of the Student-t likelihood.
    optimizer:
        ``"lbfgs"`` (full batch, exact; default) or ``"adam"`` (``pyro.infer.SVI``).
    batch_size:
        Minibatch size for ``"adam"`` (None: full batch).
    tol:
        Gradient ∞-norm of the per-row objective on the full data (default 1e-9 for L-BFGS,
        1e-7 for full-batch Adam, 5e-3 with minibatches); for kinked objectives, the relative
        change of the exact objective over the last stage / check window.
    max_iter, num_steps, lr, check_every:
        L-BFGS iterations; Adam's step budget (default 20,000; 5,000 for kinked objectives or
        minibatches, which run it whole), initial learning rate (decayed ×1e-3 over
        ``num_steps``, ×1e-4 when run whole), and how often Adam checks the full-data gradient.
    seed:
        Seeds Pyro / torch (minibatch order, initialisation draws).
    progress:
        Show a progress bar on stderr: Adam's steps, or L-BFGS's objective evaluations once
        the fit has run for :data:`PROGRESS_DELAY` (1 s), so that quick fits stay quiet.
    mean, hidden, activation:
        ``"linear"`` (default) or ``"mlp"``: a multilayer perceptron with hidden widths
        ``hidden`` and ``activation`` (``tanh``, ``relu``, ``sigmoid``, ``gelu``,
        ``softplus``), its weights under the prior (see :mod:`bayesloss.neural`); the fit is a
        :class:`~bayesloss.neural.NetworkFit` with the layers in ``params_``.

    Returns
    -------
    Fit
        Parameters on the user's scale, ``converged``, ``n_iter``, ``grad_norm``, ``nll``,
        ``loss`` and ``objective``. A fit that stops before its criterion warns with
        :class:`~bayesloss.spec.ConvergenceWarning`; a NaN/inf objective raises
        :class:`DivergenceError`.

    .. math::

        \hat\theta_{\text{MLE}} = \arg\min_\theta -\log p(y\mid X,\theta),\qquad
        \hat\theta_{\text{MAP}} = \arg\min_\theta -\log p(y\mid X,\theta) - \log p(\theta)
    """
    if mean != "linear":  # other mean functions live in their own module
        from .neural import fit_network

        if mean != "mlp":
            raise ValueError(f"unknown mean {mean!r}; valid names are ['linear', 'mlp']")
        return fit_network(
            X, y, likelihood, hidden=hidden, activation=activation, estimator=estimator,
            prior=prior, prior_scale=prior_scale, noise_scale=noise_scale, df=df,
            prior_df=prior_df, fit_intercept=fit_intercept,
            penalize_intercept=penalize_intercept, optimizer=optimizer, batch_size=batch_size,
            seed=seed, tol=tol, max_iter=max_iter, num_steps=num_steps, lr=lr,
            check_every=check_every, progress=progress,
        )
    spec = make_spec(
        likelihood, estimator=estimator, prior=prior, prior_scale=prior_scale,
        noise_scale=noise_scale, df=df, prior_df=prior_df, fit_intercept=fit_intercept,
        penalize_intercept=penalize_intercept,
    )
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; valid names are {list(OPTIMIZERS)}")
    names = feature_names(X)  # a DataFrame's columns label the weights
    X, y = check_data(X, y, spec)
    if batch_size is not None:
        if optimizer != "adam":
            raise ValueError("batch_size (minibatches) needs optimizer='adam'")
        if not 1 <= int(batch_size) <= X.shape[0]:
            raise ValueError(f"batch_size must be in 1..{X.shape[0]}; got {batch_size}")
        batch_size = int(batch_size)
    if tol is None:  # minibatch gradients are noisy: those fits aim at ~1e-2, not 1e-7
        tol = 1e-9 if optimizer == "lbfgs" else 5e-3 if batch_size else 1e-7
    tol = float(tol)
    if num_steps is None:  # kinked or minibatch fits run their whole (shorter) schedule
        num_steps = 5000 if spec.kinked or batch_size else 20000

    pyro.set_rng_seed(seed)
    pre = Preconditioner.from_data(X, y, spec)
    Xp, yp = pre.data(X, y, spec)
    n_outputs = int(y.max()) + 1 if spec.family.multiclass else 1
    problem = _Problem(spec, Xp, yp, n_outputs, pre.model_kwargs(spec))
    run = functools.partial(
        _optimize, optimizer=optimizer, tol=tol, max_iter=max_iter, num_steps=num_steps, lr=lr,
        batch_size=batch_size, check_every=check_every, progress=progress,
    )
    start = time.perf_counter()
    best = run(problem, _initial_values(problem, y, pre))
    if spec.is_map and not spec.prior_spec.log_concave:
        # Heavy-tailed priors give several local modes (a weight near 0, or near its data
        # value): also start from the MLE (when it exists) and the normal-prior MAP, and keep
        # the best optimum.
        for start_spec in (replace(spec, estimator="mle"), replace(spec, prior="normal")):
            first = run(replace(problem, spec=start_spec), _initial_values(problem, y, pre))
            if first.converged:
                other = run(problem, first.point)
                other.info["start"] = start_spec.label()
                other.n_iter += first.n_iter
                best = min(best, other, key=lambda r: r.objective)
    info, n_iter, gnorm = best.info, best.n_iter, best.grad_norm
    info["seconds"] = time.perf_counter() - start
    method = ("pyro AutoDelta + torch L-BFGS (strong Wolfe)" if optimizer == "lbfgs" else
              "pyro SVI + ClippedAdam" + (f" (batch {batch_size})" if batch_size else ""))
    point = {k: v.numpy() for k, v in best.point.items()}
    coef, intercept, scale = pre.to_user(point["weight"], point.get("bias"), point.get("scale"))
    result = Fit.build(
        spec, X, y, coef, intercept, scale, converged=bool(best.converged), n_iter=n_iter,
        grad_norm=gnorm, method=method, seed=seed, info=info, feature_names=names,
    )
    _check_separation(spec, result, X, y)
    if not best.converged:
        reached = (f"relative change of the exact objective {info['objective_rel_change']:.1e}"
                   if spec.kinked else f"|grad|∞ = {gnorm:.2e}")
        warnings.warn(
            f"{spec.label()} fit with {optimizer} stopped after {n_iter} iterations before its "
            f"criterion (tol={tol:g}) held: {reached}"
            + ("; the classes may be separable, in which case the MLE does not exist"
               if spec.family.classifier and not spec.is_map else ""),
            ConvergenceWarning,
            stacklevel=2,
        )
    return result
