r"""The posterior's potential energy, derived once from the model's own distributions.

Pyro's NUTS on a model traces it at every leapfrog step, and that trace is nearly all of its
cost. :class:`Potential` traces :func:`~bayesloss.models.build_model` *once* to collect the
latent sites (their distributions, supports and masks) and then evaluates

.. math::

    U(u) = -\log p\big(y \mid X, \theta(u)\big) - \log p\big(\theta(u)\big)
           - \log\Big|\det \frac{\partial\theta}{\partial u}\Big|

on a flat vector ``u`` of the *unconstrained* parameters (a learned scale is ``u = log σ``),
with the same Pyro distributions the model uses: each latent site's own distribution object
(masked sites, the flat priors and the MLE's prior, contribute nothing), and the likelihood
``family.distribution(η, σ, df)``. ``tests/test_posterior.py`` pins it to the traced model's
log density for every family × prior, so the two cannot drift apart.

:class:`GaussianApproximation` finds the mode of ``U`` (the mode in the *unconstrained* space,
as Stan's ``jacobian=True`` and Pyro's ``AutoLaplaceApproximation``; a point fit's AutoDelta
mode lives in the constrained space) by Newton's method with the exact autograd Hessian, and
factors that Hessian: it is the Laplace approximation, and its factor ``A`` (``A Aᵀ = H⁻¹``)
is the affine map ``u = û + A z`` in which NUTS samples a posterior close to N(0, I), whatever
the scaling and collinearity of the design.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import pyro
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample
from pyro.distributions import constraints
from pyro.distributions.torch_distribution import MaskedDistribution
from torch.distributions import Independent, biject_to

from .families.mixture import append_mixing
from .models import build_model, predictor
from .spec import ModelSpec, with_changes

DTYPE = torch.float64
NEWTON_MAX_ITER = 100


def _is_real(constraint) -> bool:
    while isinstance(constraint, constraints.independent):
        constraint = constraint.base_constraint
    return constraint is constraints.real


@dataclass(frozen=True)
class _Site:
    name: str
    shape: tuple
    start: int
    stop: int
    transform: object  # unconstrained → constrained
    identity: bool
    prior: Optional[object]  # the site's distribution; None where masked off (flat / MLE)


class Potential:
    """``U(u)``: the negative log posterior density of ``spec`` on (X, y), unconstrained.

    Parameters
    ----------
    spec:
        The model. ``estimator="mle"`` is the posterior under flat weights (the prior site is
        masked off, exactly as in the MLE point fit); ``"map"`` puts the prior on.
    X, y:
        Validated data (float64 arrays; integer labels for categorical).
    n_outputs:
        K for categorical, 1 otherwise.
    smoothing:
        Passed to the model (0: the exact density).

    Sites are laid out in the model's order in one flat vector (weight row-major, bias,
    ``log scale``); :attr:`sites` gives the slices.
    """

    def __init__(self, spec: ModelSpec, X, y, n_outputs: int = 1, smoothing: float = 0.0):
        self.spec = spec
        self.X = torch.as_tensor(np.array(X, dtype=np.float64))  # a copy: X may be read-only
        self.y = torch.as_tensor(np.array(y, dtype=np.float64))  # a copy: y may be read-only
        self.n_outputs = n_outputs
        self.smoothing = float(smoothing)
        self.model = build_model(spec, self.X.shape[1], n_outputs, smoothing=smoothing)
        with pyro.validation_enabled(False), torch.no_grad():
            trace = poutine.trace(self.model).get_trace(self.X, self.y)
        sites, start = [], 0
        for name, node in trace.nodes.items():
            if node["type"] != "sample" or site_is_subsample(node):
                continue
            if node["is_observed"]:
                if node["scale"] != 1.0:  # the full batch: no subsampling scale
                    raise ValueError("the potential is for the full data set")
                continue
            fn = node["fn"]
            masked = isinstance(fn, MaskedDistribution) and fn._mask is False
            shape = tuple(node["value"].shape)
            size = int(np.prod(shape)) if shape else 1
            sites.append(_Site(name, shape, start, start + size, biject_to(fn.support),
                               _is_real(fn.support), None if masked else fn))
            start += size
        self.sites = tuple(sites)
        self.size = start
        self.fixed_scale = (None if spec.noise_scale is None
                            else torch.as_tensor(np.asarray(spec.noise_scale, dtype=np.float64)))

    def __getstate__(self):
        # the model is a closure (not picklable) and only needed to derive the sites: chains
        # in spawned processes get the potential without it
        state = self.__dict__.copy()
        state.pop("model", None)
        return state

    # --- unpacking ----------------------------------------------------------------------

    def unpack(self, u: torch.Tensor) -> tuple[dict, torch.Tensor]:
        """Constrained site values from ``u`` (..., size) and ``log|det ∂θ/∂u|`` (...)."""
        batch = u.shape[:-1]
        values, logdet = {}, torch.zeros(batch, dtype=u.dtype)
        for s in self.sites:
            raw = u[..., s.start:s.stop].reshape(batch + s.shape)
            if s.identity:
                values[s.name] = raw
            else:
                value = s.transform(raw)
                ladj = s.transform.log_abs_det_jacobian(raw, value)
                logdet = logdet + ladj.reshape(batch + (-1,)).sum(-1)
                values[s.name] = value
        return values, logdet

    def pack(self, values: dict) -> torch.Tensor:
        """The flat unconstrained vector of constrained site values (inverse of unpack)."""
        parts = []
        for s in self.sites:
            v = torch.as_tensor(np.asarray(values[s.name], dtype=np.float64))
            v = v if s.identity else s.transform.inv(v)
            parts.append(v.reshape(-1))
        return torch.cat(parts)

    # --- densities ----------------------------------------------------------------------

    def _eta(self, values: dict) -> torch.Tensor:
        weight, bias = values["weight"], values.get("bias")
        family = self.spec.family
        if weight.dim() == (3 if family.multiclass or family.components else 2):  # draws
            eta = (weight @ self.X.T if weight.dim() == 2
                   else torch.einsum("nd,sdk->snk", self.X, weight))
            if self.spec.family.inner_link is not None:  # η = b + g(x·w)
                eta = self.spec.family.inner_link(eta)
            if bias is not None:
                eta = eta + (bias[:, None] if bias.dim() == 1 else bias[:, None, :])
            return eta
        return predictor(self.spec.family)(self.X, weight, bias)

    def _scale(self, values: dict):
        """The noise scale: learned, fixed (a number or per-row σᵢ), or σ(x) of a scale head."""
        if self.spec.family.scale_head:  # log σ(x) = X a + c
            a, c = values["scale_weight"], values["scale_bias"]
            if a.dim() == 2:  # a batch of draws
                return (a @ self.X.T + c[:, None]).exp()
            return (self.X @ a + c).exp()
        scale = values.get("scale", self.fixed_scale)
        # a batch of draws of a learned scale (a mixture's σₖ: (S, K) draws)
        if "scale" in values and scale.dim() == 1 + int(self.spec.family.components):
            scale = scale[:, None]  # (fixed per-row σᵢ, also (n,), broadcast as they are)
        return scale

    def _likelihood(self, values: dict) -> object:
        scale = self._scale(values)
        eta = self._eta(values)
        if "mixing" in values:  # a mixture's constant mixing logits join every row
            eta = append_mixing(eta, values["mixing"])
        return self.spec.family.distribution(eta, scale, self.spec.df, self.smoothing)

    def log_joint(self, values: dict) -> torch.Tensor:
        """``log p(y | θ) + log p(θ)`` at constrained values (one point), no Jacobian."""
        total = self._likelihood(values).log_prob(self.y).sum()
        for s in self.sites:
            if s.prior is not None:
                total = total + s.prior.log_prob(values[s.name]).sum()
        return total

    def __call__(self, u: torch.Tensor) -> torch.Tensor:
        values, logdet = self.unpack(u)
        return -(self.log_joint(values) + logdet)

    def pointwise_log_likelihood(self, values: dict, chunk: int = 500) -> torch.Tensor:
        """``log p(y_i | θ_s)`` for a batch of draws ``values`` (leading dim S): (S, n)."""
        n_draws = next(iter(values.values())).shape[0]
        out = []
        with torch.no_grad():
            for lo in range(0, n_draws, chunk):
                part = {k: v[lo:lo + chunk] for k, v in values.items()}
                out.append(self._likelihood(part).log_prob(self.y))
        return torch.cat(out)

    def predictive_draws(self, values: dict, chunk: int = 500) -> torch.Tensor:
        """One replicated data set ``y_rep ~ p(y | θ_s)`` per draw: (S, n)."""
        n_draws = next(iter(values.values())).shape[0]
        out = []
        with torch.no_grad():
            for lo in range(0, n_draws, chunk):
                part = {k: v[lo:lo + chunk] for k, v in values.items()}
                out.append(self._likelihood(part).sample())
        return torch.cat(out)


def _prior_params(prior) -> Optional[tuple]:
    """``(kind, ν, location, scale)`` of an independent normal, Student-t (Cauchy: ν = 1) or
    Laplace prior, as numpy arrays; None for any other."""
    while isinstance(prior, Independent):
        prior = prior.base_dist
    kinds = ((torch.distributions.Normal, "normal"), (torch.distributions.StudentT, "t"),
             (torch.distributions.Cauchy, "t"), (torch.distributions.Laplace, "laplace"))
    kind = next((name for cls, name in kinds if isinstance(prior, cls)), None)
    if kind is None:
        return None
    nu = prior.df.detach().numpy() if isinstance(prior, torch.distributions.StudentT) else 1.0
    return kind, nu, prior.loc.detach().numpy(), prior.scale.detach().numpy()


def _prior_terms(params: tuple, v: np.ndarray) -> tuple[float, np.ndarray]:
    """``−log p(v)`` up to a constant and its gradient, for :func:`_prior_params`."""
    kind, nu, loc, scale = params
    r = v - loc
    if kind == "normal":
        return 0.5 * float((r * r / scale**2).sum()), r / scale**2
    if kind == "laplace":  # the kink: sign(0) = 0, as autograd's |·|
        return float((np.abs(r) / scale).sum()), np.sign(r) / scale
    nu_s2 = nu * scale**2
    return (0.5 * float(((nu + 1) * np.log1p(r * r / nu_s2)).sum()),
            (nu + 1) * r / (nu_s2 + r * r))


class NumpyPotential:
    """``U(u)`` and ``∇U(u)`` of a :class:`Potential` in one numpy pass, no autograd graph.

    The likelihood's terms come from the family's ``numpy_terms`` (the NLL and its
    derivative in η and ``log s``, as the verified references use them), the weights' prior
    from its closed form (normal, Student-t, Cauchy, Laplace), the learned scale's
    ``log|∂σ/∂u|`` is ``u`` itself; known per-row σᵢ rescale the rows of a location-scale
    family. The constants that ``numpy_terms`` drops are restored once, so the value equals
    ``potential(u)``. It is
    what NUTS evaluates at every leapfrog step: Pyro's autograd of the distributions costs
    several times the arithmetic on the small models people fit every day.

    Use :meth:`of`, which returns None where no closed form applies (a kinked likelihood, a
    σ(x) head, other priors, a smoothed surrogate): the caller keeps the torch potential there.
    """

    def __init__(self, potential: Potential, terms, priors: dict, at: np.ndarray):
        spec = potential.spec
        self.terms, self.df = terms, spec.df
        self.X = potential.X.numpy()
        self.y = potential.y.numpy().astype(np.int64) if spec.family.multiclass \
            else potential.y.numpy()
        self.sites = {s.name: s for s in potential.sites}
        self.priors = priors
        fixed = None if potential.fixed_scale is None else potential.fixed_scale.numpy()
        # per-row σᵢ of a location-scale family rescale its rows; a known per-row input
        # (binomial's trials) is the terms' second parameter row by row, β = log nᵢ
        per_row = fixed is not None and fixed.ndim == 1 and not spec.family.row_input
        self.row_scale = fixed if per_row else None
        self.log_scale = 0.0 if fixed is None or per_row else np.log(fixed)
        if self.row_scale is not None:  # f((t − η)/σᵢ) + log σᵢ: unit scale on scaled rows
            self.y = self.y / self.row_scale
        self.offset = 0.0
        self.offset = float(potential(torch.as_tensor(at))) - self.value_and_grad(at)[0]

    @classmethod
    def of(cls, potential: Potential, at: np.ndarray) -> Optional["NumpyPotential"]:
        """The closed form of ``potential`` where one applies (else None); ``at`` is where
        its dropped constants are measured (any point of finite density, e.g. the mode)."""
        spec = potential.spec
        terms = spec.family.numpy_terms
        if terms is None or spec.family.scale_head or potential.smoothing:
            return None
        priors = {}
        for s in potential.sites:
            if not (s.identity or (s.name == "scale"
                                   and s.transform == biject_to(constraints.positive))):
                return None
            if s.prior is not None:  # None: masked off, flat
                priors[s.name] = None if s.name == "scale" else _prior_params(s.prior)
                if priors[s.name] is None:
                    return None
        return cls(potential, terms, priors, at)

    def value_and_grad(self, u: np.ndarray) -> tuple[float, np.ndarray]:
        """``(U(u), ∇U(u))`` for one flat unconstrained vector ``u``."""
        grad = np.empty_like(u)
        w_site, b_site = self.sites["weight"], self.sites.get("bias")
        weight = u[w_site.start:w_site.stop].reshape(w_site.shape)
        eta = self.X @ weight
        if b_site is not None:
            eta = eta + u[b_site.start:b_site.stop].reshape(b_site.shape)
        scale_site = self.sites.get("scale")
        beta = u[scale_site.start] if scale_site is not None else self.log_scale
        if self.row_scale is not None:
            eta = eta / self.row_scale
        value, g_eta, _, g_beta, _, _ = self.terms(self.y, eta, beta, self.df)
        if self.row_scale is not None:
            g_eta = g_eta / self.row_scale
        grad[w_site.start:w_site.stop] = (self.X.T @ g_eta).reshape(-1)
        if b_site is not None:
            grad[b_site.start:b_site.stop] = g_eta.sum(0)
        if scale_site is not None:  # − log|dσ/du| = −u
            value, grad[scale_site.start] = value - beta, g_beta - 1.0
        for name, prior in self.priors.items():
            site = self.sites[name]
            v = u[site.start:site.stop]
            f, g = _prior_terms(prior, v.reshape(site.shape))
            value += f
            grad[site.start:site.stop] += np.reshape(g, -1)
        return value + self.offset, grad


def shift_directions(spec: ModelSpec, potential: Potential) -> np.ndarray:
    """Directions of ``u`` along which the posterior density is exactly flat (columns).

    Softmax logits are unchanged by a shift common to the K classes: with a flat intercept the
    intercept's shift is free, and with flat weights (MLE) each feature's shift is. Sampling
    and the Laplace approximation work in the complement, which holds the centred parameters
    (the convention of :class:`~bayesloss.results.Fit`); those marginals are proper.
    """
    if not spec.family.multiclass:
        return np.zeros((potential.size, 0))
    cols = []
    for s in potential.sites:
        if s.name == "weight" and s.prior is None:
            d, k = s.shape
            for j in range(d):
                v = np.zeros(potential.size)
                v[s.start + j * k:s.start + (j + 1) * k] = 1.0
                cols.append(v)
        if s.name == "bias" and s.prior is None:
            v = np.zeros(potential.size)
            v[s.start:s.stop] = 1.0
            cols.append(v)
    if not cols:
        return np.zeros((potential.size, 0))
    return np.stack(cols, axis=1) / np.sqrt(np.stack(cols, axis=1).sum(0))


def _complement(null: np.ndarray, size: int) -> np.ndarray:
    """An orthonormal basis (columns) of the orthogonal complement of ``null``'s columns."""
    if null.shape[1] == 0:
        return np.eye(size)
    q, _ = np.linalg.qr(np.concatenate([null, np.eye(size)], axis=1))
    return q[:, null.shape[1]:size]


