r"""Several outputs: one Pyro model whose log-likelihood is the sum of the outputs' own.

.. math::

    -\log p(Y, \theta \mid X) = \sum_{k=1}^{m} -\log p(y_{\cdot k} \mid X, \theta)
    \;[-\ \log p(\theta)\ \text{(MAP)}]

The outputs are independent given ``X`` and the parameters, so the NLL (and the classical loss)
is the sum of the per-output ones. Each output is its single-output model —
:func:`bayesloss.models.build_model` (linear mean) or
:func:`bayesloss.neural.build_network_model` (network mean) — under a name scope
(``pyro.contrib.autoname.scope``): its sites are ``<label>/weight``, ``<label>/bias``,
``<label>/scale``, ``<label>/obs``, the label being ``Y``'s column name (a DataFrame) or
``y0``, ``y1``, … Estimator and prior are shared; ``noise_scale`` may differ per output.

* ``mean="linear"``: separate heads. The joint objective is separable, so its optimum is the
  separate fits' optima; each head keeps its own preconditioning (its block of the joint
  parameter vector is the single fit's, see :class:`bayesloss.engine.Preconditioner`).
* ``mean="mlp"``: one network whose last layer holds one block of rows per output (a shared
  trunk, one head each); its sites (``layers.0.weight``, …) are drawn once, before the
  outputs' scopes. One model, not separable.

Both are fitted jointly, by the loop of the single fits: full-batch L-BFGS on the summed −log
joint through one ``AutoDelta`` guide (for linear heads, one per head, composed), kinked
objectives through the smoothing continuation. Linear heads then take the single fits' exact
finishing steps on their own block (a Newton polish; the optimality certificate of a Laplace
likelihood; the active-set polish of a Laplace prior), which only a separable objective
allows, and which makes the joint fit equal the separate ones to their stopping rules.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import pandas as pd
import pyro
import torch
from pyro import poutine
from pyro.contrib.autoname import scope
from pyro.infer import Trace_ELBO
from pyro.infer.autoguide import AutoDelta
from pyro.infer.autoguide.initialization import init_to_value
from pyro.nn import PyroModule
from torch import nn

from .engine import (
    SMOOTHING_SCHEDULE, STAGE_ITER, LinearProblem, MeasuredFinish, ObjectiveChange, Solver,
    check_separation, full_grad_norm, initial_values, kink_finish, lbfgs_stage, newton_start,
    polish_active_set, profile_scale, progress_bar, run_lbfgs, stop_rule,
)
from .models import build_model
from .neural import (
    DTYPE, NETWORK_MAX_ITER, MLPMean, NetworkFit, build_network_model,
    check_network, evaluate_network, initial_state, network_prior,
)
from .labels import Report, Table
from .results import Fit, as_tensor
from .spec import (
    IdentifiabilityWarning, check_data, feature_names, make_spec,
    warn_prior_off,
)


@dataclass(frozen=True)
class MultiFit:
    """A joint point estimate of several outputs.

    Attributes
    ----------
    outputs:
        One :class:`~bayesloss.results.Fit` per output (a
        :class:`~bayesloss.neural.NetworkFit` for ``mean="mlp"``, holding the shared trunk and
        its own head), in the order of ``Y``'s columns: ``coef_``, ``intercept_``,
        ``scale_``, ``predict``, ``predict_mean``, ``predict_proba``, ``params()``, and its own
        ``nll`` / ``loss`` / ``objective`` (with a shared trunk, an output's objective counts the
        trunk's prior; :attr:`objective` counts it once).
    labels:
        The outputs' names: ``Y``'s column names, or ``y0``, ``y1``, …
    params_:
        The estimate by site name of the joint model (``y0/weight``, ``y0/bias``,
        ``y1/scale``, …; the network's ``layers.*`` for ``mean="mlp"``), on the user's scale.
    nll, loss, objective:
        Sums over the outputs of the NLL and of the classical loss; −log joint density of the
        joint model (NLL + −log prior for MAP).
    converged, n_iter, grad_norm:
        Every output met its stopping rule; L-BFGS iterations of the joint fit; the largest
        final gradient ∞-norm (per row) over the outputs.
    """

    outputs: tuple
    labels: tuple
    params_: dict
    nll: float
    loss: float
    objective: float
    converged: bool
    n_iter: int
    grad_norm: float
    n_samples: int
    method: str
    mean: str
    seed: Optional[int] = None
    info: Optional[dict] = None

    def predict(self, X) -> np.ndarray:
        """(n, m): each output's :meth:`~bayesloss.results.Fit.predict`, one column each."""
        return np.column_stack([o.predict(X) for o in self.outputs])

    def params(self) -> Table:
        """Tidy table of the estimate: the outputs' :meth:`~bayesloss.results.Fit.params`
        with an ``output`` column (a shared trunk's rows once, as output ``(shared)``)."""
        table = pd.concat([o.params().assign(output=label)
                           for label, o in zip(self.labels, self.outputs)], ignore_index=True)
        if self.mean == "mlp":
            head = f"layers.{len(self.outputs[0].hidden)}."
            name = table["parameter"]
            table.loc[name.str.startswith("layers.") & ~name.str.startswith(head),
                      "output"] = "(shared)"
            table = table.drop_duplicates(["output", "parameter"])
        return Table(table[["output", "parameter", "value"]].reset_index(drop=True))

    def summary(self) -> Report:
        """The joint facts, then each output's own summary."""
        families = ", ".join(f"{label}: {o.spec.likelihood}"
                             for label, o in zip(self.labels, self.outputs))
        lines = [
            f"bayesloss fit, {len(self.outputs)} outputs ({families})   [{self.method}]",
            f"  {self.mean} mean, " + ("one network: a shared trunk, one head per output"
                                      if self.mean == "mlp" else "separate heads")
            + "; −log p(Y | X, θ) = Σ over outputs",
            f"  n = {self.n_samples}   NLL = {self.nll:.10g}   loss = {self.loss:.10g}"
            f"   objective (−log joint) = {self.objective:.10g}",
            f"  converged = {self.converged}   iterations = {self.n_iter}"
            f"   |grad|∞ = {self.grad_norm:.2e}   seed = {self.seed}",
        ]
        for label, o in zip(self.labels, self.outputs):
            lines += [f"output {label}:"] + ["  " + line for line in o.summary().splitlines()]
        return Report("\n".join(lines))

    def __repr__(self) -> str:
        return (f"MultiFit({dict(zip(self.labels, (o.spec.label() for o in self.outputs)))}, "
                f"mean={self.mean!r}, converged={self.converged})")

    def _repr_html_(self) -> str:
        return self.summary()._repr_html_()


# --- the joint model --------------------------------------------------------------------------


def joint_model(models: list, labels: tuple, shared: Optional[Callable] = None) -> Callable:
    """``model(X, ys, batch_size=None)``: ``shared()`` (sites common to the outputs), then
    each output's model on its column ``ys[k]`` under the name scope ``labels[k]``."""

    def model(X, ys, batch_size=None):
        if shared is not None:
            shared()
        for label, output_model, y in zip(labels, models, ys):
            with scope(prefix=label):
                output_model(X, y, batch_size)

    return model


class _JointGuide(PyroModule):
    """The heads' own ``AutoDelta`` guides, each under its output's scope. As children of one
    module their parameters get distinct names (``multioutput.heads.0.…``)."""

    def __init__(self, guides, labels):
        super().__init__(name="multioutput")
        self.heads = PyroModule[nn.ModuleList](guides)
        self.labels = labels

    def forward(self, X, ys, batch_size=None):
        for label, guide, y in zip(self.labels, self.heads, ys):
            with scope(prefix=label):
                guide(X, y, batch_size)


@dataclass(frozen=True)
class _JointSpec:
    kinked: bool


@dataclass
class _JointProblem(MeasuredFinish):
    """The joint model as a :class:`~bayesloss.engine.Problem`: ``model(smoothing)``, the
    data ``X`` and the outputs' columns ``y``. A kinked joint run measures the exact
    objective's change after each stage (``change``) and lets ``heads(ε)`` (linear heads:
    their exact finishes) end the schedule."""

    spec: _JointSpec
    X: torch.Tensor
    y: tuple
    model: Callable
    stage_iter: Optional[int]
    heads: Optional[Callable] = None
    bar: object = None  # progress: one tick per evaluation of the joint objective
    change: Optional[ObjectiveChange] = None

    def after_stage(self, guide, eps: float, tol: float, budget: int):
        self.change()
        return 0, self.heads is not None and self.heads(eps)

    def run(self, guide, tol: float, max_iter: int):
        """The driver on the joint objective from the guide's point."""
        params = list(guide.parameters())
        self.change = ObjectiveChange(self.loss(guide, self.model()))
        return run_lbfgs(self, guide, params, tol, max_iter, self.loss(guide, self.model()))


class _SharedNetwork:
    """One network for every output: the joint model draws its sites once per run
    (:meth:`draw`); each output's :func:`~bayesloss.neural.build_network_model` sees it through
    a :class:`_Head`."""

    def __init__(self, network: MLPMean):
        self.network, self.values = network, {}

    def draw(self, weight_prior, bias_prior):
        self.values = self.network.sample(weight_prior, bias_prior)


@dataclass
class _Head:
    """An output's view of the shared network, in the interface ``build_network_model`` calls:
    ``sample`` returns the sites drawn once for all outputs (it draws none itself), calling it
    evaluates the network and keeps the output's columns of ``η``."""

    shared: _SharedNetwork
    columns: object  # an int (one column, η of shape (n,)) or a slice (classes, (n, K))

    def sample(self, weight_prior, bias_prior=None) -> dict:
        return self.shared.values

    def __call__(self, X, params):
        eta = self.shared.network(X, params)
        return (eta if eta.dim() == 2 else eta[:, None])[:, self.columns]


def _neg_log_joint(model, params: dict, X, ys) -> float:
    """−log p(Y, θ) of ``model`` at ``params`` (numpy arrays by site name)."""
    values = {k: torch.as_tensor(np.asarray(v, dtype=np.float64)) for k, v in params.items()}
    with torch.no_grad(), pyro.validation_enabled(False):
        trace = poutine.trace(poutine.condition(model, data=values)).get_trace(
            as_tensor(X), tuple(as_tensor(y) for y in ys))
        return float(-trace.log_prob_sum())


# --- checks -----------------------------------------------------------------------------------


def _columns(X, Y, likelihoods, noise_scale):
    """``Y``'s columns (a DataFrame's keep their dtypes, for the label checks), the outputs'
    labels and noise scales; a ValueError for every mismatch with the likelihood list."""
    m = len(likelihoods)
    if m == 0:
        raise ValueError("likelihood is an empty list: give one likelihood per column of Y")
    shape = np.shape(Y)
    if len(shape) == 1 and m > 1:
        raise ValueError(f"Y is 1-d but {m} likelihoods were given {list(likelihoods)}: Y needs "
                         f"one column per likelihood, shape (n, {m})")
    if len(shape) not in (1, 2):
        raise ValueError(f"Y must be 2-d (n_samples, n_outputs); got shape {shape}")
    n_cols = shape[1] if len(shape) == 2 else 1
    if n_cols != m:
        raise ValueError(f"Y has {n_cols} columns but {m} likelihoods were given "
                         f"{list(likelihoods)}: give one likelihood per column")
    if shape[0] != np.shape(X)[0]:
        raise ValueError(f"X has {np.shape(X)[0]} rows but Y has {shape[0]}")
    if isinstance(noise_scale, (list, tuple)):
        if len(noise_scale) != m:
            raise ValueError(f"noise_scale has {len(noise_scale)} entries for {m} outputs: "
                             "give one per output (None: learned, or no scale)")
        scales = list(noise_scale)
    else:
        scales = [noise_scale] * m
    if isinstance(Y, pd.DataFrame):
        labels = tuple(str(c) for c in Y.columns)
        if len(set(labels)) < m:
            raise ValueError(f"Y has duplicated column names {list(labels)}")
        columns = [Y.iloc[:, k] for k in range(m)]
    else:
        labels = tuple(f"y{k}" for k in range(m))
        Y = np.asarray(Y)
        columns = [Y] if Y.ndim == 1 else [Y[:, k] for k in range(m)]
    return columns, labels, scales


# --- fitting ----------------------------------------------------------------------------------


def fit_multioutput(X, Y, likelihoods, model: dict, given: dict, solver, *,
                    mean: str = "linear", hidden=(32, 32), activation: str = "tanh") -> MultiFit:
    r""":func:`bayesloss.fit` with a list of likelihoods, one per column of ``Y``.

    ``Y`` is (n, m) (an array or a DataFrame, whose column names label the outputs; a
    categorical column holds labels 0..K-1); ``noise_scale`` (in ``model``, the
    :func:`~bayesloss.spec.make_spec` keywords, with the prior keywords the caller ``given``)
    is one value for every output or a list with one per output (None: learned, and for
    families without a scale). Estimator, prior and the other keywords are shared, as in
    :func:`bayesloss.fit`. The fit is full-batch L-BFGS (``solver``: its
    :class:`~bayesloss.engine.Solver`, with ``optimizer="lbfgs"``, no ``batch_size``, and
    Adam's ``lr``, ``num_steps`` and ``check_every`` left at their defaults; ``progress``
    shows the joint L-BFGS's evaluations);
    ``max_iter`` (default 1,000; 5,000 when an output is kinked) is the joint budget, and again
    each linear head's exact finish's. Linear heads support the log-concave priors (normal,
    laplace): a Student-t / Cauchy prior needs the single fits' several starts per output.

    .. math:: \hat\theta = \arg\min_\theta \sum_k -\log p(y_{\cdot k}\mid X,\theta)
              \;[-\ \log p(\theta)]
    """
    if solver.optimizer != "lbfgs" or solver.batch_size is not None:
        raise ValueError("several outputs are fitted by full-batch L-BFGS: use optimizer="
                         f"'lbfgs' and no batch_size (got {solver.optimizer!r}, "
                         f"{solver.batch_size})")
    adam_only = [f"{k}={getattr(solver, k)!r}" for k in ("lr", "num_steps", "check_every")
                 if getattr(solver, k) != getattr(Solver(), k)]
    if adam_only:
        raise ValueError(f"{', '.join(adam_only)}: Adam's / a single fit's settings, which a "
                         "joint L-BFGS fit of several outputs does not use; leave them out")
    model = dict(model)
    noise_scale = model.pop("noise_scale")
    columns, labels, scales = _columns(X, Y, likelihoods, noise_scale)
    specs = []
    for label, likelihood, scale in zip(labels, likelihoods, scales):
        try:
            specs.append(make_spec(likelihood, noise_scale=scale, **model, **given))
        except ValueError as err:
            raise ValueError(f"output {label!r}: {err}") from None
    warn_prior_off(given, specs[0], stacklevel=4)
    hetero = [label for label, s in zip(labels, specs) if s.family.scale_head]
    if hetero:
        raise ValueError(f"output(s) {hetero}: hetero_gaussian (σ(x) a second head, its own "
                         "fitting path) is not available as one of several outputs; fit it "
                         "on its own")
    if mean == "linear" and specs[0].is_map and not specs[0].prior_spec.log_concave:
        raise ValueError(f"a {specs[0].prior} prior is not log-concave: its single fits start "
                         "from several points per output, which a joint fit does not; fit "
                         "the outputs one by one, or use mean='mlp'")
    if mean == "mlp":
        hidden = check_network(hidden, activation, specs[0])
    names = feature_names(X)
    ys, stats = [], []
    for k, (spec, column) in enumerate(zip(specs, columns)):
        with warnings.catch_warnings():  # X's warnings once (the first output), not m times
            if k > 0 or mean == "mlp":  # (a network's MLE is never unique: its units permute)
                warnings.simplefilter("ignore", IdentifiabilityWarning)
            X_checked, y, design = check_data(X, column, spec, stats=True)
        ys.append(y)
        stats.append(design)
    X = X_checked
    solver = solver.resolve(X.shape[0], any(s.kinked for s in specs),
                            default_max_iter=NETWORK_MAX_ITER if mean == "mlp" else None)
    tol, max_iter, seed = solver.tol, solver.max_iter, solver.seed

    pyro.set_rng_seed(seed)
    start = time.perf_counter()
    bar = progress_bar(None, solver.progress, f"L-BFGS {len(specs)} outputs", delayed=True)
    with pyro.get_param_store().scope(), pyro.validation_enabled(False):
        try:
            if mean == "linear":
                outputs, model, params, n_iter, info = _fit_heads(
                    X, ys, specs, stats, labels, tol, max_iter, seed, names, bar)
            else:
                outputs, model, params, n_iter, info = _fit_network(
                    X, ys, specs, labels, hidden, activation, tol, max_iter, seed, names, bar)
        finally:
            if bar is not None:
                bar.close()
    info["seconds"] = time.perf_counter() - start
    result = MultiFit(
        outputs=tuple(outputs), labels=labels, params_=params,
        nll=sum(o.nll for o in outputs), loss=sum(o.loss for o in outputs),
        objective=_neg_log_joint(model, params, X, ys),
        converged=all(o.converged for o in outputs), n_iter=n_iter,
        grad_norm=max(o.grad_norm for o in outputs), n_samples=X.shape[0],
        method=outputs[0].method, mean=mean, seed=seed, info=info,
    )
    if not result.converged:
        late = [label for label, o in zip(labels, outputs) if not o.converged]
        solver.warn_unconverged(f"{len(labels)}-output", n_iter,
                                f"output(s) {late} short of their stopping rule", stacklevel=3)
    return result


def _fit_heads(X, ys, specs, stats, labels, tol, max_iter, seed, names, bar):
    """Separate linear heads: each preconditioned as its single fit, one joint L-BFGS, then
    each head's exact finish. Returns (outputs, user-scale joint model, its parameters by site
    name, iterations, info)."""
    problems, guides = [], []
    for spec, y, design in zip(specs, ys, stats):
        problem = LinearProblem.of(X, y, spec, design)
        problems.append(problem)
        guides.append(AutoDelta(problem.model(),
                                init_loc_fn=init_to_value(values=initial_values(problem, y))))
    guide = _JointGuide(guides, labels)
    kinked = any(s.kinked for s in specs)
    # kinked: each smoothing stage gets the single fits' stage budget (the heads' finishes
    # take it from there)
    joint = _JointProblem(
        _JointSpec(kinked), problems[0].X, tuple(p.y for p in problems),
        lambda eps=0.0: joint_model([p.model(eps) for p in problems], labels),
        STAGE_ITER if kinked else None, _after_stage(problems, guides, tol, max_iter), bar)
    guide(joint.X, joint.y)  # creates the parameters
    for problem, head in zip(problems, guides):  # the single fits' Newton start, per head
        newton_start(problem, head, _loss(problem, head))  # (a learned scale follows it)
    n_iter, joint_gnorm, _, info = joint.run(guide, tol, max_iter)
    outputs = []
    for problem, head, y in zip(problems, guides, ys):
        converged, gnorm, extra, finish = _finish(problem, head, n_iter, joint_gnorm, tol,
                                                  max_iter)
        with torch.no_grad():
            point = {k: v.numpy() for k, v in head.median().items()}
        coef, intercept, scale = problem.pre.to_user(point["weight"], point.get("bias"),
                                                     point.get("scale"))
        fit = Fit.build(problem.spec, X, y, coef, intercept, scale, converged=converged,
                        n_iter=n_iter + extra, grad_norm=gnorm,
                        method=f"pyro AutoDelta + torch L-BFGS (strong Wolfe), joint over "
                               f"{len(specs)} outputs", seed=seed, info=finish,
                        feature_names=names)
        check_separation(problem.spec, fit, X, y)
        outputs.append(fit)
    user_model = joint_model([build_model(p.spec, X.shape[1], p.n_outputs) for p in problems],
                             labels)
    params = {f"{label}/{site}": v for label, o in zip(labels, outputs)
              for site, v in o.params_.items()}
    return outputs, user_model, params, n_iter, info


def _after_stage(problems, guides, tol, max_iter) -> Callable:
    """What a single fit does after each smoothing stage, for every head
    (:meth:`~bayesloss.engine.LinearProblem.after_stage`: shift softmax weights to their
    optimum, try a Laplace likelihood's exact finish from the same ε). The schedule ends once
    every such head holds a certificate, unless a head with a smooth likelihood and a Laplace
    prior needs it whole (as its single fit does)."""
    whole = any(p.spec.kinked and not p.spec.family.kinked for p in problems)

    def after_stage(eps) -> bool:
        certified = True
        for problem, guide in zip(problems, guides):
            done = problem.after_stage(guide, eps, tol, max_iter)[1]
            if problem.spec.family.kinked:
                certified &= done
        return certified and not whole

    return after_stage


def _loss(problem: LinearProblem, guide) -> Callable:
    """The head's own term of the joint loss (per row): its gradient is the joint one's on
    the head's parameters."""
    return problem.loss(guide, problem.model())


def _finish(problem: LinearProblem, guide, n_iter, joint_gnorm, tol, max_iter):
    """A head's exact finish after the joint L-BFGS, by the single fits' own steps; returns
    (converged, |grad|∞, extra iterations, info) by the single fits' criteria."""
    spec, loss = problem.spec, _loss(problem, guide)
    params = list(guide.parameters())
    shift = problem.shift(guide)
    shift()  # the single fits shift softmax weights after every smoothing stage
    if spec.family.kinked:  # a Laplace likelihood: the exact finish and its certificate
        # The single fit tries it after each smoothing stage ε, on the rows within 10ε of
        # their kink; from the last stage's point, the same widths in turn, narrowest first
        extra = 0
        for eps in reversed(SMOOTHING_SCHEDULE):
            info = kink_finish(problem, guide, eps, tol, max_iter - extra)
            extra += info["newton_steps"]
            if info["certified"]:
                break
        converged, gnorm = info["certified"], joint_gnorm
    elif spec.kinked:  # a Laplace prior: zeros made exact, KKT-checked
        extra, gnorm, converged, info = polish_active_set(problem, guide, loss, tol, max_iter,
                                                          0, {})
    else:  # the single fit's smooth path from here (a kinked joint run stops short of tol)
        extra = lbfgs_stage(loss, params, tol, max_iter)[0]
        extra += int(problem.newton(guide, loss) is not None)
        gnorm = full_grad_norm(Trace_ELBO(), problem.model(), guide, params, problem.X,
                               problem.y)
        converged, info = stop_rule(n_iter, gnorm, tol, max_iter)
    shift()
    profile_scale(problem, guide)
    return bool(converged), float(gnorm), int(extra), info


def _fit_network(X, ys, specs, labels, hidden, activation, tol, max_iter, seed, names,
                 bar):
    """A shared trunk: one network, its last layer one block of rows per output, fitted by
    L-BFGS from PyTorch's default initialisation under ``seed``."""
    widths = [int(y.max()) + 1 if s.family.multiclass else 1 for s, y in zip(specs, ys)]
    starts = np.cumsum([0] + widths)
    shared = _SharedNetwork(MLPMean(X.shape[1], hidden, int(starts[-1]), activation))
    heads = [_Head(shared, slice(a, a + w) if w > 1 else int(a))
             for a, w in zip(starts, widths)]
    penalised_bias = specs[0].penalize_intercept

    def model(eps=0.0):
        weight_prior = network_prior(specs[0], smoothing=eps)
        return joint_model(
            [build_network_model(s, h, smoothing=eps) for s, h in zip(specs, heads)], labels,
            lambda: shared.draw(weight_prior, weight_prior if penalised_bias else None))

    X_t = torch.as_tensor(X, dtype=DTYPE)
    ys_t = tuple(torch.as_tensor(y, dtype=torch.long if s.family.multiclass else DTYPE)
                 for s, y in zip(specs, ys))
    init = dict(initial_state(X.shape[1], hidden, int(starts[-1]), seed))
    for label, spec, y in zip(labels, specs, ys):
        if spec.learns_scale:  # the spread of y: the scale of an output near its mean
            init[f"{label}/scale"] = torch.tensor(float(np.std(y)), dtype=DTYPE)
    problem = _JointProblem(_JointSpec(any(s.kinked for s in specs)), X_t, ys_t, model, None,
                            bar=bar)
    guide = AutoDelta(model(), init_loc_fn=init_to_value(values=init))
    guide(X_t, ys_t)
    n_iter, gnorm, converged, info = problem.run(guide, tol, max_iter)
    with torch.no_grad():
        point = {k: v.detach().numpy().copy() for k, v in guide.median().items()}
    last = f"layers.{len(hidden)}."
    outputs = []
    for label, spec, y, a, w in zip(labels, specs, ys, starts, widths):
        view = {k: (v[a:a + w] if k.startswith(last) else v) for k, v in point.items()
                if "/" not in k}  # the trunk, and this output's rows of the last layer
        scale = spec.noise_scale
        if spec.learns_scale:
            view["scale"] = point[f"{label}/scale"]
            scale = float(view["scale"])
        net = MLPMean(X.shape[1], hidden, w, activation)
        ev = evaluate_network(spec, net, X, y, {k: v for k, v in view.items() if k != "scale"},
                              scale)
        outputs.append(NetworkFit(
            spec=spec, params_=view, scale_=scale if spec.family.has_scale else None,
            converged=bool(converged), n_iter=int(n_iter), grad_norm=float(gnorm), _evaluation=ev,
            n_samples=X.shape[0],
            method=f"pyro AutoDelta + torch L-BFGS (strong Wolfe), MLP {hidden} {activation} "
                   f"shared by {len(specs)} outputs",
            seed=seed, info=info, feature_names=names, hidden=hidden, activation=activation,
            n_outputs=w))
    return outputs, model(), point, int(n_iter), info
