"""Each family's NLL equals its classical loss through the stated identity, checked against
scipy's densities and scikit-learn's metrics (never against our own numbers)."""

import math

import numpy as np
import pytest
import scipy.stats as st
import torch
from sklearn.metrics import log_loss, mean_poisson_deviance

from bayesloss import FAMILIES, get_family
from bayesloss.data import make_synthetic
from bayesloss.results import linear_predictor

RNG = np.random.default_rng(7)
N = 400


def _t(a):
    return torch.as_tensor(np.asarray(a, dtype=np.float64))


def _data(likelihood):
    d = make_synthetic(likelihood, n=N, d=3, seed=3)
    k = 3 if likelihood == "categorical" else None
    shape = (N, k) if k else (N,)
    eta = RNG.normal(0.5, 1.0, shape)
    return d.y, eta


# family → (scipy log-likelihood of y given η and scale, sklearn/closed-form classical loss)
SCIPY = {
    "gaussian": (lambda y, eta, s, df: st.norm.logpdf(y, eta, s).sum(),
                 lambda y, eta, s, df: np.sum((y - eta) ** 2)),
    "laplace": (lambda y, eta, s, df: st.laplace.logpdf(y, eta, s).sum(),
                lambda y, eta, s, df: np.sum(np.abs(y - eta))),
    "studentt": (lambda y, eta, s, df: st.t.logpdf(y, df, eta, s).sum(),
                 lambda y, eta, s, df: 0.5 * (df + 1) * np.log1p((y - eta) ** 2 / (df * s**2)).sum()),
    "bernoulli": (lambda y, eta, s, df: st.bernoulli.logpmf(y, 1 / (1 + np.exp(-eta))).sum(),
                  lambda y, eta, s, df: N * log_loss(y, 1 / (1 + np.exp(-eta)), labels=[0, 1])),
    "categorical": (lambda y, eta, s, df: np.log(_softmax(eta)[np.arange(N), y]).sum(),
                    lambda y, eta, s, df: N * log_loss(y, _softmax(eta), labels=[0, 1, 2])),
    "poisson": (lambda y, eta, s, df: st.poisson.logpmf(y, np.exp(eta)).sum(),
                lambda y, eta, s, df: N * mean_poisson_deviance(y, np.exp(eta))),
}


def _softmax(eta):
    p = np.exp(eta - eta.max(1, keepdims=True))
    return p / p.sum(1, keepdims=True)


@pytest.mark.parametrize("likelihood", sorted(SCIPY))
@pytest.mark.parametrize("scale", [0.7, 2.5])
def test_nll_and_loss_match_scipy_and_sklearn(likelihood, scale):
    family = get_family(likelihood)
    y, eta = _data(likelihood)
    s = scale if family.has_scale else None
    df = 4.0
    loglik, loss = SCIPY[likelihood]
    s_t = None if s is None else _t(s)
    ours_nll = float(family.nll(_t(y), _t(eta), s_t, df))
    ours_loss = float(family.loss(_t(y), _t(eta), s_t, df))
    assert ours_nll == pytest.approx(-loglik(y, eta, s, df), rel=1e-12)
    assert ours_loss == pytest.approx(loss(y, eta, s, df), rel=1e-10)
    # the identity NLL = f(loss) stated in the family's docstring
    assert float(family.nll_from_loss(_t(ours_loss), _t(y), s_t, df)) == pytest.approx(
        ours_nll, rel=1e-12)


def test_gaussian_identity_written_out():
    y, eta = _data("gaussian")
    sigma = 1.7
    sse = np.sum((y - eta) ** 2)
    expected = N / 2 * math.log(2 * math.pi * sigma**2) + sse / (2 * sigma**2)
    assert float(get_family("gaussian").nll(_t(y), _t(eta), _t(sigma))) == pytest.approx(
        expected, rel=1e-13)


def test_laplace_identity_written_out():
    y, eta = _data("laplace")
    b = 0.9
    expected = N * math.log(2 * b) + np.sum(np.abs(y - eta)) / b
    assert float(get_family("laplace").nll(_t(y), _t(eta), _t(b))) == pytest.approx(
        expected, rel=1e-13)


def test_poisson_nll_minus_half_deviance_is_free_of_parameters():
    y, _ = _data("poisson")
    fam = get_family("poisson")
    gaps = []
    for shift in (0.0, 0.3, -0.8):
        eta = _t(np.log(y.mean()) + shift + 0 * y)
        gaps.append(float(fam.nll(_t(y), eta) - fam.loss(_t(y), eta, None, None) / 2))
    assert np.ptp(gaps) < 1e-9 * abs(gaps[0])


