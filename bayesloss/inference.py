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

Non-convex MAP problems (Student-t / Cauchy priors) are started four ways (zero, the MLE, the
normal-prior MAP, and the Student-t(ν = 10)-prior MAP reached from the normal one) and the
best optimum is kept.
"""

from __future__ import annotations

import functools
import math
import random
import time
import warnings
from dataclasses import dataclass, replace
from typing import Callable, Optional

import numpy as np
import pyro
import scipy.linalg
import torch
from pyro.infer import SVI, Trace_ELBO
from pyro.infer.autoguide import AutoDelta
from pyro.infer.autoguide.initialization import init_to_value
from pyro.optim import ClippedAdam

from .engine import face
from .models import build_model, linear_mean
from .results import Fit, as_tensor
from .spec import (
    ConvergenceWarning, DesignStats, ModelSpec, PriorWarning, check_data, feature_names,
    make_spec,
)

OPTIMIZERS = ("lbfgs", "adam")
DTYPE = torch.float64
SMOOTHING_SCHEDULE = tuple(10.0**-k for k in range(1, 9))
STAGE_ITER = 200  # per smoothing stage: later stages refine what earlier ones leave
STALL_FACTOR = 100.0
FINISH_FROM = 1e-1  # smoothing level from which each stage tries the exact finish (an LP)
FINISH_FROM_SMOOTH_PRIOR = 1e-3  # with a smooth prior the face shows only at smaller ε
ZERO_THRESHOLD = 1e-6  # |w| (standardised units) the continuation leaves for an exact zero
WHITEN_MIN_PIVOT = 1e-7  # whiten only designs with cond(Gram) below ~1e14
# centre X in the intercept (no copy of X) while every column's |mean| ≤ this × its spread:
# η' = X v + (b' − m·v) then rounds at most ~(1 + 10)·eps, one digit of sixteen
MAX_FOLDED_OFFSET = 10.0
CONTINUATION_DF = 10.0  # heavy-tailed MAP: a start from the Student-t(ν = 10)-prior mode
NEWTON_FROM = 1e-6  # |grad|∞ from which exact Newton steps finish a smooth fit
NEWTON_STEPS = 5  # at most, before L-BFGS takes over again
PROGRESS_DELAY = 1.0  # seconds before an L-BFGS progress bar appears: quick fits stay quiet
DEFAULT_LR = 0.02  # Adam's initial learning rate
DEFAULT_CHECK_EVERY = 100  # Adam's steps between full-data gradient checks


class DivergenceError(RuntimeError):
    """The objective became NaN or infinite during a fit."""


@dataclass(frozen=True)
class Solver:
    """How a fit runs: :func:`fit`'s optimiser keywords, in one place for every kind of fit
    (linear, network, heteroscedastic, several outputs). None is "the default for this fit",
    which :meth:`resolve` sets from the model and the data."""

    optimizer: str = "lbfgs"
    batch_size: Optional[int] = None
    seed: int = 0
    tol: Optional[float] = None
    max_iter: Optional[int] = None
    num_steps: Optional[int] = None
    lr: float = DEFAULT_LR
    check_every: int = DEFAULT_CHECK_EVERY
    progress: bool = False

    def resolve(self, n_rows: int, kinked: bool,
                default_max_iter: Optional[int] = None) -> "Solver":
        """Checked, with the defaults filled in: ``tol`` 1e-9 for L-BFGS, 1e-7 for full-batch
        Adam, 5e-3 with minibatches (noisy gradients aim at ~1e-2); ``max_iter``
        ``default_max_iter``, else 5,000 for kinked objectives (their smoothing stages and
        the exact finish's Newton steps all count) and 1,000 otherwise; ``num_steps`` 5,000 for kinked or
        minibatch fits, which run their whole (shorter) schedule, else 20,000."""
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; valid names are "
                             f"{list(OPTIMIZERS)}")
        batch_size = self.batch_size
        if batch_size is not None:
            if self.optimizer != "adam":
                raise ValueError("batch_size (minibatches) needs optimizer='adam'")
            if not 1 <= int(batch_size) <= n_rows:
                raise ValueError(f"batch_size must be in 1..{n_rows}; got {batch_size}")
            batch_size = int(batch_size)
        tol = self.tol
        if tol is None:
            tol = 1e-9 if self.optimizer == "lbfgs" else 5e-3 if batch_size else 1e-7
        max_iter = self.max_iter
        if max_iter is None:
            max_iter = default_max_iter or (5000 if kinked else 1000)
        num_steps = self.num_steps
        if num_steps is None:
            num_steps = 5000 if kinked or batch_size else 20000
        return replace(self, batch_size=batch_size, tol=float(tol), max_iter=int(max_iter),
                       num_steps=int(num_steps))

    def method(self, detail: str = "") -> str:
        """The method line of a fit's summary (``detail``: what is fitted, e.g. the network)."""
        if self.optimizer == "lbfgs":
            return "pyro AutoDelta + torch L-BFGS (strong Wolfe)" + detail
        return ("pyro SVI + ClippedAdam" + detail
                + (f" (batch {self.batch_size})" if self.batch_size else ""))

    def warn_unconverged(self, what: str, n_iter: int, reached: str, stacklevel: int) -> None:
        """Warn (:class:`~bayesloss.spec.ConvergenceWarning`) that a fit stopped before its
        criterion: ``reached`` says where it stood."""
        warnings.warn(f"{what} fit with {self.optimizer} stopped after {n_iter} iterations "
                      f"before its criterion (tol={self.tol:g}) held: {reached}",
                      ConvergenceWarning, stacklevel=stacklevel + 1)


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

    The scaling and whitening live in the parameterisation, not in the data: the model's mean
    is ``η' = (X − m)(A w') + b'`` with ``A = diag(1/s) U`` (:meth:`mean_fn`), so an
    evaluation costs n·d and no whitened copy of X (n·d² to make) exists. The centring goes
    into the intercept, ``η' = X v + (b' − m·v)``, unless a column's mean dwarfs its spread
    (more than :data:`MAX_FOLDED_OFFSET` times: Longley's year, wine's proline), where that
    difference would cancel digits away and the data are centred instead (``centred_data``).
    """

    x_mean: np.ndarray
    x_scale: np.ndarray
    y_mean: float
    y_scale: float
    whiten: Optional[np.ndarray] = None
    data_curvature: float = 1.0
    centred_data: bool = False

    @classmethod
    def from_data(cls, X: np.ndarray, y: np.ndarray, spec: ModelSpec,
                  stats: Optional[DesignStats] = None, sigma_unit: bool = True
                  ) -> "Preconditioner":
        """``stats`` (column means and Gram matrix from :func:`~bayesloss.spec.check_data`)
        saves the passes over X that they would otherwise cost. ``sigma_unit``: a smooth
        likelihood's fixed σ is the target's unit (L-BFGS); else its standard deviation is
        (Adam, whose steps have an absolute size, lr: there the weights must be O(1), and in
        units of σ ≪ sd(y) they are ~sd/σ)."""
        stats = DesignStats.of(X) if stats is None else stats
        centre = spec.fit_intercept and not spec.penalize_intercept
        x_mean = stats.mean if centre else np.zeros(X.shape[1])
        x_scale = np.sqrt(stats.centred_gram().diagonal() if centre else stats.mean_square())
        x_scale = np.where(x_scale > 0, x_scale, 1.0)
        centred_data = bool(np.any(np.abs(x_mean) > MAX_FOLDED_OFFSET * x_scale))
        y_mean, y_scale = 0.0, 1.0
        if spec.family.continuous:
            y_mean = float(y.mean()) if centre else 0.0
            if sigma_unit and spec.noise_scale is not None and not spec.family.kinked:
                # a fixed σ is the unit: the data term's curvature is then ~1 per row whatever
                # σ, and so is what ``tol`` means. (In units of sd(y) it would be (sd/σ)², and
                # the gradient's rounding floor, ~eps·(sd/σ)², reaches 1e-9 near σ = sd/1000.)
                y_scale = float(np.mean(np.asarray(spec.noise_scale) ** -2.0) ** -0.5)
            else:
                y_scale = float(np.sqrt(((y - y_mean) ** 2).mean())) or 1.0
        # per-row curvature of the data term and of the prior, in standardised units
        data_curv = (float(np.mean((y_scale / np.asarray(spec.noise_scale)) ** 2))
                     if spec.noise_scale is not None else 1.0)  # per-row σᵢ: the mean
        prior_curv = np.zeros(X.shape[1])
        if spec.is_map:
            tau = spec.prior_scale * x_scale / y_scale
            prior_curv = spec.prior_spec.curvature(tau, spec.effective_prior_df) / X.shape[0]
        whitenable = not spec.is_map or (
            spec.prior == "normal" and not spec.family.multiclass and not spec.penalize_intercept
        )
        if whitenable:
            # the standardised Gram matrix; it need not be exact (any invertible U gives the
            # same model), only close enough to condition it
            gram = (stats.centred_gram() if centre else stats.gram / X.shape[0])
            hessian = gram / np.outer(x_scale, x_scale) + np.diag(prior_curv / data_curv)
            try:
                L = np.linalg.cholesky(hessian)
            except np.linalg.LinAlgError:  # singular design (warned about): scaling only
                L = None
            if L is not None and np.diag(L).min() >= WHITEN_MIN_PIVOT * np.diag(L).max():
                U = scipy.linalg.solve_triangular(L, np.eye(X.shape[1]), lower=True).T
                return cls(x_mean, x_scale, y_mean, y_scale, U, data_curv, centred_data)
        # Jacobi: scale each column by the square root of its Hessian diagonal
        x_scale = x_scale * np.sqrt(1.0 + prior_curv / data_curv)
        return cls(x_mean, x_scale, y_mean, y_scale, None, data_curv, centred_data)

    @property
    def matrix(self) -> np.ndarray:
        """``A`` with ``w_user = s_y · A w'`` (d × d, or the diagonal (d,) when not whitened)."""
        return 1.0 / self.x_scale if self.whiten is None else self.whiten / self.x_scale[:, None]

    def mean_fn(self) -> Callable:
        """The linear mean in the preconditioned parameters, ``η' = (X − m)(A w') + b'``, on
        the design of :meth:`data` (the centring in the intercept unless it is in the data)."""
        A = torch.as_tensor(self.matrix, dtype=DTYPE)
        shift = None if self.centred_data or not self.x_mean.any() else torch.as_tensor(
            self.x_mean)

        def mean(X, weight, bias):
            w = A @ weight if A.dim() == 2 else (A[:, None] if weight.dim() == 2 else A) * weight
            if shift is not None:  # centring needs an intercept: bias is there
                bias = bias - shift @ w
            return linear_mean(X, w, bias)

        return mean

    def data(self, X: np.ndarray, y: np.ndarray, spec: ModelSpec):
        """The design (centred, ``X − m``, only where :attr:`centred_data`: a copy of X that
        otherwise costs as much as an evaluation; the scaling and whitening, n·d² if applied to
        X, live in :meth:`mean_fn`) and the standardised target."""
        yp = (y - self.y_mean) / self.y_scale if spec.family.continuous else y
        Xt = as_tensor(X)
        return self.centre(Xt) if self.centred_data else Xt, as_tensor(yp)

    def centre(self, X: torch.Tensor) -> torch.Tensor:
        """``X − m`` (``X`` itself where there is no centring)."""
        if not self.x_mean.any():
            return X
        return X - torch.as_tensor(self.x_mean)  # torch's broadcast: ~2× numpy's for a short row

    def model_kwargs(self, spec: ModelSpec) -> dict:
        """The prior (per-column scales, or a precision matrix when whitened), the fixed
        noise scale and the mean function in the preconditioned variables."""
        tau = spec.prior_scale * self.x_scale / self.y_scale
        kw = {
            "prior_scale": torch.as_tensor(tau),
            "intercept_prior_scale": spec.prior_scale / self.y_scale,
            "mean_fn": self.mean_fn(),
        }
        if self.whiten is not None and spec.is_map:  # w_std = U w' with w_std ~ N(0, diag τ²)
            kw["prior_precision"] = torch.as_tensor(self.whiten.T @ (self.whiten / tau[:, None]**2))
        if spec.noise_scale is not None:
            kw["noise_scale"] = torch.as_tensor(np.asarray(spec.noise_scale) / self.y_scale)
        return kw

    def to_user(self, weight: np.ndarray, bias, scale):
        A = self.matrix
        coef = self.y_scale * (A @ weight if A.ndim == 2 else
                               (A[:, None] if weight.ndim == 2 else A) * weight)
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
    pre: Preconditioner

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


