"""Your own likelihood (bayesloss.Likelihood): a Weibull regression checked against scipy.

The references are computed here: ``scipy.stats.weibull_min``'s NLL minimised by
``scipy.optimize`` (with the gradient written out below), never our own fit's numbers.
"""

import math

import numpy as np
import pyro.distributions as dist
import pytest
import scipy.stats as st
import torch
from scipy import optimize
from scipy.special import gamma as gamma_fn

import bayesloss
from bayesloss.check import Case, run_check

K_TRUE = 1.7


def weibull(scale="learned"):
    """Weibull with a log-scale link: y ~ Weibull(λ = exp(η), shape k)."""
    return bayesloss.Likelihood(
        "weibull", lambda loc, k: dist.Weibull(scale=torch.exp(loc), concentration=k),
        scale=scale)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    n = 300
    X = rng.normal(size=(n, 2)) * [1.0, 3.0] + [0.0, 2.0]
    y = np.exp(0.5 + X @ [0.3, -0.2]) * rng.weibull(K_TRUE, n)
    return X, y


def scipy_nll(X, y, p, *, log_k=None, tau=None):
    """Σ −log weibull_min.pdf(y; k, scale = exp(b + Xw)) (+ Σ w²/(2τ²)) and its gradient in
    p = (b, w, log k) (log k omitted when ``log_k`` fixes it)."""
    b, w = p[0], p[1:1 + X.shape[1]]
    lk = p[-1] if log_k is None else log_k
    k, eta = math.exp(lk), b + X @ w
    f = -st.weibull_min.logpdf(y, k, scale=np.exp(eta)).sum()
    # ℓ = −log k + kη − (k−1) log y + z,  z = (y e^{−η})^k
    log_ratio = np.log(y) - eta
    z = np.exp(k * log_ratio)
    d_eta = k - k * z
    grad = [d_eta.sum(), X.T @ d_eta]
    if log_k is None:
        grad.append([(-1.0 - k * log_ratio + k * z * log_ratio).sum()])
    if tau is not None:
        f += (w @ w) / (2 * tau**2)
        grad[1] = grad[1] + w / tau**2
    return f, np.concatenate([np.atleast_1d(g) for g in grad])


def scipy_fit(X, y, **kw):
    p0 = np.zeros(1 + X.shape[1] + (kw.get("log_k") is None))
    p0[0] = math.log(y.mean())
    res = optimize.minimize(lambda p: scipy_nll(X, y, p, **kw), p0, jac=True, method="BFGS",
                            options={"gtol": 1e-10, "maxiter": 10_000})
    return res.x


def test_weibull_mle_equals_scipy(data):
    X, y = data
    ours = bayesloss.fit(X, y, weibull())
    p = scipy_fit(X, y)
    assert ours.converged
    np.testing.assert_allclose(ours.coef_, p[1:3], rtol=1e-6)
    np.testing.assert_allclose(ours.intercept_, p[0], rtol=1e-6)
    np.testing.assert_allclose(ours.scale_, math.exp(p[3]), rtol=1e-6)
    # NLL = loss, and both are scipy's NLL at our estimate
    ref_nll = scipy_nll(X, y, np.r_[ours.intercept_, ours.coef_, math.log(ours.scale_)])[0]
    assert ours.nll == pytest.approx(ref_nll, rel=1e-10)
    assert ours.loss == ours.nll
    # the verified reference (scipy on the torch distribution's NLL) agrees too
    ref = bayesloss.reference_fit(X, y, weibull())
    assert ref.info["kind"] == "verified" and ref.converged
    np.testing.assert_allclose(ref.coef_, p[1:3], rtol=1e-6)


def test_weibull_map_with_fixed_shape_equals_scipy(data):
    X, y = data
    lik = weibull(scale=K_TRUE)
    ours = bayesloss.fit(X, y, lik, estimator="map", prior_scale=0.1)
    p = scipy_fit(X, y, log_k=math.log(K_TRUE), tau=0.1)
    np.testing.assert_allclose(np.r_[ours.intercept_, ours.coef_], p, rtol=1e-6)
    assert ours.scale_ is None and not ours.spec.family.has_scale
    with pytest.raises(ValueError, match="has no noise scale"):
        bayesloss.fit(X, y, lik, noise_scale=2.0)


def test_predictions_are_the_weibull_mode_and_mean(data):
    X, y = data
    ours = bayesloss.fit(X, y, weibull())
    lam, k = np.exp(ours.linear_predictor(X[:5])), ours.scale_
    np.testing.assert_allclose(ours.predict(X[:5]), lam * ((k - 1) / k) ** (1 / k), rtol=1e-12)
    np.testing.assert_allclose(ours.predict_mean(X[:5]), lam * gamma_fn(1 + 1 / k), rtol=1e-12)