def hessian(fn, u: torch.Tensor) -> torch.Tensor:
    """The exact Hessian of scalar ``fn`` at ``u`` (torch autograd, vectorised)."""
    return torch.autograd.functional.hessian(fn, u, vectorize=True)


def factor_precision(H: np.ndarray) -> np.ndarray:
    """``A`` with ``A Aᵀ = H⁻¹`` for a symmetric positive-definite ``H``.

    ``H`` is first scaled to unit diagonal (Jacobi), so that unscaled columns do not spoil the
    Cholesky factorisation: ``A = D C⁻ᵀ`` with ``D H D = C Cᵀ``. Raises ValueError when ``H``
    is not positive definite: the posterior is improper or not identified at that point.
    """
    H = 0.5 * (H + H.T)
    diag = np.diag(H)
    if not np.all(np.isfinite(H)) or np.any(diag <= 0):
        raise ValueError("the Hessian of the negative log posterior is not positive definite "
                         "at the mode: the posterior is improper or not identified")
    D = 1.0 / np.sqrt(diag)
    try:
        C = np.linalg.cholesky(H * np.outer(D, D))
    except np.linalg.LinAlgError:
        raise ValueError("the Hessian of the negative log posterior is not positive definite "
                         "at the mode: the posterior is improper or not identified (collinear "
                         "columns with a flat prior, or too few rows)") from None
    return D[:, None] * np.linalg.inv(C).T


