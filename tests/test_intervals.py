"""Prediction intervals beyond the location-scale families: each is checked against
``scipy.stats`` at the fitted parameters, with the inverse link written out here from
``coef_`` / ``intercept_`` / ``scale_`` (never the fit's own quantile function)."""

import math

import numpy as np
import pyro.distributions as dist
import pytest
import scipy.stats as st
import torch
from scipy.special import expit

import bayesloss
from bayesloss.data import make_synthetic

LEVEL = 0.9
TAIL = 0.5 * (1 - LEVEL)


def _eta(fit, X):
    return X @ fit.coef_ + fit.intercept_


def _fit(name, n=300, seed=0, **kw):
    d = make_synthetic(name, n=n, d=2, seed=seed, **kw)
    return bayesloss.fit(d.X, d.y, name, **d.inputs), d


@pytest.mark.parametrize("name, scipy_dist", [
    ("gamma", lambda mu, k: st.gamma(k, scale=mu / k)),
    ("beta", lambda mu, phi: st.beta(mu * phi, (1 - mu) * phi)),
])
def test_continuous_glm_intervals_are_scipy_quantiles(name, scipy_dist):
    fit, d = _fit(name)
    lo, hi = fit.predict_interval(d.X, LEVEL)
    eta = _eta(fit, d.X)
    mu = np.exp(eta) if name == "gamma" else expit(eta)
    ref = scipy_dist(mu, fit.scale_)
    np.testing.assert_allclose(lo, ref.ppf(TAIL), rtol=1e-10)
    np.testing.assert_allclose(hi, ref.ppf(1 - TAIL), rtol=1e-10)
    # the interval holds LEVEL of the predictive's mass
    np.testing.assert_allclose(ref.cdf(hi) - ref.cdf(lo), LEVEL, rtol=1e-8)


def _check_integer_interval(lo, hi, ref):
    """Integer ends, each the smallest count whose CDF reaches its level."""
    assert np.array_equal(lo, np.round(lo)) and np.array_equal(hi, np.round(hi))
    assert (ref.cdf(lo) >= TAIL - 1e-12).all() and (ref.cdf(lo - 1) < TAIL).all()
    assert (ref.cdf(hi) >= 1 - TAIL - 1e-12).all() and (ref.cdf(hi - 1) < 1 - TAIL).all()


def test_negative_binomial_interval_is_nbinom_quantiles():
    fit, d = _fit("negative_binomial")
    lo, hi = fit.predict_interval(d.X, LEVEL)
    mu, alpha = np.exp(_eta(fit, d.X)), fit.scale_
    # NB2 (var = μ + αμ²) written as scipy's nbinom by its mean and variance
    var = mu + alpha * mu**2
    ref = st.nbinom(mu**2 / (var - mu), mu / var)
    _check_integer_interval(lo, hi, ref)
    np.testing.assert_array_equal(hi, ref.ppf(1 - TAIL))


def test_binomial_interval_takes_the_new_rows_trials():
    fit, d = _fit("binomial")
    trials = np.array([1.0, 5.0, 20.0, 60.0])
    lo, hi = fit.predict_interval(d.X[:4], LEVEL, trials=trials)
    ref = st.binom(trials, expit(_eta(fit, d.X[:4])))
    _check_integer_interval(lo, hi, ref)
    assert (hi <= trials).all()
    with pytest.raises(ValueError, match="pass trials="):
        fit.predict_interval(d.X[:4])


def test_poisson_interval_is_poisson_quantiles():
    fit, d = _fit("poisson")
    lo, hi = fit.predict_interval(d.X, LEVEL)
    _check_integer_interval(lo, hi, st.poisson(np.exp(_eta(fit, d.X))))


def test_von_mises_interval_is_wrapped_about_the_mean_direction():
    d = make_synthetic("von_mises", n=400, d=2, seed=2, noise=2.0)
    fit = bayesloss.fit(d.X, d.y, "von_mises")
    # rows whose mean direction is near ±π: their intervals cross the cut
    X = np.r_[d.X, (np.tan((np.array([[3.0], [-3.0]]) - fit.intercept_) / 2)
                    / fit.coef_[0]) * np.eye(2)[:1]]
    mu = fit.intercept_ + 2 * np.arctan(X @ fit.coef_)
    kappa = fit.scale_
    lo, hi = fit.predict_interval(X, LEVEL)
    wrap = lambda a: np.angle(np.exp(1j * a))  # noqa: E731 - into (−π, π]
    half = st.vonmises.ppf(1 - TAIL, kappa)
    np.testing.assert_allclose(np.exp(1j * lo), np.exp(1j * (mu - half)), atol=1e-10)
    np.testing.assert_allclose(np.exp(1j * hi), np.exp(1j * (mu + half)), atol=1e-10)
    assert (np.abs(lo) <= math.pi).all() and (np.abs(hi) <= math.pi).all()
    np.testing.assert_allclose(lo, wrap(st.vonmises(kappa, loc=mu).ppf(TAIL)), atol=1e-10)
    assert (lo[-2:] > hi[-2:]).all()  # crossing ±π, said so in the docstring
    assert st.vonmises.cdf(half, kappa) - st.vonmises.cdf(-half, kappa) == pytest.approx(LEVEL)


def test_a_likelihood_interval_is_its_distributions_icdf():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(200, 2))
    y = np.exp(0.5 + X @ [0.3, -0.2]) * rng.weibull(1.7, 200)
    weibull = bayesloss.Likelihood(
        "weibull", lambda loc, k: dist.Weibull(scale=torch.exp(loc), concentration=k))
    fit = bayesloss.fit(X, y, weibull)
    lo, hi = fit.predict_interval(X, LEVEL)
    ref = st.weibull_min(fit.scale_, scale=np.exp(_eta(fit, X)))
    np.testing.assert_allclose(lo, ref.ppf(TAIL), rtol=1e-10)
    np.testing.assert_allclose(hi, ref.ppf(1 - TAIL), rtol=1e-10)

    gamma = bayesloss.Likelihood(  # torch's Gamma has no icdf
        "my_gamma", lambda loc, k: dist.Gamma(k, k * torch.exp(-loc)))
    with pytest.raises(AttributeError, match="my_gamma distribution .Gamma. has no quantile"):
        bayesloss.fit(X, y, gamma).predict_interval(X)


def test_a_mixture_has_no_interval():
    fit, d = _fit("gaussian_mixture", n=200)
    with pytest.raises(AttributeError, match="no closed form"):
        fit.predict_interval(d.X)
