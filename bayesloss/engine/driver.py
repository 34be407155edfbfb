r"""The one driver: L-BFGS stages (with the smoothing continuation for kinks) and Adam/SVI, on
the delta-guide ELBO of any :class:`~bayesloss.engine.problem.Problem`.

* ``"lbfgs"``: full-batch ``torch.optim.LBFGS`` with a strong-Wolfe line search on
  ``Trace_ELBO().differentiable_loss / n`` (Pyro's ``SVI`` cannot drive L-BFGS: ``PyroOptim``
  passes no closure). :func:`lbfgs_stage` is the only place the package (references aside)
  builds one. A smooth objective stops when the gradient's ∞-norm per row is ≤ ``tol`` (or,
  within :data:`STALL_FACTOR` of it, where float64 no longer resolves a decrease:
  :func:`stop_rule`); a problem with an exact Newton step (:meth:`Problem.newton`) finishes
  with it. A kinked one (a Laplace likelihood or prior) is smoothed, ``|r| ≈ sqrt(r² + ε²) − ε``,
  and solved for ε = 1e-1 … 1e-8 in turn, each stage warm-started (:func:`continuation`); the
  problem's ``after_stage`` hook runs after each stage (an exact finish, a measured change)
  and its ``judge`` decides what converged means.
* ``"adam"``: ``pyro.infer.SVI`` with ``ClippedAdam`` and a geometrically decaying learning
  rate, full batch or minibatches (:func:`run_adam`); the same loop fits guides with spread
  (variational inference) on a stochastic ELBO, stopped on its plateau (:class:`ElboPlateau`).

``max_iter`` is the whole budget across stages, Newton steps and exact finishes; one
:class:`~bayesloss.spec.ConvergenceWarning` text (:meth:`Solver.warn_unconverged`); one
progress bar (:func:`progress_bar`: one tick per objective evaluation, or per Adam step).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace
from typing import Callable, Optional

import numpy as np
import torch
from pyro.infer import SVI, Trace_ELBO
from pyro.optim import ClippedAdam

from .. import console
from ..spec import ConvergenceWarning

OPTIMIZERS = ("lbfgs", "adam")
DTYPE = torch.float64
SMOOTHING_SCHEDULE = tuple(10.0**-k for k in range(1, 9))
STAGE_ITER = 200  # per smoothing stage of a linear fit: later stages refine what earlier leave
STALL_FACTOR = 100.0
NEWTON_FROM = 1e-6  # |grad|∞ from which exact Newton steps finish a smooth fit
NEWTON_STEPS = 5  # at most, before L-BFGS takes over again
PROGRESS_DELAY = 1.0  # seconds before an L-BFGS progress bar appears: quick fits stay quiet
DEFAULT_LR = 0.02  # Adam's initial learning rate
DEFAULT_CHECK_EVERY = 100  # Adam's steps between full-data gradient checks


class DivergenceError(RuntimeError):
    """The objective became NaN or infinite during a fit."""


@dataclass(frozen=True)
class Solver:
    """How a fit runs: :func:`bayesloss.fit`'s optimiser keywords, in one place for every kind
    of fit (linear, network, heteroscedastic, several outputs). None is "the default for this
    fit", which :meth:`resolve` sets from the model and the data."""

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
        ``default_max_iter``, else 5,000 for kinked objectives (their smoothing stages and the exact
        finish's Newton steps all count) and 1,000 otherwise; ``num_steps`` 5,000 for kinked or
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


def raise_if_bad(value: torch.Tensor, where: str):
    """:class:`DivergenceError` for a NaN / infinite objective."""
    if not torch.isfinite(value):
        raise DivergenceError(
            f"the objective became {value.item()} during {where}; the model may be ill-posed "
            "for these data (e.g. counts far too large for a log link, or a prior scale too "
            "small or large), or the data need rescaling"
        )


def flat_grad(params) -> torch.Tensor:
    """The parameters' gradients as one vector."""
    return torch.cat([p.grad.reshape(-1) for p in params if p.grad is not None])


class Objective:
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
            raise_if_bad(loss.detach(), self.where)
            loss.backward()
            self._point, self._loss = point, loss.detach()
            self._grads = [None if p.grad is None else p.grad.clone() for p in self.params]
        for p, g in zip(self.params, self._grads):
            p.grad = None if g is None else g.clone()
        return self._loss

    def grad_norm(self) -> float:
        """|grad|∞ at the current point."""
        self()
        return float(flat_grad(self.params).abs().max())

    def clear_grads(self) -> None:
        for p in self.params:
            p.grad = None


def as_objective(loss, params) -> Objective:
    """``loss`` (a loss function or an :class:`Objective`) as an :class:`Objective`."""
    return loss if isinstance(loss, Objective) else Objective(loss, params)


def elbo_loss(model, guide, X, y, bar=None) -> Callable:
    """The delta-guide ELBO per row, ``Trace_ELBO().differentiable_loss / n``: the −log joint
    at the guide's point (progress: one tick per evaluation)."""
    elbo, n = Trace_ELBO(), X.shape[0]

    def loss():
        if bar is not None:
            bar.update(1)
        return elbo.differentiable_loss(model, guide, X, y) / n

    return loss


def lbfgs_stage(loss_fn, params, tol: float, max_iter: int, ftol: float = 0.0
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
    objective = as_objective(loss_fn, params)

    def closure():
        opt.zero_grad()
        return objective()

    opt.step(closure)
    n_iter = opt.state[opt._params[0]].get("n_iter", 0)
    # the gradient where it stopped (cached unless the line search ended elsewhere)
    return int(n_iter), objective.grad_norm()


def stop_rule(n_iter, gnorm, tol, max_iter):
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


def accept_step(params, objective: Objective, step, then: Optional[Callable] = None
                ) -> Optional[float]:
    """Add ``step`` (one tensor per parameter) and keep it under the one acceptance rule of
    every Newton step: the loss decreased, or it is unchanged to its rounding and the gradient
    decreased (near the optimum a step changes the loss by ~|g|², below the rounding of a sum
    over the rows: there the gradient decides). ``then`` is a move that follows the step (a
    learned scale set to its optimum given the new weights): the rule judges both together, so
    the point where they end is evaluated once. Returns the gradient ∞-norm where the step
    ended, or None when it was undone (every parameter back where it was)."""
    before, g_before = objective(), objective.grad_norm()
    objective.clear_grads()
    saved = [p.detach().clone() for p in objective.params]
    with torch.no_grad():
        for p, s in zip(params, step):
            p.add_(s.reshape(p.shape))
    if then is not None:
        then()
    after, g_after = objective(), objective.grad_norm()
    objective.clear_grads()
    level = 1e-14 * max(1.0, abs(float(before)))
    if after < before or (after <= before + level and g_after < g_before):
        return g_after
    with torch.no_grad():
        for p, v in zip(objective.params, saved):
            p.copy_(v)
    return None


def progress_bar(total, enabled, desc, delayed: bool = False):
    """A tqdm bar on stderr (:func:`bayesloss.console.progress_bar`: a widget in a notebook),
    or None when not ``enabled``; ``delayed``: it shows only once the run has lasted
    :data:`PROGRESS_DELAY` seconds (L-BFGS fits, mostly quick)."""
    if not enabled:
        return None
    return console.progress_bar(total=total, desc=desc, leave=False,
                                delay=PROGRESS_DELAY if delayed else 0.0)


def run_lbfgs(problem, guide, params, tol: float, max_iter: int, exact: Objective):
    """L-BFGS on ``exact`` (the ELBO of the exact model), finished by the problem's Newton
    step; or, for a kinked problem, the smoothing continuation judged by the problem.
    Returns ``(iterations, |grad|∞, converged, info)``."""
    if problem.spec.kinked:
        total, gnorm, eps = continuation(problem, guide, params, tol, max_iter)
        return problem.judge(guide, exact, tol, max_iter, total, gnorm, eps)
    newton = getattr(problem, "newton", None)
    if newton is None:
        n_iter, gnorm = lbfgs_stage(exact, params, tol, max_iter)
        return (n_iter, gnorm) + stop_rule(n_iter, gnorm, tol, max_iter)
    # Where the problem is quadratic in well-conditioned coordinates the gradient tolerance
    # already bounds the parameters' error: L-BFGS alone finishes, unless its line search
    # stalls where the loss no longer resolves a decrease, and Newton does. Otherwise L-BFGS
    # goes to NEWTON_FROM and exact Newton steps (quadratic convergence: two or three from
    # there) finish, at least one of them.
    quadratic = problem.quadratic
    n_iter, gnorm = lbfgs_stage(exact, params, tol if quadratic else max(tol, NEWTON_FROM),
                                max_iter)
    for step in range(NEWTON_STEPS):
        if n_iter >= max_iter or (gnorm <= tol and (quadratic or step > 0)):
            break
        polished = newton(guide, exact)
        if polished is None:
            break
        n_iter, gnorm = n_iter + 1, polished
    if gnorm > tol and n_iter < max_iter:  # Newton could not finish: L-BFGS does
        more, gnorm = lbfgs_stage(exact, params, tol, max_iter - n_iter)
        n_iter += more
    return (n_iter, gnorm) + stop_rule(n_iter, gnorm, tol, max_iter)


def continuation(problem, guide, params, tol: float, max_iter: int):
    """The smoothing continuation: one warm-started L-BFGS stage per ε of
    :data:`SMOOTHING_SCHEDULE` within the whole budget ``max_iter`` (``problem.stage_iter``
    caps a stage, None: the budget left), then ``problem.after_stage(guide, ε)`` →
    ``(iterations it spent, done)``. Returns ``(iterations, last stage's |grad|∞, last ε)``."""
    total, gnorm, eps = 0, math.inf, SMOOTHING_SCHEDULE[0]
    for eps in SMOOTHING_SCHEDULE:
        if total >= max_iter:
            break
        budget = max_iter - total
        if problem.stage_iter is not None:
            budget = min(problem.stage_iter, budget)
        # A stage need not be solved more finely than its smoothing perturbs the optimum; near
        # the kinks the per-row loss stops resolving further progress at ~1e-13.
        n_iter, gnorm = lbfgs_stage(problem.loss(guide, problem.model(eps)), params,
                                    max(tol, 1e-2 * eps), budget, ftol=1e-13)
        total += n_iter
        extra, done = problem.after_stage(guide, eps, tol, max_iter - total)
        total += extra
        if done:
            break
    return total, gnorm, eps


class ObjectiveChange:
    """An ``after_stage`` measure for kinked problems without an exact finish (networks): the
    relative change of the exact objective over the last stage, ``rel_change``."""

    def __init__(self, exact: Callable):
        self.exact, self.previous, self.rel_change = exact, None, math.inf

    def __call__(self) -> None:
        with torch.no_grad():
            current = float(self.exact())
        if self.previous is not None:
            self.rel_change = abs(self.previous - current) / max(abs(current), 1.0)
        self.previous = current


def full_grad_norm(elbo, model, guide, params, X, y) -> float:
    """|grad|∞ of the per-row ELBO on the full data (gradients cleared after)."""
    for p in params:
        p.grad = None
    loss = elbo.differentiable_loss(model, guide, X, y) / X.shape[0]
    raise_if_bad(loss.detach(), "Adam")
    loss.backward()
    g = float(flat_grad(params).abs().max())
    for p in params:
        p.grad = None
    return g


class ElboPlateau:
    """The stopping rule of a stochastic ELBO (a guide with spread, several particles), with a
    step decay at each plateau.

    The −ELBO estimates of each ``window`` steps are averaged; a window ends on a plateau when
    its mean is not below the previous window's by more than ``max(tol, 2 se)``, ``se`` the
    standard error of that difference (each window's spread of estimates / √window): the
    decrease is lost in the Monte Carlo noise, or below ``tol`` nats where the estimates hardly
    vary (a guide that matches the posterior has an almost constant log p − log q). Both
    windows must belong to the current learning rate. At a plateau the learning rate is
    multiplied by ``factor`` (the iterate's noise shrinks with it) ``decays`` times; the next
    plateau stops the run. So a run takes at least ``2 (decays + 1)`` windows.

    Called with each step's −ELBO estimate; returns None, ``"decay"`` or ``"stop"``.
    ``losses`` keeps them all, ``converged`` whether the final plateau was reached.
    """

    def __init__(self, window: int, tol: float, decays: int = 1, factor: float = 0.1):
        self.window, self.tol = int(window), float(tol)
        self.decays, self.factor = int(decays), float(factor)
        self.losses: list = []
        self.converged = False
        self._phase_start = 0  # the first step at the current learning rate

    def __call__(self, loss: float) -> Optional[str]:
        self.losses.append(loss)
        w, n = self.window, len(self.losses)
        if n % w or n - self._phase_start < 2 * w:
            return None
        previous, current = np.array(self.losses[-2 * w:-w]), np.array(self.losses[-w:])
        se = math.sqrt((previous.var(ddof=1) + current.var(ddof=1)) / w)
        if previous.mean() - current.mean() > max(self.tol, 2.0 * se):
            return None
        if self.decays:
            self.decays -= 1
            self._phase_start = n
            return "decay"
        self.converged = True
        return "stop"


def run_adam(problem, guide, params, solver: Solver, elbo=None,
             plateau: Optional[ElboPlateau] = None):
    """SVI with ClippedAdam (``solver``'s ``lr``, ``num_steps``, ``batch_size``, ``tol``,
    ``check_every``, ``progress``), the learning rate decaying geometrically over ``num_steps``.

    ``elbo`` is the SVI loss (default ``Trace_ELBO()``, exact for a delta guide). With a
    ``plateau`` rule the guide has spread and the ELBO is a Monte Carlo estimate: the learning
    rate decays to 1/10 of ``lr`` over ``num_steps`` and drops by the rule's factor at each of
    its plateaus, the run stops when the rule says so (``converged`` is the rule's) and returns
    the Polyak–Ruppert average of the iterates over the last window (``check_every`` steps);
    none of the gradient checks below apply (the returned |grad|∞ is NaN).

    Full-batch smooth objectives stop once the full-data gradient ∞-norm is ≤ ``tol``. At a
    kink no gradient gets small, and minibatch gradients are noisy: either way the iterate
    hovers within about one learning rate of the optimum, so those fits run the whole schedule
    (kinks: down to 1e-4 of ``lr``; minibatches: down to 1/10 of ``lr``, returning the
    Polyak–Ruppert average of the iterates over the schedule's second half). Kinked ones count
    as converged when the exact objective changed by ≤ ``tol`` (relative) over the last check
    window, minibatch ones when the full-data gradient ∞-norm ends ≤ ``tol``. The problem's
    ``shift(guide)`` runs every ``check_every`` steps.
    """
    spec = problem.spec
    tol, num_steps, lr, batch_size = solver.tol, solver.num_steps, solver.lr, solver.batch_size
    check_every = solver.check_every
    model = problem.model()
    stochastic = plateau is not None
    # Kinks and minibatch noise both keep the iterate within about one learning rate of the
    # optimum: those runs take their whole schedule, decaying further.
    whole_schedule = not stochastic and (spec.kinked or batch_size is not None)
    minibatch = batch_size is not None
    # Minibatch noise: a gentle decay (to 1/10) and the Polyak–Ruppert average of the iterates
    # over the second half of the schedule, whose error shrinks like 1/√(steps averaged);
    # a step decayed to ~0 would instead freeze the iterate wherever the noise left it.
    final_lr_ratio = 1e-1 if minibatch or stochastic else 1e-4 if whole_schedule else 1e-3
    average_from = num_steps // 2 if minibatch else num_steps + 1
    average, n_avg = None, 0
    optim = ClippedAdam({"lr": lr, "lrd": final_lr_ratio ** (1.0 / num_steps), "clip_norm": 1e6})
    svi = SVI(model, guide, optim, Trace_ELBO() if elbo is None else elbo)
    exact_elbo = Trace_ELBO()  # the delta guide's objective, for the checks
    X, y = problem.X, problem.y
    bar = progress_bar(num_steps, solver.progress, f"adam {spec.label()}")
    shift = problem.shift(guide)
    exact_prev, rel_change, gnorm, step = None, math.inf, math.inf, 0
    for step in range(1, num_steps + 1):
        loss = svi.step(X, y, batch_size)
        if not math.isfinite(loss):
            raise_if_bad(torch.tensor(loss), "Adam (SVI)")
        if bar is not None:
            bar.update(1)
        if step > average_from or stochastic:
            with torch.no_grad():
                n_avg += 1
                if average is None:
                    average = [p.detach().clone() for p in params]
                else:
                    for a, p in zip(average, params):
                        a.add_((p.detach() - a) / n_avg)
        if step % check_every == 0:
            shift()
        if stochastic:
            verdict = plateau(loss)
            if verdict == "stop":
                break
            if verdict == "decay":
                for opt in optim.optim_objs.values():
                    for group in opt.param_groups:
                        group["lr"] *= plateau.factor
            if step % check_every == 0:  # the next window's average
                average, n_avg = None, 0
        elif spec.kinked:
            if step > num_steps - check_every:  # the last window, to measure its change
                with torch.no_grad():
                    exact = float(exact_elbo.differentiable_loss(model, guide, X, y)) / X.shape[0]
                exact_prev = exact if exact_prev is None else exact_prev
                rel_change = abs(exact_prev - exact) / max(abs(exact), 1.0)
        elif not whole_schedule and (step % check_every == 0 or step == num_steps):
            gnorm = full_grad_norm(exact_elbo, model, guide, params, X, y)
            if gnorm <= tol:
                break
    if bar is not None:
        bar.close()
    if average is not None:
        with torch.no_grad():
            for a, p in zip(average, params):
                p.copy_(a)
    if whole_schedule:
        gnorm = full_grad_norm(exact_elbo, model, guide, params, X, y)
    if stochastic:
        converged, gnorm = plateau.converged, math.nan
    else:
        converged = rel_change <= tol if spec.kinked else gnorm <= tol
    info = {"lr": lr, "final_lr_ratio": final_lr_ratio}
    if spec.kinked and not stochastic:
        info["objective_rel_change"] = rel_change
    return step, gnorm, converged, info


def minimise_elbo(model, guide, *args, tol: float = 1e-12, max_iter: int = 500):
    """Fit a point guide by :func:`lbfgs_stage` on ``Trace_ELBO().differentiable_loss`` of
    ``model(*args)`` (small models with no problem around them: a demo, a test). Returns
    ``(iterations, |grad|∞)``."""
    guide(*args)  # creates the guide's parameters
    params = list(guide.parameters())
    elbo = Trace_ELBO()
    return lbfgs_stage(lambda: elbo.differentiable_loss(model, guide, *args), params, tol,
                       max_iter)
