r"""Point inference (MLE / MAP) with Pyro's ``AutoDelta`` guide.

The delta-guide ELBO is exactly the negative log joint density at the guide's point (a Delta
has log-density 0), so minimising ``Trace_ELBO().differentiable_loss(model, guide)`` finds the
mode of ``p(y, θ)`` in the *constrained* space: the MLE with the prior masked off, the MAP with
it on.

:func:`fit` is a thin dispatcher: it checks the inputs, builds a problem (a linear mean here:
:class:`~bayesloss.engine.LinearProblem`; networks, heteroscedastic and multi-output models in
their own modules) and runs the one driver of :mod:`bayesloss.engine` on it. Two optimisers:

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
columns (see :class:`~bayesloss.engine.Preconditioner`). Results are mapped back to the user's scale.

Non-convex MAP problems (Student-t / Cauchy priors) are started four ways (zero, the MLE, the
normal-prior MAP, and the Student-t(ν = 10)-prior MAP reached from the normal one) and the
best optimum is kept.
"""

from __future__ import annotations

import functools
import math
import random
import time
from dataclasses import replace
from typing import Optional

import numpy as np
import torch

from .engine import (
    DEFAULT_CHECK_EVERY, DEFAULT_LR, DivergenceError, LinearProblem, Solver, check_separation,
    initial_values, optimize,
)
from .engine.policy import entry_point
from .hetero import fit_hetero
from .mixture import fit_mixture
from .multioutput import fit_multioutput
from .neural import fit_network
from .results import Fit
from .spec import check_data, feature_names, make_spec, prior_keywords, warn_prior_off

__all__ = ["DivergenceError", "Solver", "fit"]

CONTINUATION_DF = 10.0  # heavy-tailed MAP: a start from the Student-t(ν = 10)-prior mode


def _seed(seed: int) -> None:
    """What ``pyro.set_rng_seed`` seeds (Python, numpy, torch), with torch's CPU generator
    seeded directly: ``torch.manual_seed`` also queues a seed for each lazily initialised
    accelerator back end, formatting a stack trace for each, which costs more than a small fit."""
    random.seed(seed)
    np.random.seed(seed)
    torch.default_generator.manual_seed(seed)


@entry_point
def fit(
    X,
    y=None,
    likelihood: Optional[str] = None,
    *,
    data=None,
    estimator: str = "mle",
    prior: Optional[str] = None,
    prior_scale: Optional[float] = None,
    noise_scale: Optional[float] = None,
    trials=None,
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
    components: Optional[int] = None,
) -> Fit:
    r"""Fit the Pyro model of ``likelihood`` by MLE (prior off) or MAP (prior on).

    Parameters
    ----------
    X, y:
        Design (n, d) and target (n,): real values, 0/1 (bernoulli), labels 0..K-1
        (categorical) or counts (poisson). Or a formula in ``X``'s place, ``"y ~ x1 + C(g)"``,
        with ``data=`` its frame and no ``y`` (see :mod:`bayesloss.formula`): the weights
        take statsmodels' formula names, the formula's intercept is the fit's, and the fit
        predicts on new frames through it.
    likelihood:
        ``gaussian``, ``laplace``, ``bernoulli``, ``categorical``, ``poisson``, ``studentt``,
        ``hetero_gaussian`` (log σ(x) = x·a + c a second linear head, see
        :mod:`bayesloss.hetero`; a second network with ``mean="mlp"``), ``von_mises`` (angles,
        μ = b + 2·atan(x·w)), ``gaussian_mixture`` (``components`` regression lines with their
        own σₖ and mixing weights, see :mod:`bayesloss.mixture`; a mixture density network
        with ``mean="mlp"``), or a :class:`~bayesloss.Likelihood` of your own (any Pyro
        distribution of the prediction, ``make(loc, scale)``); or a list of them, one
        per column of ``y`` (n, m): one joint model whose NLL is the sum of the outputs'
        (``noise_scale`` may then be a list, one per output), returning a
        :class:`~bayesloss.multioutput.MultiFit` (see :mod:`bayesloss.multioutput`).
    data:
        The DataFrame of a formula's columns (with a formula in ``X``'s place only).
    estimator:
        ``"mle"`` masks the prior off; ``"map"`` turns it on.
    prior, prior_scale, prior_df:
        ``normal`` (default), ``laplace``, ``studentt`` (``prior_df`` degrees of freedom,
        default 3) or ``cauchy``, centred at 0 with scale τ = ``prior_scale`` (default 1), on
        the weights (and on the intercept if ``penalize_intercept``; flat otherwise). Used by
        MAP only: an MLE fit given any of them warns (:class:`~bayesloss.spec.PriorWarning`)
        that the prior is off.
    noise_scale:
        Fixed σ (gaussian, studentt), b (laplace), shape (gamma), α (negative_binomial) or φ
        (beta); None learns it (flat prior on (0, ∞)).
    trials:
        binomial's number of trials nᵢ (``y`` counts successes out of them): one positive
        integer, or one per row (1 for 0/1 outcomes: the bernoulli model).
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
        relative duality gap is ≤ min(``tol``, 1e-9) (see ``info``; ``tol`` also
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
    components:
        K, the number of components of ``gaussian_mixture`` (default 2; refused by the other
        likelihoods).

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
    if isinstance(X, str) or data is not None or y is None or likelihood is None:
        from .formula import call_with_formula  # a formula on a frame (or arguments missing)

        return call_with_formula(fit, locals())
    solver = Solver(optimizer, batch_size, seed, tol, max_iter, num_steps, lr, check_every,
                    progress)
    given = prior_keywords(prior, prior_scale, prior_df)
    model = dict(estimator=estimator, noise_scale=noise_scale, trials=trials, df=df,
                 fit_intercept=fit_intercept, penalize_intercept=penalize_intercept,
                 components=components)
    if mean not in ("linear", "mlp"):
        raise ValueError(f"unknown mean {mean!r}; valid names are ['linear', 'mlp']")
    if isinstance(likelihood, (list, tuple)):  # several outputs: one joint model, own module
        return fit_multioutput(X, y, likelihood, model, given, solver, mean=mean,
                               hidden=hidden, activation=activation)
    spec = make_spec(likelihood, **model, **given)
    warn_prior_off(given, spec, stacklevel=3)
    if mean == "mlp":  # other mean functions live in their own module
        return fit_network(X, y, spec, solver, hidden=hidden, activation=activation)
    names = feature_names(X)  # a DataFrame's columns label the weights
    X, y, stats = check_data(X, y, spec, stats=True)
    solver = solver.resolve(X.shape[0], spec.kinked)
    if spec.family.scale_head:  # σ(x) a second head: its own adapter
        return fit_hetero(X, y, spec, solver, stats=stats, feature_names=names)
    if spec.family.components:  # K lines, σₖ and mixing weights: several starts, own adapter
        return fit_mixture(X, y, spec, solver, stats=stats, feature_names=names)
    _seed(solver.seed)
    problem = LinearProblem.of(X, y, spec, stats, sigma_unit=solver.optimizer == "lbfgs")
    pre = problem.pre
    multistart = spec.is_map and not spec.prior_spec.log_concave
    run = functools.partial(optimize, solver=solver, need_objective=multistart)
    start = time.perf_counter()
    # the Newton start is a full-batch step: L-BFGS's; Adam starts where the user's SVI would
    best = run(problem, initial_values(problem, y), newton=solver.optimizer == "lbfgs")
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
            init = initial_values(problem, y)
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
    check_separation(spec, result, X, y)
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