@dataclass(frozen=True)
class GaussianApproximation:
    """The Laplace approximation ``u ~ N(mode, A Aᵀ)`` in the unconstrained space.

    ``basis`` (size × r) spans the identified directions (all of them except the softmax
    shifts), and ``factor`` is r × r: ``u = mode + basis @ factor @ z``. ``converged`` says
    whether Newton's decrement fell below its tolerance; ``exact`` is False where the Hessian
    came from a smooth surrogate of a kinked density (a preconditioner, not a Laplace
    approximation).
    """

    mode: np.ndarray
    basis: np.ndarray
    factor: np.ndarray
    converged: bool
    n_iter: int
    exact: bool

    @property
    def transform(self) -> np.ndarray:
        """``T`` with ``u = mode + T z``."""
        return self.basis @ self.factor

    @property
    def cov(self) -> np.ndarray:
        """Covariance of ``u`` (singular along the softmax shifts, which it leaves at 0)."""
        T = self.transform
        return T @ T.T


def _newton(potential: Potential, u0: torch.Tensor, basis: np.ndarray, tol: float):
    """Minimise ``U`` from ``u0`` by damped Newton steps in the identified subspace.

    Stops when half the squared Newton decrement ``gᵀH⁻¹g/2`` (an affine-invariant estimate
    of ``U − min U``; its square root is the distance to the mode in posterior sds) is
    ≤ ``tol · max(1, |U|)``, or when float64 no longer resolves a decrease (converged if the
    decrement is then ≤ 1e-10 · max(1, |U|)).
    """
    B = torch.as_tensor(basis)
    u = u0.clone()
    for it in range(1, NEWTON_MAX_ITER + 1):
        v = u.clone().requires_grad_(True)
        value = potential(v)
        (g,) = torch.autograd.grad(value, v)
        g_r = (B.T @ g).numpy()
        H_r = B.T.numpy() @ hessian(potential, u).numpy() @ basis
        try:
            step = np.linalg.solve(H_r, g_r)
        except np.linalg.LinAlgError:
            return u, False, it
        decrement = float(g_r @ step)
        if not np.isfinite(decrement) or decrement < 0:  # not locally convex here
            return u, False, it
        if decrement / 2 <= tol * max(1.0, abs(value.item())):
            return u, True, it
        t, f0 = 1.0, value.item()
        direction = B @ torch.as_tensor(step)
        with torch.no_grad():
            while True:
                trial = u - t * direction
                f = float(potential(trial))
                if math.isfinite(f) and f <= f0 - 1e-4 * t * decrement:
                    break
                t *= 0.5
                if t < 1e-10:  # float64 no longer resolves a decrease: as good as it gets
                    return u, decrement / 2 <= 1e-10 * max(1.0, abs(f0)), it
        u = trial
    return u, False, NEWTON_MAX_ITER


