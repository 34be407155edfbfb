r"""Priors on the weights and the classical penalties they equal.

The negative log-prior of independent weights is a penalty; MAP = loss + penalty:

========  ==========================  ========================================================
prior     −log p(w) + const           classical knob (n rows, noise scale σ or b)
========  ==========================  ========================================================
normal    Σ w² / (2τ²)                ridge λ = σ²/τ² on ‖y − Xw‖² + λ‖w‖² (gaussian);
                                      ``LogisticRegression`` C = τ² (bernoulli, categorical;
                                      C = 2τ² for two softmax classes);
                                      ``PoissonRegressor`` α = 1/(n·τ²) (poisson)
laplace   Σ |w| / b                   scikit-learn ``Lasso`` α = σ²/(n·b) (gaussian);
                                      ``QuantileRegressor`` α = s/(2n·b) (laplace likelihood,
                                      scale s); L1 ``LogisticRegression`` C = b (bernoulli)
studentt  (ν+1)/2 Σ log(1 + w²/(ντ²)) no classical estimator (a robust, non-convex penalty)
cauchy    studentt with ν = 1          likewise
========  ==========================  ========================================================

The intercept has a flat prior unless the user asks otherwise (scikit-learn / glmnet convention).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import pyro.distributions as dist

from .distributions import SmoothLaplace


@dataclass(frozen=True)
class Prior:
    """A zero-centred prior family for the weights, with the penalty it equals.

    ``distribution(scale, df, smoothing)`` returns the Pyro distribution of one weight;
    ``kinked`` marks a log-density with a kink at zero (laplace), which fits smooth by
    continuation; ``df`` is fixed for ``cauchy`` (1) and taken from ``prior_df`` otherwise.
    ``curvature(scale, df)`` is the penalty's second derivative at w = 0 (0 for the kinked
    laplace), which the fits use to precondition. ``log_concave`` is False for the heavy-tailed
    priors, whose MAP problems can have several local optima.
    """

    name: str
    penalty_name: str
    kinked: bool
    log_concave: bool
    distribution: Callable
    curvature: Callable
    fixed_df: Optional[float] = None


def _laplace_prior(scale, df, smoothing):
    if smoothing > 0:
        return SmoothLaplace(0.0 * scale, scale, smoothing)
    return dist.Laplace(0.0 * scale, scale)


PRIORS: dict[str, Prior] = {
    "normal": Prior(
        name="normal",
        log_concave=True,
        penalty_name="L2: Σ w²/(2τ²)",
        kinked=False,
        distribution=lambda scale, df, s: dist.Normal(0.0 * scale, scale),
        curvature=lambda scale, df: 1.0 / scale**2,
    ),
    "laplace": Prior(
        name="laplace",
        log_concave=True,
        penalty_name="L1: Σ |w|/b",
        kinked=True,
        distribution=_laplace_prior,
        curvature=lambda scale, df: 0.0 * scale,
    ),
    "studentt": Prior(
        name="studentt",
        log_concave=False,
        penalty_name="Student-t: (ν+1)/2 · Σ log(1 + w²/(ντ²))",
        kinked=False,
        distribution=lambda scale, df, s: dist.StudentT(df, 0.0 * scale, scale),
        curvature=lambda scale, df: (df + 1) / (df * scale**2),
    ),
    "cauchy": Prior(
        name="cauchy",
        log_concave=False,
        penalty_name="Cauchy: Σ log(1 + w²/τ²)",
        kinked=False,
        distribution=lambda scale, df, s: dist.StudentT(1.0, 0.0 * scale, scale),
        curvature=lambda scale, df: 2.0 / scale**2,
        fixed_df=1.0,
    ),
}


def get_prior(name: str) -> Prior:
    """Return the registered prior ``name``; a ValueError lists the valid names otherwise."""
    try:
        return PRIORS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown prior {name!r}; valid names are {sorted(PRIORS)}") from None


def penalty_mapping(
    family: str, prior: str, prior_scale: float, noise_scale: Optional[float], n: int,
    n_classes: Optional[int] = None,
) -> dict[str, float]:
    """The classical knobs that a MAP fit with this prior equals, as ``{description: value}``.

    ``noise_scale`` is the likelihood's σ (gaussian) or b (laplace); with a learned scale pass
    the fitted value, and note that then the MAP is *not* a fixed-λ ridge / lasso: the mapping
    holds at that σ only. ``n_classes`` matters for categorical: with two classes the equal
    ``LogisticRegression`` has C = 2τ². Empty where no classical estimator corresponds. Each
    family states its own mappings (``Family.penalties``).
    """
    from .families import get_family

    knob = get_family(family).penalties.get(prior)
    return {} if knob is None else knob(prior_scale, noise_scale, n, n_classes)
