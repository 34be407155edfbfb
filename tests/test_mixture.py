"""gaussian_mixture: K regression lines with their own σₖ and mixing weights.

Our fit (L-BFGS + Newton from k-means starts) against the EM reference (numpy, Dirichlet
starts, accepted on the first-order conditions: ‖∇(F/n)‖∞ ≤ 1e-9, so the coefficients agree
to ~1e-9 / curvature and the NLLs to ~1e-16 relative); the NLL against one Gaussian and against
the true parameters (scipy, computed here); the label order; the mixture density network.
"""

import warnings

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import norm

import bayesloss as bl
from bayesloss.families.mixture import mixing_weights
from bayesloss.references import reference_fit, reference_kind
from bayesloss.spec import ConvergenceWarning, make_spec

LINES = {  # K: (slopes (d, K), intercepts, σₖ, πₖ): lines apart over x ∈ [−1, 1]
    2: (np.array([[2.0, -1.0], [0.5, 0.0]]), np.array([-2.0, 2.0]), np.array([0.5, 0.3]),
        np.array([0.4, 0.6])),
    3: (np.array([[1.0, -0.5, 0.5]]), np.array([-3.0, 0.0, 3.0]), np.array([0.4, 0.3, 0.5]),
        np.array([0.3, 0.3, 0.4])),
}


def _lines(k, n, seed):
    coef, intercept, sigma, pi = LINES[k]
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (n, coef.shape[0]))
    z = rng.choice(k, size=n, p=pi)
    y = (X @ coef + intercept)[np.arange(n), z] + sigma[z] * rng.standard_normal(n)
    return X, y


def _true_nll(X, y, k):
    coef, intercept, sigma, pi = LINES[k]
    logp = np.log(pi) + norm.logpdf(y[:, None], X @ coef + intercept, sigma)
    return -logsumexp(logp, axis=1).sum()


def _close(ours, ref, rtol):
    np.testing.assert_allclose(ours, ref, rtol=rtol, atol=rtol * np.abs(ref).max())


@pytest.mark.parametrize("k, n", [(2, 300), (3, 300)])
def test_matches_em(k, n):
    X, y = _lines(k, n, seed=k)
    ours = bl.fit(X, y, "gaussian_mixture", components=k)
    ref = reference_fit(X, y, "gaussian_mixture", components=k)
    assert ours.converged and ref.converged
    assert ref.info["kind"] == reference_kind(make_spec("gaussian_mixture", components=k)) \
        == "verified"
    for site in ("weight", "bias", "scale", "mixing"):
        _close(ours.params_[site], ref.params_[site], 1e-6)
    assert ours.nll == pytest.approx(ref.nll, rel=1e-8)
    # the NLL beats one Gaussian and is at least as good as at the true parameters
    assert ours.nll < bl.fit(X, y, "gaussian").nll
    assert ours.nll <= _true_nll(X, y, k)
    # the fit's NLL is the Pyro MixtureSameFamily's, which scipy reproduces at the estimate
    pi = mixing_weights(ours.params_["mixing"])
    logp = np.log(pi) + norm.logpdf(y[:, None], X @ ours.coef_ + ours.intercept_, ours.scale_)
    assert ours.nll == pytest.approx(-logsumexp(logp, axis=1).sum(), rel=1e-12)


@pytest.mark.parametrize("prior", ["normal", "cauchy"])
def test_map_matches_ecm(prior):
    X, y = _lines(2, 200, seed=5)
    model = dict(components=2, estimator="map", prior=prior, prior_scale=0.3)
    ours = bl.fit(X, y, "gaussian_mixture", **model)
    ref = reference_fit(X, y, "gaussian_mixture", **model)
    assert ours.converged and ref.converged
    for site in ("weight", "bias", "scale", "mixing"):
        _close(ours.params_[site], ref.params_[site], 1e-6)
    assert ours.objective == pytest.approx(ref.objective, rel=1e-8)


def test_without_intercept_matches_em():
    """Two lines at intercepts ±2 fitted through the origin: a misspecified model whose
    optimum only starts from other base lines than least squares reach (every k-means start
    on the least-squares residuals found a worse one)."""
    X, y = _lines(2, 200, seed=1)
    ours = bl.fit(X, y, "gaussian_mixture", fit_intercept=False)
    ref = reference_fit(X, y, "gaussian_mixture", fit_intercept=False)
    assert ours.converged and ref.converged
    for site in ("weight", "scale", "mixing"):
        _close(ours.params_[site], ref.params_[site], 1e-6)
    assert ours.nll == pytest.approx(ref.nll, rel=1e-8)


