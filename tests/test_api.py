"""The Fit contract: attributes, predictions against scikit-learn's, NLL vs loss on a fitted
model, the penalty mapping, independence of fits, seeds, and the command line."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats as st
from sklearn.linear_model import LogisticRegression, Ridge

import bayesloss
from bayesloss.cli import main
from bayesloss.data import load_dataset, make_synthetic


def assert_same_effects(coef_a, coef_b, X, y, tol):
    """Weights agree in their natural unit: each column's effect |Δw_j|·sd(x_j) ≤ tol·sd(y)."""
    effect = np.abs(np.asarray(coef_a) - np.asarray(coef_b)) * X.std(axis=0)
    assert effect.max() <= tol * y.std(), effect / y.std()


@pytest.fixture(scope="module")
def gauss():
    d = make_synthetic("gaussian", n=300, d=4, seed=2)
    return d.X, d.y


def test_fit_attributes_and_nll_loss_identity(gauss):
    X, y = gauss
    fit = bayesloss.fit(X, y, "gaussian")
    assert fit.coef_.shape == (4,) and isinstance(fit.intercept_, float)
    assert fit.converged and fit.n_iter > 0 and fit.grad_norm < 1e-7
    resid = y - X @ fit.coef_ - fit.intercept_
    sse = float(resid @ resid)
    # σ̂² = RSS/n in closed form, and the NLL written through the loss (SSE)
    assert fit.scale_ == pytest.approx(math.sqrt(sse / len(y)), rel=1e-8)
    assert fit.loss == pytest.approx(sse, rel=1e-12)
    assert fit.nll == pytest.approx(-st.norm.logpdf(y, y - resid, fit.scale_).sum(), rel=1e-12)
    assert fit.nll == pytest.approx(
        len(y) / 2 * math.log(2 * math.pi * fit.scale_**2) + sse / (2 * fit.scale_**2), rel=1e-12)
    assert fit.objective == pytest.approx(fit.nll, rel=1e-12)  # MLE: no prior term


def test_map_objective_adds_the_negative_log_prior(gauss):
    X, y = gauss
    fit = bayesloss.fit(X, y, "gaussian", estimator="map", prior="laplace", prior_scale=0.5,
                        noise_scale=1.3)
    penalty = -st.laplace.logpdf(fit.coef_, 0, 0.5).sum()
    assert fit.objective == pytest.approx(fit.nll + penalty, rel=1e-12)


def test_ridge_summary_states_the_penalty_it_equals(gauss):
    X, y = gauss
    fit = bayesloss.fit(X, y, "gaussian", estimator="map", prior="normal", prior_scale=0.2,
                        noise_scale=1.5)
    lam = 1.5**2 / 0.2**2
    (name, value), = fit.penalty.items()
    assert "ridge λ" in name and value == pytest.approx(lam)
    ridge = Ridge(alpha=lam, solver="cholesky").fit(X, y)
    assert_same_effects(fit.coef_, ridge.coef_, X, y, 1e-7)
    text = fit.summary()
    assert "ridge λ" in text and f"{lam:.6g}" in text and "converged = True" in text


def test_classifier_predictions_match_sklearn():
    d = load_dataset("breast_cancer")
    fit = bayesloss.fit(d.X, d.y, "bernoulli", estimator="map", prior_scale=1.0)
    sk = LogisticRegression(C=1.0, solver="newton-cholesky", tol=1e-12, max_iter=500).fit(d.X, d.y)
    proba = fit.predict_proba(d.X)
    assert proba.shape == (len(d.y), 2)
    np.testing.assert_allclose(proba, sk.predict_proba(d.X), atol=1e-7)
    np.testing.assert_array_equal(fit.predict(d.X), sk.predict(d.X))
    assert fit.penalty == {"sklearn LogisticRegression C = τ²": 1.0}


def test_softmax_probabilities_match_sklearn():
    d = load_dataset("wine")
    fit = bayesloss.fit(d.X, d.y, "categorical", estimator="map", prior_scale=1.0)
    sk = LogisticRegression(C=1.0, solver="newton-cholesky", tol=1e-12, max_iter=500).fit(d.X, d.y)
    assert fit.coef_.shape == (13, 3) and fit.intercept_.shape == (3,)
    np.testing.assert_allclose(fit.predict_proba(d.X), sk.predict_proba(d.X), atol=1e-7)
    np.testing.assert_array_equal(fit.predict(d.X), sk.predict(d.X))


def test_fits_do_not_share_parameters(gauss):
    X, y = gauss
    first = bayesloss.fit(X, y, "gaussian")
    bayesloss.fit(X * 3.0, -y, "gaussian", estimator="map", noise_scale=1.0)
    again = bayesloss.fit(X, y, "gaussian")
    np.testing.assert_array_equal(first.coef_, again.coef_)


def test_minibatch_fits_are_reproducible_by_seed(gauss):
    X, y = gauss
    kw = dict(optimizer="adam", batch_size=32, num_steps=300, tol=0.0, noise_scale=1.0)
    with pytest.warns(bayesloss.ConvergenceWarning):
        a = bayesloss.fit(X, y, "gaussian", seed=5, **kw)
    with pytest.warns(bayesloss.ConvergenceWarning):
        b = bayesloss.fit(X, y, "gaussian", seed=5, **kw)
    with pytest.warns(bayesloss.ConvergenceWarning):
        c = bayesloss.fit(X, y, "gaussian", seed=6, **kw)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    assert np.abs(a.coef_ - c.coef_).max() > 0


