"""The seven classical families: the losses of everyday machine learning as likelihoods."""

from __future__ import annotations

import math

import numpy as np
import pyro.distributions as dist
import torch
from scipy.special import expit, logsumexp, ndtri, stdtrit
from scipy.stats import poisson

from ..distributions import NormalSharedScale, PoissonLogRate, SmoothLaplace
from .base import (Family, _binary_target, _count_target, _identity, _label_target,
                   _mean_target, _real_target)


# --- per-family pieces ---------------------------------------------------------------------


def _gaussian_nll_from_loss(loss, y, scale, df):
    n = y.shape[0]
    return loss / (2 * scale**2) + 0.5 * n * torch.log(2 * math.pi * scale**2)


def _laplace_nll_from_loss(loss, y, scale, df):
    return loss / scale + y.shape[0] * torch.log(2 * scale)


def _poisson_nll_from_loss(loss, y, scale, df):
    return loss / 2 + (torch.lgamma(y + 1) - torch.xlogy(y, y) + y).sum()


def _studentt_loss(y, eta, scale, df):
    return 0.5 * (df + 1) * torch.log1p((y - eta) ** 2 / (df * scale**2)).sum()


def _studentt_nll_from_loss(loss, y, scale, df):
    n = y.shape[0]
    const = 0.5 * math.log(df * math.pi) + math.lgamma(df / 2) - math.lgamma((df + 1) / 2)
    return loss + n * (torch.log(torch.as_tensor(scale, dtype=y.dtype)) + const)


def _hetero_loss(y, eta, scale, df):
    # the NLL without its constant: with σ varying by row no σ-free loss has the same argmin
    return (0.5 * ((y - eta) / scale) ** 2 + torch.log(scale)).sum()


def _normal_quantile(q, loc, scale, df):
    return loc + scale * ndtri(q)


def _laplace_quantile(q, loc, scale, df):
    # the inverse of the Laplace CDF, written so that neither tail loses digits
    return loc - scale * np.sign(q - 0.5) * np.log1p(-2 * np.abs(q - 0.5))


def _studentt_quantile(q, loc, scale, df):
    return loc + scale * stdtrit(df, q)


def _laplace_distribution(eta, scale, df, smoothing):
    if smoothing > 0:
        return SmoothLaplace(eta, scale, smoothing)
    return dist.Laplace(eta, scale)


def _binary_cross_entropy(y, eta):
    return torch.nn.functional.binary_cross_entropy_with_logits(eta, y, reduction="sum")


def _cross_entropy(y, eta):
    return torch.nn.functional.cross_entropy(eta, y.long(), reduction="sum")


def _poisson_deviance(y, eta):
    return 2 * (torch.xlogy(y, y) - y * eta - y + eta.exp()).sum()




def _logit_of_mean(y):
    p = float(np.clip(np.mean(y), 1e-6, 1 - 1e-6))
    return math.log(p / (1 - p))


def _log_class_frequencies(y):
    freq = np.bincount(y.astype(np.int64)) / y.shape[0]
    return np.log(np.clip(freq, 1e-12, None)) - np.log(np.clip(freq, 1e-12, None)).mean()




# --- classical estimators equal to MAP (see bayesloss.priors) --------------------------------


def _ridge(tau, scale, n, k):
    if scale is None:  # σ learned jointly: no fixed-λ ridge equals the MAP
        return {}
    if np.ndim(scale) == 1:  # known σᵢ per row: each row weighted by 1/σᵢ²
        return {"weighted ridge λ = 1/τ² (Σ (y−Xw)²/σᵢ² + λ‖w‖²; sklearn Ridge alpha with "
                "sample_weight = 1/σᵢ²)": 1.0 / tau**2}
    return {"ridge λ = σ²/τ² (‖y−Xw‖² + λ‖w‖²; sklearn Ridge alpha)": scale**2 / tau**2}


def _lasso(tau, scale, n, k):
    return {} if scale is None or np.ndim(scale) else {"sklearn Lasso alpha = σ²/(n·b)": scale**2 / (n * tau)}


