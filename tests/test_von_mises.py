"""The von_mises family: circular regression μ = b + 2·atan(x·w) (Fisher & Lee, 1992).

References are computed here: the verified multi-start reference (``reference_fit``), and an
independent scipy BFGS on the NLL written with ``scipy.special.i0e`` and its gradient written
out below; log-likelihoods by ``scipy.stats.vonmises``.
"""

import math

import numpy as np
import pytest
import scipy.stats as st
from scipy import optimize
from scipy.special import i0e, i1e

import bayesloss
from bayesloss import get_family
from bayesloss.data import make_synthetic


@pytest.fixture(scope="module")
def data():
    return make_synthetic("von_mises", n=500, d=3, seed=2, noise=2.0)


def mean_direction(X, w, b):
    return b + 2 * np.arctan(X @ w)


def scipy_nll(X, y, p):
    """Σ −log vonmises(y; κ, μ) with μ = b + 2 atan(Xw), p = (w, b, log κ), and its gradient."""
    d = X.shape[1]
    w, b, kappa = p[:d], p[d], math.exp(p[d + 1])
    u = X @ w
    r = y - (b + 2 * np.arctan(u))
    f = (kappa * (1 - np.cos(r))).sum() + len(y) * (math.log(2 * math.pi) + math.log(i0e(kappa)))
    d_mu = -kappa * np.sin(r)
    d_logk = kappa * ((1 - np.cos(r)).sum() + len(y) * (i1e(kappa) / i0e(kappa) - 1))
    return f, np.r_[X.T @ (d_mu * 2 / (1 + u * u)), d_mu.sum(), d_logk]


def test_mle_equals_the_verified_multistart_reference(data):
    X, y = data.X, data.y
    ours = bayesloss.fit(X, y, "von_mises")
    ref = bayesloss.reference_fit(X, y, "von_mises")
    assert ours.converged and ref.converged and ref.info["kind"] == "verified"
    assert len(ref.info["starts"]) > 1
    np.testing.assert_allclose(ours.coef_, ref.coef_, rtol=1e-6)
    np.testing.assert_allclose(ours.intercept_, ref.intercept_, rtol=1e-6)
    np.testing.assert_allclose(ours.scale_, ref.scale_, rtol=1e-6)
    loglik = st.vonmises.logpdf(y, ours.scale_, loc=mean_direction(X, ours.coef_,
                                                                    ours.intercept_)).sum()
    assert -ours.nll == pytest.approx(loglik, rel=1e-10)
    assert ours.nll == pytest.approx(ref.nll, rel=1e-8)


def test_mle_equals_an_independent_scipy_fit(data):
    X, y = data.X, data.y
    d = X.shape[1]
    start = np.r_[data.truth["weight"], data.truth["bias"], math.log(data.truth["scale"])]
    res = optimize.minimize(lambda p: scipy_nll(X, y, p), start, jac=True, method="BFGS",
                            options={"gtol": 1e-9, "maxiter": 10_000})
    ours = bayesloss.fit(X, y, "von_mises")
    np.testing.assert_allclose(np.r_[ours.coef_, ours.intercept_], res.x[:d + 1], rtol=1e-6)
    assert math.log(ours.scale_) == pytest.approx(res.x[d + 1], rel=1e-6)
    assert ours.nll == pytest.approx(res.fun, rel=1e-10)


def test_map_normal_prior_fixed_kappa(data):
    X, y = data.X, data.y
    kw = dict(estimator="map", prior="normal", prior_scale=0.05, noise_scale=2.0)
    ours = bayesloss.fit(X, y, "von_mises", **kw)
    ref = bayesloss.reference_fit(X, y, "von_mises", **kw)
    np.testing.assert_allclose(np.r_[ours.coef_, ours.intercept_],
                               np.r_[ref.coef_, ref.intercept_], rtol=1e-6)
    assert ours.objective == pytest.approx(ref.objective, rel=1e-10)
    assert "kappa=2" in ours.spec.label()


def test_nll_is_kappa_times_the_cosine_loss_plus_the_bessel_constant(data):
    X, y = data.X, data.y
    ours = bayesloss.fit(X, y, "von_mises")
    kappa, n = ours.scale_, len(y)
    loss = (1 - np.cos(y - mean_direction(X, ours.coef_, ours.intercept_))).sum()
    assert ours.loss == pytest.approx(loss, rel=1e-12)
    assert ours.nll == pytest.approx(
        kappa * loss + n * (math.log(2 * math.pi) + math.log(i0e(kappa))), rel=1e-12)


def test_prediction_is_the_mean_direction_wrapped(data):
    X, y = data.X, data.y
    ours = bayesloss.fit(X, y, "von_mises")
    mu = mean_direction(X, ours.coef_, ours.intercept_)
    pred = ours.predict(X)
    assert np.all((pred > -math.pi) & (pred <= math.pi))
    np.testing.assert_allclose(np.cos(pred), np.cos(mu), atol=1e-12)
    np.testing.assert_allclose(np.sin(pred), np.sin(mu), atol=1e-12)


def test_targets_must_be_angles(data):
    y = data.y.copy()
    y[7] = 4.0
    with pytest.raises(ValueError, match="angles in radians"):
        bayesloss.fit(data.X, y, "von_mises")


def test_family_record():
    fam = get_family("von_mises")
    assert fam.support == "angle" and fam.scale_name == "kappa"
    assert fam.inner_link is not None


def test_posterior_laplace_mode_is_the_map_at_fixed_kappa(data):
    X, y = data.X, data.y
    kw = dict(prior_scale=0.05, noise_scale=2.0)
    post = bayesloss.posterior(X, y, "von_mises", method="laplace", chains=1, draws=100, **kw)
    ref = bayesloss.reference_fit(X, y, "von_mises", estimator="map", **kw)
    np.testing.assert_allclose(post.approximation.mode, np.r_[ref.coef_, ref.intercept_],
                               rtol=1e-6)
