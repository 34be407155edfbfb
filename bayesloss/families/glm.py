r"""Generalised linear models beyond the classical seven: a family for each kind of ``y``.

=================  ==========  =====================================  ==========================
family             link        classical loss (sum)                   NLL in terms of the loss
=================  ==========  =====================================  ==========================
binomial           logit       Σ nᵢ·BCE(yᵢ/nᵢ, p) = Σ nᵢ log(1 + eᵑ)  loss − Σ log C(nᵢ, yᵢ)
                               − yᵢη
gamma              log         Gamma deviance D = 2Σ [y/μ − 1         k·D/2 + n [lgΓ(k) − k log k
                               − log(y/μ)]                            + k] + Σ log y
negative_binomial  log         NB2 deviance D (α fixed)               D/2 + Σ NLL(yᵢ | μ = yᵢ)
beta               logit       the NLL itself (no classical loss)     the loss itself
=================  ==========  =====================================  ==========================

``binomial`` counts successes ``y`` out of a known number of trials nᵢ per row (``trials=``:
its :attr:`~bayesloss.families.Family.row_input`); bernoulli is its nᵢ = 1 case. The others
learn (or take fixed) one positive parameter in the model's ``scale`` site: the Gamma shape k
(variance μ²/k), the NB2 dispersion α (variance μ + αμ²) and the Beta precision φ
(variance μ(1 − μ)/(1 + φ)).
"""

from __future__ import annotations

import math

import numpy as np
import pyro.distributions as dist
import torch
from scipy import stats
from scipy.special import digamma, expit, gammaln, polygamma

from .base import Family


