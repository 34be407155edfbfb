"""Smoothed stand-ins for the kinked Laplace density, used only inside the optimiser.

``|r|`` has a kink at zero that stalls every gradient method near 1e-3 relative accuracy. The
point fits therefore minimise a continuation of objectives in which ``|r|`` is replaced by
``sqrt(r² + ε²) − ε`` with ε shrinking towards zero, and judge the result on the exact objective.
"""

import math

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
