"""Exact finishing steps of smooth fits and of kinked priors, one acceptance rule
(:func:`~bayesloss.engine.driver.accept_step`) for every Newton step: a learned scale set to its
exact optimum, a Newton step on a linear model's parameters (the Hessian from the family's
per-row curvature) or on every site of a small model (autograd Hessian), the Newton start, the
softmax weights' common shift, and the active-set polish of a Laplace prior."""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch
from pyro import poutine
from torch.distributions import biject_to

from ..spec import ModelSpec
from .driver import DTYPE, STALL_FACTOR, Objective, accept_step, as_objective, lbfgs_stage, stop_rule

FACE_NEWTON_STEPS = 5  # at most, after L-BFGS on a kinked prior's face
FACE_BACKTRACKS = 20  # halvings of a face Newton step before it is given up
ZERO_THRESHOLD = 1e-6  # |w| (standardised units) the continuation leaves for an exact zero


def profile_scale(problem, guide) -> None:
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
        param.copy_(profile_t(spec, problem.y, eta, param.detach().clone()))


def profile_t(spec: ModelSpec, y: torch.Tensor, eta: torch.Tensor, t: torch.Tensor):
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


def same_curvature(spec: ModelSpec) -> bool:
    """Every row has the same curvature in η whatever y and η: least squares with one σ (known
    per-row σᵢ weight the rows)."""
    return spec.family.constant_curvature and not spec.row_scales



def weighted_gram(X: np.ndarray, c: np.ndarray, m: Optional[np.ndarray]):
    """``(Dᵀ diag(c) D, Dᵀ c)`` for the design ``D = X − m`` (``m`` None: ``D = X``), in one
    pass over X and without a centred copy: the centring is a rank-two correction of the
    small matrices (the preconditioner folds it into the intercept only while |m| stays within
    a few spreads of each column, so it costs at most a digit of the curvature, which only
    steers a Newton step the ELBO's own gradient judges). Non-negative weights (every row's
    curvature in a convex family) take BLAS's symmetric product on ``√c·X``, half a general
    product's work."""
    s = X.T @ c
    if (c >= 0).all():
        Z = X * np.sqrt(c)[:, None]
        G = Z.T @ Z  # numpy recognises Zᵀ Z: a symmetric rank-k update
    else:
        G = X.T @ (X * c[:, None])
    if m is not None:
        total = c.sum()
        G = G - np.outer(s, m) - np.outer(m, s) + total * np.outer(m, m)
        s = s - total * m
    return G, s