def _profile_scale(problem: _Problem, guide) -> None:
    """Set a learned noise scale to its exact optimum given the other parameters.

    Its prior is flat, so this is a 1-d problem in t = log s on the likelihood alone, convex
    for every family here (gaussian: √(RSS/n), laplace: mean |r|, studentt: no closed form);
    a damped Newton iteration solves it to rounding. Exactness matters: L-BFGS leaves the
    scale within its gradient tolerance, 1e-5 relative for a kinked objective.
    """
    spec = problem.spec
    if not spec.learns_scale:
        return
    param = dict(guide.named_parameters())["scale_unconstrained"]  # log s (positive support)
    with torch.no_grad():
        eta = problem.eta(guide.median())
        param.copy_(_profile_t(spec, problem.y, eta, param.detach().clone()))


def _profile_t(spec: ModelSpec, y: torch.Tensor, eta: torch.Tensor, t: torch.Tensor):
    """argmin over t = log s of the NLL at fixed ``eta``: the closed form ``s^k = Σ|r|^k/n``
    where the family has one (:attr:`~bayesloss.families.Family.scale_power`), else damped
    Newton from ``t``."""
    k = spec.family.scale_power
    if k is not None:
        moment = ((y - eta).abs() ** k).mean()
        if moment > 0:  # (an exact fit, r = 0, has no optimum: leave it to the damped steps)
            return moment.log() / k
    with torch.enable_grad():
        for _ in range(100):
            t_ = t.clone().requires_grad_(True)
            f = spec.family.nll(y, eta, t_.exp(), spec.df)
            (g,) = torch.autograd.grad(f, t_, create_graph=True)
            (h,) = torch.autograd.grad(g, t_)
            if not h > 0:
                break
            step = (g / h).detach().clamp(-1.0, 1.0)  # damped far away (e^{-2t} terms)
            t = (t - step).detach()
            if abs(float(step)) <= 4 * torch.finfo(DTYPE).eps * max(1.0, abs(float(t))):
                break
    return t