def test_label_order_stable_across_seeds():
    X, y = _lines(3, 200, seed=11)
    fits = [bl.fit(X, y, "gaussian_mixture", components=3, seed=s) for s in (0, 9)]
    first = fits[0]
    # the documented order: ascending mean of each line over the training rows
    assert np.all(np.diff(X.mean(0) @ first.coef_ + first.intercept_) > 0)
    for other in fits[1:]:
        for site in ("weight", "bias", "scale", "mixing"):
            _close(other.params_[site], first.params_[site], 1e-6)


def test_prediction_rule_and_table():
    X, y = _lines(2, 200, seed=2)
    f = bl.fit(X, y, "gaussian_mixture", components=2)
    means = X @ f.coef_ + f.intercept_
    pi = mixing_weights(f.params_["mixing"])
    np.testing.assert_allclose(f.predict(X), means[:, np.argmax(pi)], rtol=1e-12)
    np.testing.assert_allclose(f.predict_mean(X), means @ pi, rtol=1e-12)
    names = list(f.params()["parameter"])
    assert names[-3:] == ["scale[0]", "scale[1]", "mixing logit[1]"]
    assert np.isfinite(f.standard_errors()).all()  # Laplace at the ordered mode


def test_mixture_density_network_beats_linear_on_curved_data():
    rng = np.random.default_rng(1)
    n = 200
    X = rng.uniform(-2, 2, (n, 1))
    upper = rng.random(n) < 0.5
    y = np.where(upper, np.sin(2 * X[:, 0]) + 1.5, X[:, 0] ** 2 - 1.5)
    y = y + 0.2 * rng.standard_normal(n)
    linear = bl.fit(X, y, "gaussian_mixture", components=2)
    with warnings.catch_warnings():  # a local optimum is enough to show the gain
        warnings.simplefilter("ignore", ConvergenceWarning)
        mdn = bl.fit(X, y, "gaussian_mixture", components=2, mean="mlp", hidden=(8,),
                     max_iter=150)
    assert mdn.params_["layers.1.weight"].shape == (3, 8)  # 2 means, 1 mixing logit
    assert mdn.scale_.shape == (2,)
    assert mdn.nll < linear.nll - 0.5 * n  # far better: curves, not lines


def test_invalid_use():
    X, y = _lines(2, 50, seed=0)
    assert bl.fit(X, y, "gaussian_mixture").spec.components == 2  # the default K
    with pytest.raises(ValueError, match="components=K"):
        bl.fit(X, y, "gaussian_mixture", components=1)
    with pytest.raises(ValueError, match="components= is for mixture"):
        bl.fit(X, y, "gaussian", components=2)
    with pytest.raises(ValueError, match="one σₖ per component"):
        bl.fit(X, y, "gaussian_mixture", components=2, noise_scale=1.0)
    with pytest.raises(ValueError, match="label"):
        bl.posterior(X, y, "gaussian_mixture")


def test_minibatch_keeps_the_component_scales_whole():
    """Minibatches index per-row scales by their rows; a mixture's σₖ are per component."""
    import pyro
    import torch
    from pyro import poutine

    from bayesloss.models import build_model

    X, y = _lines(3, 100, seed=2)
    model = build_model(make_spec("gaussian_mixture", components=3), X.shape[1], 3)
    with pyro.validation_enabled(False):
        trace = poutine.trace(model).get_trace(torch.as_tensor(X), torch.as_tensor(y), 16)
    assert trace.nodes["scale"]["value"].shape == (3,)
    assert trace.nodes["obs"]["fn"].batch_shape == (16,)


