r"""One model builder for MLE and MAP: the Pyro model states likelihood and prior explicitly.

.. math::

    w \sim \text{prior}(0, \tau),\quad b \sim \text{flat},\quad \sigma \sim \text{flat on }(0,\infty),
    \quad y_i \mid x_i \sim \text{family}(\eta_i = x_i^\top w + b,\ \sigma)

``estimator="mle"`` keeps the prior site but masks its log-density off (``.mask(False)``), so the
site stays sampleable for AutoDelta's initialisation and the model is otherwise the same;
``estimator="map"`` turns it on. Data sit under ``pyro.plate("data", n, subsample_size=…)``,
which scales a minibatch's log-likelihood by n / batch size.

Sites: ``weight`` ((d,) or (d, K)), ``bias`` (() or (K,)), ``scale`` (learned noise scale),
``obs``; a family with a scale head (hetero_gaussian) has ``scale_weight`` ((d,)) and
``scale_bias`` (()) instead of ``scale``: ``log σ(x) = x·a + c``, both flat (no prior under MLE
or MAP: the prior is on the mean's weights; ``c`` is there even without a mean intercept,
since σ(0) = 1 would be an arbitrary unit). A mixture of K components (gaussian_mixture) has
``weight`` (d, K), ``bias`` (K,), ``scale`` (K,) and ``mixing`` (K − 1,), the flat mixing
logits that the model appends to every row of ``η`` (:mod:`bayesloss.families.mixture`).
"""

from __future__ import annotations

import functools
from typing import Callable, Optional

import numpy as np
import pyro
import pyro.distributions as dist
import torch

from .families.mixture import append_mixing
from .spec import ModelSpec


def linear_mean(X: torch.Tensor, weight: torch.Tensor, bias) -> torch.Tensor:
    """The linear predictor ``η = X w + b`` ((n,) or (n, K))."""
    eta = X @ weight
    return eta if bias is None else eta + bias


def predictor(family, mean_fn: Callable = linear_mean) -> Callable:
    """The model's predictor ``η``: ``mean_fn`` itself, or for a family with an
    :attr:`~bayesloss.families.Family.inner_link` ``g`` (von_mises), ``η = b + g(x·w)``:
    ``mean_fn`` without its intercept, then the link, then the intercept. (A mean function
    that folds a centring into the intercept must not be given such a family: the
    preconditioner does not centre for it.)"""
    link = family.inner_link
    if link is None:
        return mean_fn

    def mean(X, weight, bias):
        eta = link(mean_fn(X, weight, None))
        return eta if bias is None else eta + bias

    return mean


@functools.lru_cache(maxsize=16)
def all_rows(n: int) -> torch.Tensor:
    """``arange(n)`` (cached): the full batch's index for a data plate."""
    return torch.arange(n)


def flat(shape, dtype):
    """An improper flat prior: a masked-off Normal keeps the site sampleable for AutoDelta."""
    d = dist.Normal(torch.zeros((), dtype=dtype), 1.0)
    if shape:
        d = d.expand(shape).to_event(len(shape))
    return d.mask(False)