def newton_polish(problem, guide, objective, free: Optional[np.ndarray] = None
                  ) -> Optional[float]:
    """One exact Newton step on (w', b') at the end of a smooth fit, or on the face of a
    kinked-prior fit: ``free`` marks the coordinates of θ = (vec w', b') off their kink (the
    others stay at exactly zero, and the prior is linear on the face).

    L-BFGS stops on the gradient; where the Hessian has small eigenvalues (a nearly separable
    logistic fit, collinear columns that whitening by the Gram matrix does not reach because
    the curvature differs per row, softmax's shift common to the classes) a gradient of 1e-9
    still leaves ~1e-6 in the parameters. The Hessian is the model's own,
    ``Σ_kl X̃ᵀ diag(c_kl) X̃ ⊗ e_k e_lᵀ + ∇²P`` with ``c_kl`` the per-row curvature of the NLL
    in η (autograd; K × K per row for softmax, whose shift common to the K classes is a null
    direction: least squares) — the work of K(K+1)/2 Gram matrices — and the gradient is the
    ELBO's. The step is kept if it lowers the loss, or the gradient with the loss unchanged to
    its rounding (:func:`~bayesloss.engine.driver.accept_step`). A learned scale is then re-set
    to its exact optimum. Returns the gradient ∞-norm where it ended, or None when the step was
    not kept.
    """
    spec, pre = problem.spec, problem.pre
    if spec.kinked and free is None:
        return None
    objective = as_objective(objective, guide.parameters())
    named = dict(guide.named_parameters())
    weight = named["weight_unconstrained"]
    bias = named.get("bias_unconstrained")
    X = problem.X.numpy()
    n, d = X.shape
    # the design is X − m: the centring is applied to the Gram matrices, not to a copy of X
    m = None if pre.centred_data or not pre.x_mean.any() else pre.x_mean
    k = problem.n_outputs if spec.family.multiclass else 1
    A = pre.matrix if pre.matrix.ndim == 2 else np.diag(pre.matrix)
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
    c = c.numpy()
    Hw = np.zeros((d, k, d, k))
    Hwb = np.zeros((d, k, k))
    for a in range(k):
        for b in range(a, k):
            G, s = weighted_gram(X, c[:, a, b], m)
            G, s = A.T @ G @ A, A.T @ s
            Hw[:, a, :, b], Hw[:, b, :, a] = G, G
            Hwb[:, a, b], Hwb[:, b, a] = s, s
    H = Hw.reshape(d * k, d * k)
    theta = weight.detach().numpy().reshape(-1)
    if bias is not None:
        hb = Hwb.reshape(d * k, k)
        H = np.block([[H, hb], [hb.T, c.sum(0)]])
        theta = np.r_[theta, bias.detach().numpy().reshape(-1)]
    H = H + prior_terms(problem)(theta)[2] / n
    objective()  # where L-BFGS stopped (cached): its gradient
    g = torch.cat([weight.grad.reshape(-1)]
                  + ([bias.grad.reshape(-1)] if bias is not None else [])).numpy()
    objective.clear_grads()
    on = np.flatnonzero(free) if free is not None else np.arange(len(g))
    H, step = H[np.ix_(on, on)], np.zeros(len(g))
    try:
        # softmax: the gradient is orthogonal to the classes' common shift, the Hessian's null
        # direction; least squares gives the step without it
        step[on] = (-np.linalg.lstsq(H, g[on], rcond=None)[0] if k > 1
                    else -np.linalg.solve(H, g[on]))
    except np.linalg.LinAlgError:
        return None
    params = [weight] + ([bias] if bias is not None else [])
    step = torch.as_tensor(step)
    # on a kinked prior's face a full step can carry a weight across its kink: backtrack
    for t in (1.0,) if free is None else 0.5 ** np.arange(FACE_BACKTRACKS):
        g_after = accept_step(params, objective, [t * step[:d * k], t * step[d * k:]][:len(params)],
                              then=rescale(problem, guide))
        if g_after is not None:
            return g_after
    return None


def rescale(problem, guide):
    """A learned scale's move to its optimum after a Newton step on the weights
    (:func:`profile_scale`), for :func:`~bayesloss.engine.driver.accept_step`'s ``then``;
    None where the scale is fixed."""
    return (lambda: profile_scale(problem, guide)) if problem.spec.learns_scale else None


def likelihood_gradient(problem, point: dict, scale) -> torch.Tensor:
    """The gradient in the weights of the mean NLL per row at ``point`` (the guide's values),
    through the problem's own mean function and the family's distribution, without a trace."""
    spec = problem.spec
    w = point["weight"].detach().clone().requires_grad_(True)
    with torch.enable_grad():
        eta = problem.model_kwargs["mean_fn"](problem.X, w, point.get("bias"))
        nll = spec.family.nll(problem.y, eta, scale, spec.df) / problem.X.shape[0]
        (g,) = torch.autograd.grad(nll, w)
    return g


