"""The GLM families (binomial with trials, gamma, negative_binomial, beta) against statsmodels
and scikit-learn, fitted here at tight tolerances: coefficients within 1e-6 relative, the
log-likelihood within 1e-8 relative (our L-BFGS stops at |∇|∞ ≤ 1e-9 per row in standardised
units, which leaves parameters ~1e-7 relative and the NLL, quadratic at its minimum, ~1e-14)."""

import math

import numpy as np
import pytest
import scipy.stats as st
import statsmodels.api as sm
import torch

import bayesloss
from bayesloss import get_family
from bayesloss.data import make_synthetic

COEF_RTOL, LL_RTOL = 1e-6, 1e-8


def _design(n=600, d=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) * [1.0, 2.0, 0.5][:d] + [0.0, 1.0, -2.0][:d]
    return rng, X


def _params(fit):
    return np.r_[fit.intercept_, fit.coef_]


def _close(ours, theirs, rtol=COEF_RTOL):
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=0)


# --- the family pieces ------------------------------------------------------------------------


CASES = {  # (y, η, second parameter)
    "binomial": (np.array([0.0, 3, 7, 2]), np.array([-1.0, 0.0, 0.4, 2.0]),
                 np.array([1.0, 5, 10, 2])),
    "gamma": (np.array([0.3, 1.2, 4.0, 0.9]), np.array([-0.5, 0.1, 1.0, 0.0]), 2.5),
    "negative_binomial": (np.array([0.0, 3, 12, 1]), np.array([-0.5, 1.0, 2.0, 0.3]), 0.7),
    "beta": (np.array([0.1, 0.45, 0.8, 0.97]), np.array([-1.0, 0.0, 1.2, 2.0]), 6.0),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_nll_through_the_loss_equals_the_distribution(name):
    family = get_family(name)
    y, eta, s = (torch.as_tensor(v, dtype=torch.float64) for v in CASES[name])
    nll = family.nll(y, eta, s)
    via_loss = family.nll_from_loss(family.loss(y, eta, s, None), y, s, None)
    assert float(via_loss) == pytest.approx(float(nll), rel=1e-13)


def _scipy_nll(name, y, eta, s):
    mu = {"binomial": 1 / (1 + np.exp(-eta))}.get(name, np.exp(eta))
    if name == "binomial":
        return -st.binom.logpmf(y, s, mu).sum()
    if name == "gamma":
        return -st.gamma.logpdf(y, s, scale=mu / s).sum()
    if name == "negative_binomial":
        r = 1 / s
        return -st.nbinom.logpmf(y, r, r / (r + mu)).sum()
    m = 1 / (1 + np.exp(-eta))
    return -st.beta.logpdf(y, m * s, (1 - m) * s).sum()


@pytest.mark.parametrize("name", sorted(CASES))
def test_nll_equals_scipy(name):
    y, eta, s = CASES[name]
    family = get_family(name)
    t = lambda v: torch.as_tensor(v, dtype=torch.float64)  # noqa: E731
    assert float(family.nll(t(y), t(eta), t(s))) == pytest.approx(_scipy_nll(name, y, eta, s),
                                                                  rel=1e-12)


@pytest.mark.parametrize("name", sorted(CASES))
def test_numpy_terms_are_the_nll_and_its_derivatives(name):
    """``numpy_terms`` (the verified references' objective) against autograd of the Pyro
    distribution's NLL, in η and in β = log s."""
    y, eta, s = CASES[name]
    family = get_family(name)
    beta = np.log(s)
    f, g_eta, h_eta, g_b, h_b, h_eb = family.numpy_terms(y, eta, beta, None)
    e = torch.tensor(eta, requires_grad=True)
    b = torch.tensor(beta, dtype=torch.float64, requires_grad=True)
    # the trials are known integers (Binomial checks them): nothing to differentiate in β
    second = torch.as_tensor(s) if name == "binomial" else b.exp()
    nll = family.nll(torch.as_tensor(y), e, second)
    if name == "binomial":
        (ge,) = torch.autograd.grad(nll, e, create_graph=True)
        np.testing.assert_allclose(g_eta, ge.detach().numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(h_eta, [torch.autograd.grad(ge[i], e, retain_graph=True)[0][i]
                                           .item() for i in range(len(y))], rtol=1e-10)
        return
    (ge, gb) = torch.autograd.grad(nll, (e, b), create_graph=True)
    np.testing.assert_allclose(g_eta, ge.detach().numpy(), rtol=1e-10, atol=1e-12)
    he = np.array([torch.autograd.grad(ge[i], e, retain_graph=True)[0][i].item()
                   for i in range(len(y))])
    # (second derivatives to 1e-8: torch's trigamma, inside autograd of lgamma, is off by up
    # to 1.5e-9 relative near 0.5, where scipy's polygamma agrees with mpmath to 1e-16)
    np.testing.assert_allclose(h_eta, he, rtol=1e-8, atol=1e-12)
    (hb,) = torch.autograd.grad(gb, b, retain_graph=True)
    (heb,) = torch.autograd.grad(ge.sum(), b, retain_graph=True)
    assert g_b == pytest.approx(gb.item(), rel=1e-10)
    assert h_b == pytest.approx(hb.item(), rel=1e-8)
    # the mixed derivative per row: its sum is d/dβ of Σ ∂f/∂η
    assert np.sum(h_eb) == pytest.approx(heb.item(), rel=1e-8, abs=1e-12)
    # f is the NLL up to a constant in (η, β): compare a difference
    f2 = family.numpy_terms(y, eta + 0.1, beta + 0.2, None)[0]
    nll2 = family.nll(torch.as_tensor(y), torch.as_tensor(eta + 0.1),
                      torch.tensor(math.exp(beta + 0.2), dtype=torch.float64))
    assert f2 - f == pytest.approx(float(nll2 - nll.detach()), rel=1e-10)


@pytest.mark.parametrize("name, grid", [
    ("binomial", np.arange(0, 31)),
    ("negative_binomial", np.arange(0, 200)),
    ("gamma", np.linspace(1e-6, 40, 400001)),
    ("beta", np.linspace(1e-9, 1 - 1e-9, 200001)),
])
@pytest.mark.parametrize("eta", [-0.7, 0.3, 1.6])
@pytest.mark.parametrize("s", [0.6, 3.0, 30.0])
def test_prediction_is_the_mode_of_the_predictive(name, grid, eta, s):
    if name == "binomial":
        s = float(round(s))  # trials
    if name == "negative_binomial":
        s = s / 10  # α ∈ {0.06, 0.3, 3}
    mode = float(get_family(name).predict(torch.tensor([eta], dtype=torch.float64),
                                          torch.tensor(s, dtype=torch.float64))[0])
    density = -np.array([_scipy_nll(name, np.array([v]), np.array([eta]), s) for v in grid]) \
        if name in ("binomial", "negative_binomial") else None
    if density is None:
        mu = math.exp(eta) if name == "gamma" else 1 / (1 + math.exp(-eta))
        density = (st.gamma.logpdf(grid, s, scale=mu / s) if name == "gamma"
                   else st.beta.logpdf(grid, mu * s, (1 - mu) * s))
    best = grid[np.argmax(density)]
    step = grid[1] - grid[0]
    assert abs(mode - best) <= (0 if name in ("binomial", "negative_binomial") else step)


# --- binomial ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def grouped():
    rng, X = _design()
    trials = rng.integers(1, 25, X.shape[0]).astype(float)
    y = rng.binomial(trials.astype(int), 1 / (1 + np.exp(-(0.3 + X @ [0.8, -0.4, 0.6]))))
    return X, y.astype(float), trials


def test_binomial_mle_is_statsmodels_glm_on_successes_and_failures(grouped):
    X, y, trials = grouped
    ours = bayesloss.fit(X, y, "binomial", trials=trials)
    glm = sm.GLM(np.column_stack([y, trials - y]), sm.add_constant(X),
                 family=sm.families.Binomial()).fit(tol=1e-14, maxiter=100)
    assert ours.converged
    _close(_params(ours), glm.params)
    assert -ours.nll == pytest.approx(glm.llf, rel=LL_RTOL)
    # the Laplace standard errors are the observed (= expected: canonical link) information's
    _close(ours.standard_errors(), np.r_[glm.bse[1:], glm.bse[0]], rtol=1e-6)
    ref = bayesloss.reference_fit(X, y, "binomial", trials=trials)
    _close(_params(ref), glm.params, rtol=1e-10)


def test_bernoulli_is_binomial_with_one_trial(grouped):
    X, y, _ = grouped
    y01 = (y > np.median(y)).astype(float)
    one = bayesloss.fit(X, y01, "binomial", trials=1)
    per_row = bayesloss.fit(X, y01, "binomial", trials=np.ones(len(y)))
    bern = bayesloss.fit(X, y01, "bernoulli")
    logit = sm.Logit(y01, sm.add_constant(X)).fit(method="newton", tol=1e-14, disp=False)
    for f in (one, per_row, bern):
        _close(_params(f), logit.params)
        assert -f.nll == pytest.approx(logit.llf, rel=LL_RTOL)
    np.testing.assert_array_equal(one.predict(X), bern.predict(X))


def test_binomial_map_is_weighted_logistic_regression(grouped):
    """A normal prior τ: scikit-learn LogisticRegression(C = τ²) on a success row weighted yᵢ
    and a failure row weighted nᵢ − yᵢ (its objective C·Σ wᵢ logloss + ½‖w‖² is the −log joint
    divided by C)."""
    from sklearn.linear_model import LogisticRegression

    X, y, trials = grouped
    tau = 0.05
    ours = bayesloss.fit(X, y, "binomial", trials=trials, estimator="map", prior_scale=tau)
    sk = LogisticRegression(C=tau**2, solver="newton-cholesky", tol=1e-12).fit(
        np.vstack([X, X]), np.r_[np.ones(len(y)), np.zeros(len(y))],
        sample_weight=np.r_[y, trials - y])
    _close(_params(ours), np.r_[sk.intercept_, sk.coef_[0]])


def test_binomial_on_star98():
    """statsmodels' own binomial GLM example: STAR98 maths scores, successes out of pupils."""
    data = sm.datasets.star98.load_pandas()
    X = data.exog.to_numpy(float)
    succ, fail = data.endog.to_numpy(float).T
    ours = bayesloss.fit(X, succ, "binomial", trials=succ + fail)
    glm = sm.GLM(np.column_stack([succ, fail]), sm.add_constant(X),
                 family=sm.families.Binomial()).fit(tol=1e-14, maxiter=100)
    assert ours.converged
    _close(_params(ours), glm.params)
    assert -ours.nll == pytest.approx(glm.llf, rel=LL_RTOL)


def test_binomial_predicts_with_the_new_rows_trials(grouped):
    X, y, trials = grouped
    f = bayesloss.fit(X, y, "binomial", trials=trials)
    p = f.predict_mean(X[:4])
    np.testing.assert_array_equal(f.predict(X[:4], trials=[1, 2, 3, 40]),
                                  np.minimum(np.floor(np.array([2, 3, 4, 41]) * p),
                                             [1, 2, 3, 40]))
    with pytest.raises(ValueError, match="trials were per row: pass trials="):
        f.predict(X[:4])


def test_binomial_input_errors(grouped):
    X, y, trials = grouped
    with pytest.raises(ValueError, match="needs trials="):
        bayesloss.fit(X, y, "binomial")
    with pytest.raises(ValueError, match="exceed their row's trials"):
        bayesloss.fit(X, y, "binomial", trials=1)
    with pytest.raises(ValueError, match="positive integers"):
        bayesloss.fit(X, y, "binomial", trials=trials + 0.5)
    with pytest.raises(ValueError, match="trials has 3 per-row values but X has"):
        bayesloss.fit(X, y, "binomial", trials=[5, 5, 5])
    with pytest.raises(ValueError, match="has no noise scale"):
        bayesloss.fit(X, y, "binomial", noise_scale=trials)
    with pytest.raises(ValueError, match=r"trials= is for \['binomial'\]"):
        bayesloss.fit(X, y, "poisson", trials=trials)


# --- gamma ------------------------------------------------------------------------------------


def _gamma_shape_mle(y, mu):
    """The shape maximising statsmodels' Gamma log-likelihood at the means ``mu`` (its scale
    is 1/shape), by scipy's bounded scalar minimiser on log k."""
    from scipy.optimize import minimize_scalar

    family = sm.families.Gamma(link=sm.families.links.Log())
    res = minimize_scalar(lambda u: -family.loglike(y, mu, scale=math.exp(-u)),
                          bounds=(-10, 10), method="bounded", options={"xatol": 1e-12})
    return math.exp(res.x)


def _check_gamma(X, y):
    ours = bayesloss.fit(X, y, "gamma")
    glm = sm.GLM(y, sm.add_constant(X), family=sm.families.Gamma(link=sm.families.links.Log())
                 ).fit(tol=1e-14, maxiter=200)
    assert ours.converged
    _close(_params(ours), glm.params)
    shape = _gamma_shape_mle(y, glm.fittedvalues)
    assert ours.scale_ == pytest.approx(shape, rel=1e-5)  # (the bounded search's own xatol)
    llf = glm.family.loglike(y, glm.fittedvalues, scale=1 / ours.scale_)
    assert -ours.nll == pytest.approx(llf, rel=LL_RTOL)
    assert ours.loss == pytest.approx(glm.deviance, rel=1e-9)


def test_gamma_mle_is_statsmodels_gamma_glm():
    rng, X = _design()
    y = rng.gamma(3.0, np.exp(0.5 + X @ [0.3, -0.2, 0.4]) / 3.0)
    _check_gamma(X, y)


def test_gamma_on_scotland():
    """statsmodels' Gamma GLM example data: the Scottish parliament vote (yes share × 100)."""
    data = sm.datasets.scotland.load_pandas()
    _check_gamma(data.exog.to_numpy(float), data.endog.to_numpy(float))


@pytest.mark.parametrize("shape", [0.7, 4.0])
def test_gamma_map_is_sklearn_gamma_regressor(shape):
    """A fixed shape k and a normal prior τ: GammaRegressor(α = 1/(n·k·τ²)), whose
    Σ deviance/(2n) + α‖w‖²/2 is the −log joint divided by n·k."""
    from sklearn.linear_model import GammaRegressor

    rng, X = _design()
    y = rng.gamma(shape, np.exp(0.5 + X @ [0.3, -0.2, 0.4]) / shape)
    tau = 0.1
    ours = bayesloss.fit(X, y, "gamma", estimator="map", prior_scale=tau, noise_scale=shape)
    ((label, alpha),) = ours.penalty.items()
    sk = GammaRegressor(alpha=1 / (len(y) * shape * tau**2), solver="newton-cholesky",
                        tol=1e-12, max_iter=1000).fit(X, y)
    assert alpha == pytest.approx(sk.alpha, rel=1e-15)
    _close(_params(ours), np.r_[sk.intercept_, sk.coef_])


# --- negative binomial ----------------------------------------------------------------------


def _check_nb(X, y, rtol=COEF_RTOL):
    ours = bayesloss.fit(X, y, "negative_binomial")
    nb = sm.NegativeBinomial(y, sm.add_constant(X), loglike_method="nb2").fit(
        method="newton", tol=1e-14, maxiter=200, disp=False)
    assert ours.converged
    _close(np.r_[_params(ours), ours.scale_], nb.params, rtol=rtol)
    assert -ours.nll == pytest.approx(nb.llf, rel=LL_RTOL)
    # Laplace standard errors: statsmodels' from its analytic Hessian (α its last parameter)
    se = ours.standard_errors()
    _close(np.r_[se[-2], se[:-2], se[-1]], nb.bse, rtol=1e-5)


def test_negative_binomial_mle_is_statsmodels_nb2():
    rng, X = _design()
    mu = np.exp(1.0 + X @ [0.3, -0.2, 0.4])
    y = rng.negative_binomial(1 / 0.5, 1 / (1 + 0.5 * mu)).astype(float)
    _check_nb(X, y)


def test_negative_binomial_fixed_alpha_is_statsmodels_glm():
    rng, X = _design()
    mu = np.exp(1.0 + X @ [0.3, -0.2, 0.4])
    y = rng.negative_binomial(1 / 0.5, 1 / (1 + 0.5 * mu)).astype(float)
    ours = bayesloss.fit(X, y, "negative_binomial", noise_scale=0.8)
    glm = sm.GLM(y, sm.add_constant(X), family=sm.families.NegativeBinomial(alpha=0.8)).fit(
        tol=1e-14, maxiter=200)
    _close(_params(ours), glm.params)
    assert -ours.nll == pytest.approx(glm.llf, rel=LL_RTOL)


@pytest.mark.slow
def test_negative_binomial_on_randhie():
    """RAND health insurance experiment: doctor visits (mdvis), the NB2 textbook count data
    (20,190 rows)."""
    data = sm.datasets.randhie.load_pandas()
    _check_nb(data.exog.to_numpy(float), data.endog.to_numpy(float).ravel())


# --- beta -------------------------------------------------------------------------------------


def _check_beta(X, y):
    from statsmodels.othermod.betareg import BetaModel

    ours = bayesloss.fit(X, y, "beta")
    model = BetaModel(y, sm.add_constant(X))
    start = model.fit(method="bfgs", maxiter=5000, disp=False)
    res = model.fit(start_params=start.params, method="newton", tol=1e-14, maxiter=200,
                    disp=False)
    assert ours.converged
    _close(np.r_[_params(ours), math.log(ours.scale_)], res.params)
    assert -ours.nll == pytest.approx(res.llf, rel=LL_RTOL)
    return ours, res


def test_beta_mle_is_statsmodels_beta_model():
    rng, X = _design()
    mu = 1 / (1 + np.exp(-(0.2 + X @ [0.5, -0.3, 0.4])))
    y = rng.beta(mu * 8.0, (1 - mu) * 8.0)
    ours, res = _check_beta(X, y)
    # Laplace standard errors: statsmodels' observed information, its precision as log φ
    # (at the mode the covariance maps by the Jacobian: se(φ) = φ·se(log φ))
    se = ours.standard_errors()
    _close(np.r_[se[-2], se[:-2], se[-1] / ours.scale_], res.bse, rtol=1e-5)


def test_beta_on_star98_shares():
    """Real proportions: STAR98's share of pupils above the national median, per district."""
    data = sm.datasets.star98.load_pandas()
    above, below = data.endog.to_numpy(float).T
    _check_beta(data.exog.to_numpy(float)[:, :6], above / (above + below))


# --- the shared machinery ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["binomial", "gamma", "negative_binomial", "beta"])
def test_reference_route_and_map_agree(name):
    """Each family's MAP (normal prior, scale learned; per-row trials) equals its reference
    route's, on the check's synthetic data."""
    d = make_synthetic(name, n=500, d=4, seed=1)
    ours = bayesloss.fit(d.X, d.y, name, estimator="map", prior_scale=0.5, **d.inputs)
    ref = bayesloss.reference_fit(d.X, d.y, name, estimator="map", prior_scale=0.5,
                                  **d.inputs)
    assert ours.converged and ref.converged
    sx = d.X.std(0)
    unit = np.abs(ref.coef_ * sx).max()
    assert np.abs((ours.coef_ - ref.coef_) * sx).max() <= COEF_RTOL * unit
    assert ours.objective == pytest.approx(ref.objective, rel=1e-10)
    if ours.scale_ is not None:
        assert ours.scale_ == pytest.approx(ref.scale_, rel=COEF_RTOL)


@pytest.mark.parametrize("name, fixed", [("binomial", {}), ("gamma", {"noise_scale": 2.0})])
def test_posterior_laplace_is_centred_at_the_map(name, fixed):
    """``posterior()`` builds from the model's sites: the Laplace approximation of a GLM
    family (per-row trials included) is centred at the MAP. (A learned scale's Jacobian would
    move the unconstrained mode, hence a fixed shape.)"""
    d = make_synthetic(name, n=300, d=2, seed=2)
    post = bayesloss.posterior(d.X, d.y, name, method="laplace", chains=1, draws=100,
                               **d.inputs, **fixed)
    np.testing.assert_allclose(post.mean_, np.r_[post.map.coef_, post.map.intercept_],
                               rtol=1e-6)
    assert post.idata.posterior_predictive["obs"].shape[-1] == 300


@pytest.mark.slow
def test_adam_minibatches_keep_each_rows_trials():
    """Per-row trials follow their rows through the data plate's subsampling."""
    d = make_synthetic("binomial", n=2000, d=3, seed=3)
    full = bayesloss.fit(d.X, d.y, "binomial", **d.inputs)
    mini = bayesloss.fit(d.X, d.y, "binomial", optimizer="adam", batch_size=256, seed=0,
                         **d.inputs)
    sx = d.X.std(0)
    assert np.abs((mini.coef_ - full.coef_) * sx).max() < 2e-2


def test_cli_binomial_reads_the_trials_column(tmp_path, capsys, grouped):
    """``bayesloss check --trials COLUMN``: the trials column is data, not a feature, and the
    one case passes against the reference."""
    import pandas as pd

    from bayesloss.cli import main

    X, y, trials = grouped
    path = tmp_path / "grouped.csv"
    pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "succ": y, "n": trials}).to_csv(path, index=False)
    assert main(["check", "--family", "binomial", "--data", str(path), "--target", "succ",
                 "--trials", "n"]) == 0
    out = capsys.readouterr().out
    assert out.rstrip().endswith("PASS") and "n = 600, d = 2" in out  # features a, b only



def test_shrinkage_path_of_a_binomial_takes_its_trials():
    """The shrinkage path (drawn by ``bayesloss posterior --out``) fits with the rows' trials:
    its MAP at each τ is fit()'s, per-row trials included."""
    from bayesloss.data import make_synthetic
    from bayesloss.posterior import shrinkage_path

    d = make_synthetic("binomial", n=200, d=2, seed=1, scale_range=(0.5, 2.0))
    path = shrinkage_path(d.X, d.y, "binomial", [0.3, 3.0], **d.inputs)
    for tau, rows in path.groupby("prior_scale"):
        est = bayesloss.fit(d.X, d.y, "binomial", estimator="map", prior_scale=tau, **d.inputs)
        np.testing.assert_allclose(rows["map"], np.r_[est.coef_, est.intercept_], rtol=1e-12)