def _l1_lad(tau, scale, n, k):
    if scale is None:
        return {}
    return {"sklearn QuantileRegressor(quantile=0.5) alpha = s/(2n·b)": scale / (2 * n * tau)}


def _l2_logistic(tau, scale, n, k):
    if k == 2:
        # two classes: scikit-learn fits one logit v = w₁ − w₀; the prior on both columns is
        # minimised by the even split (−v/2, v/2), where it is N(0, 2τ²) on v
        return {"sklearn LogisticRegression C = 2τ² (two classes: one logit w₁ − w₀)":
                2 * tau**2}
    return {"sklearn LogisticRegression C = τ²": tau**2}


# --- the NLL in numpy with exact derivatives (references; constants dropped) ----------------


def _gaussian_terms(t, eta, beta, df):
    # Σ r²/(2s²) + n log s
    r = t - eta
    n, e, rss = t.shape[0], math.exp(-2.0 * beta), float(r @ r)
    return 0.5 * e * rss + n * beta, -e * r, np.full(n, e), n - e * rss, 2 * e * rss, 2 * e * r


def _studentt_terms(t, eta, beta, nu):
    # Σ (ν+1)/2 · log(1 + r²/(ν s²)) + n log s
    r, n = t - eta, t.shape[0]
    ns2 = nu * math.exp(2.0 * beta)
    den = ns2 + r * r
    q = r * r / ns2
    f = 0.5 * (nu + 1) * np.log1p(q).sum() + n * beta
    g_beta = n - (nu + 1) * float((r * r / den).sum())
    h_beta = 2 * (nu + 1) * float((q / (1 + q) ** 2).sum())
    return (f, -(nu + 1) * r / den, (nu + 1) * (ns2 - r * r) / den**2, g_beta, h_beta,
            2 * (nu + 1) * ns2 * r / den**2)


def _bernoulli_terms(t, eta, beta, df):
    prob = expit(eta)
    f = float(np.logaddexp(0.0, eta).sum() - t @ eta)
    return f, prob - t, prob * (1 - prob), 0.0, 0.0, 0.0


def _poisson_terms(t, eta, beta, df):
    with np.errstate(over="ignore"):
        mu = np.exp(eta)
    return float(mu.sum() - t @ eta), mu - t, mu, 0.0, 0.0, 0.0


def _categorical_terms(t, eta, beta, df):
    lse = logsumexp(eta, axis=1)
    rows = np.arange(t.shape[0])
    f = float(lse.sum() - eta[rows, t].sum())
    prob = np.exp(eta - lse[:, None])
    return f, prob - np.eye(eta.shape[1])[t], prob, 0.0, 0.0, 0.0


# --- the same NLLs for cvxpy (conic references) ----------------------------------------------


def _cvx_bernoulli(cp, eta, t, onehot):
    return cp.sum(cp.logistic(eta)) - t @ eta


def _cvx_poisson(cp, eta, t, onehot):
    return cp.sum(cp.exp(eta)) - t @ eta


def _cvx_categorical(cp, eta, t, onehot):
    return cp.sum(cp.log_sum_exp(eta, axis=1)) - cp.sum(cp.multiply(onehot, eta))


