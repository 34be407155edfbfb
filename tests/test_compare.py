"""How ``compare`` judges: the objective gap per observation (constants cannot distort it) and
the reference's own convergence. Expected values come from scipy.stats / closed forms."""

import dataclasses

import numpy as np
import pytest
from scipy import optimize, stats

import bayesloss
from bayesloss.compare import comparison_table, summarize
from bayesloss.data import make_synthetic
from bayesloss.results import Fit


@pytest.fixture(scope="module")
def gauss():
    d = make_synthetic("gaussian", n=300, d=3, seed=11)
    return d.X, d.y


def test_gaussian_whose_objective_is_zero_passes():
    """σ fixed where the −log likelihood crosses 0: dividing the gap by |F| ≈ 0 used to FAIL a
    fit whose parameters agree to 1e-15. σ is the root of F(σ) at the least-squares answer
    (numpy lstsq, scipy.stats, brentq), i.e. where the normalising constant cancels the rest."""
    d = make_synthetic("gaussian", n=300, d=3, seed=11, noise=0.1)  # F < 0 at σ̂ ≈ 0.1
    X, y = d.X, d.y
    A = np.column_stack([X, np.ones(len(y))])
    w = np.linalg.lstsq(A, y, rcond=None)[0]
    r = y - A @ w
    sigma_hat = np.sqrt(r @ r / len(r))
    sigma = optimize.brentq(lambda s: -stats.norm.logpdf(r, 0, s).sum(), sigma_hat, 5.0,
                            xtol=1e-15)
    table = bayesloss.compare(X, y, "gaussian", noise_scale=sigma)
    obj = table[table["parameter"] == "objective"].iloc[0]
    assert abs(obj["reference"]) < 1e-8 * len(y)  # the objective really is ~0
    assert table["passed"].all(), table
    assert abs(obj["rel_err"]) <= 1e-9


def test_large_constants_do_not_hide_a_gap(gauss):
    """y in units of 1e80 puts n·log σ̂ ≈ 184 nats per observation into F: a real gap of 1e-8
    nats per observation is 5e-11 of |F| (it passed the old relative rule) and must fail."""
    X, y = gauss
    y = y * 1e80
    ref = bayesloss.reference_fit(X, y, "gaussian")
    # move the intercept by δ·σ̂: the gap is n·δ²/2 exactly (F is quadratic in it at σ̂)
    delta = np.sqrt(2 * 1e-8)
    moved = Fit.build(ref.spec, X, y, ref.coef_, ref.intercept_ + delta * ref.scale_,
                      ref.scale_, converged=True, n_iter=0, grad_norm=0.0, method="moved")
    table = comparison_table(moved, ref, X, y)
    obj = table[table["parameter"] == "objective"].iloc[0]
    assert abs(obj["ours"] - obj["reference"]) / abs(obj["reference"]) < 1e-9  # hidden before
    assert obj["rel_err"] == pytest.approx(1e-8, rel=1e-4)
    assert not obj["passed"]


def test_a_reference_that_did_not_converge_fails_the_row(gauss):
    X, y = gauss
    ours = bayesloss.fit(X, y, "gaussian")
    ref = bayesloss.reference_fit(X, y, "gaussian")
    assert comparison_table(ours, ref, X, y)["passed"].all()
    stuck = dataclasses.replace(ref, converged=False)
    table = comparison_table(ours, stuck, X, y)
    assert not table["passed"].any() and not table["reference_converged"].any()
    assert table["converged"].all()  # ours did converge: the failure is the reference's
    summary = summarize(table)
    assert not summary["passed"].iloc[0] and not summary["reference_converged"].iloc[0]


def test_separated_classes_give_a_visible_reference_failure():
    """A real non-converged reference: no logistic MLE exists on the 30 breast-cancer features
    (the classes separate), and the reference says so; the table shows it."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    X, y = data.data, data.target
    ref = bayesloss.reference_fit(X, y, "bernoulli")
    assert not ref.converged
    table = comparison_table(ref, ref, X, y)  # even identical fits cannot pass
    assert not table["passed"].any() and not table["reference_converged"].any()


@pytest.mark.parametrize("likelihood", ["gaussian", "poisson", "bernoulli"])
def test_every_row_names_the_reference_kind(likelihood):
    d = make_synthetic(likelihood, n=200, d=3, seed=2)
    table = bayesloss.compare(d.X, d.y, likelihood, estimator="map", prior="normal",
                              **({"noise_scale": 1.0} if likelihood == "gaussian" else {}))
    assert set(table["reference_kind"]) == {"trusted"}
