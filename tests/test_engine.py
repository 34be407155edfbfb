"""The engine's promises that hold whatever the model: one budget, one progress bar."""

import warnings

import numpy as np
import pytest

import bayesloss
import bayesloss.engine.driver as driver
from bayesloss.data import make_synthetic
from bayesloss.spec import ConvergenceWarning


@pytest.mark.parametrize("likelihood, max_iter", [("laplace", 40), ("gaussian", 15)])
def test_max_iter_is_a_network_fits_whole_budget(likelihood, max_iter):
    """A kinked network fit runs eight smoothing stages: their iterations together stay within
    ``max_iter`` (each stage used to get all of it)."""
    d = make_synthetic(likelihood, n=120, d=3, seed=1)
    X = (d.X - d.X.mean(0)) / d.X.std(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fit = bayesloss.fit(X, d.y, likelihood, mean="mlp", hidden=(4,), max_iter=max_iter,
                            noise_scale=1.0)
    assert 0 < fit.n_iter <= max_iter


def _paths():
    reg = make_synthetic("gaussian", n=80, d=2, seed=3)
    het = make_synthetic("hetero_gaussian", n=80, d=2, seed=3)
    Y = np.column_stack([reg.y, reg.y + 1.0])
    return [
        ("linear L-BFGS", lambda: bayesloss.fit(reg.X, reg.y, "gaussian", progress=True),
         "L-BFGS gaussian"),
        ("linear Adam", lambda: bayesloss.fit(reg.X, reg.y, "gaussian", optimizer="adam",
                                              num_steps=50, progress=True), "adam gaussian"),
        ("network L-BFGS", lambda: bayesloss.fit(reg.X, reg.y, "gaussian", mean="mlp",
                                                 hidden=(3,), max_iter=20, progress=True),
         "L-BFGS gaussian"),
        ("network Adam", lambda: bayesloss.fit(reg.X, reg.y, "gaussian", mean="mlp",
                                               hidden=(3,), optimizer="adam", num_steps=50,
                                               progress=True), "adam gaussian"),
        ("heteroscedastic L-BFGS", lambda: bayesloss.fit(het.X, het.y, "hetero_gaussian",
                                                         progress=True),
         "L-BFGS hetero_gaussian"),
        ("heteroscedastic Adam", lambda: bayesloss.fit(het.X, het.y, "hetero_gaussian",
                                                       optimizer="adam", num_steps=50,
                                                       progress=True), "adam hetero_gaussian"),
        ("several outputs", lambda: bayesloss.fit(reg.X, Y, ["gaussian", "gaussian"],
                                                  progress=True), "L-BFGS 2 outputs"),
    ]


@pytest.mark.parametrize("path", range(7), ids=[p[0] for p in _paths()])
def test_progress_shows_on_every_path(path, capsys, monkeypatch):
    monkeypatch.setattr(driver, "PROGRESS_DELAY", 0.0)  # every fit longer than the delay
    _, run, label = _paths()[path]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        run()
    assert label in capsys.readouterr().err


@pytest.mark.parametrize("signs", ["non-negative", "mixed"])
@pytest.mark.parametrize("centred", [False, True])
def test_weighted_gram_is_the_centred_designs(signs, centred):
    """The Newton polish's curvature blocks, taken on X with the centring as a correction (and
    a symmetric product on √c·X for non-negative weights), equal the blocks of the centred
    design itself, formed directly."""
    from bayesloss.engine.newton import weighted_gram

    rng = np.random.default_rng(7)
    X = rng.normal(size=(500, 6)) * rng.uniform(0.5, 3.0, 6) + rng.uniform(-8.0, 8.0, 6)
    c = rng.uniform(0.0, 2.0, 500) if signs == "non-negative" else rng.normal(size=500)
    m = X.mean(0) if centred else None
    D = X - m if centred else X
    G, s = weighted_gram(X, c, m)
    scale = np.abs(c) @ (D**2).sum(1) + np.abs(m if centred else 0.0).max() ** 2 * np.abs(c).sum()
    np.testing.assert_allclose(G, D.T @ (D * c[:, None]), rtol=0, atol=1e-13 * scale)
    np.testing.assert_allclose(s, D.T @ c, rtol=0, atol=1e-13 * np.abs(c) @ np.abs(D).sum(1))


@pytest.mark.parametrize("kw", [
    {"estimator": "mle"},
    {"estimator": "mle", "noise_scale": 7.0},
    {"estimator": "map", "prior": "normal", "prior_scale": 0.05, "noise_scale": 30.0},
], ids=["mle-learned-scale", "mle-fixed-scale", "ridge-map"])
@pytest.mark.parametrize("collinear", [False, True])
def test_least_squares_newton_start(kw, collinear):
    """For least squares the Newton start takes its gradient without a Pyro trace and its step
    without the acceptance comparison. That gradient must be the ELBO's own at the start, on an
    unscaled design (with a near-collinear column too), and the step must land where the ELBO's
    gradient vanishes (to the whitening's accuracy)."""
    import pyro
    from pyro.infer.autoguide import AutoDelta
    from pyro.infer.autoguide.initialization import init_to_value
    from sklearn.datasets import load_diabetes

    from bayesloss.engine.driver import Objective
    from bayesloss.engine.linear import LinearProblem, initial_values
    from bayesloss.engine.newton import likelihood_gradient, newton_start
    from bayesloss.spec import check_data, make_spec

    X, y = load_diabetes(return_X_y=True)
    rng = np.random.default_rng(3)
    X = X * rng.uniform(1.0, 1e3, X.shape[1]) + 50.0
    if collinear:
        twin = X[:, 2] * 400.0  # correlation 0.99995 with column 2: cond(Gram) ~ 1e4
        X = np.column_stack([X, twin + 0.01 * twin.std() * rng.normal(size=len(y))])
    spec = make_spec("gaussian", **kw)
    X, y, stats = check_data(X, y, spec, stats=True)
    problem = LinearProblem.of(X, y, spec, stats)
    assert problem.quadratic
    pyro.clear_param_store()
    model = problem.model()
    guide = AutoDelta(model, init_loc_fn=init_to_value(values=initial_values(problem, y)))
    guide(problem.X[:1], problem.y[:1])
    exact = Objective(problem.loss(guide, model), list(guide.parameters()))
    exact()
    elbo_grad = dict(guide.named_parameters())["weight_unconstrained"].grad.clone()
    point = guide.median()
    scale = point.get("scale", problem.model_kwargs.get("noise_scale"))
    g = likelihood_gradient(problem, point, scale)
    np.testing.assert_allclose(g.numpy(), elbo_grad.numpy(), rtol=0,
                               atol=1e-12 * float(elbo_grad.abs().max()))
    start = exact.grad_norm()
    assert newton_start(problem, guide, exact)
    # the whitening is exact to the Gram's condition number times the rounding
    assert exact.grad_norm() <= (1e-8 if collinear else 1e-10) * max(1.0, start)