def _same_curvature(spec: ModelSpec) -> bool:
    """Every row has the same curvature in η whatever y and η: least squares with one σ (known
    per-row σᵢ weight the rows)."""
    return spec.family.constant_curvature and not spec.row_scales


def _as_objective(loss, guide) -> "_Objective":
    """``loss`` (a loss function or an :class:`_Objective`) as an :class:`_Objective`."""
    return loss if isinstance(loss, _Objective) else _Objective(loss, guide.parameters())


def _newton_polish(problem: _Problem, guide, objective) -> Optional[float]:
    """One exact Newton step on (w', b') at the end of a smooth fit.

    L-BFGS stops on the gradient; where the Hessian has small eigenvalues (a nearly separable
    logistic fit, collinear columns that whitening by the Gram matrix does not reach because
    the curvature differs per row, softmax's shift common to the classes) a gradient of 1e-9
    still leaves ~1e-6 in the parameters. The Hessian is the model's own,
    ``Σ_kl X̃ᵀ diag(c_kl) X̃ ⊗ e_k e_lᵀ + ∇²P`` with ``c_kl`` the per-row curvature of the NLL
    in η (autograd; K × K per row for softmax, whose shift common to the K classes is a null
    direction: least squares) — the work of K(K+1)/2 Gram matrices — and the gradient is the
    ELBO's. The step is kept if it lowers the loss, or the gradient with the loss unchanged to
    its rounding. A learned scale is then re-set to its exact optimum. Returns the gradient ∞-norm where it ended, or None when the
    step was not kept.
    """
    spec, pre = problem.spec, problem.pre
    if spec.kinked:
        return None
    objective = _as_objective(objective, guide)
    named = dict(guide.named_parameters())
    weight = named["weight_unconstrained"]
    bias = named.get("bias_unconstrained")
    X = problem.design
    n, d = X.shape
    k = problem.n_outputs if spec.family.multiclass else 1
    A = torch.as_tensor(pre.matrix if pre.matrix.ndim == 2 else np.diag(pre.matrix))
    with torch.no_grad():
        point = guide.median()
    scale = point.get("scale", problem.model_kwargs.get("noise_scale"))
    scale = None if scale is None else torch.as_tensor(scale, dtype=DTYPE)
    eta = problem.eta(point).detach().requires_grad_(True)
    with torch.enable_grad():
        (g_eta,) = torch.autograd.grad(spec.family.nll(problem.y, eta, scale, spec.df), eta,
                                       create_graph=True)
        g_eta = g_eta.reshape(n, k)
        # rows are independent: the curvature is block diagonal, c[:, a, b] for each row
        c = torch.stack([torch.autograd.grad(g_eta[:, a].sum(), eta, retain_graph=a < k - 1)[0]
                         .reshape(n, k) for a in range(k)], 1).detach() / n
    Hw = torch.zeros(d, k, d, k, dtype=DTYPE)
    Hwb = torch.zeros(d, k, k, dtype=DTYPE)
    for a in range(k):
        for b in range(a, k):
            G = A.T @ (X.T @ (X * c[:, a, b, None])) @ A
            s = A.T @ (X.T @ c[:, a, b])
            Hw[:, a, :, b], Hw[:, b, :, a] = G, G
            Hwb[:, a, b], Hwb[:, b, a] = s, s
    H = Hw.reshape(d * k, d * k).numpy()
    theta = weight.detach().numpy().reshape(-1)
    if bias is not None:
        hb = Hwb.reshape(d * k, k).numpy()
        H = np.block([[H, hb], [hb.T, c.sum(0).numpy()]])
        theta = np.r_[theta, bias.detach().numpy().reshape(-1)]
    H = H + _prior_terms(problem)(theta)[2] / n
    before = objective()  # where L-BFGS stopped: cached
    g_before = objective.grad_norm()
    grads = [weight.grad.reshape(-1)] + ([bias.grad.reshape(-1)] if bias is not None else [])
    g = torch.cat(grads).numpy()
    objective.clear_grads()
    try:
        # softmax: the gradient is orthogonal to the classes' common shift, the Hessian's null
        # direction; least squares gives the step without it
        step = (-np.linalg.lstsq(H, g, rcond=None)[0] if k > 1 else -np.linalg.solve(H, g))
    except np.linalg.LinAlgError:
        return None
    saved = [weight.detach().clone()] + ([bias.detach().clone()] if bias is not None else [])
    with torch.no_grad():
        weight.add_(torch.as_tensor(step[:d * k]).reshape(weight.shape))
        if bias is not None:
            bias.add_(torch.as_tensor(step[d * k:]).reshape(bias.shape))
    after = objective()
    g_after = objective.grad_norm()
    objective.clear_grads()
    # near the optimum a step changes the loss by ~|g|², below the rounding of a sum over the
    # rows: there the gradient decides
    level = 1e-14 * max(1.0, abs(float(before)))
    if not (after < before or (after <= before + level and g_after < g_before)):
        with torch.no_grad():
            weight.copy_(saved[0])
            if bias is not None:
                bias.copy_(saved[1])
        return None
    if spec.learns_scale:  # the scale moves to its optimum: the gradient there
        _profile_scale(problem, guide)
        g_after = objective.grad_norm()
        objective.clear_grads()
    return g_after


