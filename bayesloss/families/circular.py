r"""Angles: the von Mises likelihood of circular regression (Fisher & Lee, 1992).

An angle ``y`` in (−π, π] given x has the density

.. math::

    p(y \mid \mu, \kappa) = \frac{e^{\kappa \cos(y - \mu)}}{2\pi I_0(\kappa)},\qquad
    \mu = b + 2\,\mathrm{atan}(x^\top w),

the mean direction ``μ`` (also the mode) and the concentration ``κ`` (learned, or fixed by
``noise_scale``). The link maps the real line of ``x·w`` onto an arc of length 2π around the
intercept ``b``, which is the mean direction at x = 0: the intercept sits *outside* the link
(:attr:`~bayesloss.families.Family.inner_link`). The loss is the cosine loss
:math:`L = \sum_i [1 - \cos(y_i - \mu_i)]` (≈ ½ Σ r² for small errors), and

.. math::

    \text{NLL} = \kappa L + n\,[\log 2\pi + \log(e^{-\kappa} I_0(\kappa))]

(Bessel's ``I₀`` in its exponentially scaled form, ``scipy.special.i0e``, exact for any κ),
so for a fixed κ the MLE of ``(w, b)`` minimises the cosine loss.
"""

from __future__ import annotations

import math

import numpy as np
import pyro.distributions as dist
import torch
from scipy.stats import vonmises

from .base import Family


class VonMises(dist.VonMises):
    """Pyro's von Mises with ``log I₀(κ)`` to rounding: torch's own uses a polynomial
    approximation (errors near 1e-8 and a kink at κ = 3.75), where ``log i0e(κ) + κ`` is
    exact and twice differentiable (``torch.special.i0e``, ``i1e``)."""

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        kappa = self.concentration
        return kappa * (torch.cos(value - self.loc) - 1) - math.log(2 * math.pi) \
            - torch.log(torch.special.i0e(kappa))


def _wrap(mu):
    """An angle in (−π, π]."""
    return math.pi - torch.remainder(math.pi - mu, 2 * math.pi)


def _quantile(q, eta, kappa, df):
    """η + the q-quantile of VonMises(0, κ), wrapped into (−π, π]: the central interval about
    the mean direction, whose lower end exceeds its upper end where it crosses ±π."""
    return np.pi - np.mod(np.pi - (eta + vonmises.ppf(q, kappa)), 2 * np.pi)


def _cosine_loss(y, eta, kappa, df):
    return (1 - torch.cos(y - eta)).sum()


def _nll_from_loss(loss, y, kappa, df):
    kappa = torch.as_tensor(kappa, dtype=y.dtype)
    return kappa * loss + y.shape[0] * (math.log(2 * math.pi) + torch.log(torch.special.i0e(kappa)))


def _angle_target(y):
    y = np.asarray(y, dtype=np.float64)
    bad = np.abs(y) > math.pi
    if bad.any():
        raise ValueError(
            f"von_mises targets are angles in radians in (−π, π]; {int(bad.sum())} are outside "
            f"(first: {y[bad][0]!r}): wrap them with numpy.angle(numpy.exp(1j * y))")
    return y


def _circular_mean(y):
    return float(np.arctan2(np.sin(y).mean(), np.cos(y).mean()))


CIRCULAR: dict[str, Family] = {
    "von_mises": Family(
        name="von_mises",
        support="angle",
        scale_name="kappa",
        link="μ = b + 2·atan(x·w) (Fisher & Lee)",
        loss_name="cosine loss Σ [1 − cos(y − μ)]",
        has_scale=True,
        continuous=False,  # angles are not shifted or rescaled
        multiclass=False,
        kinked=False,
        distribution=lambda eta, kappa, df, s: VonMises(eta, kappa),
        loss=_cosine_loss,
        nll_from_loss=_nll_from_loss,
        predict=lambda eta, s=None: _wrap(eta),  # the mean direction, which is the mode
        mean=_wrap,  # the circular mean E[e^{iy}]'s direction
        check_target=_angle_target,
        initial_bias=_circular_mean,
        sample=lambda rng, eta, kappa, df: _wrap(torch.as_tensor(
            rng.vonmises(eta, kappa))).numpy(),
        synthetic_eta=(1.0, 0.5),
        inner_link=lambda u: 2 * torch.atan(u),
        quantile=_quantile,
        references={None: "torch-nll", "normal": "torch-nll", "laplace": "torch-nll",
                    "studentt": "torch-nll", "cauchy": "torch-nll"},
        mle_equivalent="Fisher & Lee's circular regression (R circular::lm.circular, "
                       "type='c-l')",
    ),
}
