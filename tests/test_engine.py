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