def _sample_categorical(rng, eta, noise, df):
    p = np.exp(eta - eta.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    return (rng.random((eta.shape[0], 1)) > np.cumsum(p, axis=1)).sum(1).astype(np.int64)


CLASSIC: dict[str, Family] = {
    "gaussian": Family(
        name="gaussian",
        link="identity",
        loss_name="sum of squared errors (MSE · n)",
        has_scale=True,
        continuous=True,
        multiclass=False,
        kinked=False,
        distribution=lambda eta, scale, df, s: NormalSharedScale(eta, scale),
        loss=lambda y, eta, scale, df: ((y - eta) ** 2).sum(),
        nll_from_loss=_gaussian_nll_from_loss,
        predict=_identity,
        mean=_identity,
        check_target=_real_target,
        initial_bias=_mean_target,
        sample=lambda rng, eta, noise, df: eta + noise * rng.standard_normal(eta.shape[0]),
        penalties={"normal": _ridge, "laplace": _lasso},
        numpy_terms=_gaussian_terms,
        scale_power=2,
        quantile=_normal_quantile,
        row_scale_references={None: "wls", "normal": "weighted-ridge"},
        constant_curvature=True,
        references={None: "lstsq", "normal": "ridge", "laplace": "lasso", "studentt": "em-mm",
                    "cauchy": "em-mm"},
        mle_equivalent="ordinary least squares: sklearn LinearRegression, statsmodels OLS",
    ),
    "laplace": Family(
        name="laplace",
        link="identity",
        loss_name="sum of absolute errors (MAE · n)",
        has_scale=True,
        continuous=True,
        multiclass=False,
        kinked=True,
        distribution=_laplace_distribution,
        loss=lambda y, eta, scale, df: (y - eta).abs().sum(),
        nll_from_loss=_laplace_nll_from_loss,
        predict=_identity,  # the median of a Laplace predictive
        mean=_identity,
        check_target=_real_target,
        initial_bias=lambda y: float(np.median(y)),
        sample=lambda rng, eta, noise, df: eta + rng.laplace(0.0, noise, eta.shape[0]),
        penalties={"laplace": _l1_lad},
        scale_power=1,
        quantile=_laplace_quantile,
        references={None: "lad", "laplace": "lad-l1", "normal": "lad-ridge"},
        mle_equivalent="least absolute deviations: sklearn QuantileRegressor(quantile=0.5, "
                       "alpha=0)",
    ),
    "bernoulli": Family(
        name="bernoulli",
        support="binary",
        link="logit",
        loss_name="binary cross-entropy (log_loss · n)",
        has_scale=False,
        continuous=False,
        multiclass=False,
        kinked=False,
        distribution=lambda eta, scale, df, s: dist.Bernoulli(logits=eta),
        loss=lambda y, eta, scale, df: _binary_cross_entropy(y, eta),
        nll_from_loss=lambda loss, y, scale, df: loss,
        predict=lambda eta, s=None: (eta > 0).to(eta.dtype),
        mean=torch.sigmoid,
        check_target=_binary_target,
        initial_bias=_logit_of_mean,
        sample=lambda rng, eta, noise, df: (
            rng.random(eta.shape[0]) < 1 / (1 + np.exp(-eta))).astype(np.float64),
        class_logits=lambda eta: torch.stack([torch.zeros_like(eta), eta], -1),
        penalties={"normal": _l2_logistic,
                   "laplace": lambda tau, scale, n, k: {
                       "sklearn LogisticRegression(l1) C = b": tau}},
        synthetic_eta=(1.5, 0.3),
        numpy_terms=_bernoulli_terms,
        convex_nll=_cvx_bernoulli,
        references={None: "logistic", "normal": "logistic", "laplace": "glm-l1"},
        mle_equivalent="unpenalised logistic regression: sklearn LogisticRegression(C=np.inf)",
    ),
    "categorical": Family(
        name="categorical",
        support="classes",
        link="softmax",
        loss_name="multiclass cross-entropy (log_loss · n)",
        has_scale=False,
        continuous=False,
        multiclass=True,
        kinked=False,
        distribution=lambda eta, scale, df, s: dist.Categorical(logits=eta),
        loss=lambda y, eta, scale, df: _cross_entropy(y, eta),
        nll_from_loss=lambda loss, y, scale, df: loss,
        predict=lambda eta, s=None: eta.argmax(-1),
        mean=lambda eta: torch.softmax(eta, -1),
        check_target=_label_target,
        initial_bias=_log_class_frequencies,
        sample=_sample_categorical,
        class_logits=_identity,
        penalties={"normal": _l2_logistic},
        synthetic_eta=(1.5, 0.0),
        numpy_terms=_categorical_terms,
        convex_nll=_cvx_categorical,
        references={None: "logistic", "normal": "logistic", "laplace": "glm-l1"},
        mle_equivalent="unpenalised multinomial logistic regression: sklearn "
                       "LogisticRegression(C=np.inf)",
    ),
    "poisson": Family(
        name="poisson",
        support="counts",
        link="log",
        loss_name="Poisson deviance",
        has_scale=False,
        continuous=False,
        multiclass=False,
        kinked=False,
        distribution=lambda eta, scale, df, s: PoissonLogRate(eta),
        loss=lambda y, eta, scale, df: _poisson_deviance(y, eta),
        nll_from_loss=_poisson_nll_from_loss,
        predict=lambda eta, s=None: torch.floor(eta.exp()),  # the mode of Poisson(μ) is ⌊μ⌋
        mean=torch.exp,
        check_target=_count_target,
        initial_bias=lambda y: math.log(max(float(np.mean(y)), 1e-6)),
        sample=lambda rng, eta, noise, df: rng.poisson(np.exp(eta)).astype(np.float64),
        quantile=lambda q, eta, s, df: poisson.ppf(q, np.exp(eta)),
        penalties={"normal": lambda tau, scale, n, k: {
            "sklearn PoissonRegressor alpha = 1/(n·τ²)": 1.0 / (n * tau**2)}},
        synthetic_eta=(0.5, 1.0),
        numpy_terms=_poisson_terms,
        convex_nll=_cvx_poisson,
        references={None: "poisson-glm", "normal": "poisson-ridge", "laplace": "glm-l1"},
        mle_equivalent="Poisson GLM: sklearn PoissonRegressor(alpha=0), statsmodels "
                       "GLM(Poisson)",
    ),
    "studentt": Family(
        name="studentt",
        link="identity",
        loss_name="Student-t loss Σ (ν+1)/2 · log(1 + r²/(νσ²))",
        has_scale=True,
        continuous=True,
        multiclass=False,
        kinked=False,
        distribution=lambda eta, scale, df, s: dist.StudentT(df, eta, scale),
        loss=_studentt_loss,
        nll_from_loss=_studentt_nll_from_loss,
        predict=_identity,
        mean=_identity,
        check_target=_real_target,
        initial_bias=lambda y: float(np.median(y)),
        sample=lambda rng, eta, noise, df: eta + noise * rng.standard_t(df, eta.shape[0]),
        numpy_terms=_studentt_terms,
        quantile=_studentt_quantile,
        references={None: "em-mm", "normal": "em-mm", "studentt": "em-mm", "cauchy": "em-mm"},
        mle_equivalent="Student-t regression (ν fixed): statsmodels TLinearModel",
    ),
    "hetero_gaussian": Family(
        name="hetero_gaussian",
        link="identity (mean), log (σ)",
        loss_name="heteroscedastic Gaussian NLL Σ [r²/(2σ(x)²) + log σ(x)]",
        has_scale=False,  # no single scale to fix or learn: σ(x) is the model's second head
        continuous=True,
        multiclass=False,
        kinked=False,
        distribution=lambda eta, scale, df, s: dist.Normal(eta, scale),
        loss=_hetero_loss,
        nll_from_loss=lambda loss, y, scale, df: loss + 0.5 * y.shape[0] * math.log(2 * math.pi),
        predict=_identity,  # mean = median = mode of the Gaussian predictive
        mean=_identity,
        check_target=_real_target,
        initial_bias=_mean_target,
        sample=lambda rng, eta, noise, df: eta + noise * rng.standard_normal(eta.shape[0]),
        quantile=_normal_quantile,
        scale_head=True,
        references={None: "hetero", "normal": "hetero", "studentt": "hetero",
                    "cauchy": "hetero"},
        mle_equivalent="heteroscedastic regression, log σ(x) = x·a + c: at the optimum the "
                       "mean is weighted least squares with weights 1/σ̂(x)²",
    ),
}
