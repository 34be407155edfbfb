r"""Neural-network means: a small multilayer perceptron whose weights are Pyro sample sites.

.. math::

    f(x) = W_L\,a(\cdots a(W_1 x + b_1)\cdots) + b_L,\qquad
    W_l \sim \text{prior}(0, \tau),\quad b_l \sim \text{flat},\quad
    y_i \mid x_i \sim \text{family}(\eta_i = f(x_i),\ \sigma)

The weight matrices carry the prior under MAP and have it masked off under MLE, exactly like the
linear weights of :func:`bayesloss.models.build_model`; the biases are flat (unpenalised), as the
linear intercept is. ``hetero_gaussian`` adds a second network of the same shape for
``log σ(x)`` (sites ``scale_layers.0.weight``, …); ``gaussian_mixture`` with K components
outputs 2K − 1 columns (the K means, then the K − 1 mixing logits: a mixture density network
with one learned σₖ per component). Under MAP the scale network's weight matrices carry the
prior too (a network's scale head has as many weights as its mean, and no fewer ways to overfit;
the linear scale head, d + 1 parameters, stays flat). Sites are named like PyTorch's
``state_dict`` of the same network (``layers.0.weight`` of shape (out, in), ``layers.0.bias``,
…), so a plain ``torch.nn`` network (:class:`TorchMLP`) and the Pyro model share one parameter
dictionary and one initialisation (:func:`initial_state`, PyTorch's default ``nn.Linear``
initialisation under a seed).
"""

from __future__ import annotations

import math
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro import poutine
from pyro.infer.autoguide import AutoDelta
from pyro.infer.autoguide.initialization import init_to_value
from torch import nn

from .engine import (
    MeasuredFinish, Objective, ObjectiveChange, Solver, elbo_loss, progress_bar, run_adam,
    run_lbfgs,
)
from .models import all_rows, flat
from .results import Fit
from .spec import IdentifiabilityWarning, ModelSpec, check_data, check_X

ACTIVATIONS: dict[str, Callable] = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "gelu": F.gelu,
    "softplus": F.softplus,
}
DTYPE = torch.float64


def check_hidden(hidden) -> tuple[int, ...]:
    """``hidden`` as a tuple of positive ints (the widths of the hidden layers)."""
    if isinstance(hidden, (int, str, bytes)) or not isinstance(hidden, Sequence):
        raise ValueError(f"hidden must be a tuple of positive ints such as (32, 32); got {hidden!r}")
    widths = []
    for h in hidden:
        if isinstance(h, bool) or not isinstance(h, int) or h <= 0:
            raise ValueError(f"hidden must be a tuple of positive ints such as (32, 32); "
                             f"got {hidden!r}")
        widths.append(int(h))
    return tuple(widths)


NETWORK_MAX_ITER = 1000  # kinked too: a network's fit has no exact finish to spend more on


def check_network(hidden, activation: str, spec: ModelSpec) -> tuple[int, ...]:
    """Validate a network mean's keywords for ``spec`` (one output's, or several's: they share
    ``fit_intercept``); returns ``hidden`` as a tuple."""
    hidden = check_hidden(hidden)
    check_activation(activation)
    if not spec.fit_intercept:
        raise ValueError("mean='mlp' has a bias in every layer; fit_intercept=False is for "
                         "linear means")
    return hidden


def check_activation(activation: str) -> Callable:
    """The activation function called ``activation``; a ValueError lists the valid names."""
    try:
        return ACTIVATIONS[activation]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown activation {activation!r}; valid names are {sorted(ACTIVATIONS)}"
        ) from None


def layer_shapes(n_in: int, hidden: tuple, n_out: int) -> list[tuple[str, tuple]]:
    """``[(site name, shape), …]`` of the network, in PyTorch's ``state_dict`` order."""
    sizes = (n_in, *hidden, n_out)
    shapes = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        shapes += [(f"layers.{i}.weight", (b, a)), (f"layers.{i}.bias", (b,))]
    return shapes