def _newton_start(problem: _Problem, guide, objective) -> bool:
    """One Newton step on the weights from the intercept-only start (whitened designs).

    At the start every row has the same linear predictor η₀, so the data Hessian in the
    whitened weights is ``h ⊗ (UᵀG U)`` with ``h`` the family's mean curvature at η₀ (a K × K
    matrix for softmax); the preconditioner made ``UᵀG U = I − Q`` (Q: its share of the normal
    prior's curvature). The step is exact for least squares, and for logistic / Poisson /
    softmax MLE it is the first IRLS step; L-BFGS takes it from there. The gradient is the
    ELBO's own; the step is kept only if the loss decreased. Returns whether it was taken.
    """
    spec, pre = problem.spec, problem.pre
    if pre.whiten is None or spec.kinked:
        return False
    objective = _as_objective(objective, guide)
    named = dict(guide.named_parameters())
    weight = named["weight_unconstrained"]
    before = objective()
    g = weight.grad.detach().clone()
    objective.clear_grads()
    with torch.no_grad():
        point = guide.median()
    # w = 0: every row has the intercept's η; one row gives it
    eta0 = problem.model_kwargs["mean_fn"](problem.X[:1], point["weight"], point.get("bias"))[0]
    eta0 = eta0.detach()
    scale = point.get("scale", problem.model_kwargs.get("noise_scale"))
    scale = None if scale is None else torch.as_tensor(scale, dtype=DTYPE)

    # the rows' mean curvature at η₀; least squares has the same curvature in every row
    rows = problem.y[:1] if _same_curvature(spec) else problem.y

    def mean_nll(e):
        return spec.family.nll(rows, e.expand(rows.shape + e.shape), scale, spec.df) / len(rows)

    e = eta0.clone().requires_grad_(True)
    with torch.enable_grad():
        (g_e,) = torch.autograd.grad(mean_nll(e), e, create_graph=True)
        h = (torch.stack([torch.autograd.grad(g_e[a], e, retain_graph=True)[0]
                          for a in range(g_e.numel())]) if g_e.dim()
             else torch.autograd.grad(g_e, e)[0])
    if spec.family.multiclass:  # the shift common to the K classes is a null direction
        step = -g @ torch.linalg.pinv(h, hermitian=True)
    else:
        H = h * torch.eye(g.shape[0], dtype=DTYPE)
        if spec.is_map:  # H = h(I − Q) + Q·c with Q·c = prior precision / n
            Pn = problem.model_kwargs["prior_precision"] / problem.X.shape[0]
            H = H + (1.0 - h / pre.data_curvature) * Pn
        step = -torch.linalg.solve(H, g)
    with torch.no_grad():
        weight.add_(step)
    after = objective()  # with its gradient: L-BFGS starts from this evaluation
    objective.clear_grads()
    if not after < before:
        with torch.no_grad():
            weight.sub_(step)
        return False
    return True


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


class _Objective:
    """``loss_fn`` (a scalar tensor of ``params``) evaluated with its gradient, which it leaves
    in ``p.grad``. The latest evaluation is remembered with its point: asked again there (the
    Newton start's check is L-BFGS's first evaluation, L-BFGS's last line-search point is
    where it stops, the polish starts there) it costs nothing."""

    def __init__(self, loss_fn: Callable, params, where: str = "L-BFGS"):
        self.loss_fn, self.params, self.where = loss_fn, list(params), where
        self._point, self._loss, self._grads = None, None, None

    def __call__(self) -> torch.Tensor:
        point = [p.detach().clone() for p in self.params]
        if self._point is None or not all(map(torch.equal, point, self._point)):
            for p in self.params:
                p.grad = None
            loss = self.loss_fn()
            _raise_if_bad(loss.detach(), self.where)
            loss.backward()
            self._point, self._loss = point, loss.detach()
            self._grads = [None if p.grad is None else p.grad.clone() for p in self.params]
        for p, g in zip(self.params, self._grads):
            p.grad = None if g is None else g.clone()
        return self._loss

    def grad_norm(self) -> float:
        """|grad|∞ at the current point."""
        self()
        return float(_flat_grad(self.params).abs().max())

    def clear_grads(self) -> None:
        for p in self.params:
            p.grad = None


def _elbo_loss(problem: "_Problem", model, guide, bar=None) -> Callable:
    """The delta-guide ELBO per row, ``Trace_ELBO().differentiable_loss / n``: the −log joint
    at the guide's point (progress: one tick per evaluation)."""
    elbo, n = Trace_ELBO(), problem.X.shape[0]

    def loss():
        if bar is not None:
            bar.update(1)
        return elbo.differentiable_loss(model, guide, problem.X, problem.y) / n

    return loss


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

    objective = loss_fn if isinstance(loss_fn, _Objective) else _Objective(loss_fn, params)

    def closure():
        opt.zero_grad()
        return objective()

    opt.step(closure)
    n_iter = opt.state[opt._params[0]].get("n_iter", 0)
    # the gradient where it stopped (cached unless the line search ended elsewhere)
    return int(n_iter), objective.grad_norm()