def newton_start(problem, guide, objective) -> bool:
    """One Newton step on the weights from the intercept-only start (whitened designs).

    At the start every row has the same linear predictor η₀, so the data Hessian in the
    whitened weights is ``h ⊗ (UᵀG U)`` with ``h`` the family's mean curvature at η₀ (a K × K
    matrix for softmax); the preconditioner made ``UᵀG U = I − Q`` (Q: its share of the normal
    prior's curvature). The step is exact for least squares, and for logistic / Poisson /
    softmax MLE it is the first IRLS step; L-BFGS takes it from there. The gradient is the
    ELBO's own, and the step is kept under :func:`~bayesloss.engine.driver.accept_step`'s
    rule, except for least squares (the problem's ``quadratic``): there the step lands on the
    minimiser, so it is taken without a comparison, and the gradient at w = 0 is the
    likelihood's alone (a zero-mean normal prior, the only one whitened, has none there), by
    autograd through the model's own mean and distribution without a Pyro trace. That saves
    one of the two ELBO evaluations a least-squares fit costs; the driver judges the point
    where the step ends.
    Returns whether it was taken.
    """
    spec, pre = problem.spec, problem.pre
    if pre.whiten is None or spec.kinked or spec.family.inner_link is not None:
        return False
    objective = as_objective(objective, guide.parameters())
    named = dict(guide.named_parameters())
    weight = named["weight_unconstrained"]
    with torch.no_grad():
        point = guide.median()
    scale = point.get("scale", problem.model_kwargs.get("noise_scale"))
    scale = None if scale is None else torch.as_tensor(scale, dtype=DTYPE)
    if problem.quadratic:
        g = likelihood_gradient(problem, point, scale)
    else:
        objective()
        g = weight.grad.detach().clone()
        objective.clear_grads()
    # w = 0: every row has the intercept's η; one row gives it
    eta0 = problem.model_kwargs["mean_fn"](problem.X[:1], point["weight"], point.get("bias"))[0]
    eta0 = eta0.detach()

    # the rows' mean curvature at η₀; least squares has the same curvature in every row
    rows = problem.y[:1] if same_curvature(spec) else problem.y

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
    then = rescale(problem, guide)
    if problem.quadratic:
        with torch.no_grad():
            weight.add_(step.reshape(weight.shape))
        if then is not None:
            then()
        return True
    return accept_step([weight], objective, [step], then=then) is not None


def prior_terms(problem):
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


def exact_scale(spec: ModelSpec, r: np.ndarray, b: float) -> float:
    """The learned scale's optimum given residuals ``r`` (see :func:`profile_scale`)."""
    return float(profile_t(spec, torch.as_tensor(r), torch.zeros_like(torch.as_tensor(r)),
                            torch.tensor(math.log(b), dtype=DTYPE)).exp())


def class_shift(problem, guide):
    """For softmax weights, a shift common to the K classes of one feature leaves the
    likelihood unchanged, so only the prior pins it down: through a kink (laplace), or with
    almost no curvature when the prior is wide, poorly for a gradient method. Return a step
    that sets each feature's shift to its optimum: the median (laplace) or the mean (normal) of
    its K weights, or for a Student-t / Cauchy prior the local minimum of the prior along the
    shift (:func:`student_shift`); it can only lower the objective."""
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
                weight.sub_(student_shift(weight, tau, spec.effective_prior_df)[:, None])
            else:
                weight.sub_(weight.mean(dim=1, keepdim=True))

    return shift


def student_shift(w: torch.Tensor, tau: torch.Tensor, nu: float) -> torch.Tensor:
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


