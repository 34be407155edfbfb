r"""A mixture of K Gaussian regressions (with ``mean="mlp"``, a mixture density network).

.. math::

    y_i \mid x_i \sim \sum_{k=1}^K \pi_k\,\mathcal N\big(x_i^\top w_k + b_k,\ \sigma_k^2\big),
    \qquad \pi = \operatorname{softmax}(0, \ell_2, \dots, \ell_K)

The Pyro likelihood is ``MixtureSameFamily(Categorical(logits), Normal(η, σ))``: the model's
predictor ``η`` has 2K − 1 columns, the K component means then the K − 1 mixing logits
(component 0's logit is 0, which identifies them). A linear mean has constant mixing weights
(site ``mixing``, appended to every row by the model); a network outputs all 2K − 1 columns,
so its mixing weights depend on x (Bishop's mixture density network, with one σₖ per
component).

There is no classical loss: the loss *is* the mixture NLL, which no sum of per-row errors of a
single prediction reproduces. The likelihood is multimodal and invariant under permuting the
components (label switching), so fits start several times and keep the best
(:mod:`bayesloss.mixture`), and report the components in one order,
:func:`component_order`: ascending mean of the component's line over the training rows,
``x̄·w_k + b_k`` (its height at the centre of the data).

Prediction: the mode of the predictive is approximated by the mean of the most probable
component at x (the largest ``π_k(x)``), exact when the components are well separated and
share one σ; :meth:`~bayesloss.results.Fit.predict_mean` gives ``E[y | x] = Σ π_k μ_k``.
"""

from __future__ import annotations

import numpy as np
import pyro.distributions as dist
import torch

from .base import Family, _mean_target, _real_target


def split_predictor(eta):
    """``(means, logits)`` of a mixture predictor ``η`` (…, 2K − 1): the K means and all K
    mixing logits (component 0's, 0, prepended). Works for tensors and numpy arrays."""
    k = (eta.shape[-1] + 1) // 2
    means, rest = eta[..., :k], eta[..., k:]
    if isinstance(eta, torch.Tensor):
        return means, torch.cat([torch.zeros_like(means[..., :1]), rest], -1)
    return means, np.concatenate([np.zeros_like(means[..., :1]), rest], -1)


def append_mixing(means: torch.Tensor, mixing: torch.Tensor) -> torch.Tensor:
    """The predictor of a linear mixture: the means (n, K) then the constant logits (K − 1,)
    on every row (a batch of draws: means (S, n, K), logits (S, K − 1))."""
    logits = mixing.unsqueeze(-2).expand(*means.shape[:-1], mixing.shape[-1])
    return torch.cat([means, logits], -1)


def _distribution(eta, scale, df, smoothing):
    means, logits = split_predictor(eta)
    return dist.MixtureSameFamily(dist.Categorical(logits=logits), dist.Normal(means, scale))


def _predict(eta, s=None):
    means, logits = split_predictor(eta)
    return means.gather(-1, logits.argmax(-1, keepdim=True)).squeeze(-1)


def _mean(eta):
    means, logits = split_predictor(eta)
    return (torch.softmax(logits, -1) * means).sum(-1)


def _sample(rng, eta, noise, df):
    means, logits = split_predictor(np.asarray(eta, dtype=np.float64))
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    k = (rng.random((means.shape[0], 1)) > np.cumsum(p, axis=-1)).sum(-1)
    rows = np.arange(means.shape[0])
    return means[rows, k] + np.asarray(noise)[k] * rng.standard_normal(means.shape[0])


def component_order(x_mean: np.ndarray, coef: np.ndarray, intercept) -> np.ndarray:
    """The reporting order of the components: ascending ``x̄·w_k + b_k`` (each line's mean over
    the training rows); ``coef`` (d, K), ``intercept`` (K,) or 0."""
    return np.argsort(np.asarray(x_mean) @ np.asarray(coef) + intercept, kind="stable")


def relabel(order: np.ndarray, coef, intercept, scale, mixing) -> tuple:
    """The parameters with the components in ``order``: ``(coef, intercept, scale, mixing)``,
    the mixing logits re-referenced to the new component 0 (numpy arrays; ``intercept`` None
    without one)."""
    logits = np.concatenate([[0.0], np.asarray(mixing, dtype=np.float64)])[order]
    return (np.asarray(coef)[:, order], None if intercept is None else
            np.asarray(intercept)[order], np.asarray(scale)[order], logits[1:] - logits[0])


def mixing_weights(mixing) -> np.ndarray:
    """π = softmax(0, ℓ₂, …, ℓ_K) from the K − 1 logits."""
    logits = np.concatenate([[0.0], np.asarray(mixing, dtype=np.float64)])
    p = np.exp(logits - logits.max())
    return p / p.sum()


MIXTURE: dict[str, Family] = {
    "gaussian_mixture": Family(
        name="gaussian_mixture",
        link="identity (K means), softmax (mixing weights)",
        loss_name="mixture NLL −Σ log Σₖ πₖ N(y; ηₖ, σₖ²) (no classical loss: the NLL itself)",
        has_scale=True,
        continuous=True,
        multiclass=False,
        kinked=False,
        distribution=_distribution,
        loss=lambda y, eta, scale, df: -_distribution(eta, scale, df, 0.0).log_prob(y).sum(),
        nll_from_loss=lambda loss, y, scale, df: loss,
        predict=_predict,
        mean=_mean,
        check_target=_real_target,
        initial_bias=_mean_target,
        sample=_sample,
        components=True,
        references={None: "em-mixture", "normal": "em-mixture", "studentt": "em-mixture",
                    "cauchy": "em-mixture"},
        mle_equivalent="mixture of linear regressions (the EM algorithm's target)",
    ),
}
