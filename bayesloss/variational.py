r"""Variational posteriors of the same Pyro models: Pyro's autoguides fitted by SVI.

The guide ``q`` is one of Pyro's autoguides over the latent sites of
:func:`~bayesloss.models.build_model` (``weight``, ``bias``, ``scale`` when learned), in their
unconstrained coordinates ``u`` (``log σ`` for a learned scale; weights and intercept are the
user's own), and is fitted by maximising the evidence lower bound

.. math::

    \mathrm{ELBO}(q) = \mathbb{E}_{q}\big[\log p(y, \theta) - \log q(\theta)\big]
    = \log p(y) - \mathrm{KL}\big(q \,\|\, p(\cdot \mid y)\big).

Guides (:data:`GUIDES`):

* ``"diagonal"`` (``AutoDiagonalNormal``): mean-field Gaussian. For a Gaussian posterior with
  precision Λ its optimum has the exact means and the variances 1/Λᵢᵢ, not Σᵢᵢ: narrower
  wherever the parameters are correlated (an unscaled, uncentred design makes them so).
* ``"mvn"`` (``AutoMultivariateNormal``): full-rank Gaussian, exact for a Gaussian posterior.
* ``"lowrank"`` (``AutoLowRankMultivariateNormal``): diagonal plus rank ≈ √D covariance.
* ``"flow"`` (``AutoNormalizingFlow`` of :data:`FLOW_TRANSFORMS` inverse autoregressive
  transforms, as ``AutoIAFNormal`` builds them, in float64): can follow skewed and curved
  posteriors.

**Preconditioning without changing the family.** The guide's own distribution is over
coordinates ``v``, mapped to ``u = û + T v``, ``û`` the mode of the Laplace approximation
``N(û, H⁻¹)`` (for a kinked model: the point fit, with ``H`` from its smooth surrogate), so
that Adam's steps are in posterior sds whatever the units of the columns, and the guide starts
near ``v ~ N(0, I)``. ``T`` is chosen per family so that the family over ``u``, the model's
own coordinates, is the family over ``v``; the Gaussians' location parameter ``a`` enters as
``mean(u) = û + C a`` with ``C`` the Cholesky factor of ``H⁻¹`` (a translation keeps every
family, and in ``a`` the means are as well conditioned as the posterior is close to Gaussian,
however correlated it is):

* mean-field: ``T = diag(1/√Hᵢᵢ)``, a diagonal map (the family is closed under it, so the
  guide keeps its narrowing); it starts at the mean-field optimum for the Laplace Gaussian;
* full-rank: ``T = C`` (a Gaussian family is closed under any affine map); it starts at the
  Laplace approximation;
* low-rank: ``T = diag(√(H⁻¹)ᵢᵢ)``, diagonal (a non-diagonal map would change the family); it
  starts at the Laplace marginal sds, its rank-r factor at the Laplace correlation's leading
  eigenvectors;
* flow: ``T = C`` (the flow transforms Laplace-whitened coordinates, as NeuTra does (Hoffman
  et al. 2019): an affine map composed with a flow is one more layer of it); it starts near the
  Laplace approximation (its networks at Pyro's random, seeded initialisation).

For a Gaussian posterior the full-rank and mean-field guides thus start at their optima, which
SVI must keep; elsewhere it moves them (to the mean and spread a skewed posterior has, not its
mode and curvature).

**The fit.** ``Trace_ELBO`` with :data:`PARTICLES` particles vectorised in one trace (the
model's linear mean is evaluated for a batch of draws; on large data fewer, at most
:data:`PARTICLE_ROWS` particles × rows but no fewer than :data:`MIN_PARTICLES`),
``ClippedAdam`` at :data:`LR` decaying geometrically to 1/10 of it over :data:`MAX_STEPS`, in
the engine's SVI loop (:func:`~bayesloss.engine.run_adam`), stopped on an ELBO plateau
(:class:`~bayesloss.engine.ElboPlateau`): windows of :data:`WINDOW` steps; a window is on a
plateau when its mean −ELBO is not below the previous window's (at the same learning rate) by
more than max(:data:`PLATEAU_TOL` nats, 2 standard errors of the difference). The first
plateau divides the learning rate by 10, the second stops the run, which returns the average of
the last window's iterates (at least 4 windows, 200 steps). A run that reaches
:data:`MAX_STEPS` first warns (:class:`~bayesloss.spec.ConvergenceWarning`).

**Did it work?** (Yao et al. 2018.) Over the draws ``uₛ ~ q`` (those returned, topped up to
:data:`KHAT_DRAWS`), the Pareto-smoothed importance sampling shape k̂ of
``log p(uₛ, y) − log q(uₛ)`` (ArviZ's ``psislw``): k̂ < 0.5 the guide is close to the
posterior, 0.5–0.7 usable with care, > 0.7 not to be trusted (:class:`ApproximationWarning`).

**Kinks** (a Laplace likelihood or prior) are no obstacle: the ELBO is an expectation over the
guide, smooth in its parameters even where ``log p`` has kinks (the Laplace approximation, which
needs a Hessian at the mode, does not exist there).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro.distributions.transforms import (
    AffineTransform, LowerCholeskyAffine, affine_autoregressive, iterated,
)
from pyro.infer import Trace_ELBO
from pyro.nn import PyroParam
from pyro.infer.autoguide import (
    AutoDiagonalNormal, AutoLowRankMultivariateNormal, AutoMultivariateNormal,
    AutoNormalizingFlow,
)

from .engine import ElboPlateau, Solver, run_adam
from .models import build_model, linear_mean, predictor
from .potential import GaussianApproximation, Potential, shift_directions
from .spec import ConvergenceWarning

__all__ = ["GUIDES", "ApproximationWarning", "VariationalFit", "check_guide", "fit_guide",
           "log_posterior"]

GUIDES = ("diagonal", "mvn", "lowrank", "flow")
PARTICLES = 128  # one vectorised trace: on small models about the cost of one particle
PARTICLE_ROWS = 100_000  # particles × rows per step, beyond which fewer particles are used …
MIN_PARTICLES = 8  # … down to this many
LR = 0.02  # in posterior sds (the preconditioned coordinates)
WINDOW = 50
DECAYS = 1  # learning-rate drops (×0.1) at plateaus before the final one
PLATEAU_TOL = 1e-3  # nats per window
MAX_STEPS = 10_000
FLOW_TRANSFORMS = 2
KHAT_DRAWS = 4000  # at least, for k̂: from a few hundred draws it is noisy and biased upwards


class ApproximationWarning(UserWarning):
    """The Pareto k̂ of log p − log q over a variational posterior's draws exceeds 0.7: the
    guide misses the posterior's shape (its tails, correlations or skew) too much for its
    draws or moments to be trusted (Yao et al. 2018)."""


def check_guide(guide: str) -> None:
    """A ValueError unless ``guide`` is one of :data:`GUIDES`."""
    if guide not in GUIDES:
        raise ValueError(f"unknown guide {guide!r}; valid names are {list(GUIDES)}")


class _Preconditioned:
    """Mixin for an ``AutoContinuous`` guide: its distribution over ``v`` mapped to
    ``u = center + T v``, ``T`` a vector (a diagonal map) or lower triangular; with a diagonal
    ``T``, a location parameter ``loc`` is moved by ``(C − T) loc`` besides, so that the mean
    of ``u`` is ``center + C loc`` (see the module's notes for which map keeps which family)."""

    def set_coordinates(self, center: torch.Tensor, spread: torch.Tensor,
                        cholesky: torch.Tensor) -> None:
        self.register_buffer("center", center)
        self.register_buffer("spread", spread)
        self.register_buffer("cholesky", cholesky)

    def start(self, approx: GaussianApproximation) -> None:
        """Set the created parameters to the start of the module's notes: the location at
        the Laplace mode (``v`` centred)."""
        if hasattr(self, "loc"):
            with torch.no_grad():
                self.loc.zero_()

    def _shift(self) -> torch.Tensor:
        if self.spread.dim() == 1 and hasattr(self, "loc"):
            return self.center + self.cholesky @ self.loc - self.spread * self.loc
        return self.center

    def get_posterior(self, *args, **kwargs):
        q = super().get_posterior(*args, **kwargs)
        # cached, so that log q of a draw just made needs no inverse of the flow
        to_u = (AffineTransform(self._shift(), self.spread, event_dim=1, cache_size=1)
                if self.spread.dim() == 1
                else LowerCholeskyAffine(self.center, self.spread, cache_size=1))
        if isinstance(q, dist.TransformedDistribution):
            return dist.TransformedDistribution(q.base_dist, list(q.transforms) + [to_u])
        return dist.TransformedDistribution(q, [to_u])

    def gaussian_moments(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and covariance of ``u`` (a Gaussian guide's, exactly)."""
        q = super().get_posterior()
        cov = (q.covariance_matrix if hasattr(q, "covariance_matrix")
               else torch.diag(q.variance))
        T = torch.diag(self.spread) if self.spread.dim() == 1 else self.spread
        return self._shift() + T @ q.mean, T @ cov @ T.T


class _Diagonal(_Preconditioned, AutoDiagonalNormal):
    pass


class _FullRank(_Preconditioned, AutoMultivariateNormal):
    pass


class _LowRank(_Preconditioned, AutoLowRankMultivariateNormal):
    def start(self, approx: GaussianApproximation) -> None:
        """Pyro's covariance of ``v`` is ``c (W Wᵀ + I) c``: set it to the Laplace correlation's
        leading rank-r part plus the diagonal rest (the Laplace marginal sds, as ``T`` maps
        ``v`` to ``u``)."""
        super().start(approx)
        sd = np.sqrt(np.diag(approx.cov))
        values, vectors = np.linalg.eigh(approx.cov / np.outer(sd, sd))
        top = vectors[:, -self.rank:] * np.sqrt(np.clip(values[-self.rank:], 0.0, None))
        rest = np.clip(1.0 - (top**2).sum(1), 1e-2, None)
        with torch.no_grad():
            self.cov_factor.copy_(torch.as_tensor(top / np.sqrt(rest)[:, None]))
        self.scale = PyroParam(torch.as_tensor(np.sqrt(rest)), self.scale_constraint)


class _Flow(_Preconditioned, AutoNormalizingFlow):
    pass


def _flow_transform(dim: int):
    """``AutoIAFNormal``'s transform (inverse autoregressive, hidden width 3D + 1), in float64
    like the model."""
    return iterated(FLOW_TRANSFORMS, affine_autoregressive, dim).to(torch.float64)


def _make_guide(name: str, model, approx: GaussianApproximation):
    """The guide ``name`` on ``model``'s sites in the coordinates ``u = û + T v`` of the
    module's notes, its parameters not yet created."""
    # the Cholesky factor C of cov = A Aᵀ (A: the Laplace factor), by the QR of Aᵀ = Q R:
    # cov = Rᵀ R, with no product of an unscaled cov formed
    r = np.linalg.qr(approx.transform.T, mode="r")
    cholesky = (r * np.sign(np.diag(r))[:, None]).T
    if name == "diagonal":
        # 1/√Hᵢᵢ: H = A⁻ᵀ A⁻¹, no inverse of an unscaled cov either
        inv = np.linalg.inv(approx.transform)
        guide, spread = _Diagonal(model, init_scale=1.0), 1 / np.sqrt((inv**2).sum(0))
    elif name == "lowrank":
        guide, spread = _LowRank(model, init_scale=1.0), np.sqrt(np.diag(approx.cov))
    elif name == "mvn":
        guide, spread = _FullRank(model, init_scale=1.0), cholesky
    elif approx.mode.size < 2:
        raise ValueError("guide='flow' needs at least two parameters: with one, its "
                         "autoregressive transform is an affine map (use guide='diagonal')")
    else:
        guide, spread = _Flow(model, _flow_transform), cholesky
    guide.set_coordinates(*(torch.as_tensor(a) for a in (approx.mode, spread, cholesky)))
    return guide


def _particle_mean(multiclass: bool):
    """The linear mean for one draw, or for the particles' batch ``(P, 1, d[, K])`` (the 1
    is the data plate's dimension) → ``(P, n[, K])``: the model's own η, vectorised."""
    event_dim = 2 if multiclass else 1

    def mean(X, weight, bias):
        if weight.dim() == event_dim:
            return linear_mean(X, weight, bias)
        w = weight.squeeze(-1 - event_dim)
        eta = X @ w if multiclass else w @ X.T
        return eta if bias is None else eta + bias

    return mean


class _GuideProblem:
    """The model bound to its data, as :func:`~bayesloss.engine.run_adam` reads a problem."""

    stage_iter = None

    def __init__(self, potential: Potential):
        self.spec, self.X, self.y = potential.spec, potential.X, potential.y
        # the family's predictor around it: an inner link (von_mises, b + 2·atan(x·w)) too
        mean = predictor(self.spec.family, _particle_mean(self.spec.family.multiclass))
        self._model = build_model(self.spec, self.X.shape[1], potential.n_outputs,
                                  mean_fn=mean)

    def model(self, smoothing: float = 0.0):
        return self._model

    def shift(self, guide):
        return lambda: None


def log_posterior(potential: Potential, u: torch.Tensor) -> torch.Tensor:
    """``log p(y, θ(u)) + log|∂θ/∂u|`` for a batch of unconstrained draws ``u`` (S, D): the
    unnormalised log density of ``u`` (−U of :class:`~bayesloss.potential.Potential`), (S,)."""
    values, logdet = potential.unpack(u)
    total = potential.pointwise_log_likelihood(values).sum(-1) + logdet
    for s in potential.sites:
        if s.prior is not None:
            total = total + s.prior.log_prob(values[s.name]).reshape(u.shape[0], -1).sum(-1)
    return total


@dataclass(frozen=True)
class VariationalFit:
    """A fitted guide's draws and moments in the unconstrained space.

    Attributes
    ----------
    draws:
        ``u`` draws from the guide, (chains, draws, D), in the layout of
        :class:`~bayesloss.potential.Potential`.
    mean, cov:
        The guide's mean and covariance of ``u``: exact for the Gaussian guides, the draws'
        moments for the flow.
    info:
        ``guide``, ``elbo`` (the ELBO estimate at each step, nats), ``steps``, ``converged``
        (the plateau was reached), ``khat``, ``particles``, ``lr``.
    """

    draws: np.ndarray
    mean: np.ndarray
    cov: np.ndarray
    info: dict


def fit_guide(potential: Potential, approx: GaussianApproximation, guide: str = "diagonal", *,
              chains: int = 4, draws: int = 1000, seed: int = 0, progress: bool = False,
              stacklevel: int = 2) -> VariationalFit:
    """Fit the autoguide ``guide`` to the posterior of ``potential``'s model by SVI and draw
    from it (see the module's notes for the family, preconditioning and stopping rule).

    Parameters
    ----------
    potential:
        The model on its data (its sites are the guide's; its log density gives k̂).
    approx:
        The Laplace approximation (its mode and covariance set the coordinates and the
        start).
    guide:
        One of :data:`GUIDES`.
    chains, draws:
        ``chains × draws`` independent draws, shaped like a sampler's so every posterior
        summary and figure reads them.
    seed:
        Seeds the guide's initialisation, the ELBO's particles and the draws.
    progress:
        A progress bar over the steps.
    stacklevel:
        Where the warnings point (2: the caller of this function).

    Returns
    -------
    VariationalFit
        Warns (:class:`ApproximationWarning`) when k̂ > 0.7, and
        (:class:`~bayesloss.spec.ConvergenceWarning`) when the ELBO did not reach its plateau.
    """
    from . import diagnostics  # ArviZ, imported when first needed (as posterior.py does)

    check_guide(guide)
    if shift_directions(potential.spec, potential).shape[1]:
        raise ValueError(
            "variational inference needs a proper posterior; softmax logits with a flat "
            "intercept (or flat weights) are unchanged by a shift common to the K classes, so "
            "this posterior is improper along it: use penalize_intercept=True with a prior, or "
            "method='nuts' / 'laplace', which work on the centred parameters")
    pyro.set_rng_seed(seed)
    problem = _GuideProblem(potential)
    q = _make_guide(guide, problem.model(), approx)
    # creates the parameters, at the autoguide's own start (drawn from the prior), where a
    # distribution may reject its arguments (beta's shapes underflow on unscaled columns):
    # only their shapes count, start() sets their values next
    with pyro.validation_enabled(False):
        q(problem.X, problem.y)
    q.start(approx)
    plateau = ElboPlateau(WINDOW, PLATEAU_TOL, DECAYS)
    solver = Solver(optimizer="adam", seed=seed, num_steps=MAX_STEPS, lr=LR,
                    check_every=WINDOW, progress=progress)
    particles = int(np.clip(PARTICLE_ROWS // problem.X.shape[0], MIN_PARTICLES, PARTICLES))
    elbo = Trace_ELBO(num_particles=particles, vectorize_particles=True, max_plate_nesting=1)
    steps, _, converged, run_info = run_adam(problem, q, list(q.parameters()), solver,
                                             elbo=elbo, plateau=plateau)
    if not converged:
        warnings.warn(f"{potential.spec.label()} VI ({guide}): the ELBO was still improving "
                      f"after {steps} steps (no plateau: see bayesloss.variational)",
                      ConvergenceWarning, stacklevel=stacklevel)

    with torch.no_grad():
        posterior = q.get_posterior()
        u = posterior.sample((max(chains * draws, KHAT_DRAWS),))
        log_ratio = log_posterior(potential, u) - posterior.log_prob(u)
        u = u[:chains * draws]
        if guide == "flow":
            mean, cov = u.mean(0).numpy(), np.atleast_2d(np.cov(u.numpy(), rowvar=False))
        else:
            mean, cov = (m.numpy() for m in q.gaussian_moments())
    khat = diagnostics.pareto_khat(log_ratio.numpy())
    if khat > diagnostics.PARETO_K_MAX:
        warnings.warn(
            f"{potential.spec.label()} VI ({guide}): Pareto k̂ = {khat:.2f} > "
            f"{diagnostics.PARETO_K_MAX} for "
            "log p − log q over the draws: the guide misses the posterior's shape; do not "
            "trust its draws (try a richer guide, or method='nuts')",
            ApproximationWarning, stacklevel=stacklevel)
    info = {"guide": guide, "elbo": -np.asarray(plateau.losses), "steps": steps,
            "converged": converged, "khat": khat, "particles": particles, "lr": run_info["lr"]}
    return VariationalFit(u.numpy().reshape(chains, draws, -1), mean, cov, info)