def polish_active_set(problem, guide, exact, tol, max_iter, n_iter, info):
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
        polish_iter, gnorm = lbfgs_stage(exact, params, tol, max_iter)
        # L-BFGS on the face can stall short of tol on an ill-conditioned design (unscaled
        # softmax on wine): exact Newton steps on the free coordinates finish it, after the
        # weights that L-BFGS carried onto their kink join the zeros (the face is linear only
        # off the kinks)
        for site in kinked_sites:
            p = named[f"{site}_unconstrained"]
            with torch.no_grad():
                masks[site].mul_((p.abs() > ZERO_THRESHOLD).to(p.dtype))  # the hook's mask
                p.mul_(masks[site])
        free = np.r_[masks["weight"].numpy().reshape(-1),
                     masks["bias"].numpy().reshape(-1) if "bias" in masks else
                     np.ones(named["bias_unconstrained"].numel() if "bias_unconstrained" in named
                             else 0)].astype(bool)
        for _ in range(FACE_NEWTON_STEPS):
            if gnorm <= tol or polish_iter >= max_iter:
                break
            stepped = newton_polish(problem, guide, exact, free=free)
            if stepped is None:
                break
            polish_iter, gnorm = polish_iter + 1, stepped
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
    converged, stop = stop_rule(polish_iter, gnorm, tol, max_iter)
    ok = kkt <= STALL_FACTOR * tol and after <= before + 1e-15 * max(1.0, abs(before))
    info.update(stop, polish="accepted" if ok else "rejected", kkt_violation=kkt,
                zeros=int(sum(float((1 - m).sum()) for m in masks.values())))
    if not ok:  # keep the continuation's answer, which then has no certificate
        with torch.no_grad():
            for p, v in zip(params, saved):
                p.copy_(v)
        return n_iter + polish_iter, gnorm, False, info
    return n_iter + polish_iter, gnorm, converged, info



def autograd_newton(objective: Objective) -> Optional[float]:
    """One Newton step on every parameter of ``objective`` at once (the guide's unconstrained
    coordinates, as the objective sees them: a learned scale as its log), with the exact
    autograd Hessian: for a linear model whose η is not linear in the weights (a family's
    inner link, b + g(x·w)), where :func:`newton_polish`'s Gram-matrix Hessian does not apply.
    Kept under :func:`~bayesloss.engine.driver.accept_step`'s rule; returns the gradient
    ∞-norm where it ended, or None (not kept, or a singular Hessian)."""
    params = objective.params
    with torch.enable_grad():
        grads = torch.autograd.grad(objective.loss_fn(), params, create_graph=True)
        g = torch.cat([x.reshape(-1) for x in grads])
        rows = []
        for i in range(g.numel()):
            parts = torch.autograd.grad(g[i], params, retain_graph=True, allow_unused=True)
            rows.append(torch.cat([(torch.zeros_like(p) if h is None else h).reshape(-1)
                                   for p, h in zip(params, parts)]))
    try:
        step = -torch.linalg.solve(torch.stack(rows).detach(), g.detach())
    except RuntimeError:  # singular Hessian: leave the L-BFGS answer
        return None
    return accept_step(params, objective, torch.split(step, [p.numel() for p in params]))


def site_newton(model, guide, objective: Objective, X, y) -> Optional[float]:
    """One Newton step on every site of a small model at once: the exact (autograd) Hessian
    of ``model``'s −log joint per row at the guide's point, in the guide's unconstrained
    coordinates (a positive scale's log, as the ELBO's gradient). Kept under
    :func:`~bayesloss.engine.driver.accept_step`'s rule; returns the gradient ∞-norm where it
    ended, or None (not kept, or a singular Hessian)."""
    named = dict(guide.named_parameters())
    with torch.no_grad():
        point = {k: v.detach() for k, v in guide.median().items()}
    names = list(point)
    sizes = [point[k].numel() for k in names]
    params = [named[f"{k}_unconstrained"] for k in names]
    to_site = {k: biject_to(guide.prototype_trace.nodes[k]["fn"].support) for k in names}
    n = X.shape[0]

    def f(vec):
        values = {k: to_site[k](p.reshape(point[k].shape))
                  for k, p in zip(names, torch.split(vec, sizes))}
        trace = poutine.trace(poutine.condition(model, data=values)).get_trace(X, y)
        return -trace.log_prob_sum() / n

    objective()  # the gradient at the current point (cached where L-BFGS stopped)
    g = torch.cat([p.grad.reshape(-1) for p in params])
    objective.clear_grads()
    u = torch.cat([p.detach().reshape(-1) for p in params])
    H = torch.autograd.functional.hessian(f, u)
    try:
        step = -torch.linalg.solve(H, g)
    except RuntimeError:  # singular Hessian: leave the L-BFGS answer
        return None
    return accept_step(params, objective, torch.split(step, sizes))