def laplace_approximation(potential: Potential, start: dict, *, tol: float = 1e-20
                          ) -> GaussianApproximation:
    """The mode of ``U`` in the unconstrained space and the exact Hessian there, factored.

    ``start`` (constrained site values, e.g. a converged point fit) is refined by Newton's
    method; kinked models (a Laplace likelihood or prior) have no Hessian at their mode, so
    their factor comes from a smooth surrogate (each Laplace replaced by a normal of the same
    scale) at ``start`` itself, and is marked ``exact=False``.
    """
    spec = potential.spec
    basis = _complement(shift_directions(spec, potential), potential.size)
    u0 = potential.pack(start)
    if spec.kinked:
        surrogate_spec = with_changes(
            spec,
            likelihood="gaussian" if spec.family.kinked else spec.likelihood,
            prior="normal" if spec.prior_spec.kinked else spec.prior,
        )
        surrogate = Potential(surrogate_spec, potential.X.numpy(), potential.y.numpy(),
                              potential.n_outputs)
        H = basis.T @ hessian(surrogate, u0).numpy() @ basis
        return GaussianApproximation(u0.numpy(), basis, factor_precision(H), True, 0, False)
    u, converged, n_iter = _newton(potential, u0, basis, tol)
    H = basis.T @ hessian(potential, u).numpy() @ basis
    return GaussianApproximation(u.numpy(), basis, factor_precision(H), converged, n_iter, True)