def _run_lbfgs(problem, guide, params, tol, max_iter, exact: _Objective, bar=None):
    """L-BFGS on ``exact`` (the ELBO of the exact model), or the smoothing continuation."""

    def loss_of(model):
        return _elbo_loss(problem, model, guide, bar)

    if not problem.spec.kinked:
        # Least squares in whitened variables has a Hessian of about the identity, so the
        # gradient tolerance already bounds the parameters' error: L-BFGS alone finishes it,
        # unless its line search stalls where the loss no longer resolves a step's decrease
        # (residuals of many σ: a loss of ~1e9 per row rounds at ~1e-7), and Newton does.
        # Otherwise L-BFGS goes to NEWTON_FROM and exact Newton steps (quadratic convergence:
        # two or three from there) finish, at least one of them.
        quadratic = _same_curvature(problem.spec) and problem.pre.whiten is not None
        n_iter, gnorm = _lbfgs_stage(exact, params, tol if quadratic else max(tol, NEWTON_FROM),
                                     max_iter)
        for step in range(NEWTON_STEPS):
            if n_iter >= max_iter or (gnorm <= tol and (quadratic or step > 0)):
                break
            polished = _newton_polish(problem, guide, exact)
            if polished is None:
                break
            n_iter, gnorm = n_iter + 1, polished
        if gnorm > tol and n_iter < max_iter:  # Newton could not finish: L-BFGS does
            more, gnorm = _lbfgs_stage(exact, params, tol, max_iter - n_iter)
            n_iter += more
        return (n_iter, gnorm) + _stop(n_iter, gnorm, tol, max_iter)
    total, gnorm, certificate = 0, math.inf, None
    shift = _class_shift(problem, guide)
    residual_kinks = problem.spec.family.kinked
    for eps in SMOOTHING_SCHEDULE:
        if total >= max_iter:
            break
        # A stage need not be solved more finely than its smoothing perturbs the optimum; near
        # the kinks the per-row loss stops resolving further progress at ~1e-13.
        n_iter, gnorm = _lbfgs_stage(
            loss_of(problem.model(eps)), params, max(tol, 1e-2 * eps),
            min(STAGE_ITER, max_iter - total), ftol=1e-13,
        )
        total += n_iter
        shift()
        smooth_prior = problem.spec.is_map and not problem.spec.prior_spec.kinked
        if residual_kinks and eps <= (FINISH_FROM_SMOOTH_PRIOR if smooth_prior else FINISH_FROM):
            # try the exact finish at every stage from here: the certificate ends the schedule
            certificate = _kink_finish(problem, guide, eps, tol, max_iter - total)
            total += certificate["newton_steps"]
            if certificate["certified"]:
                break
    if residual_kinks:
        info = {"smoothing": eps, **(certificate or {"certified": False})}
        if total >= max_iter and not info["certified"]:
            info["stop"] = "max_iter"
        return total, gnorm, info["certified"], info
    info = {"smoothing": eps}
    return _polish_active_set(problem, guide, exact, tol, max(max_iter - total, 0), total, info)


def _prior_terms(problem: _Problem):
    """``θ ↦ (P, ∇P, ∇²P)`` for P = −log prior of θ = (w', b') in the preconditioned variables
    (up to a constant), from the model's own prior: a quadratic form when whitened (a
    MultivariateNormal), else independent coordinates (a diagonal Hessian, by autograd)."""
    spec, kw = problem.spec, problem.model_kwargs
    d = problem.X.shape[1]
    k = problem.n_outputs if spec.family.multiclass else 1  # θ = (vec w', b'), w' as (d, K)
    p = (d + int(spec.fit_intercept)) * k
    if not spec.is_map:
        return lambda theta: (0.0, np.zeros(p), np.zeros((p, p)))
    precision = kw.get("prior_precision")
    if precision is not None:  # the intercept is flat here (whitening needs that)
        Pm = np.zeros((p, p))
        Pm[:d, :d] = precision.numpy()
        return lambda theta: (0.5 * theta @ Pm @ theta, Pm @ theta, Pm)
    tau = kw["prior_scale"].expand(d)[:, None].expand(d, k).reshape(-1)
    penalised = (d + int(spec.penalize_intercept)) * k
    if spec.penalize_intercept:
        tau_b = torch.as_tensor(kw["intercept_prior_scale"], dtype=DTYPE).expand(k)
        tau = torch.cat([tau, tau_b])
    prior = spec.prior_spec.distribution(tau, spec.effective_prior_df, 0.0)

    def terms(theta: np.ndarray):
        t = torch.as_tensor(theta[:penalised]).clone().requires_grad_(True)
        with torch.enable_grad():
            f = -prior.log_prob(t)
            (g,) = torch.autograd.grad(f.sum(), t, create_graph=True)
            h = (torch.autograd.grad(g.sum(), t)[0] if g.requires_grad
                 else torch.zeros_like(t))  # independent coordinates: the diagonal
        grad, hess = np.zeros(p), np.zeros(p)
        grad[:penalised], hess[:penalised] = g.detach().numpy(), h.numpy(force=True)
        return float(f.sum().detach()), grad, np.diag(hess)

    return terms


ACTIVE_TOL = 1e-12  # |residual| (standardised units) counted as interpolated
CERTIFICATE_TOL = 1e-9  # relative duality gap a certificate needs, whatever a looser tol says