def test_penalized_intercept_equals_a_ones_column(gauss):
    X, y = gauss
    with_icpt = bayesloss.fit(X, y, "gaussian", estimator="map", noise_scale=1.0,
                              prior_scale=0.3, penalize_intercept=True)
    ones = bayesloss.fit(np.column_stack([X, np.ones(len(y))]), y, "gaussian", estimator="map",
                         noise_scale=1.0, prior_scale=0.3, fit_intercept=False)
    assert_same_effects(with_icpt.coef_, ones.coef_[:-1], X, y, 1e-7)
    assert abs(with_icpt.intercept_ - ones.coef_[-1]) <= 1e-7 * y.std()


def test_no_intercept_matches_lstsq(gauss):
    X, y = gauss
    fit = bayesloss.fit(X, y, "gaussian", fit_intercept=False)
    assert_same_effects(fit.coef_, np.linalg.lstsq(X, y, rcond=None)[0], X, y, 1e-7)
    assert fit.intercept_ == 0.0


def test_compare_returns_a_tidy_table(gauss):
    X, y = gauss
    table = bayesloss.compare(X, y, "gaussian", estimator="map", noise_scale=1.0)
    assert {"family", "estimator", "prior", "parameter", "ours", "reference", "abs_err",
            "rel_err", "tolerance", "passed"} <= set(table.columns)
    assert list(table["parameter"])[-1] == "objective"
    assert len(table) == 4 + 1 + 1 + 1  # weights, intercept, fixed scale, objective
    assert table["passed"].all()


def test_cli_check_json_and_out(tmp_path, capsys):
    code = main(["check", "--data", "real", "--family", "poisson", "--json",
                 "--out", str(tmp_path)])
    rows = json.loads(capsys.readouterr().out)
    assert code == 0 and len(rows) == 3 and all(r["passed"] is True for r in rows)
    summary = pd.read_csv(tmp_path / "check_summary.csv")
    assert set(summary["data"]) == {"cpunish", "randhie"}
    assert (tmp_path / "check_rows.csv").exists()


def test_cli_check_exit_code_is_1_when_a_row_fails(monkeypatch, capsys):
    import importlib

    compare = importlib.import_module("bayesloss.compare")  # the module, not the function
    # make every tolerance impossible: the same fits must now be reported as failures
    monkeypatch.setattr(compare, "tolerances", lambda *a, **k: (0.0, -1.0))
    assert main(["check", "--data", "real", "--family", "poisson"]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_cli_fit_prints_a_summary(capsys):
    """The printed knob and estimates are scikit-learn's: C = τ² = 0.25, and the coefficients
    (both summaries) match LogisticRegression(C=0.25) fitted here."""
    import re

    from sklearn.linear_model import LogisticRegression

    assert main(["fit", "bernoulli", "--data", "breast_cancer", "--estimator", "map",
                 "--prior-scale", "0.5", "--reference"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"LogisticRegression C = τ²: 0\.25\b", out) and "scikit-learn" in out
    d = load_dataset("breast_cancer")
    sk = LogisticRegression(C=0.25, solver="newton-cholesky", tol=1e-12, max_iter=1000)
    sk.fit(d.X - d.X.mean(0), d.y)
    # each summary's parameter table (rows named by column or x{j}), ours then the reference
    tables = [block.split("parameter", 1)[1].strip().splitlines()[1:]  # below the header
              for block in out.split("\n\n") if "parameter" in block]
    assert len(tables) == 2
    for rows in tables:
        def first_number(row):  # the value column: the first number after the name
            for token in row.split():
                try:
                    return float(token)
                except ValueError:
                    continue

        coefs = [first_number(r) for r in rows  # not the intercept, nor a footnote ("se: …")
                 if r.strip() and ":" not in r and not r.strip().startswith("intercept")]
        assert len(coefs) == d.X.shape[1]
        assert_same_effects(np.array(coefs), sk.coef_[0], d.X, d.y, 1e-5)


@pytest.mark.parametrize("model", [{}, {"estimator": "map"}, {"estimator": "map", "prior": "laplace"}])
def test_two_class_softmax_matches_its_reference(model):
    """K = 2 softmax against scikit-learn's one-logit fit, split evenly (C = 2τ² for MAP)."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 3))
    y = rng.integers(0, 2, 200)
    X[:, 0] += y
    table = bayesloss.compare(X, y, "categorical", **model)
    assert table["passed"].all(), table


def test_poisson_prediction_is_a_float_mode():
    d = make_synthetic("poisson", n=200, d=3, seed=4)
    fit = bayesloss.fit(d.X, d.y, "poisson")
    pred = fit.predict(d.X)
    assert pred.dtype == np.float64
    np.testing.assert_array_equal(pred, np.floor(fit.predict_mean(d.X)))


def test_subpackages_load_on_first_use_after_a_bare_import():
    """``import bayesloss`` then ``bayesloss.plots.plot_forest`` / ``bayesloss.data``, as the
    guides write them, in a fresh interpreter (in this one other tests imported them)."""
    import subprocess
    import sys

    code = ("import sys, bayesloss; assert 'bayesloss.plots' not in sys.modules; "
            "bayesloss.plots.plot_forest; bayesloss.data.make_synthetic; bayesloss.sklearn; "
            "bayesloss.experiments.run_sweep; bayesloss.io.read_table; "
            "bayesloss.diagnostics.summary\n"
            "try:\n    bayesloss.nothing\nexcept AttributeError as e:\n    print(e)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "has no attribute 'nothing'" in done.stdout