def _neg_log_posterior(u, X, y, k, tau):
    """U(u) in numpy: u = (weight (d, K) row-major, bias (K), log σₖ, mixing logits (K − 1));
    normal(0, τ) prior on the weights, flat intercepts, σₖ and logits, plus the Jacobian of
    σ = e^u (−Σ log σₖ)."""
    d = X.shape[1]
    w = u[:d * k].reshape(d, k)
    b, log_s, logits = u[d * k:d * k + k], u[d * k + k:d * k + 2 * k], u[d * k + 2 * k:]
    log_pi = np.r_[0.0, logits] - logsumexp(np.r_[0.0, logits])
    loglik = logsumexp(log_pi + norm.logpdf(y[:, None], X @ w + b, np.exp(log_s)), axis=1)
    return -(loglik.sum() + norm.logpdf(w, 0.0, tau).sum() + log_s.sum())


def _fd_hessian(f, u, h=1e-4):
    """Central second differences (error ~h² of the fourth derivatives)."""
    n = u.size
    H = np.empty((n, n))
    E = np.eye(n) * h
    for i in range(n):
        for j in range(i, n):
            H[i, j] = H[j, i] = (f(u + E[i] + E[j]) - f(u + E[i] - E[j]) - f(u - E[i] + E[j])
                                 + f(u - E[i] - E[j])) / (4 * h * h)
    return H


def test_laplace_posterior_is_centred_at_the_ordered_mode():
    """posterior(..., method="laplace") of a mixture: the Gaussian at the mode of U(u) (the
    unconstrained space, σ = e^u: its Jacobian moves the mode off the fit's constrained MAP)
    reached from the fit's ordered labels, with covariance the inverse Hessian of U — both
    checked against U written in numpy here (finite differences)."""
    X, y = _lines(2, 300, 5)
    post = bl.posterior(X, y, "gaussian_mixture", method="laplace", chains=2, draws=50)
    f = lambda u: _neg_log_posterior(u, X, y, 2, 1.0)  # noqa: E731
    mode = post.approximation.mode
    H = _fd_hessian(f, mode)
    cov = np.linalg.inv(H)
    sd = np.sqrt(np.diag(cov))
    # the mode is U's stationary point: the Newton step there is far below a posterior sd
    g = np.array([(f(mode + e) - f(mode - e)) / 2e-6 for e in np.eye(mode.size) * 1e-6])
    assert np.abs(cov @ g / sd).max() < 1e-4
    # in the fit's labelling (the MAP, mapped to u): the Jacobian moves it well under one sd
    m = post.map.params_
    u_map = np.r_[m["weight"].ravel(), m["bias"], np.log(m["scale"]), m["mixing"]]
    assert np.abs((mode - u_map) / sd).max() < 0.5
    assert np.abs((mode - u_map) / sd).max() > 1e-3  # …but does move it: not the MAP itself
    # entry by entry in units of sd_i·sd_j (finite differences leave ~1e-7 there)
    assert np.abs((post.approximation.cov - cov) / np.outer(sd, sd)).max() < 1e-5
    np.testing.assert_allclose(post.mean_, mode[:6])  # the coefficients' mean: weights, bias
    names = post.summary()["parameter"].tolist()
    assert names[-3:] == ["scale[0]", "scale[1]", "mixing logit[1]"]
    with pytest.raises(ValueError, match="label switching"):
        bl.posterior(X, y, "gaussian_mixture", method="nuts")


def test_cli_takes_components(tmp_path, capsys):
    """``--components K`` reaches the fit, the reference of check's single case and the
    Laplace posterior; other likelihoods refuse it."""
    import pandas as pd

    from bayesloss.cli import main

    X, y = _lines(3, 300, 2)
    path = tmp_path / "lines.csv"
    pd.DataFrame({"x": X[:, 0], "y": y}).to_csv(path, index=False)
    data = ["--data", str(path), "--target", "y"]
    assert main(["fit", "gaussian_mixture", "--components", "3"] + data) == 0
    out = capsys.readouterr().out
    assert "K=3" in out and "scale[2]" in out and "mixing logit[2]" in out
    # ours against the EM reference at K = 3 (at K = 2 the two would not match K = 3 lines)
    assert main(["check", "--family", "gaussian_mixture", "--components", "3"] + data) == 0
    assert capsys.readouterr().out.rstrip().endswith("PASS")
    assert main(["posterior", "gaussian_mixture", "--components", "3", "--method", "laplace",
                 "--chains", "1", "--draws", "50", "--quiet"] + data) == 0
    assert "mixing logit[2]" in capsys.readouterr().out
    assert main(["fit", "gaussian", "--components", "3"] + data) == 2
    assert main(["check", "--components", "3"]) == 2