def build_model(
    spec: ModelSpec,
    n_features: int,
    n_outputs: int = 1,
    *,
    prior_scale=None,
    prior_precision=None,
    intercept_prior_scale=None,
    noise_scale=None,
    smoothing: float = 0.0,
    dtype: torch.dtype = torch.float64,
    mean_fn: Optional[Callable] = None,
) -> Callable:
    """Build the Pyro model ``model(X, y=None, batch_size=None)`` for ``spec``.

    ``prior_scale`` (a scalar or a tensor broadcasting to the weight's shape) and
    ``noise_scale`` default to the spec's; a fit passes per-column values when it works on
    standardised columns, which is the same model under a linear change of variables.
    ``smoothing`` > 0 replaces kinked log-densities by their smooth surrogate (see
    :mod:`bayesloss.distributions`); 0 is the exact model. ``prior_precision`` (d × d; normal
    prior, one output) replaces the independent prior by ``MultivariateNormal(0, precision)``:
    the same normal prior seen through a non-diagonal linear change of variables.
    ``mean_fn(X, weight, bias)`` gives η (None: :func:`predictor` of the family, the linear
    mean through its inner link where it has one).
    """
    family, prior = spec.family, spec.prior_spec
    if mean_fn is None:
        mean_fn = predictor(family)
    multiclass = family.multiclass
    wide = multiclass or family.components  # one column of weights per class / component
    w_shape = (n_features, n_outputs) if wide else (n_features,)
    b_shape = (n_outputs,) if wide else ()
    s_shape = (n_outputs,) if family.components else ()  # one σₖ per component
    tau = torch.as_tensor(spec.prior_scale if prior_scale is None else prior_scale, dtype=dtype)
    if wide and tau.dim() == 1:
        tau = tau[:, None]  # one scale per column, shared by the K outputs
    tau = tau.expand(w_shape)
    if intercept_prior_scale is None:
        intercept_prior_scale = spec.prior_scale
    tau_b = torch.as_tensor(intercept_prior_scale, dtype=dtype).expand(b_shape)
    fixed_scale = spec.noise_scale if noise_scale is None else noise_scale
    if fixed_scale is not None:  # a number, or one σᵢ per row (RowScales, an (n,) tensor)
        fixed_scale = torch.as_tensor(np.asarray(fixed_scale, dtype=np.float64), dtype=dtype)
    prior_df = spec.effective_prior_df
    map_on = spec.is_map

    def weight_prior(scale, shape):
        d = prior.distribution(scale, prior_df, smoothing)
        if shape:
            d = d.to_event(len(shape))
        return d if map_on else d.mask(False)

    if prior_precision is not None:
        if spec.prior != "normal" or multiclass:
            raise ValueError("prior_precision is for a normal prior on one output")
        precision = torch.as_tensor(prior_precision, dtype=dtype)
        w_prior = dist.MultivariateNormal(torch.zeros(n_features, dtype=dtype),
                                          precision_matrix=precision)
        w_prior = w_prior if map_on else w_prior.mask(False)
    else:
        w_prior = weight_prior(tau, w_shape)

    def model(X: torch.Tensor, y: Optional[torch.Tensor] = None, batch_size: Optional[int] = None):
        weight = pyro.sample("weight", w_prior)
        bias = None
        if spec.fit_intercept:
            if spec.penalize_intercept:
                bias = pyro.sample("bias", weight_prior(tau_b, b_shape))
            else:
                bias = pyro.sample("bias", flat(b_shape, dtype))
        scale = None
        if family.scale_head:
            scale_weight = pyro.sample("scale_weight", flat((n_features,), dtype))
            scale_bias = pyro.sample("scale_bias", flat((), dtype))
        elif family.has_scale or family.row_input:  # (a row input is always fixed)
            if fixed_scale is None:
                # flat on (0, ∞): a masked LogNormal keeps the positive support for AutoDelta
                flat_positive = dist.LogNormal(torch.zeros(s_shape, dtype=dtype), 1.0)
                flat_positive = (flat_positive.to_event(1) if s_shape else flat_positive)
                scale = pyro.sample("scale", flat_positive.mask(False))
            else:
                scale = fixed_scale
        if family.components:
            mixing = pyro.sample("mixing", flat((n_outputs - 1,), dtype))
        n = X.shape[0]
        # the full batch passes its (cached) index: the plate would rebuild arange(n) per call
        full = None if batch_size is not None else all_rows(n)
        with pyro.plate("data", n, subsample=full, subsample_size=batch_size) as idx:
            if batch_size is not None:  # indexing copies: skip it for the full batch
                X, y = X[idx], None if y is None else y[idx]
                # per-row scales follow their rows (a mixture's (K,) σₖ are not per row)
                if scale is not None and scale.dim() == 1 and not family.components:
                    scale = scale[idx]
            eta = mean_fn(X, weight, bias)
            if family.components:
                eta = append_mixing(eta, mixing)
            if family.scale_head:
                scale = mean_fn(X, scale_weight, scale_bias).exp()
            return pyro.sample("obs", family.distribution(eta, scale, spec.df, smoothing), obs=y)

    return model
