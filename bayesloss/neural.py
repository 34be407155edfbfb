r"""Neural-network means: a small multilayer perceptron whose weights are Pyro sample sites.

.. math::

    f(x) = W_L\,a(\cdots a(W_1 x + b_1)\cdots) + b_L,\qquad
    W_l \sim \text{prior}(0, \tau),\quad b_l \sim \text{flat},\quad
    y_i \mid x_i \sim \text{family}(\eta_i = f(x_i),\ \sigma)

The weight matrices carry the prior under MAP and have it masked off under MLE, exactly like the
linear weights of :func:`bayesloss.models.build_model`; the biases are flat (unpenalised), as the
linear intercept is. Sites are named like PyTorch's ``state_dict`` of the same network
(``layers.0.weight`` of shape (out, in), ``layers.0.bias``, …), so a plain ``torch.nn`` network
(:class:`TorchMLP`) and the Pyro model share one parameter dictionary and one initialisation
(:func:`initial_state`, PyTorch's default ``nn.Linear`` initialisation under a seed).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Optional, Sequence

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import nn

from .models import _all_rows, _flat
from .spec import ModelSpec

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

    def sample(self, weight_prior: Callable) -> dict:
        """Sample the sites: ``weight_prior(shape)`` for weight matrices, flat for biases."""
        return {
            name: pyro.sample(name, weight_prior(shape) if name.endswith("weight")
                              else _flat(shape, DTYPE))
            for name, shape in self.shapes
        }

    def __call__(self, X: torch.Tensor, params: dict) -> torch.Tensor:
        return mlp_forward(X, params, self.n_layers, self.activation, self.n_out, self.prefix)


def build_network_model(
    spec: ModelSpec,
    network: MLPMean,
    *,
    prior_scale=None,
    noise_scale=None,
    smoothing: float = 0.0,
) -> Callable:
    """The Pyro model ``model(X, y=None, batch_size=None)`` of ``spec`` with a network mean.

    The same model as :func:`bayesloss.models.build_model` (prior on the weights, masked off
    under MLE; flat biases; the scale site or a fixed σ; the data plate scaling a minibatch by
    n / batch size), with ``η = network(X)``. The network's sites are drawn before the plate,
    so they are not batched by it.
    """
    family, prior = spec.family, spec.prior_spec
    tau = torch.as_tensor(spec.prior_scale if prior_scale is None else prior_scale, dtype=DTYPE)
    fixed_scale = spec.noise_scale if noise_scale is None else noise_scale
    map_on = spec.is_map

    def weight_prior(shape):
        d = prior.distribution(tau.expand(shape), spec.effective_prior_df, smoothing)
        d = d.to_event(len(shape))
        return d if map_on else d.mask(False)

    def model(X: torch.Tensor, y: Optional[torch.Tensor] = None,
              batch_size: Optional[int] = None):
        params = network.sample(weight_prior)
        scale = None
        if family.has_scale:
            if fixed_scale is None:
                flat_positive = dist.LogNormal(torch.zeros((), dtype=DTYPE), 1.0).mask(False)
                scale = pyro.sample("scale", flat_positive)
            else:
                scale = torch.as_tensor(fixed_scale, dtype=DTYPE)
        n = X.shape[0]
        full = None if batch_size is not None else _all_rows(n)
        with pyro.plate("data", n, subsample=full, subsample_size=batch_size) as idx:
            if batch_size is not None:
                X, y = X[idx], None if y is None else y[idx]
            eta = network(X, params)
            return pyro.sample("obs", family.distribution(eta, scale, spec.df, smoothing), obs=y)

    return model