class TorchMLP(nn.Module):
    """The same network in plain PyTorch (float64): ``nn.Linear`` layers and the activation.

    Returns ``(n,)`` for one output and ``(n, K)`` for K outputs, as the Pyro model's ``η``.
    """

    def __init__(self, n_in: int, hidden=(8,), n_out: int = 1, activation: str = "tanh"):
        super().__init__()
        sizes = (n_in, *check_hidden(hidden), n_out)
        self.layers = nn.ModuleList(
            nn.Linear(a, b, dtype=DTYPE) for a, b in zip(sizes[:-1], sizes[1:])
        )
        self.activation = check_activation(activation)
        self.n_out = n_out

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return mlp_forward(X, dict(self.named_parameters()), len(self.layers), self.activation,
                           self.n_out)


def mlp_forward(X, params: dict, n_layers: int, activation: Callable, n_out: int,
                prefix: str = "") -> torch.Tensor:
    """The network's output for parameters ``params`` (keyed by site name)."""
    h = X
    for i in range(n_layers):
        h = F.linear(h, params[f"{prefix}layers.{i}.weight"], params[f"{prefix}layers.{i}.bias"])
        if i < n_layers - 1:
            h = activation(h)
    return h.squeeze(-1) if n_out == 1 else h


def initial_state(n_in: int, hidden=(8,), n_out: int = 1, seed: int = 0) -> "OrderedDict":
    """PyTorch's default initialisation of :class:`TorchMLP` under ``seed`` (float64), by site
    name. The global RNG is left untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = TorchMLP(n_in, hidden, n_out)
    return OrderedDict((k, v.detach().clone()) for k, v in net.named_parameters())


class MLPMean:
    """The network as Pyro sample sites: :meth:`sample` draws every layer's weight (prior) and
    bias (flat) outside the data plate; :meth:`__call__` evaluates the network for them.

    ``prefix`` names the sites of a second network in the same model (``scale_`` for the
    log-σ head of a heteroscedastic model).
    """

    def __init__(self, n_in: int, hidden, n_out: int, activation: str = "tanh",
                 prefix: str = ""):
        self.hidden = check_hidden(hidden)
        self.activation_name = activation
        self.activation = check_activation(activation)
        self.n_in, self.n_out, self.prefix = n_in, n_out, prefix
        self.shapes = [(prefix + name, shape) for name, shape in layer_shapes(n_in, self.hidden,
                                                                              n_out)]

    @property
    def n_layers(self) -> int:
        return len(self.hidden) + 1

    def sample(self, weight_prior: Callable, bias_prior: Optional[Callable] = None) -> dict:
        """Sample the sites: ``weight_prior(shape)`` for weight matrices, ``bias_prior``
        (default flat) for biases."""
        bias_prior = bias_prior or (lambda shape: flat(shape, DTYPE))
        return {
            name: pyro.sample(name, weight_prior(shape) if name.endswith("weight")
                              else bias_prior(shape))
            for name, shape in self.shapes
        }

    def __call__(self, X: torch.Tensor, params: dict) -> torch.Tensor:
        return mlp_forward(X, params, self.n_layers, self.activation, self.n_out, self.prefix)


def network_prior(spec: ModelSpec, prior_scale=None, smoothing: float = 0.0) -> Callable:
    """``shape ↦`` the prior of a weight matrix of that shape: ``spec``'s prior with scale
    ``prior_scale`` (default the spec's), masked off under MLE (see :meth:`MLPMean.sample`)."""
    tau = torch.as_tensor(spec.prior_scale if prior_scale is None else prior_scale, dtype=DTYPE)

    def weight_prior(shape):
        d = spec.prior_spec.distribution(tau.expand(shape), spec.effective_prior_df, smoothing)
        d = d.to_event(len(shape))
        return d if spec.is_map else d.mask(False)

    return weight_prior


def build_network_model(
    spec: ModelSpec,
    network: MLPMean,
    *,
    prior_scale=None,
    noise_scale=None,
    smoothing: float = 0.0,
    scale_network: Optional[MLPMean] = None,
) -> Callable:
    """The Pyro model ``model(X, y=None, batch_size=None)`` of ``spec`` with a network mean.

    The same model as :func:`bayesloss.models.build_model` (prior on the weights, masked off
    under MLE; flat biases; the scale site or a fixed σ; the data plate scaling a minibatch by
    n / batch size), with ``η = network(X)``. The network's sites are drawn before the plate,
    so they are not batched by it. A family with a scale head (hetero_gaussian) takes
    ``scale_network``: ``log σ(x) = scale_network(x)``.
    """
    family = spec.family
    fixed_scale = spec.noise_scale if noise_scale is None else noise_scale
    weight_prior = network_prior(spec, prior_scale, smoothing)
    s_shape = (spec.components,) if family.components else ()  # a mixture's σₖ

    def model(X: torch.Tensor, y: Optional[torch.Tensor] = None,
              batch_size: Optional[int] = None):
        params = network.sample(weight_prior,
                                weight_prior if spec.penalize_intercept else None)
        scale = None
        if family.scale_head:
            scale_params = scale_network.sample(
                weight_prior, weight_prior if spec.penalize_intercept else None)
        elif family.has_scale or family.row_input:  # (a row input is always fixed)
            if fixed_scale is None:
                flat_positive = dist.LogNormal(torch.zeros(s_shape, dtype=DTYPE), 1.0)
                flat_positive = flat_positive.to_event(1) if s_shape else flat_positive
                scale = pyro.sample("scale", flat_positive.mask(False))
            else:
                scale = torch.as_tensor(fixed_scale, dtype=DTYPE)
        n = X.shape[0]
        full = None if batch_size is not None else all_rows(n)
        with pyro.plate("data", n, subsample=full, subsample_size=batch_size) as idx:
            if batch_size is not None:
                X, y = X[idx], None if y is None else y[idx]
            eta = network(X, params)
            if family.scale_head:
                scale = scale_network(X, scale_params).exp()
            return pyro.sample("obs", family.distribution(eta, scale, spec.df, smoothing), obs=y)

    return model


# --- fitting a network mean -----------------------------------------------------------------


@dataclass(frozen=True)
class NetworkFit(Fit):
    """A point estimate of a model with a network mean: ``params_`` holds its layers by site
    name (``layers.0.weight`` (out, in), ``layers.0.bias``, …, ``scale`` where learned, and
    ``scale_layers.0.weight``, … for hetero_gaussian's log σ(x) network); ``predict`` /
    ``predict_mean`` / ``predict_proba`` / ``predict_scale`` / ``predict_interval`` work as
    for a linear fit, on the network's outputs. There is no ``coef_`` or ``scale_coef_`` (they
    raise AttributeError)."""

    hidden: tuple = ()
    activation: str = "tanh"
    n_outputs: int = 1

    def network(self, prefix: str = "") -> MLPMean:
        """The mean network (``prefix=""``) or the log σ(x) network (``"scale_"``)."""
        return MLPMean(self.params_["layers.0.weight"].shape[1], self.hidden,
                       1 if prefix else self.n_outputs, self.activation, prefix)

    def _log_scale(self, X) -> np.ndarray:
        """log σ(x), the output of the scale network (hetero_gaussian)."""
        X = self._checked(X)
        with torch.no_grad():
            params = {k: torch.as_tensor(v) for k, v in self.params_.items()}
            return self.network("scale_")(torch.as_tensor(X), params).numpy()

    def _checked(self, X) -> np.ndarray:
        X = check_X(self._design(X))
        n_in = self.params_["layers.0.weight"].shape[1]
        if X.shape[1] != n_in:
            raise ValueError(f"X has {X.shape[1]} columns; the network takes {n_in}")
        return X

    def linear_predictor(self, X) -> np.ndarray:
        """The network's output ``η = f(x)`` (on the link scale, as the linear ``X w + b``)."""
        X = self._checked(X)
        net = self.network()
        with torch.no_grad():
            params = {k: torch.as_tensor(v) for k, v in self.params_.items()}
            return net(torch.as_tensor(X), params).numpy()


@dataclass
class NetworkProblem(MeasuredFinish):
    """A spec, data and network as a :class:`~bayesloss.engine.Problem`. A network has no
    exact finish (the linear fits' Newton step and certificate need a linear model): a kinked
    fit (laplace likelihood or prior) runs the smoothing continuation under the whole budget
    and is judged on the exact objective's relative change over the last stage (``change``,
    measured after each stage)."""

    spec: ModelSpec
    X: torch.Tensor
    y: torch.Tensor
    network: MLPMean
    scale_network: Optional[MLPMean] = None
    bar: object = None
    change: Optional[ObjectiveChange] = None

    stage_iter = None  # a stage may take the budget left

    def model(self, smoothing: float = 0.0):
        return build_network_model(self.spec, self.network, smoothing=smoothing,
                                   scale_network=self.scale_network)

    def after_stage(self, guide, eps: float, tol: float, budget: int):
        self.change()
        return 0, False


def evaluate_network(spec: ModelSpec, network: MLPMean, X, y, params: dict, scale,
                     scale_network: Optional[MLPMean] = None):
    """NLL, classical loss and −log joint of the network model at ``params`` (numpy arrays by
    site name) on ``(X, y)``; ``scale_network`` gives σ(x) for hetero_gaussian."""
    from .results import Evaluation

    X_t = torch.as_tensor(np.asarray(X, dtype=np.float64))
    y_t = torch.as_tensor(np.asarray(y, dtype=np.float64))
    values = {k: torch.as_tensor(np.asarray(v, dtype=np.float64)) for k, v in params.items()}
    s = None if scale is None else torch.as_tensor(np.asarray(scale, dtype=np.float64))
    with torch.no_grad(), pyro.validation_enabled(False):
        eta = network(X_t, values)
        if spec.family.scale_head:
            s = scale_network(X_t, values).exp()
        nll = spec.family.nll(y_t, eta, s, spec.df)
        loss = spec.family.loss(y_t, eta, s, spec.df)
        model = build_network_model(spec, network, noise_scale=s, scale_network=scale_network)
        cond = dict(values)
        if spec.learns_scale:
            cond["scale"] = s
        trace = poutine.trace(poutine.condition(model, data=cond)).get_trace(X_t, y_t)
        objective = -trace.log_prob_sum()
    return Evaluation(float(nll), float(loss), float(objective))


def fit_network(X, y, spec: ModelSpec, solver: Solver, *, hidden=(32, 32),
                activation: str = "tanh") -> NetworkFit:
    r"""MLE / MAP of ``spec`` with an MLP mean; :func:`bayesloss.fit` with ``mean="mlp"``
    (``solver``: its :class:`~bayesloss.engine.Solver`).

    .. math::

        \hat\theta = \arg\min_\theta\ -\textstyle\sum_i \log p(y_i \mid f_\theta(x_i), \sigma)
        \;[-\ \log p(W)\ \text{(MAP)}]

    The network starts from PyTorch's default ``nn.Linear`` initialisation under ``seed``
    (:func:`initial_state`), so a plain PyTorch run can start from the same point. The inputs
    are used as given: standardise them as for any network. The objective is not convex;
    the optimum reached is a local one, and another seed may find another. Optimisers,
    tolerances and warnings as in :func:`bayesloss.fit` (the biases carry no prior unless
    ``penalize_intercept``; ``max_iter``, the whole budget across smoothing stages, defaults
    to 1,000 whatever the likelihood).
    """
    hidden = check_network(hidden, activation, spec)
    if spec.row_scales:
        known = spec.family.row_input
        raise ValueError((f"per-row {known} are" if known else "per-row noise_scale (known σᵢ) is")
                         + " for mean='linear'; a network mean takes one number"
                         + ("" if known else " or a learned scale"))
    with warnings.catch_warnings():  # a network's MLE is never unique (its units permute)
        warnings.simplefilter("ignore", IdentifiabilityWarning)
        X, y = check_data(X, y, spec)
    solver = solver.resolve(X.shape[0], spec.kinked, default_max_iter=NETWORK_MAX_ITER)
    seed = solver.seed
    n_out = int(y.max()) + 1 if spec.family.multiclass else 1
    if spec.family.components:  # a mixture density network: K means, K − 1 mixing logits
        n_out = 2 * spec.components - 1
    network = MLPMean(X.shape[1], hidden, n_out, activation)
    scale_network = None
    X_t = torch.as_tensor(X, dtype=DTYPE)
    y_t = torch.as_tensor(y, dtype=torch.long if spec.family.multiclass else DTYPE)
    init = dict(initial_state(X.shape[1], hidden, n_out, seed))
    if spec.family.scale_head:  # its own draw of PyTorch's initialisation (seed + 1)
        scale_network = MLPMean(X.shape[1], hidden, 1, activation, prefix="scale_")
        head = initial_state(X.shape[1], hidden, 1, seed + 1)
        last = f"layers.{len(hidden)}.bias"
        head[last] = head[last] + math.log(float(np.std(y)) or 1.0)  # σ starts at sd(y)
        init.update({"scale_" + k: v for k, v in head.items()})
    bar = (progress_bar(None, solver.progress, f"L-BFGS {spec.label()} MLP", delayed=True)
           if solver.optimizer == "lbfgs" else None)
    problem = NetworkProblem(spec, X_t, y_t, network, scale_network, bar)
    if spec.learns_scale:  # the spread of y: the scale of an output near its mean
        init["scale"] = torch.full((spec.components,) if spec.family.components else (),
                                   float(np.std(y)), dtype=DTYPE)

    pyro.set_rng_seed(seed)
    start = time.perf_counter()
    with pyro.get_param_store().scope(), pyro.validation_enabled(False):
        guide = AutoDelta(problem.model(), init_loc_fn=init_to_value(values=init))
        guide(X_t, y_t)
        params = list(guide.parameters())
        problem.change = ObjectiveChange(elbo_loss(problem.model(), guide, X_t, y_t))
        try:
            if solver.optimizer == "lbfgs":
                exact = Objective(problem.loss(guide, problem.model()), params)
                n_iter, gnorm, converged, info = run_lbfgs(problem, guide, params, solver.tol,
                                                           solver.max_iter, exact)
            else:
                n_iter, gnorm, converged, info = run_adam(problem, guide, params, solver)
        finally:
            if bar is not None:
                bar.close()
        with torch.no_grad():
            point = {k: v.detach().numpy().copy() for k, v in guide.median().items()}
    info["seconds"] = time.perf_counter() - start
    scale = point["scale"] if spec.learns_scale else spec.noise_scale
    scale = scale if spec.family.components or scale is None else float(scale)
    ev = evaluate_network(spec, network, X, y, {k: v for k, v in point.items()
                                                if k != "scale"}, scale, scale_network)
    method = solver.method(f", MLP {hidden} {activation}")
    result = NetworkFit(
        spec=spec, params_=point, scale_=scale if spec.family.has_scale else None,
        converged=bool(converged), n_iter=int(n_iter), grad_norm=float(gnorm), _evaluation=ev,
        n_samples=X.shape[0], method=method, seed=seed,
        info=info, hidden=hidden, activation=activation, n_outputs=n_out,
    )
    if not converged:
        solver.warn_unconverged(f"{spec.label()} MLP", n_iter, f"|grad|∞ = {gnorm:.2e}",
                                stacklevel=3)
    return result