def _tensor(s, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(s, dtype=like.dtype)


def _positive_target(name):
    def check(y):
        y = np.asarray(y, dtype=np.float64)
        if not (y > 0).all():
            raise ValueError(f"{name} targets must be positive; found {int((y <= 0).sum())} "
                             "values ≤ 0")
        return y
    return check


def _proportion_target(y):
    y = np.asarray(y, dtype=np.float64)
    if not ((y > 0) & (y < 1)).all():
        raise ValueError("beta targets must be proportions strictly inside (0, 1); found "
                         f"{int(((y <= 0) | (y >= 1)).sum())} values at or beyond 0 or 1")
    return y


def _counts(name, y):
    y = np.asarray(y, dtype=np.float64)
    if (y < 0).any() or (y != np.round(y)).any():
        raise ValueError(f"{name} targets must be non-negative integer counts")
    return y


def _log_of_mean(y):
    return math.log(max(float(np.mean(y)), 1e-12))


# --- binomial: successes out of nᵢ trials ---------------------------------------------------


def _binomial_target(y, trials):
    y = _counts("binomial", y)
    over = y > np.broadcast_to(trials, y.shape)
    if over.any():
        raise ValueError(f"binomial targets count successes out of trials; {int(over.sum())} "
                         f"exceed their row's trials (first at row {int(np.flatnonzero(over)[0])})")
    return y


class BinomialLogits(dist.Binomial):
    """``Binomial(n, logits=η)`` with the log-density ``yη − n·softplus(η) + log C(n, y)``:
    smooth in η everywhere (torch's own goes through |η|, whose autograd curvature at η = 0,
    a fit's intercept-only start, is not the density's)."""

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        n = self.total_count
        return (value * self.logits - n * torch.nn.functional.softplus(self.logits)
                + torch.lgamma(n + 1) - torch.lgamma(value + 1) - torch.lgamma(n - value + 1))


def _binomial_loss(y, eta, trials, df):
    return (trials * torch.nn.functional.softplus(eta) - y * eta).sum()


def _binomial_nll_from_loss(loss, y, trials, df):
    n = _tensor(trials, y).expand(y.shape)
    return loss - (torch.lgamma(n + 1) - torch.lgamma(y + 1) - torch.lgamma(n - y + 1)).sum()


def _binomial_mode(eta, trials):
    n = _tensor(trials, eta)
    return torch.minimum(torch.floor((n + 1) * torch.sigmoid(eta)), n)


def _binomial_terms(t, eta, beta, df):
    # Σ n log(1 + e^η) − tη; β = log n is fixed (the known trials), never learned
    n = np.rint(np.exp(beta))
    prob = expit(eta)
    f = float((n * np.logaddexp(0.0, eta) - t * eta).sum())
    return f, n * prob - t, n * prob * (1 - prob), 0.0, 0.0, 0.0


# --- gamma: positive amounts, log link, shape k ------------------------------------------------


class GammaLogMean(dist.Gamma):
    """``Gamma(k, rate = k/μ)`` with μ = e^η and the log-density written through the unit
    deviance, ``−k·(r − 1 − log r) + [k log k − lgΓ(k) − k] − log y`` with r = y/μ: its
    η-dependent part is small near a fit, where torch's own (``k log rate − rate·y``, terms
    of size k) rounds at ~k·eps per row, which at a shape of hundreds hides the last Newton
    step's decrease."""

    def __init__(self, k, eta, validate_args=None):
        super().__init__(k, k * torch.exp(-eta), validate_args=validate_args)
        self.eta = eta.expand(self.batch_shape)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        return GammaLogMean(self.concentration.expand(batch_shape), self.eta.expand(batch_shape),
                            validate_args=False)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        k = self.concentration
        r = value * torch.exp(-self.eta)
        return -k * (r - 1 - torch.log(r)) + _gamma_constant(k) - torch.log(value)


def _gamma_constant(k: torch.Tensor) -> torch.Tensor:
    """``k log k − lgΓ(k) − k`` without the cancellation of its terms (each ~k log k, ~2,000 at
    k = 360, for a result ~2): ``½ log(k/2π)`` less the Stirling series of lgΓ's remainder,
    1/(12k) − 1/(360k³) + 1/(1260k⁵) − 1/(1680k⁷) (next term < 1e-16 for k > 30). A learned
    shape moves it at every step, and its rounding would otherwise hide the last decrease."""
    big = k > 30
    kb = torch.where(big, k, torch.full_like(k, 31.0))
    ik2 = 1 / (kb * kb)
    stirling = (0.5 * torch.log(kb / (2 * math.pi))
                - (1 - ik2 * (1 / 30 - ik2 * (1 / 105 - ik2 / 140))) / (12 * kb))
    return torch.where(big, stirling, k * torch.log(k) - torch.lgamma(k) - k)


def _gamma_deviance(y, eta, k, df):
    return 2 * (y * torch.exp(-eta) - 1 - torch.log(y) + eta).sum()


def _gamma_nll_from_loss(loss, y, k, df):
    k = _tensor(k, y)
    return (k * loss / 2 + y.shape[0] * (torch.lgamma(k) - k * torch.log(k) + k)
            + torch.log(y).sum())


def _gamma_mode(eta, k):
    k = _tensor(k, eta)
    return torch.exp(eta) * torch.clamp(k - 1, min=0) / k  # 0 for k ≤ 1 (density max at 0)


def _gamma_terms(t, eta, beta, df):
    # Σ k (y e^{−η} + η − log y) − n k log k + n lgΓ(k), k = e^β
    k, n = math.exp(beta), t.shape[0]
    ye = t * np.exp(-eta)
    a = float((ye + eta - np.log(t)).sum())
    g_eta = k * (1 - ye)
    f_k = a - n * (beta + 1) + n * float(digamma(k))
    g_beta = k * f_k
    h_beta = g_beta + n * (k * k * float(polygamma(1, k)) - k)
    return k * a - n * k * beta + n * math.lgamma(k), g_eta, k * ye, g_beta, h_beta, g_eta


# --- negative binomial (NB2): overdispersed counts, log link, dispersion α ---------------------


def _nb_distribution(eta, alpha, df, s):
    alpha = _tensor(alpha, eta)
    # r = 1/α trials of failure; odds αμ: mean r·αμ = μ, variance μ + αμ²
    return dist.NegativeBinomial(total_count=1 / alpha, logits=eta + torch.log(alpha))


def _nb_deviance(y, eta, alpha, df):
    r = 1 / _tensor(alpha, y)
    log_r_mu = torch.logaddexp(torch.log(r), eta)
    return 2 * (torch.xlogy(y, y) - y * eta - (y + r) * (torch.log(y + r) - log_r_mu)).sum()


def _nb_nll_from_loss(loss, y, alpha, df):
    r = 1 / _tensor(alpha, y)
    # −log p(y | μ = y): the saturated model's NLL, which the deviance is measured from
    saturated = (-torch.lgamma(y + r) + torch.lgamma(r) + torch.lgamma(y + 1)
                 + (r + y) * torch.log(r + y) - r * torch.log(r) - torch.xlogy(y, y))
    return loss / 2 + saturated.sum()


def _nb_mode(eta, alpha):
    alpha = _tensor(alpha, eta)
    return torch.floor(torch.exp(eta) * torch.clamp(1 - alpha, min=0))


def _nb_terms(t, eta, beta, df):
    # Σ (r + y) log(r + μ) − yη − lgΓ(y + r) + lgΓ(r) − r log r, r = 1/α = e^{−β}
    r = math.exp(-beta)
    mu = np.exp(eta)
    log_r_mu = np.logaddexp(-beta, eta)
    w = np.exp(-beta - log_r_mu)  # r / (r + μ)
    f = float(((r + t) * log_r_mu - t * eta - gammaln(t + r)).sum()
              + t.shape[0] * (math.lgamma(r) + r * beta))
    g_eta = (mu - t) * w
    f_r = float((-digamma(t + r) + log_r_mu + (r + t) / (r + mu)).sum()
                + t.shape[0] * (float(digamma(r)) + beta - 1))
    f_rr = float((-polygamma(1, t + r) + 1 / (r + mu) + (mu - t) / (r + mu) ** 2).sum()
                 + t.shape[0] * (float(polygamma(1, r)) - 1 / r))
    return (f, g_eta, (r + t) * w * (1 - w), -r * f_r, r * f_r + r * r * f_rr,
            -(mu - t) * w * (1 - w))


# --- beta: proportions in (0, 1), logit mean, precision φ ------------------------------------


def _beta_shapes(eta, phi):
    phi = _tensor(phi, eta)
    return torch.sigmoid(eta) * phi, torch.sigmoid(-eta) * phi


def _beta_distribution(eta, phi, df, s):
    return dist.Beta(*_beta_shapes(eta, phi))


def _beta_nll(y, eta, phi, df):
    return -_beta_distribution(eta, phi, df, 0.0).log_prob(y).sum()


def _beta_mode(eta, phi):
    a, b = _beta_shapes(eta, phi)
    interior = (a - 1) / (a + b - 2)
    # a or b ≤ 1: the density is largest at an end (both ≤ 1: at the end nearer the mean)
    edge = (a > b).to(eta.dtype)
    return torch.where((a > 1) & (b > 1), interior, torch.where(
        (a <= 1) & (b > 1), torch.zeros_like(a), torch.where((a > 1) & (b <= 1),
                                                             torch.ones_like(a), edge)))


def _beta_terms(t, eta, beta, df):
    # Σ lgΓ(a) + lgΓ(b) − lgΓ(φ) − (a − 1) log y − (b − 1) log(1 − y), a = μφ, b = (1 − μ)φ
    phi, n = math.exp(beta), t.shape[0]
    mu = expit(eta)
    a, b = mu * phi, expit(-eta) * phi
    log_y, log_1y = np.log(t), np.log1p(-t)
    f = float((gammaln(a) + gammaln(b) - (a - 1) * log_y - (b - 1) * log_1y).sum()
              - n * math.lgamma(phi))
    v = mu * (1 - mu)
    da, db = digamma(a) - log_y, digamma(b) - log_1y
    ta, tb = polygamma(1, a), polygamma(1, b)
    d = da - db
    g_eta = phi * v * d
    h_eta = phi * v * (1 - 2 * mu) * d + (phi * v) ** 2 * (ta + tb)
    f_phi = float((mu * da + (1 - mu) * db).sum()) - n * float(digamma(phi))
    f_pp = float((mu * mu * ta + (1 - mu) ** 2 * tb).sum()) - n * float(polygamma(1, phi))
    h_eb = g_eta + phi * v * phi * (mu * ta - (1 - mu) * tb)
    return f, g_eta, h_eta, phi * f_phi, phi * f_phi + phi * phi * f_pp, h_eb


def _beta_sample(rng, eta, phi, df):
    mu = expit(eta)
    # a draw that rounds to 0 or 1 is outside the support: keep it a hair inside
    return np.clip(rng.beta(mu * phi, (1 - mu) * phi), 1e-12, 1 - 1e-12)


def _gamma_ridge(tau, shape, n, k):
    if shape is None or np.ndim(shape):
        return {}
    return {"sklearn GammaRegressor alpha = 1/(n·k·τ²) (k the shape)": 1.0 / (n * shape * tau**2)}


# --- quantile functions (prediction intervals; a count's is an integer) ----------------------


def _binomial_quantile(q, eta, trials, df):
    return stats.binom.ppf(q, trials, expit(eta))


def _gamma_quantile(q, eta, k, df):
    return stats.gamma.ppf(q, k, scale=np.exp(eta) / k)


def _nb_quantile(q, eta, alpha, df):
    # NB2 is scipy's nbinom with n = 1/α successes and success probability 1/(1 + αμ)
    return stats.nbinom.ppf(q, 1 / alpha, 1 / (1 + alpha * np.exp(eta)))


def _beta_quantile(q, eta, phi, df):
    mu = expit(eta)
    return stats.beta.ppf(q, mu * phi, (1 - mu) * phi)


GLM: dict[str, Family] = {
    "binomial": Family(
        name="binomial",
        support="successes",
        scale_name="trials",
        row_input="trials",
        link="logit",
        loss_name="binomial cross-entropy Σ nᵢ·BCE(yᵢ/nᵢ, p)",
        has_scale=False,  # nᵢ are known, never learned: they travel as the fixed second parameter
        continuous=False,
        multiclass=False,
        kinked=False,
        distribution=lambda eta, trials, df, s: BinomialLogits(total_count=trials, logits=eta),
        loss=_binomial_loss,
        nll_from_loss=_binomial_nll_from_loss,
        predict=_binomial_mode,
        mean=torch.sigmoid,  # the success probability per trial (E[y] = nᵢ·p)
        check_target=_binomial_target,
        initial_bias=lambda y: 0.0,  # (the trials are not seen here: p = ½)
        quantile=_binomial_quantile,
        sample=lambda rng, eta, trials, df: rng.binomial(
            np.asarray(trials, dtype=np.int64), expit(eta)).astype(np.float64),
        synthetic_input=lambda rng, n: rng.integers(1, 21, n).astype(np.float64),
        synthetic_eta=(1.0, 0.3),
        numpy_terms=_binomial_terms,
        references={None: "binomial-glm", "normal": "binomial-logistic"},
        row_scale_references={None: "binomial-glm", "normal": "binomial-logistic"},
        penalties={"normal": lambda tau, trials, n, k: {
            "sklearn LogisticRegression C = τ² on (success, failure) rows weighted yᵢ, "
            "nᵢ − yᵢ": tau**2}},
        mle_equivalent="grouped logistic regression: statsmodels GLM(Binomial) on "
                       "(successes, failures)",
    ),
    "gamma": Family(
        name="gamma",
        support="positive",
        scale_name="shape",
        link="log",
        loss_name="Gamma deviance 2Σ [(y − μ)/μ − log(y/μ)]",
        has_scale=True,
        continuous=False,  # not location-scale: y keeps its units (the log link absorbs them)
        multiclass=False,
        kinked=False,
        distribution=lambda eta, k, df, s: GammaLogMean(_tensor(k, eta), eta),
        loss=_gamma_deviance,
        nll_from_loss=_gamma_nll_from_loss,
        predict=_gamma_mode,
        mean=torch.exp,
        check_target=_positive_target("gamma"),
        initial_bias=_log_of_mean,
        quantile=_gamma_quantile,
        sample=lambda rng, eta, k, df: rng.gamma(k, np.exp(eta) / k),
        synthetic_eta=(0.5, 1.0),
        numpy_terms=_gamma_terms,
        penalties={"normal": _gamma_ridge},
        references={None: "gamma-glm", "normal": "gamma-ridge"},
        mle_equivalent="Gamma GLM with log link: statsmodels GLM(Gamma(Log())), sklearn "
                       "GammaRegressor(alpha=0)",
    ),
    "negative_binomial": Family(
        name="negative_binomial",
        support="counts",
        scale_name="alpha",
        link="log",
        loss_name="NB2 deviance 2Σ [y log(y/μ) − (y + 1/α) log((1 + αy)/(1 + αμ))]",
        has_scale=True,
        continuous=False,
        multiclass=False,
        kinked=False,
        distribution=_nb_distribution,
        loss=_nb_deviance,
        nll_from_loss=_nb_nll_from_loss,
        predict=_nb_mode,  # ⌊(1 − α)μ⌋ (0 for α ≥ 1); ⌊μ⌋ as α → 0, Poisson's
        mean=torch.exp,
        check_target=lambda y: _counts("negative_binomial", y),
        initial_bias=_log_of_mean,
        quantile=_nb_quantile,
        sample=lambda rng, eta, alpha, df: rng.negative_binomial(
            1 / alpha, 1 / (1 + alpha * np.exp(eta))).astype(np.float64),
        synthetic_eta=(0.5, 1.0),
        numpy_terms=_nb_terms,
        references={None: "nb-mle"},
        mle_equivalent="NB2 regression: statsmodels NegativeBinomial(loglike_method='nb2')",
    ),
    "beta": Family(
        name="beta",
        support="proportion",
        scale_name="phi",
        link="logit",
        loss_name="Beta NLL −Σ log Beta(y; μφ, (1 − μ)φ) (no classical loss: the NLL itself)",
        has_scale=True,
        continuous=False,
        multiclass=False,
        kinked=False,
        distribution=_beta_distribution,
        loss=_beta_nll,
        nll_from_loss=lambda loss, y, phi, df: loss,
        predict=_beta_mode,
        mean=torch.sigmoid,
        check_target=_proportion_target,
        initial_bias=lambda y: float(np.log(np.mean(y) / (1 - np.mean(y)))),
        quantile=_beta_quantile,
        sample=_beta_sample,
        synthetic_eta=(1.0, 0.0),
        numpy_terms=_beta_terms,
        references={None: "beta-mle"},
        mle_equivalent="beta regression: statsmodels BetaModel (precision constant)",
    ),
}