def test_posterior_laplace_mode_is_the_map_and_the_jacobian_mode(data):
    """A fixed shape: every site is real, so the Laplace mode is the MAP (scipy's). A learned
    shape: the mode is in u = log k, the maximiser of log p(y, θ) + log k (scipy's too)."""
    X, y = data
    fixed = bayesloss.posterior(X, y, weibull(scale=K_TRUE), prior_scale=0.1, method="laplace",
                                chains=1, draws=100)
    p = scipy_fit(X, y, log_k=math.log(K_TRUE), tau=0.1)
    mode = fixed.approximation.mode
    np.testing.assert_allclose(np.r_[mode[2], mode[:2]], p, rtol=1e-6)

    flat = bayesloss.posterior(X, y, weibull(), prior=None, method="laplace", chains=1,
                               draws=100)
    res = optimize.minimize(
        lambda q: (lambda f, g: (f - q[3], g - np.r_[0, 0, 0, 1.0]))(*scipy_nll(X, y, q)),
        np.r_[math.log(y.mean()), 0, 0, 0], jac=True, method="BFGS", options={"gtol": 1e-10})
    values, _ = flat.potential.unpack(torch.as_tensor(flat.approximation.mode))
    np.testing.assert_allclose(np.r_[float(values["bias"]), values["weight"].numpy(),
                                     math.log(float(values["scale"]))], res.x, rtol=1e-6)


@pytest.mark.slow
def test_posterior_nuts_mean_equals_importance_sampling():
    """One feature, flat weights: NUTS's posterior mean against self-normalised importance
    sampling from a Student-t around the Laplace approximation, weighted by scipy's density
    of u = (b, w, log k) (NLL − log k), within 5 Monte Carlo standard errors."""
    rng = np.random.default_rng(5)
    n = 200
    X = rng.normal(size=(n, 1))
    y = np.exp(0.2 + 0.5 * X[:, 0]) * rng.weibull(K_TRUE, n)
    post = bayesloss.posterior(X, y, weibull(), prior=None, chains=2, warmup=500, draws=1000,
                               seed=1, progress=False)
    lap = bayesloss.posterior(X, y, weibull(), prior=None, method="laplace", chains=1,
                              draws=100)
    values, _ = lap.potential.unpack(torch.as_tensor(lap.approximation.mode))
    mu = np.r_[float(values["bias"]), float(values["weight"][0]), math.log(float(values["scale"]))]
    order = [1, 0, 2]  # the potential's layout: weight, bias, log scale
    cov = lap.approximation.cov[np.ix_(order, order)]
    q = st.multivariate_t(mu, 1.5 * cov, df=5, seed=7)
    u = q.rvs(40_000)
    log_target = np.array([-scipy_nll(X, y, p)[0] + p[2] for p in u])
    log_w = log_target - q.logpdf(u)
    w = np.exp(log_w - log_w.max())
    w /= w.sum()
    is_mean = w @ u
    draws = post.idata.posterior
    nuts = np.array([float(draws["bias"].mean()), float(draws["weight"].mean()),
                     float(np.log(draws["scale"]).mean())])
    sd = np.sqrt(w @ (u - is_mean) ** 2)
    mcse = sd / np.sqrt(0.5 * 2000)  # NUTS's effective size is at least half its draws here
    assert np.all(np.abs(nuts - is_mean) < 5 * mcse), (nuts, is_mean, mcse)


def test_compare_and_check_take_a_likelihood(data):
    X, y = data
    lik = weibull()
    table = bayesloss.compare(X, y, lik, estimator="map", prior_scale=0.5)
    assert table["passed"].all() and set(table["family"]) == {"weibull"}
    rows, summary = run_check([Case("synthetic", lik)], include_longley=False, progress=False)
    assert summary["passed"].all() and summary["reference_kind"].eq("verified").all()


def test_a_bad_make_is_named():
    with pytest.raises(TypeError, match="make must be a callable"):
        bayesloss.Likelihood("w", "weibull")
    with pytest.raises(TypeError, match="must return a torch / Pyro distribution"):
        bayesloss.Likelihood("w", lambda loc, k: torch.exp(loc))
    with pytest.raises(ValueError, match="one scalar distribution per row"):
        bayesloss.Likelihood("w", lambda loc, k: dist.Normal(loc, k).to_event(1))
    with pytest.raises(ValueError, match="raised TypeError"):
        bayesloss.Likelihood("w", lambda loc: dist.Normal(loc, 1.0))  # one argument
    with pytest.raises(ValueError, match="scale must be 'learned'"):
        bayesloss.Likelihood("w", lambda loc, k: dist.Normal(loc, k), scale="fixed")
    with pytest.raises(ValueError, match="positive and finite"):
        bayesloss.Likelihood("w", lambda loc, k: dist.Normal(loc, k), scale=-1.0)
    with pytest.raises(ValueError, match="say which with support="):
        bayesloss.Likelihood("u", lambda loc, s: dist.Uniform(loc - 1, loc + 1), scale=None)
    with pytest.raises(ValueError, match="support must be one of"):
        bayesloss.Likelihood("w", lambda loc, k: dist.Normal(loc, k), support="complex")


def test_targets_outside_the_support_are_named(data):
    X, y = data
    bad = y.copy()
    bad[4] = -1.0
    with pytest.raises(ValueError, match=r"targets must lie in its distribution's support.*row 4"):
        bayesloss.fit(X, bad, weibull())


def test_support_is_read_from_the_distribution():
    assert weibull().family.support == "positive"
    counts = bayesloss.Likelihood("nb", lambda loc, r: dist.NegativeBinomial(
        total_count=r, logits=loc))
    assert counts.family.support == "counts"
    assert str(counts) == "nb" and "nb" in repr(counts)
