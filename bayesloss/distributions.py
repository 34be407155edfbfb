"""Smoothed stand-ins for the kinked Laplace density, used only inside the optimiser; a
Poisson parameterised by its log rate and a Normal that keeps a shared scale unexpanded (the
same densities as Pyro's, with fewer passes over the rows).

``|r|`` has a kink at zero that stalls every gradient method near 1e-3 relative accuracy. The
point fits therefore minimise a continuation of objectives in which ``|r|`` is replaced by
``sqrt(r² + ε²) − ε`` with ε shrinking towards zero, and judge the result on the exact objective.
"""

import math
import weakref

import pyro.distributions as dist
import torch
from pyro.distributions import TorchDistribution, constraints
from torch.distributions.utils import broadcast_all


class SmoothLaplace(TorchDistribution):
    r"""Laplace density with ``|x − loc|`` replaced by ``sqrt((x − loc)² + ε²) − ε``.

    .. math:: \log p(x) = -\log(2b) - \big(\sqrt{(x-\mu)^2 + \varepsilon^2} - \varepsilon\big) / b

    It equals :class:`pyro.distributions.Laplace` at ``ε = 0`` and is not normalised for ``ε > 0``
    (the optimiser needs only its mode). Sampling returns Laplace draws, which is all AutoDelta's
    initialisation needs.
    """

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.real
    has_rsample = False

    def __init__(self, loc, scale, smoothing, validate_args=None):
        self.loc, self.scale = broadcast_all(loc, scale)
        self.smoothing = float(smoothing)
        super().__init__(self.loc.shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        return SmoothLaplace(
            self.loc.expand(batch_shape), self.scale.expand(batch_shape), self.smoothing
        )

    def sample(self, sample_shape=torch.Size()):
        with torch.no_grad():
            return torch.distributions.Laplace(self.loc, self.scale).sample(sample_shape)

    def log_prob(self, value):
        eps = self.smoothing
        r = value - self.loc
        absr = torch.sqrt(r * r + eps * eps) - eps if eps > 0 else r.abs()
        return -math.log(2.0) - self.scale.log() - absr / self.scale


# (weak reference to the latest counts tensor, its version, log y!): emptied when y goes
_LOG_FACTORIAL: list = [None, -1, None]


def _forget_log_factorial(_ref) -> None:
    _LOG_FACTORIAL[:] = [None, -1, None]


def _log_factorial(y: torch.Tensor) -> torch.Tensor:
    """``log y! = lgamma(y + 1)``, remembered for the latest ``y`` while it lives: a fit
    evaluates its likelihood many times on one data tensor, and lgamma costs more than the
    rest of a Poisson log-density together."""
    ref, version, value = _LOG_FACTORIAL
    if ref is None or ref() is not y or version != y._version:
        value = torch.lgamma(y + 1)
        _LOG_FACTORIAL[:] = [weakref.ref(y, _forget_log_factorial), y._version, value]
    return value


class PoissonLogRate(dist.Poisson):
    r"""``Poisson(e^η)`` parameterised by the log rate η (the canonical link):

    .. math:: \log p(y) = y\,η − e^{η} − \log y!

    the same density as ``Poisson(rate=exp(η))`` without the round trip ``log(exp(η))``.
    """

    def __init__(self, log_rate, validate_args=None):
        self.log_rate = log_rate
        super().__init__(log_rate.exp(), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        return PoissonLogRate(self.log_rate.expand(torch.Size(batch_shape)))

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        return value * self.log_rate - self.rate - _log_factorial(value)


class NormalSharedScale(dist.Normal):
    r"""``Normal(η, σ)`` whose log-density uses σ as given (one σ for all rows: a 0-d tensor):

    .. math:: \log p(y) = -\tfrac12 ((y − η)/σ)² − \log σ − \tfrac12 \log 2π

    ``torch.distributions.Normal`` broadcasts σ to every row first and then squares and logs
    it row by row, which (with the backward pass) costs as much as the rest of the density.
    """

    def __init__(self, loc, scale, validate_args=None):
        self.shared_scale = torch.as_tensor(scale, dtype=loc.dtype)
        super().__init__(loc, scale, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        return NormalSharedScale(self.loc.expand(torch.Size(batch_shape)), self.shared_scale)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        s = self.shared_scale
        r = (value - self.loc) / s
        return -0.5 * r * r - (s.log() + 0.5 * math.log(2 * math.pi))