def point_covariance(spec: ModelSpec, X, y, values: dict, n_outputs: int = 1):
    r"""Covariance of the constrained parameters at a point estimate, from the exact Hessian
    of the negative log joint density (no Jacobian: the classical observed information).

    .. math:: \widehat{\mathrm{Cov}}(\hat\theta) = \big[-\nabla^2_\theta \log p(y, \theta)
              \big]^{-1}_{\theta = \hat\theta}

    For the MLE these are the classical (observed-information) standard errors. Returns the
    covariance over the flattened ``[weight, bias, scale]`` (softmax shifts projected out, as
    the pseudo-inverse would), or None with a reason where it does not exist (kinked
    densities, a singular Hessian).
    """
    if spec.kinked:
        return None, "no Hessian: the log density has kinks (laplace likelihood or prior)"
    potential = Potential(spec, X, y, n_outputs)
    theta0 = torch.cat([torch.as_tensor(np.asarray(values[s.name], dtype=np.float64)).reshape(-1)
                        for s in potential.sites])

    def neg_log_joint(theta):
        vals = {s.name: theta[s.start:s.stop].reshape(s.shape) for s in potential.sites}
        return -potential.log_joint(vals)

    basis = _complement(shift_directions(spec, potential), potential.size)
    H = basis.T @ hessian(neg_log_joint, theta0).numpy() @ basis
    try:
        A = basis @ factor_precision(H)
    except ValueError as err:
        return None, str(err)
    return A @ A.T, "exact Hessian of −log p(y, θ) at the estimate"
