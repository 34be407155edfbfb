"""The problem protocol: what the driver (:mod:`bayesloss.engine.driver`) reads from a model.

Linear (:class:`~bayesloss.engine.linear.LinearProblem`), network, heteroscedastic and
multi-output fits are adapters that build one; nothing else about them differs to the driver.
"""

from __future__ import annotations

from typing import Callable, Optional, Protocol

import torch


class Problem(Protocol):
    """A model bound to its data, in the coordinates the fit works in.

    Attributes
    ----------
    spec:
        The model's :class:`~bayesloss.spec.ModelSpec` (the driver reads ``kinked`` and
        ``label()``; a joint model of several outputs gives an object with those two).
    X, y:
        The data as the model takes them (preconditioned where the adapter has a design).
    stage_iter:
        Iterations a smoothing stage may take at most (None: the budget left).

    An adapter with a design matrix also holds ``pre``, the
    :class:`~bayesloss.engine.Preconditioner` whose ``to_user`` (and ``head_to_user``) map its
    coordinates back to the user's scale; the driver itself never reads it.
    """

    spec: object
    X: torch.Tensor
    y: object
    stage_iter: Optional[int]

    def model(self, smoothing: float = 0.0) -> Callable:
        """The Pyro model ``model(X, y, batch_size=None)``; ``smoothing`` > 0 replaces its
        kinks (a Laplace likelihood or prior) by ``sqrt(r² + ε²) − ε``. Its sites and their
        shapes are the parameter layout; with an ``AutoDelta`` guide its
        ``Trace_ELBO().differentiable_loss`` is the −log joint, the objective."""

    def loss(self, guide, model) -> Callable:
        """The objective per row for ``model`` at the guide's point (a closure of no
        arguments; :func:`~bayesloss.engine.driver.elbo_loss` in every adapter here)."""

    def shift(self, guide) -> Callable:
        """A step along directions the likelihood leaves flat (softmax's common shift), run
        between Adam's checks and after each stage; ``lambda: None`` where there are none."""

    def after_stage(self, guide, eps: float, tol: float, budget: int) -> tuple[int, bool]:
        """After the smoothing stage ``eps``: an exact finish or a measurement; returns the
        iterations it spent (out of ``budget``) and whether the schedule is done."""

    def judge(self, guide, exact, tol: float, max_iter: int, n_iter: int, gnorm: float,
              eps: float) -> tuple:
        """A kinked problem's verdict after the continuation: ``(iterations, |grad|∞,
        converged, info)``."""


class SmoothFinish(Protocol):
    """Optional: an exact Newton step for smooth problems (the driver calls ``newton`` when a
    problem has one). ``quadratic``: L-BFGS alone reaches ``tol`` (a Hessian of about the
    identity); else L-BFGS stops at ``NEWTON_FROM`` and Newton steps finish."""

    quadratic: bool

    def newton(self, guide, objective) -> Optional[float]:
        """One Newton step under :func:`~bayesloss.engine.driver.accept_step`'s rule: the
        gradient ∞-norm where it ended, or None (not taken)."""