def _kink_finish(problem: _Problem, guide, eps: float, tol: float, budget: int) -> dict:
    r"""Finish a Laplace-likelihood fit exactly and certify it (:func:`.engine.face.finish`).

    .. math:: F(θ) = Σ_i |y_i − \tilde x_iᵀθ| / b \;(+\, n \log b) + P(θ)

    in the preconditioned variables: the kinks are the rows of the design
    ``[(x − m)ᵀA, 1]`` (weights 1/b) and, under a Laplace prior, the penalised coordinates
    (weights 1/τ_j); ``P`` is a normal prior's quadratic form, a Student-t / Cauchy prior's
    −log density, or nothing. The path starts at the Pyro fit's point and smoothing level
    ``eps``. A learned scale alternates with its exact optimum (mean |r|); the MLE's θ does not
    depend on it. Converged means the relative duality gap is ≤ min(``tol``, 1e-9) (global for
    a convex ``P``; for a non-convex one the complementarity gap: stationary). The guide keeps
    the finished point when it is certified or better; each Newton step counts against
    ``budget``.
    """
    spec, kw = problem.spec, problem.model_kwargs
    Xn, y = problem.design.numpy(), problem.y.numpy()
    (n, d), has_b = Xn.shape, spec.fit_intercept
    A = problem.pre.matrix
    C = np.empty((n, d + int(has_b)))
    if A.ndim == 2:
        np.matmul(Xn, A, out=C[:, :d])
    else:
        np.multiply(Xn, A, out=C[:, :d])
    C[:, d:] = 1.0
    tau = np.broadcast_to(kw["prior_scale"].numpy(), (d,))
    tau = np.r_[tau, kw["intercept_prior_scale"]] if has_b else tau
    penalised = np.arange(d + int(has_b and spec.penalize_intercept))
    terms = {}
    if spec.is_map and spec.prior_spec.kinked:
        terms = {"l1": penalised, "nu": 1.0 / tau[penalised]}
    elif spec.is_map and spec.prior == "normal":
        M = np.zeros((C.shape[1], C.shape[1]))
        if "prior_precision" in kw:  # whitened: the intercept is flat
            M[:d, :d] = kw["prior_precision"].numpy()
        else:
            M[penalised, penalised] = tau[penalised] ** -2.0
        terms = {"quadratic": M}
    elif spec.is_map:
        terms = {"smooth": _prior_terms(problem)}
    named = dict(guide.named_parameters())
    with torch.no_grad():
        point = guide.median()
    theta = point["weight"].numpy().copy()
    theta = np.r_[theta, float(point["bias"])] if has_b else theta
    b = float(point["scale"]) if spec.learns_scale else kw["noise_scale"].numpy()
    first = face.Kinks(C, y, np.broadcast_to(1.0 / b, (n,)), **terms)
    start = first.objective(theta)
    steps = 0
    for rounds in range(1, 31):  # a learned scale alternates with its exact optimum
        kinks = face.Kinks(C, y, np.broadcast_to(1.0 / b, (n,)), **terms)
        result = face.finish(kinks, theta, eps, gap_tol=min(tol, CERTIFICATE_TOL),
                             max_newton=max(budget - steps, 0))
        theta, steps, eps = result.theta, steps + result.newton_steps, result.smoothing
        if not spec.learns_scale or not result.certified:
            break
        b_new = _exact_scale(spec, kinks.values(theta)[:n], b)
        settled = abs(b_new - b) <= 1e-13 * b or not spec.is_map  # the MLE's θ is b's
        b = b_new
        if settled:
            break
    out = {"certified": result.certified,
           "certificate": ("duality gap (a dual point from the smoothing path)"
                           if result.optimality.startswith("global") else
                           "complementarity gap of multipliers in their bounds (0 ∈ ∂F)"),
           "optimality": result.optimality, "objective": result.primal,
           "dual_bound": result.bound, "gap": result.gap, "on_face": result.on_face,
           "face_rank": result.face_rank,
           "active_rows": int((np.abs(kinks.values(theta)[:n]) <= ACTIVE_TOL).sum()),
           "zero_weights": int((theta[terms["l1"]] == 0.0).sum()) if "l1" in terms else 0,
           "scale_rounds": rounds, "newton_steps": steps}
    if result.certified or first.objective(theta) < start:  # a better point helps the next stage
        with torch.no_grad():
            named["weight_unconstrained"].copy_(torch.as_tensor(theta[:d]))
            if has_b:
                named["bias_unconstrained"].copy_(torch.as_tensor(theta[d]))
            if spec.learns_scale:
                named["scale_unconstrained"].copy_(torch.as_tensor(math.log(b)))
    return out


def _exact_scale(spec: ModelSpec, r: np.ndarray, b: float) -> float:
    """The learned scale's optimum given residuals ``r`` (see :func:`_profile_scale`)."""
    return float(_profile_t(spec, torch.as_tensor(r), torch.zeros_like(torch.as_tensor(r)),
                            torch.tensor(math.log(b), dtype=DTYPE)).exp())


def _class_shift(problem, guide):
    """For softmax weights, a shift common to the K classes of one feature leaves the
    likelihood unchanged, so only the prior pins it down: through a kink (laplace), or with
    almost no curvature when the prior is wide, poorly for a gradient method. Return a step
    that sets each feature's shift to its optimum: the median (laplace) or the mean (normal) of
    its K weights, or for a Student-t / Cauchy prior the local minimum of the prior along the
    shift (:func:`_student_shift`); it can only lower the objective."""
    spec = problem.spec
    named = dict(guide.named_parameters())
    heavy = spec.is_map and not spec.prior_spec.log_concave
    if not (spec.family.multiclass and spec.is_map
            and (spec.prior in ("laplace", "normal") or heavy)
            and "weight_unconstrained" in named):  # (a network mean has no such weight)
        return lambda: None
    weight = named["weight_unconstrained"]

    def shift():
        with torch.no_grad():
            if spec.prior == "laplace":
                weight.sub_(weight.median(dim=1, keepdim=True).values)
            elif heavy:
                tau = problem.model_kwargs["prior_scale"].expand(weight.shape[0])
                weight.sub_(_student_shift(weight, tau, spec.effective_prior_df)[:, None])
            else:
                weight.sub_(weight.mean(dim=1, keepdim=True))

    return shift


def _student_shift(w: torch.Tensor, tau: torch.Tensor, nu: float) -> torch.Tensor:
    r"""Per row j of ``w`` (d × K), the shift s_j that minimises the Student-t(ν, τ_j) prior of
    the shifted weights, :math:`f(s) = Σ_k \log(1 + (w_{jk} − s)²/(ν τ_j²))`, locally from s = 0.

    f is not convex (a term is concave where |w − s| > √ν τ), so this is Newton where f'' > 0
    and a gradient step otherwise, each step halved until f does not increase (none taken if
    30 halvings do not get there): f(s) ≤ f(0), and it stops where the step no longer moves s.
    """
    c = nu * tau[:, None] ** 2

    def f(s):
        return torch.log1p((w - s[:, None]) ** 2 / c).sum(1)

    s = torch.zeros(w.shape[0], dtype=w.dtype)
    for _ in range(100):
        r = w - s[:, None]
        q = c + r * r
        g = (-2 * r / q).sum(1)
        h = (2 * (c - r * r) / q**2).sum(1)
        step = torch.where(h > 0, -g / h.clamp(min=torch.finfo(w.dtype).tiny), -g * c[:, 0] / 2)
        f0, t = f(s), torch.ones_like(s)
        for _ in range(30):
            ok = f(s + t * step) <= f0
            if ok.all():
                break
            t = torch.where(ok, t, t / 2)
        t = torch.where(f(s + t * step) <= f0, t, torch.zeros_like(t))
        moved = (t * step).abs().max()
        s = s + t * step
        if moved <= 4 * torch.finfo(w.dtype).eps * (1.0 + float(s.abs().max())):
            break
    return s


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
    # the masked gradients below must not be remembered as the exact ones
    exact = getattr(exact, "loss_fn", exact)
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
    if not ok:  # keep the continuation's answer, which then has no certificate
        with torch.no_grad():
            for p, v in zip(params, saved):
                p.copy_(v)
        return n_iter + polish_iter, gnorm, False, info
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


