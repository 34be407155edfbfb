"""The :class:`Family` record and the target checks that families share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np


#: The kinds of ``y`` a family can describe: real numbers, positive reals, counts 0, 1, 2, …,
#: 0/1 labels, class labels 0..K-1, proportions in (0, 1), angles in (−π, π], and successes
#: out of a known number of trials.
SUPPORTS = ("real", "positive", "counts", "binary", "classes", "proportion", "angle",
            "successes")


@dataclass(frozen=True)
class Family:
    """One likelihood: distribution, classical loss, NLL↔loss constant, prediction, target check.

    Attributes
    ----------
    name, link, loss_name:
        Identification, shown in summaries and tables.
    has_scale:
        The family has a noise scale (σ, b), fixed by the user or learned.
    continuous:
        Real-valued targets; the fit standardises them as preconditioning.
    multiclass:
        ``η`` has one column per class (categorical).
    kinked:
        The log-density is not differentiable everywhere (laplace): fits use a smoothing
        continuation and are judged on the exact objective.
    distribution:
        ``(η, scale, df, smoothing) → pyro distribution`` of one observation per row.
    loss:
        ``(y, η, scale, df) → tensor``: the classical loss, summed over the rows.
    nll_from_loss:
        ``(loss, y, scale, df) → tensor``: the NLL written through the loss (the identity above).
    predict:
        ``(η, s) → point prediction``: the mode of the predictive distribution, given the
        family's second parameter ``s`` (its fitted or fixed scale, or its known per-row
        input; None where it has none, or where the mode does not depend on it).
    mean:
        ``η → E[y]`` (probabilities for bernoulli / categorical).
    check_target:
        ``y → y`` as floats (labels as integers), raising ValueError for invalid targets.
    initial_bias:
        ``y → η₀``: the intercept-only starting point of the linear predictor.
    class_logits:
        ``η → (n, K)`` logits of the classes, for classifiers (their probabilities are its
        softmax, their labels its argmax); None for the other families.
    penalties:
        ``{prior name: (τ, scale, n, K) → {description: value}}``: the classical estimator
        that MAP with that prior equals, and its knob (see :func:`bayesloss.penalty_mapping`).
    sample:
        ``(rng, η, noise, df) → y``: one draw of the targets given the linear predictor
        (``noise`` is the family's scale, ignored where it has none).
    synthetic_eta:
        ``(gain, base)``: synthetic data use ``η = base + gain · (a standardised signal)``,
        chosen so each family's targets are informative (not all one class, moderate counts).
    numpy_terms:
        ``(t, η, β, df) → (f, ∂f/∂η, ∂²f/∂η², ∂f/∂β, ∂²f/∂β², ∂²f/∂η∂β)``: the NLL in plain
        numpy (constants dropped; ``β = log s``; the η-Hessian as its diagonal, or the class
        probabilities P for categorical, whose blocks are ``diag(P_i) − P_i P_iᵀ``), for the
        verified references and the potential NUTS evaluates
        (:class:`~bayesloss.potential.NumpyPotential`); None for a kinked family (its ``|r|``
        is handled as kinks).
    constant_curvature:
        ∂²NLL/∂η² is the same for every row, whatever y and η (least squares): one row gives
        it, and a Newton step taken anywhere is exact.
    scale_power:
        ``k`` where the NLL is ``Σ|r|^k / (k s^k) + n log s + const`` (2 gaussian, 1 laplace):
        then a learned scale has the closed form ``s^k = Σ|r|^k / n``; None otherwise.
    convex_nll:
        ``(cvxpy, η, t, onehot) → expression``: the NLL as a cvxpy (DCP) expression, for
        conic references (exponential cones); None where not needed.
    mle_equivalent:
        The classical estimator the MLE equals, as shown in summaries ("" where none).
    scale_head:
        The noise scale is a function of x, ``log σ(x)``, fitted as a second head of the model
        (sites ``scale_weight``, ``scale_bias``; hetero_gaussian) rather than one number.
    row_scale_references:
        ``{None (MLE) or prior name: route}`` for known per-row scales σᵢ (``noise_scale`` an
        array); a family with none takes only one number.
    support:
        The kind of ``y`` the family describes, one of :data:`SUPPORTS` (``which-loss``
        proposes the families whose support holds the data's ``y``).
    scale_name:
        What the family's extra positive parameter is called in summaries (σ and b are
        ``scale``; a shape, a dispersion or a concentration say so).
    components:
        A mixture of ``spec.components`` = K components: ``η`` has 2K − 1 columns, the K
        component means then the K − 1 mixing logits against component 0's (whose logit is
        0), and the scale is one σₖ per component (sites ``weight`` (d, K), ``bias`` (K,),
        ``scale`` (K,), ``mixing`` (K − 1,) for a linear mean).
    row_input:
        The name of a known per-row input the likelihood needs besides ``y`` (binomial:
        ``"trials"``, the number of trials nᵢ), or None. It is the family's second parameter
        and travels where a fixed scale does (``ModelSpec.noise_scale``, the model's ``scale``
        argument, ``β = log s`` in ``numpy_terms``), so it follows its rows through minibatches,
        Laplace covariances, posteriors and references without plumbing of its own; such a
        family has no scale to learn, and its ``check_target`` is ``(y, input) → y``.
    synthetic_input:
        ``(rng, n) → (n,) values`` of the row input for synthetic data (None without one).
    quantile:
        ``(q, η, s, df) → numpy array``: the quantile function of one observation's predictive
        distribution given η and the family's second parameter ``s`` (as ``predict``'s), for
        prediction intervals: a count family's is the smallest integer whose CDF reaches q, an
        angle's is wrapped into (−π, π]; None where there is none (classes: their predictive
        is :meth:`~bayesloss.Fit.predict_proba`; a mixture's has no closed form).
    inner_link:
        A link applied to ``x·w`` alone, the intercept added outside it: the family's
        ``η = b + g(x·w)`` (von_mises: ``g = 2·atan``, Fisher & Lee's circular regression, whose
        intercept is the mean direction at x = 0); None for ``η = x·w + b``.
    scale_in_prediction:
        The point predictions depend on the extra parameter (a :class:`~bayesloss.families.
        custom.Likelihood`): ``predict`` and ``predict_mean`` read the fitted distribution
        ``distribution(η, scale, df, 0)`` (its mode, else its mean; its mean) instead of η alone.
    references:
        ``{None (MLE) or prior name: route}``: which reference solver of
        :mod:`bayesloss.references` fits this family (routes are listed there); priors not
        named go to the verified general solvers.
    """

    name: str
    link: str
    loss_name: str
    has_scale: bool
    continuous: bool
    multiclass: bool
    kinked: bool
    distribution: Callable
    loss: Callable
    nll_from_loss: Callable
    predict: Callable
    mean: Callable
    check_target: Callable
    initial_bias: Callable
    sample: Callable
    class_logits: Optional[Callable] = None
    penalties: dict = field(default_factory=dict)
    synthetic_eta: tuple = (1.0, 1.0)
    numpy_terms: Optional[Callable] = None
    scale_power: Optional[int] = None
    constant_curvature: bool = False
    convex_nll: Optional[Callable] = None
    references: dict = field(default_factory=dict)
    mle_equivalent: str = ""
    scale_head: bool = False
    quantile: Optional[Callable] = None
    row_scale_references: dict = field(default_factory=dict)
    support: str = "real"
    scale_name: str = "scale"
    inner_link: Optional[Callable] = None
    scale_in_prediction: bool = False
    components: bool = False
    row_input: Optional[str] = None
    synthetic_input: Optional[Callable] = None

    @property
    def row_scales(self) -> bool:
        """Takes known per-row scales (a ``noise_scale`` array; a row input is not a scale)."""
        return bool(self.row_scale_references) and self.row_input is None

    @property
    def classifier(self) -> bool:
        """Targets are class labels (bernoulli, categorical)."""
        return self.class_logits is not None

    def __post_init__(self):
        if self.support not in SUPPORTS:
            raise ValueError(f"support {self.support!r} is not one of {SUPPORTS}")

    def nll(self, y, eta, scale=None, df=None):
        """Negative log-likelihood, summed over the rows, from the Pyro distribution itself."""
        return -self.distribution(eta, scale, df, 0.0).log_prob(y).sum()


# --- target checks -------------------------------------------------------------------------


def _real_target(y):
    return np.asarray(y, dtype=np.float64)


def _binary_target(y):
    y = np.asarray(y, dtype=np.float64)
    bad = ~np.isin(y, (0.0, 1.0))
    if bad.any():
        raise ValueError(
            f"bernoulli targets must be 0 or 1; found {np.unique(y[bad])[:5].tolist()}"
        )
    return y


def _count_target(y):
    y = np.asarray(y, dtype=np.float64)
    if (y < 0).any():
        raise ValueError("poisson targets must be non-negative counts; found negative values")
    if (y != np.round(y)).any():
        raise ValueError("poisson targets must be integer counts; found non-integer values")
    return y


def _label_target(y):
    y = np.asarray(y)
    if not np.all(np.asarray(y, dtype=np.float64) == np.round(np.asarray(y, dtype=np.float64))):
        raise ValueError("categorical targets must be integer labels 0..K-1; found non-integers")
    y = y.astype(np.int64)
    labels = np.unique(y)
    k = int(labels.max()) + 1 if labels.size else 0
    if labels.min() < 0 or labels.size != k:
        raise ValueError(
            "categorical targets must be integer labels 0..K-1 with every class present; "
            f"found labels {labels[:10].tolist()}"
        )
    if k < 2:
        raise ValueError("categorical targets need at least two classes")
    return y


def _mean_target(y):
    return float(np.mean(y))


def _identity(eta, s=None):
    return eta
