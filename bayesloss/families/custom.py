r"""Your own likelihood: :class:`Likelihood` turns ``make(loc, scale) → distribution`` into a
:class:`~bayesloss.families.Family`, so that ``fit``, ``posterior``, ``compare`` and ``check``
take it wherever they take a registered name, with no path of their own.

The recipe is the one behind every built-in family: choose a distribution of ``y`` given the
model's prediction, minimise its negative log-likelihood. Here the loss *is* that NLL (there is
no classical loss to name), so the NLL↔loss constant is zero. A Weibull regression with a
log-scale link and a learned shape::

    import torch, pyro.distributions as dist, bayesloss
    weibull = bayesloss.Likelihood(
        "weibull", lambda loc, k: dist.Weibull(scale=torch.exp(loc), concentration=k))
    fit = bayesloss.fit(X, y, weibull)            # the shape k is the learned "scale"

Its reference (``reference_fit``, ``compare``) is verified, not trusted: scipy's trust-region
Newton on the same NLL with exact torch gradients and Hessians, accepted on the first-order
conditions (:mod:`bayesloss.references.torch_nll`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Optional, Union

import numpy as np
import torch
from scipy import optimize
from torch.distributions import Distribution, constraints

from .base import SUPPORTS, Family

#: The reference route of every prior (the verified torch route of :mod:`bayesloss.references`).
_ROUTES = {None: "torch-nll", "normal": "torch-nll", "laplace": "torch-nll",
           "studentt": "torch-nll", "cauchy": "torch-nll"}
_PROBE_ROWS = 4


def _support_of(constraint) -> Optional[str]:
    """The :data:`SUPPORTS` kind of a torch constraint, where it is one of them."""
    while isinstance(constraint, constraints.independent):
        constraint = constraint.base_constraint
    if constraint is constraints.real:
        return "real"
    if constraint in (constraints.positive, constraints.nonnegative):
        return "positive"
    if constraint is constraints.nonnegative_integer:
        return "counts"
    if constraint is constraints.boolean:
        return "binary"
    if constraint is constraints.unit_interval:
        return "proportion"
    return None


@dataclass(frozen=True, eq=False)
class Likelihood:
    r"""A likelihood of your own: ``y_i ~ make(loc_i, scale)``.

    Parameters
    ----------
    name:
        Shown in summaries and tables (``fit.spec.label()``).
    make:
        ``make(loc, scale) → torch distribution`` with one independent observation per row:
        ``loc`` is the model's prediction, shape (n,) (``η = Xw + b``, or a network's output
        with ``mean="mlp"``), ``scale`` the extra positive parameter (a 0-d tensor; None when
        ``scale=None``). Any Pyro / torch distribution whose ``log_prob`` is differentiable
        in ``loc`` (and ``scale``) will do; apply your link inside (``torch.exp(loc)`` for a
        positive parameter).
    scale:
        ``"learned"`` (default): the extra parameter is fitted (flat prior on (0, ∞)), and
        ``noise_scale=`` can still fix it per fit; a positive number fixes it; None: ``make``
        takes no extra parameter.
    support:
        The kind of ``y`` (one of :data:`~bayesloss.families.SUPPORTS`); None reads it off the
        distribution's own support (real, positive, counts, 0/1, proportions).

    Notes
    -----
    The loss is the NLL itself, :math:`L = -\sum_i \log p(y_i \mid \text{loc}_i, s)`, so
    NLL = loss. Targets must lie in the distribution's support (checked). Point predictions
    are the distribution's mode at the estimate (its mean where torch defines no mode);
    ``predict_mean`` is its mean. The CLI takes registered names only (a Python callable
    cannot be given on a command line).
    """

    name: str
    make: Callable
    scale: Union[str, float, None] = "learned"
    support: Optional[str] = None
    family: Family = field(init=False, repr=False)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"a Likelihood needs a non-empty name; got {self.name!r}")
        if not callable(self.make):
            raise TypeError(f"make must be a callable make(loc, scale) → distribution; got "
                            f"{type(self.make).__name__}")
        learned = isinstance(self.scale, str)
        if learned and self.scale != "learned":
            raise ValueError(f"scale must be 'learned', a positive number or None; got "
                             f"{self.scale!r}")
        fixed = None
        if not learned and self.scale is not None:
            try:
                fixed = float(self.scale)
            except (TypeError, ValueError):
                raise ValueError(f"scale must be 'learned', a positive number or None; got "
                                 f"{self.scale!r}") from None
            if not (math.isfinite(fixed) and fixed > 0):
                raise ValueError(f"a fixed scale must be positive and finite; got {fixed!r}")
        probe = self._probe(1.0 if learned else fixed)
        support = self.support if self.support is not None else _support_of(probe.support)
        if support not in SUPPORTS:
            raise ValueError(
                f"support must be one of {SUPPORTS}" + (
                    f"; got {self.support!r}" if self.support is not None else
                    f": the {self.name} distribution's support {probe.support} is none of "
                    "them, so say which with support="))
        object.__setattr__(self, "family", _family(self, learned, fixed, probe.support,
                                                   support))

    def _probe(self, scale) -> Distribution:
        """``make`` on a few rows, with the errors of a wrong ``make`` named."""
        loc = torch.zeros(_PROBE_ROWS, dtype=torch.float64)
        s = None if scale is None else torch.tensor(scale, dtype=torch.float64)
        what = f"make(loc, scale) with loc = zeros({_PROBE_ROWS}), scale = {scale}"
        try:
            d = self.make(loc, s)
        except Exception as err:  # the user's code: any error is theirs to see, with context
            raise ValueError(f"{self.name}: {what} raised {type(err).__name__}: {err}") from err
        if not isinstance(d, Distribution):
            raise TypeError(f"{self.name}: make must return a torch / Pyro distribution; "
                            f"{what} returned {type(d).__name__}")
        if tuple(d.batch_shape) != (_PROBE_ROWS,) or tuple(d.event_shape) != ():
            raise ValueError(
                f"{self.name}: make must return one scalar distribution per row of loc "
                f"(batch_shape ({_PROBE_ROWS},), event_shape ()); {what} has batch_shape "
                f"{tuple(d.batch_shape)} and event_shape {tuple(d.event_shape)} (build it from "
                "loc elementwise, without .to_event or a reduction)")
        return d

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"Likelihood({self.name!r}, scale={self.scale!r}, support={self.family.support!r})"


def _family(lik: Likelihood, learned: bool, fixed, dist_support, support: str) -> Family:
    make = lik.make

    def distribution(eta, scale, df, smoothing):
        if not learned:
            scale = None if fixed is None else torch.as_tensor(fixed, dtype=eta.dtype)
        return make(eta, scale)

    def nll(y, eta, scale, df):
        return -distribution(eta, scale, df, 0.0).log_prob(y).sum()

    def check_target(y):
        y = np.asarray(y, dtype=np.float64)
        bad = ~dist_support.check(torch.as_tensor(y)).numpy()
        if bad.any():
            raise ValueError(
                f"the {lik.name} likelihood's targets must lie in its distribution's support "
                f"({dist_support}); {int(bad.sum())} do not (first at row "
                f"{int(np.flatnonzero(bad)[0])}: {y[bad][0]!r})")
        return y

    def initial_bias(y):
        # the intercept-only fit at the start's scale (1 when learned): a grid over the
        # values a location or a log-link could take, then Brent's method around the best
        y_t = torch.as_tensor(np.asarray(y, dtype=np.float64))
        s0 = torch.tensor(1.0, dtype=torch.float64) if learned else None
        q = np.quantile(y, [0.1, 0.5, 0.9])
        grid = np.unique(np.r_[np.linspace(-20.0, 20.0, 81), q,
                               np.log(np.abs(q) + 1e-12), np.log(abs(float(np.mean(y))) + 1e-12)])

        def f(e):
            with torch.no_grad():
                v = float(nll(y_t, torch.full_like(y_t, float(e)), s0, None))
            return v if math.isfinite(v) else math.inf

        values = [f(e) for e in grid]
        best = grid[int(np.argmin(values))]
        res = optimize.minimize_scalar(f, bounds=(best - 0.5, best + 0.5), method="bounded",
                                       options={"xatol": 1e-6})
        return float(res.x) if res.fun <= min(values) else float(best)

    def sample(rng, eta, noise, df):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(rng.integers(2**62)))
            s = torch.as_tensor(float(noise), dtype=torch.float64) if learned else None
            with torch.no_grad():
                return distribution(torch.as_tensor(eta), s, df, 0.0).sample().numpy()

    def quantile(q, eta, scale, df):
        s = None if scale is None else torch.as_tensor(scale, dtype=torch.float64)
        d = distribution(torch.as_tensor(eta), s, df, 0.0)
        try:
            with torch.no_grad():
                return d.icdf(torch.full(d.batch_shape, q, dtype=torch.float64)).numpy()
        except NotImplementedError:
            raise AttributeError(
                f"the {lik.name} distribution ({type(d).__name__}) has no quantile function "
                "(torch's icdf is not implemented for it): no prediction interval") from None

    def point(what):
        def rule(eta, s=None):  # used where no fitted scale is at hand (a learned scale: Fit reads it)
            if learned:
                raise ValueError(f"the {lik.name} prediction needs its fitted scale: use the "
                                 f"fit's {what}")
            d = distribution(eta, None, None, 0.0)
            if what == "predict_mean":
                return d.mean
            try:
                return d.mode
            except NotImplementedError:
                return d.mean
        return rule

    return Family(
        name=lik.name,
        link="yours (inside make)",
        loss_name=f"{lik.name} negative log-likelihood (your own: the loss is the NLL)",
        has_scale=learned,
        continuous=False,  # make is arbitrary: the fit must not rescale y
        multiclass=False,
        kinked=False,
        distribution=distribution,
        loss=nll,
        nll_from_loss=lambda loss, y, scale, df: loss,
        predict=point("predict"),
        mean=point("predict_mean"),
        check_target=check_target,
        initial_bias=initial_bias,
        sample=sample,
        synthetic_eta=(0.5, 0.0),
        references=dict(_ROUTES),
        support=support,
        scale_in_prediction=True,
        quantile=quantile,
    )


__all__ = ["Likelihood"]
