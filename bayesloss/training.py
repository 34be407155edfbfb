r"""Training with a PyTorch loss *is* maximum likelihood: the two trainings side by side.

:func:`torch_equivalence` trains one network from one initialisation twice with
``torch.optim.Adam`` (or SGD): (a) by Pyro ``SVI`` on the delta-guide ELBO of the explicit
likelihood (σ fixed), (b) by plain PyTorch on the everyday loss, and returns both parameter
trajectories.

Why they coincide. The delta-guide ELBO is the negative log joint density, a *sum* over the n
rows; PyTorch's losses are *means*. For every family the two differ by a positive constant c
(plus terms free of the parameters):

==============  ==================================  =========================
likelihood      PyTorch loss (reduction="mean")     c = NLL / loss
==============  ==================================  =========================
gaussian (σ)    ``nn.MSELoss``                      n / (2σ²)
laplace (b)     ``nn.L1Loss``                       n / b
bernoulli       ``nn.BCEWithLogitsLoss``            n
categorical     ``nn.CrossEntropyLoss``             n
poisson         ``nn.PoissonNLLLoss(log_input)``    n   (the loss drops log y!)
==============  ==================================  =========================

so their gradients satisfy ``g_pyro = c · g_torch``. Adam's step is
``lr · m̂ / (sqrt(v̂) + ε)`` with ``m̂ ∝ g`` and ``sqrt(v̂) ∝ |g|``, so it is unchanged by c
*except through ε*: ``c·m̂ / (c·sqrt(v̂) + ε) = m̂ / (sqrt(v̂) + ε/c)``. The two trainings are the
same algorithm exactly when Pyro's ε is c times PyTorch's (the default here, ``eps="scaled"``), or
when ε = 0; with the same default ε = 1e-8 on both sides they drift apart where sqrt(v̂) is
small. Plain SGD has no such invariance: its step is lr·g, so the Pyro learning rate must be
lr / c. A normal prior N(0, τ²) on the weights adds w/τ² to the Pyro gradient, which is
``weight_decay = 1 / (c·τ²)`` (= 2σ²/(n·τ²) for gaussian) in ``torch.optim.Adam`` (its L2
form, applied to the weights and not the biases, which are flat here as the linear intercept is).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Union

import numpy as np
import pandas as pd
import pyro
import pyro.optim
import torch
from pyro.infer import SVI, Trace_ELBO
from pyro.infer.autoguide import AutoDelta
from pyro.infer.autoguide.initialization import init_to_value
from torch import nn

from .engine.policy import entry_point
from .neural import DTYPE, MLPMean, TorchMLP, build_network_model, initial_state
from .families import get_family
from .spec import check_data, make_spec

TORCH_EPS = 1e-8  # torch.optim.Adam's default ε

# the everyday PyTorch loss of each family, and NLL / loss (n rows, scale s)
TORCH_LOSSES = {
    "gaussian": ("nn.MSELoss", nn.MSELoss, lambda n, s: n / (2 * s**2)),
    "laplace": ("nn.L1Loss", nn.L1Loss, lambda n, s: n / s),
    "bernoulli": ("nn.BCEWithLogitsLoss", nn.BCEWithLogitsLoss, lambda n, s: float(n)),
    "categorical": ("nn.CrossEntropyLoss", nn.CrossEntropyLoss, lambda n, s: float(n)),
    "poisson": ("nn.PoissonNLLLoss(log_input=True)",
                lambda: nn.PoissonNLLLoss(log_input=True), lambda n, s: float(n)),
}
OPTIMIZERS = ("adam", "sgd")


@dataclass(frozen=True)
class TrainingEquivalence:
    """Two trainings of one network: Pyro SVI on the NLL and PyTorch on the everyday loss.

    Attributes
    ----------
    names:
        Parameter (site) names, in the order of the trajectory columns' blocks.
    pyro_trajectory, torch_trajectory:
        (steps + 1, P) arrays: every parameter flattened, row 0 the shared initial point.
    pyro_loss, torch_loss:
        The objective each side minimised, at each step (before the step).
    constant:
        c = NLL / torch loss; the Pyro gradient is c times PyTorch's.
    eps_pyro, eps_torch, lr_pyro, lr_torch, weight_decay:
        The optimiser settings each side used.
    max_abs_diff:
        max over steps and parameters of ``|θ_pyro − θ_torch|``.
    """

    likelihood: str
    torch_loss_name: str
    optimizer: str
    names: tuple
    pyro_trajectory: np.ndarray
    torch_trajectory: np.ndarray
    pyro_loss: np.ndarray
    torch_loss: np.ndarray
    constant: float
    eps_pyro: float
    eps_torch: float
    lr_pyro: float
    lr_torch: float
    weight_decay: float
    max_abs_diff: float

    def summary_row(self) -> dict:
        """One row for a table: the settings and the largest parameter difference."""
        return {
            "likelihood": self.likelihood, "torch loss": self.torch_loss_name,
            "optimizer": self.optimizer, "c = NLL/loss": self.constant,
            "eps pyro": self.eps_pyro, "eps torch": self.eps_torch, "lr pyro": self.lr_pyro,
            "lr torch": self.lr_torch, "weight_decay": self.weight_decay,
            "steps": self.pyro_trajectory.shape[0] - 1, "max |Δparam|": self.max_abs_diff,
        }


def _flatten(params: dict, names) -> np.ndarray:
    return np.concatenate([params[k].detach().reshape(-1).numpy() for k in names])


@entry_point
def torch_equivalence(
    X,
    y,
    likelihood: str,
    *,
    hidden=(8,),
    activation: str = "tanh",
    steps: int = 200,
    lr: float = 1e-2,
    seed: int = 0,
    prior_scale: Optional[float] = None,
    noise_scale: float = 1.0,
    optimizer: str = "adam",
    eps: Union[str, float] = "scaled",
) -> TrainingEquivalence:
    r"""Train one network both ways from the same initial weights; return both trajectories.

    (a) Pyro ``SVI`` with an ``AutoDelta`` guide on the model ``y ~ family(f(x), σ)`` (σ fixed
    at ``noise_scale`` for gaussian / laplace), minimising

    .. math:: -\log p(y \mid X, \theta) - \log p(\theta) = c \cdot L_{\text{torch}}(\theta)
              + \tfrac{1}{2\tau^2}\textstyle\sum w^2 + \text{const}

    (b) plain PyTorch on the everyday loss ``L_torch`` (``nn.MSELoss``, ``nn.L1Loss``,
    ``nn.BCEWithLogitsLoss``, ``nn.CrossEntropyLoss``, ``nn.PoissonNLLLoss(log_input=True)``;
    ``weight_decay = 1/(c·τ²)`` on the weights with ``prior_scale=τ``). See the module
    docstring for why they coincide and where they stop coinciding.

    Parameters
    ----------
    X, y:
        Data; the network is :class:`~bayesloss.neural.TorchMLP` ``(d, *hidden, K)``.
    likelihood:
        ``gaussian``, ``laplace``, ``bernoulli``, ``categorical`` or ``poisson``.
    hidden, activation, seed:
        The network and its initialisation (PyTorch's default ``nn.Linear`` init under seed).
    steps, lr:
        Optimiser steps and (constant) learning rate of the PyTorch side.
    prior_scale:
        τ of a normal prior on the weight matrices (MAP); None: MLE, no weight decay.
    noise_scale:
        The fixed σ (gaussian) or b (laplace).
    optimizer:
        ``"adam"`` (``torch.optim.Adam`` on both sides; Pyro's ``pyro.optim.Adam`` wraps it) or
        ``"sgd"`` (Pyro's learning rate is lr / c).
    eps:
        Adam's ε. ``"scaled"`` (default): PyTorch keeps its default 1e-8 and Pyro uses c·1e-8,
        which makes the two updates the same algorithm. A number: both sides use that ε (1e-8,
        the default of each library, shows the drift; 0 removes ε from both).

    Returns
    -------
    TrainingEquivalence
        Both trajectories, both loss curves and ``max_abs_diff``.
    """
    if likelihood not in TORCH_LOSSES:
        raise ValueError(f"torch_equivalence covers {sorted(TORCH_LOSSES)}; got {likelihood!r}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; valid names are {list(OPTIMIZERS)}")
    if isinstance(eps, str):
        if eps != "scaled":
            raise ValueError(f"eps must be 'scaled' or a number >= 0; got {eps!r}")
    elif not (isinstance(eps, (int, float)) and eps >= 0 and math.isfinite(eps)):
        raise ValueError(f"eps must be 'scaled' or a number >= 0; got {eps!r}")
    steps = int(steps)
    if steps < 1:
        raise ValueError(f"steps must be a positive integer; got {steps}")
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a positive number; got {lr!r}")
    family_has_scale = get_family(likelihood).has_scale
    spec = make_spec(
        likelihood,
        estimator="mle" if prior_scale is None else "map",
        prior="normal",
        prior_scale=1.0 if prior_scale is None else prior_scale,
        noise_scale=noise_scale if family_has_scale else None,
    )
    X, y = check_data(X, y, spec)
    n = X.shape[0]
    n_out = int(y.max()) + 1 if spec.family.multiclass else 1
    loss_name, loss_cls, constant_of = TORCH_LOSSES[likelihood]
    c = constant_of(n, spec.noise_scale if family_has_scale else 1.0)
    eps_torch = TORCH_EPS if eps == "scaled" else float(eps)
    eps_pyro = c * TORCH_EPS if eps == "scaled" else float(eps)
    lr_pyro = lr / c if optimizer == "sgd" else lr
    weight_decay = 0.0 if prior_scale is None else 1.0 / (c * spec.prior_scale**2)

    X_t = torch.as_tensor(X, dtype=DTYPE)
    y_t = torch.as_tensor(y, dtype=torch.long if spec.family.multiclass else DTYPE)
    init = initial_state(X.shape[1], hidden, n_out, seed)
    names = tuple(init)

    # (b) plain PyTorch: the loss, weight decay on the weight matrices only
    net = TorchMLP(X.shape[1], hidden, n_out, activation)
    with torch.no_grad():
        for k, p in net.named_parameters():
            p.copy_(init[k])
    groups = [
        {"params": [p for k, p in net.named_parameters() if k.endswith("weight")],
         "weight_decay": weight_decay},
        {"params": [p for k, p in net.named_parameters() if k.endswith("bias")],
         "weight_decay": 0.0},
    ]
    torch_opt = (torch.optim.Adam(groups, lr=lr, eps=eps_torch) if optimizer == "adam"
                 else torch.optim.SGD(groups, lr=lr))
    loss_fn = loss_cls()
    torch_traj, torch_losses = [_flatten(dict(net.named_parameters()), names)], []
    for _ in range(steps):
        torch_opt.zero_grad()
        loss = loss_fn(net(X_t), y_t)
        loss.backward()
        torch_opt.step()
        torch_losses.append(loss.item())
        torch_traj.append(_flatten(dict(net.named_parameters()), names))

    # (a) Pyro: SVI on the delta-guide ELBO of the same network as sample sites
    model = build_network_model(spec, MLPMean(X.shape[1], hidden, n_out, activation))
    with pyro.get_param_store().scope(), pyro.validation_enabled(False):
        guide = AutoDelta(model, init_loc_fn=init_to_value(values=dict(init)))
        pyro_opt = (pyro.optim.Adam({"lr": lr_pyro, "eps": eps_pyro}) if optimizer == "adam"
                    else pyro.optim.SGD({"lr": lr_pyro}))
        svi = SVI(model, guide, pyro_opt, Trace_ELBO())
        guide(X_t, y_t)
        # the delta locations of real-valued sites are stored as they are (identity transform)
        locs = {k.removesuffix("_unconstrained"): v for k, v in guide.named_parameters()}
        pyro_traj, pyro_losses = [_flatten(locs, names)], []
        for _ in range(steps):
            pyro_losses.append(svi.step(X_t, y_t))
            pyro_traj.append(_flatten(locs, names))

    pyro_traj, torch_traj = np.array(pyro_traj), np.array(torch_traj)
    return TrainingEquivalence(
        likelihood=likelihood,
        torch_loss_name=loss_name + (f" + Adam weight_decay" if prior_scale is not None else ""),
        optimizer=optimizer,
        names=names,
        pyro_trajectory=pyro_traj,
        torch_trajectory=torch_traj,
        pyro_loss=np.array(pyro_losses),
        torch_loss=np.array(torch_losses),
        constant=float(c),
        eps_pyro=eps_pyro if optimizer == "adam" else float("nan"),
        eps_torch=eps_torch if optimizer == "adam" else float("nan"),
        lr_pyro=lr_pyro,
        lr_torch=lr,
        weight_decay=weight_decay,
        max_abs_diff=float(np.abs(pyro_traj - torch_traj).max()),
    )


EQUIVALENCE_TOL = 1e-6  # max |Δparam| over the run (float64, 200 steps)
# (likelihood, keywords) of the rows ``bayesloss check`` adds: the five losses, and a normal
# prior as Adam's weight decay
TRAINING_CASES = [(lik, {}) for lik in TORCH_LOSSES] + [("gaussian", {"prior_scale": 0.5})]


def equivalence_data(likelihood: str, n: int = 300, d: int = 3, seed: int = 0):
    """Seeded synthetic ``(X, y)`` of ``likelihood`` with standardised columns, the input a
    network expects (tanh units on raw, wide-ranging columns would saturate)."""
    from .data import make_synthetic

    data = make_synthetic(likelihood, n=n, d=d, seed=seed)
    return (data.X - data.X.mean(axis=0)) / data.X.std(axis=0), data.y


def equivalence_rows(likelihoods=None, *, steps: int = 200, seed: int = 0) -> pd.DataFrame:
    """Rows for ``bayesloss check`` (the columns of :func:`bayesloss.compare.comparison_table`):
    one per :data:`TRAINING_CASES` entry, judged on max |Δparam| ≤ 1e-6 between the Pyro and
    the PyTorch training (``converged`` there means every step stayed finite)."""
    from .compare import COLUMNS

    rows = []
    for lik, kw in TRAINING_CASES:
        if likelihoods is not None and lik not in likelihoods:
            continue
        X, y = equivalence_data(lik, seed=seed)
        res = torch_equivalence(X, y, lik, steps=steps, seed=seed, **kw)
        finite = bool(np.isfinite(res.pyro_trajectory).all()
                      and np.isfinite(res.torch_trajectory).all())
        rows.append(dict(
            family=lik, estimator="map" if kw else "mle", prior="normal" if kw else "",
            scale="1" if get_family(lik).has_scale else "",
            data=f"training: pyro SVI vs {res.torch_loss_name}, Adam {steps} steps",
            parameter="max |Δparam|", ours=res.max_abs_diff, reference=0.0,
            abs_err=res.max_abs_diff, rel_err=res.max_abs_diff, tolerance=EQUIVALENCE_TOL,
            judged=True, passed=finite and res.max_abs_diff <= EQUIVALENCE_TOL,
            converged=finite, seed=seed,
        ))
    return pd.DataFrame(rows, columns=COLUMNS)