@pytest.mark.parametrize(
    "likelihood, eta, expected",
    [
        ("gaussian", [0.3, -2.0], [0.3, -2.0]),
        ("laplace", [0.3, -2.0], [0.3, -2.0]),
        ("studentt", [0.3, -2.0], [0.3, -2.0]),
        ("bernoulli", [0.1, -0.1], [1, 0]),
        ("poisson", [math.log(2.5), math.log(0.4)], [2, 0]),  # ⌊μ⌋ is Poisson's mode
    ],
)
def test_prediction_is_the_mode_of_the_predictive(likelihood, eta, expected):
    out = get_family(likelihood).predict(_t(eta)).numpy()
    np.testing.assert_array_equal(out, expected)


def test_categorical_prediction_is_most_probable_class():
    eta = _t([[0.1, 2.0, -1.0], [3.0, 0.0, 0.0]])
    np.testing.assert_array_equal(get_family("categorical").predict(eta).numpy(), [1, 0])


def test_poisson_mode_agrees_with_scipy_pmf():
    for mu in (0.4, 1.7, 3.2, 9.9):
        grid = np.arange(0, 40)
        mode = grid[np.argmax(st.poisson.pmf(grid, mu))]
        assert get_family("poisson").predict(_t([math.log(mu)])).item() == mode


@pytest.mark.parametrize("likelihood", sorted(FAMILIES))
def test_synthetic_truth_is_what_generated_the_data(likelihood):
    """The true parameters a generator reports are the ones its data came from: a large-n MLE
    lands within sampling error (~1/√n in standardised units) of them, where a wrong gain or
    offset would miss by 0.3 or more."""
    from bayesloss import fit

    d = make_synthetic(likelihood, n=20000, d=4, seed=11)
    w, b = d.truth["weight"], d.truth["bias"]
    if FAMILIES[likelihood].multiclass:  # the fit reports the centred softmax convention
        w, b = w - w.mean(axis=1, keepdims=True), b - b.mean()
    est = fit(d.X, d.y, likelihood, **d.inputs)
    sx = d.X.std(axis=0)
    sx = sx[:, None] if w.ndim == 2 else sx
    assert np.abs((est.coef_ - w) * sx).max() < 0.06
    eta_true = linear_predictor(est.spec, d.X, w, b).numpy()  # (b + g(x·w) for von_mises)
    eta = est.linear_predictor(d.X)[:, :eta_true.shape[1]] if w.ndim == 2 else \
        est.linear_predictor(d.X)  # (a mixture's η goes on with its mixing logits)
    assert np.abs(eta - eta_true).mean() < 0.06
    if FAMILIES[likelihood].has_scale:
        assert np.abs(est.scale_ - d.truth["scale"]).max() < 0.05


@pytest.mark.parametrize("tau", [0.05, 1.0])
def test_two_class_softmax_map_is_logistic_regression_with_c_2tau2(tau):
    """A 2-class categorical MAP (normal prior τ on both columns) is labelled, and is,
    ``LogisticRegression(C = 2τ²)``: scikit-learn fits the one logit w₁ − w₀, whose prior at
    the even split is N(0, 2τ²). Checked on scikit-learn's probabilities, not on our label."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    import bayesloss

    data = load_breast_cancer()
    X = data.data[:, :5]
    X = (X - X.mean(0)) / X.std(0)  # only so scikit-learn's solver is exact quickly
    ours = bayesloss.fit(X, data.target, "categorical", estimator="map", prior="normal",
                         prior_scale=tau)
    ((label, C),) = ours.penalty.items()
    assert "C = 2τ²" in label and C == pytest.approx(2 * tau**2, rel=1e-15)
    assert "C = 2τ²" in ours.summary()
    sk = LogisticRegression(C=C, solver="newton-cholesky", tol=1e-12).fit(X, data.target)
    # our L-BFGS stops at 1e-6 relative on parameters: probabilities agree far below 1e-5
    np.testing.assert_allclose(ours.predict_proba(X), sk.predict_proba(X), atol=1e-6)
    # and C = τ² (the multiclass label) is measurably a different estimator
    other = LogisticRegression(C=tau**2, solver="newton-cholesky", tol=1e-12).fit(
        X, data.target)
    assert np.abs(ours.predict_proba(X) - other.predict_proba(X)).max() > 1e-3