def _run_adam(problem, guide, params, solver: Solver):
    """SVI with ClippedAdam (``solver``'s ``lr``, ``num_steps``, ``batch_size``, ``tol``,
    ``check_every``, ``progress``), the learning rate decaying geometrically over ``num_steps``.

    Full-batch smooth objectives stop once the full-data gradient ∞-norm is ≤ ``tol``. At a
    kink no gradient gets small, and minibatch gradients are noisy: either way the iterate
    hovers within about one learning rate of the optimum, so those fits run the whole schedule
    (kinks: down to 1e-4 of ``lr``; minibatches: down to 1/10 of ``lr``, returning the
    Polyak–Ruppert average of the iterates over the schedule's second half). Kinked ones count as converged when the exact objective changed
    by ≤ ``tol`` (relative) over the last check window, minibatch ones when the full-data
    gradient ∞-norm ends ≤ ``tol``.
    """
    spec = problem.spec
    tol, num_steps, lr, batch_size = solver.tol, solver.num_steps, solver.lr, solver.batch_size
    check_every = solver.check_every
    model = problem.model()
    # Kinks and minibatch noise both keep the iterate within about one learning rate of the
    # optimum: those runs take their whole schedule, decaying further.
    whole_schedule = spec.kinked or batch_size is not None
    minibatch = batch_size is not None
    # Minibatch noise: a gentle decay (to 1/10) and the Polyak–Ruppert average of the iterates
    # over the second half of the schedule, whose error shrinks like 1/√(steps averaged);
    # a step decayed to ~0 would instead freeze the iterate wherever the noise left it.
    final_lr_ratio = 1e-1 if minibatch else 1e-4 if whole_schedule else 1e-3
    average_from = num_steps // 2 if minibatch else num_steps + 1
    average, n_avg = None, 0
    optim = ClippedAdam({"lr": lr, "lrd": final_lr_ratio ** (1.0 / num_steps), "clip_norm": 1e6})
    svi = SVI(model, guide, optim, Trace_ELBO())
    elbo = Trace_ELBO()
    X, y = problem.X, problem.y
    bar = _progress(num_steps, solver.progress, f"adam {spec.label()}")
    shift = _class_shift(problem, guide)
    exact_prev, rel_change, gnorm, step = None, math.inf, math.inf, 0
    for step in range(1, num_steps + 1):
        loss = svi.step(X, y, batch_size)
        if not math.isfinite(loss):
            _raise_if_bad(torch.tensor(loss), "Adam (SVI)")
        if bar is not None:
            bar.update(1)
        if step > average_from:
            with torch.no_grad():
                n_avg += 1
                if average is None:
                    average = [p.detach().clone() for p in params]
                else:
                    for a, p in zip(average, params):
                        a.add_((p.detach() - a) / n_avg)
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
    if average is not None:
        with torch.no_grad():
            for a, p in zip(average, params):
                p.copy_(a)
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
    objective: Optional[float]  # −log joint, when asked for (comparing starts)
    n_iter: int
    grad_norm: float
    converged: bool
    info: dict


def _optimize(problem: _Problem, init: dict, solver: Solver, newton=False,
              need_objective=False) -> _Run:
    """One run from ``init``: optionally a Newton start, the optimiser, then the exact scale.
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
    bar = (_progress(None, solver.progress, f"L-BFGS {problem.spec.label()}", PROGRESS_DELAY)
           if lbfgs else None)
    exact = _Objective(_elbo_loss(problem, model, guide, bar), params)
    with pyro.validation_enabled(False):  # inputs were validated by fit(); skip per-step checks
        newton = newton and _newton_start(problem, guide, exact)
        if newton:
            _profile_scale(problem, guide)
        if lbfgs:
            try:
                n_iter, gnorm, converged, info = _run_lbfgs(
                    problem, guide, params, solver.tol, solver.max_iter - int(newton), exact, bar)
            finally:
                if bar is not None:
                    bar.close()
        else:
            n_iter, gnorm, converged, info = _run_adam(problem, guide, params, solver)
        if newton:  # the Newton step counts as an iteration
            n_iter += 1
            info["newton_start"] = True
        _class_shift(problem, guide)()
        _profile_scale(problem, guide)
        objective = None
        with torch.no_grad():
            if need_objective:
                objective = float(Trace_ELBO().differentiable_loss(problem.model(), guide,
                                                                    problem.X, problem.y))
            point = {k: v.detach().clone() for k, v in guide.median().items()}
    return _Run(point, objective, n_iter, gnorm, converged, info)


def _seed(seed: int) -> None:
    """What ``pyro.set_rng_seed`` seeds (Python, numpy, torch), with torch's CPU generator
    seeded directly: ``torch.manual_seed`` also queues a seed for each lazily initialised
    accelerator back end, formatting a stack trace for each, which costs more than a small fit."""
    random.seed(seed)
    np.random.seed(seed)
    torch.default_generator.manual_seed(seed)


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


def prior_keywords(prior, prior_scale, prior_df) -> dict:
    """The prior keywords a caller gave (None: not given, the spec's default applies)."""
    return {k: v for k, v in (("prior", prior), ("prior_scale", prior_scale),
                              ("prior_df", prior_df)) if v is not None}


def warn_prior_off(given: dict, spec: ModelSpec, stacklevel: int) -> None:
    """Warn (:class:`~bayesloss.spec.PriorWarning`) when an MLE fit was given a prior."""
    if given and not spec.is_map:
        warnings.warn(
            f"{', '.join(f'{k}=' for k in given)} given to an MLE fit: the prior is off "
            "(estimator='mle' masks it); pass estimator='map' to use it",
            PriorWarning, stacklevel=stacklevel,
        )


def fit(
    X,
    y,
    likelihood: str,
    *,
    estimator: str = "mle",
    prior: Optional[str] = None,
    prior_scale: Optional[float] = None,
    noise_scale: Optional[float] = None,
    df: float = 4.0,
    prior_df: Optional[float] = None,
    fit_intercept: bool = True,
    penalize_intercept: bool = False,
    optimizer: str = "lbfgs",
    batch_size: Optional[int] = None,
    seed: int = 0,
    tol: Optional[float] = None,
    max_iter: Optional[int] = None,
    num_steps: Optional[int] = None,
    lr: float = DEFAULT_LR,
    check_every: int = DEFAULT_CHECK_EVERY,
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
        ``gaussian``, ``laplace``, ``bernoulli``, ``categorical``, ``poisson``, ``studentt``,
        ``hetero_gaussian`` (log σ(x) = x·a + c a second linear head, see
        :mod:`bayesloss.hetero`; a second network with ``mean="mlp"``); or a list of them, one
        per column of ``y`` (n, m): one joint model whose NLL is the sum of the outputs'
        (``noise_scale`` may then be a list, one per output), returning a
        :class:`~bayesloss.multioutput.MultiFit` (see :mod:`bayesloss.multioutput`).
    estimator:
        ``"mle"`` masks the prior off; ``"map"`` turns it on.
    prior, prior_scale, prior_df:
        ``normal`` (default), ``laplace``, ``studentt`` (``prior_df`` degrees of freedom,
        default 3) or ``cauchy``, centred at 0 with scale τ = ``prior_scale`` (default 1), on
        the weights (and on the intercept if ``penalize_intercept``; flat otherwise). Used by
        MAP only: an MLE fit given any of them warns (:class:`~bayesloss.spec.PriorWarning`)
        that the prior is off.
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
        1e-7 for full-batch Adam, 5e-3 with minibatches), in the fit's standardised units
        (columns of unit spread; a real target in units of a smooth likelihood's fixed σ,
        else of its standard deviation), where the curvature per row is about 1. L-BFGS on a
        Laplace likelihood counts as converged only with an optimality certificate whose
        stationarity residual (per row) is ≤ min(``tol``, 1e-9) (see ``info``; ``tol`` also
        floors the smoothing stages' gradient tolerance); with Adam, kinked objectives are
        judged on the relative change of the exact objective over the last check window.
    max_iter, num_steps, lr, check_every:
        L-BFGS iterations, the whole budget (default 1,000; 5,000 for kinked objectives, whose
        smoothing stages and Newton steps all count); Adam's step budget (default 20,000; 5,000 for kinked objectives or
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
    solver = Solver(optimizer, batch_size, seed, tol, max_iter, num_steps, lr, check_every,
                    progress)
    given = prior_keywords(prior, prior_scale, prior_df)
    model = dict(estimator=estimator, noise_scale=noise_scale, df=df,
                 fit_intercept=fit_intercept, penalize_intercept=penalize_intercept)
    if mean not in ("linear", "mlp"):
        raise ValueError(f"unknown mean {mean!r}; valid names are ['linear', 'mlp']")
    if isinstance(likelihood, (list, tuple)):  # several outputs: one joint model, own module
        from .multioutput import fit_multioutput

        return fit_multioutput(X, y, likelihood, model, given, solver, mean=mean,
                               hidden=hidden, activation=activation)
    spec = make_spec(likelihood, **model, **given)
    warn_prior_off(given, spec, stacklevel=3)
    if mean == "mlp":  # other mean functions live in their own module
        from .neural import fit_network

        return fit_network(X, y, spec, solver, hidden=hidden, activation=activation)
    names = feature_names(X)  # a DataFrame's columns label the weights
    X, y, stats = check_data(X, y, spec, stats=True)
    solver = solver.resolve(X.shape[0], spec.kinked)
    if spec.family.scale_head:  # σ(x) a second head: its own small path
        from .hetero import fit_hetero

        return fit_hetero(X, y, spec, solver, feature_names=names)
    _seed(solver.seed)
    pre = Preconditioner.from_data(X, y, spec, stats, sigma_unit=solver.optimizer == "lbfgs")
    Xp, yp = pre.data(X, y, spec)
    n_outputs = int(y.max()) + 1 if spec.family.multiclass else 1
    problem = _Problem(spec, Xp, yp, n_outputs, pre.model_kwargs(spec), pre)
    multistart = spec.is_map and not spec.prior_spec.log_concave
    run = functools.partial(_optimize, solver=solver, need_objective=multistart)
    start = time.perf_counter()
    # the Newton start is a full-batch step: L-BFGS's; Adam starts where the user's SVI would
    best = run(problem, _initial_values(problem, y, pre), newton=solver.optimizer == "lbfgs")
    if multistart:
        # Heavy-tailed priors give several local modes (a weight near 0, or near its data
        # value): also start from the MLE (when it exists) and the normal-prior MAP, and from
        # a continuation in the prior's tail (normal → Student-t with CONTINUATION_DF → the
        # prior), which follows the normal prior's mode as the tail grows; keep the best.
        path = [replace(spec, estimator="mle"), replace(spec, prior="normal")]
        if spec.effective_prior_df < CONTINUATION_DF:
            path.append(replace(spec, prior="studentt", prior_df=CONTINUATION_DF))
        normal_point = None
        for start_spec in path:
            init = _initial_values(problem, y, pre)
            if start_spec.prior == "studentt" and start_spec.is_map:
                if normal_point is None:
                    continue
                init = normal_point
            first = run(replace(problem, spec=start_spec), init)
            if first.converged:
                if start_spec.is_map and start_spec.prior == "normal":
                    normal_point = first.point
                other = run(problem, first.point)
                other.info["start"] = start_spec.label()
                other.n_iter += first.n_iter
                best = min(best, other, key=lambda r: r.objective)
    info, n_iter, gnorm = best.info, best.n_iter, best.grad_norm
    info["seconds"] = time.perf_counter() - start
    point = {k: v.numpy() for k, v in best.point.items()}
    coef, intercept, scale = pre.to_user(point["weight"], point.get("bias"), point.get("scale"))
    result = Fit.build(
        spec, X, y, coef, intercept, scale, converged=bool(best.converged), n_iter=n_iter,
        grad_norm=gnorm, method=solver.method(), seed=solver.seed, info=info,
        feature_names=names,
    )
    _check_separation(spec, result, X, y)
    if not best.converged:
        if spec.kinked and solver.optimizer == "lbfgs":
            reached = (f"no optimality certificate (gap {info.get('gap', math.inf):.1e}); "
                       f"|grad|∞ of the last smoothing stage {gnorm:.2e}")
        elif spec.kinked:
            reached = ("relative change of the exact objective "
                       f"{info['objective_rel_change']:.1e}")
        else:
            reached = f"|grad|∞ = {gnorm:.2e}"
        if spec.family.classifier and not spec.is_map:
            reached += "; the classes may be separable, in which case the MLE does not exist"
        solver.warn_unconverged(spec.label(), n_iter, reached, stacklevel=2)
    return result
