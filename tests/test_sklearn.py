"""The scikit-learn front door: the estimator contract (scikit-learn's own checks), Pipeline /
cross-validation / grid search, predictions equal to scikit-learn's equivalent estimators, the
keywords passed on as fit takes them, and pandas names in and out."""

import functools
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import (LinearRegression, LogisticRegression, PoissonRegressor,
                                  QuantileRegressor, Ridge)
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import bayesloss
from bayesloss.data import load_dataset, make_synthetic
from bayesloss.sklearn import LikelihoodClassifier, LikelihoodRegressor

ROOT = Path(__file__).resolve().parents[1]


@parametrize_with_checks([LikelihoodRegressor(), LikelihoodClassifier()])  # none excused
def test_sklearn_estimator_contract(estimator, check):
    if getattr(check, "func", check).__name__ == "check_array_api_input":
        # scikit-learn runs this one only when SCIPY_ARRAY_API=1 was set before scipy was
        # imported: run it for real in a fresh interpreter instead of skipping it
        _array_api_check_in_subprocess(estimator)
        return
    check(estimator)


def _array_api_check_in_subprocess(estimator):
    failures = _array_api_failures()
    assert f"FAILED {type(estimator).__name__}" not in failures, failures


@functools.lru_cache(maxsize=None)
def _array_api_failures() -> str:
    """Run the check for both estimators in one fresh interpreter (one start-up, not two);
    return its stderr, with "FAILED <class>" and the traceback for each that failed (a
    SkipTest there counts as a failure)."""
    code = textwrap.dedent("""
        import sys, traceback
        from sklearn.utils.estimator_checks import check_array_api_input
        from bayesloss.sklearn import LikelihoodClassifier, LikelihoodRegressor
        for E in (LikelihoodRegressor, LikelihoodClassifier):
            try:
                check_array_api_input(E.__name__, E(), array_namespace="numpy",
                                      expect_only_array_outputs=False)
            except Exception:
                print("FAILED", E.__name__, traceback.format_exc(), file=sys.stderr)
    """)
    env = {**os.environ, "SCIPY_ARRAY_API": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", code], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stderr


@pytest.fixture(scope="module")
def cancer():
    d = load_dataset("breast_cancer")
    return d.X, d.y


def test_pipeline_cross_val_score_equals_logistic_regression(cancer):
    X, y = cancer
    cv = KFold(4, shuffle=True, random_state=0)
    ours = cross_val_score(Pipeline([("scale", StandardScaler()),
                                     ("m", LikelihoodClassifier(prior_scale=0.5))]), X, y, cv=cv,
                           scoring="neg_log_loss")
    # the same model: L2 logistic regression with C = τ², intercept unpenalised
    theirs = cross_val_score(Pipeline([
        ("scale", StandardScaler()),
        ("m", LogisticRegression(C=0.25, solver="newton-cholesky", tol=1e-10, max_iter=200))]),
        X, y, cv=cv, scoring="neg_log_loss")
    assert len(ours) == 4
    np.testing.assert_allclose(ours, theirs, rtol=1e-7)


def test_grid_search_over_prior_scale_equals_ridge_over_alpha():
    d = load_dataset("diabetes")
    X = StandardScaler().fit_transform(d.X)
    sigma, taus = 55.0, [3.0, 10.0, 100.0]
    cv = KFold(3, shuffle=True, random_state=1)
    ours = GridSearchCV(
        LikelihoodRegressor(estimator="map", prior="normal", noise_scale=sigma),
        param_grid={"prior_scale": taus}, cv=cv).fit(X, d.y)
    # MAP with a normal prior τ and σ fixed is ridge with λ = σ²/τ² (a plain sum of squares)
    ridge = GridSearchCV(Ridge(solver="cholesky"),
                         param_grid={"alpha": [sigma**2 / t**2 for t in taus]}, cv=cv).fit(X, d.y)
    np.testing.assert_allclose(ours.cv_results_["mean_test_score"],
                               ridge.cv_results_["mean_test_score"], rtol=1e-8)
    assert ours.best_params_["prior_scale"] == pytest.approx(sigma / ridge.best_params_["alpha"]**0.5)
    assert ours.best_estimator_.fit_.converged


def _scaled(name):
    d = load_dataset(name)
    return StandardScaler().fit_transform(d.X), d.y


# (estimator, scikit-learn twin, data): the same objective, so the same predictions
EQUIVALENT = {
    "gaussian-mle=LinearRegression": (
        LikelihoodRegressor(), LinearRegression(), lambda: _scaled("diabetes")),
    "gaussian-map=Ridge": (
        LikelihoodRegressor(estimator="map", prior_scale=5.0, noise_scale=50.0),
        Ridge(alpha=50.0**2 / 5.0**2, solver="cholesky"), lambda: _scaled("diabetes")),
    "poisson-mle=PoissonRegressor(alpha=0)": (
        LikelihoodRegressor(likelihood="poisson"),
        PoissonRegressor(alpha=0, solver="newton-cholesky", tol=1e-12, max_iter=500),
        lambda: _scaled("cpunish")),
    "bernoulli-map=LogisticRegression(C=τ²)": (
        LikelihoodClassifier(prior_scale=2.0),
        LogisticRegression(C=4.0, solver="newton-cholesky", tol=1e-12, max_iter=500),
        lambda: _scaled("breast_cancer")),
    "categorical-map=multinomial LogisticRegression(C=τ²)": (
        LikelihoodClassifier(prior_scale=0.7),
        LogisticRegression(C=0.49, solver="newton-cholesky", tol=1e-12, max_iter=500),
        lambda: _scaled("wine")),
}


@pytest.mark.parametrize("ours, theirs, data", EQUIVALENT.values(), ids=list(EQUIVALENT))
def test_predictions_equal_sklearns_equivalent_estimator(ours, theirs, data):
    X, y = data()
    ours.fit(X, y)
    theirs.fit(X, y)
    if isinstance(ours, LikelihoodClassifier):
        # probabilities agree to the solvers' tolerance (gradient ∞-norm 1e-9 per row)
        np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-7)
        np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
        np.testing.assert_allclose(ours.coef_, theirs.coef_, rtol=1e-6, atol=1e-7)
        assert ours.score(X, y) == theirs.score(X, y)
    else:
        spread = np.std(y)
        np.testing.assert_allclose(ours.predict(X), theirs.predict(X), atol=1e-7 * spread,
                                   rtol=1e-7)
        np.testing.assert_allclose(ours.coef_, theirs.coef_, atol=1e-7 * spread)
    assert ours.n_iter_ == ours.fit_.n_iter > 0


@pytest.mark.slow  # the smoothing continuation of a LAD fit takes seconds
def test_laplace_mle_matches_least_absolute_deviations():
    """LAD minimisers need not be unique: compare the objective (sum of absolute errors)."""
    d = make_synthetic("laplace", n=300, d=3, seed=4)
    ours = LikelihoodRegressor(likelihood="laplace").fit(d.X, d.y)
    lad = QuantileRegressor(quantile=0.5, alpha=0, solver="highs").fit(d.X, d.y)
    sae = np.abs(d.y - ours.predict(d.X)).sum()
    sae_ref = np.abs(d.y - lad.predict(d.X)).sum()
    assert sae <= sae_ref * (1 + 1e-6)
    assert ours.scale_ == pytest.approx(sae / len(d.y), rel=1e-4)  # b̂ = mean |r| at the optimum


def test_string_boolean_and_category_labels():
    X, y = _scaled("iris")
    species = np.array(["setosa", "versicolor", "virginica"])
    names = species[y]
    on_codes = LikelihoodClassifier().fit(X, y)
    for labels in (names, pd.Series(names, dtype="category")):
        clf = LikelihoodClassifier().fit(X, labels)
        assert list(clf.classes_) == ["setosa", "versicolor", "virginica"]
        np.testing.assert_array_equal(clf.predict(X), species[on_codes.predict(X)])
        np.testing.assert_allclose(clf.predict_proba(X), on_codes.predict_proba(X))
        assert clf.coef_.shape == (3, 4) and clf.intercept_.shape == (3,)
    X2, y2 = _scaled("breast_cancer")
    clf = LikelihoodClassifier().fit(X2, y2.astype(bool))
    assert list(clf.classes_) == [False, True] and clf.fit_.spec.likelihood == "bernoulli"
    assert clf.coef_.shape == (1, X2.shape[1])
    # decision_function is the log-odds of classes_[1]
    np.testing.assert_array_equal(clf.decision_function(X2) > 0, clf.predict(X2))


@pytest.fixture(scope="module")
def frame():
    d = load_dataset("diabetes")
    return pd.DataFrame(d.X, columns=list(d.feature_names)), pd.Series(d.y, name="progression")


def test_dataframe_names_in_summary_params_and_compare(frame):
    X, y = frame
    reg = LikelihoodRegressor().fit(X, y)
    assert list(reg.feature_names_in_) == list(X.columns) and reg.n_features_in_ == 10
    text = reg.summary()
    for name in X.columns:
        assert f"\n{name:>11} " in text or f" {name} " in text, name
    assert "coef[" not in text
    assert reg.fit_.params()["parameter"].tolist()[:10] == list(X.columns)
    table = bayesloss.compare(X, y, "gaussian")
    assert table["parameter"].tolist()[:10] == list(X.columns)
    ref = bayesloss.reference_fit(X, y, "gaussian")
    assert ref.params()["parameter"].tolist()[:10] == list(X.columns)
    # printed whole: every column, no "..." however narrow pandas' display is
    with pd.option_context("display.max_columns", 4, "display.width", 60):
        printed = str(table)
        assert "..." not in printed and all(c in printed for c in table.columns)
        assert "..." not in repr(table)
        html = table._repr_html_()
        assert all(f"<th>{c}</th>" in html for c in table.columns)


def test_reordered_or_other_columns_raise_at_predict(frame):
    X, y = frame
    reg = LikelihoodRegressor().fit(X, y)
    shuffled = X[X.columns[::-1]]
    with pytest.raises(ValueError, match="feature names"):
        reg.predict(shuffled)
    with pytest.raises(ValueError, match="feature names"):
        reg.predict(X.rename(columns={"bmi": "BMI"}))
    # the functional Fit refuses too, rather than predicting something else
    fit = bayesloss.fit(X, y, "gaussian")
    with pytest.raises(ValueError, match="feature names should match"):
        fit.predict(shuffled)
    np.testing.assert_allclose(fit.predict(X), reg.predict(X))
    np.testing.assert_allclose(fit.predict(X.to_numpy()), reg.predict(X))


def test_functional_api_explains_how_to_encode_labels(frame):
    X, _ = frame
    y = np.where(np.arange(len(X)) % 2, "yes", "no")
    with pytest.raises(ValueError, match=r"string labels.*factorize.*LikelihoodClassifier"):
        bayesloss.fit(X, y, "bernoulli")
    with pytest.raises(ValueError, match="pandas category labels"):
        bayesloss.fit(X, pd.Series(y, dtype="category"), "bernoulli")
    with pytest.raises(ValueError, match="boolean labels"):
        bayesloss.fit(X, y == "yes", "gaussian")
    # booleans are exactly bernoulli's 0/1
    a = bayesloss.fit(X, y == "yes", "bernoulli", estimator="map")
    b = bayesloss.fit(X, (y == "yes").astype(float), "bernoulli", estimator="map")
    np.testing.assert_array_equal(a.coef_, b.coef_)
    Xs = X.assign(region=np.where(np.arange(len(X)) % 3, "north", "south"))
    with pytest.raises(ValueError, match=r"non-numeric column\(s\) \['region'\].*get_dummies"):
        bayesloss.fit(Xs, np.asarray(X["bmi"]), "gaussian")


@pytest.mark.parametrize("likelihood, equivalent", [
    ("gaussian", "LinearRegression"), ("laplace", "QuantileRegressor(quantile=0.5, alpha=0)"),
    ("bernoulli", "LogisticRegression(C=np.inf)"), ("poisson", "PoissonRegressor(alpha=0)"),
    ("studentt", "TLinearModel"),
])
def test_mle_summary_names_its_classical_equivalent(likelihood, equivalent):
    d = make_synthetic(likelihood, n=200, d=2, seed=3)
    fit = bayesloss.fit(d.X, d.y, likelihood)
    assert equivalent in fit.summary()
    assert "<pre>" in fit._repr_html_() and repr(fit.summary()) == str(fit.summary())


def test_estimator_rejects_a_likelihood_of_the_other_kind():
    X, y = _scaled("iris")
    with pytest.raises(ValueError, match="LikelihoodClassifier"):
        LikelihoodRegressor(likelihood="categorical").fit(X, y)
    with pytest.raises(ValueError, match="2 classes"):
        LikelihoodClassifier(likelihood="bernoulli").fit(X, y)


def test_lbfgs_progress_bar_appears_only_for_fits_longer_than_the_delay(capsys, monkeypatch):
    import bayesloss.engine.driver as driver

    d = make_synthetic("bernoulli", n=200, d=3, seed=5)
    monkeypatch.setattr(driver, "PROGRESS_DELAY", 60.0)  # a fit far shorter than the delay
    bayesloss.fit(d.X, d.y, "bernoulli", estimator="map", progress=True)
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(driver, "PROGRESS_DELAY", 0.0)  # one far longer
    bayesloss.fit(d.X, d.y, "bernoulli", estimator="map", progress=False)
    assert capsys.readouterr().err == ""
    bayesloss.fit(d.X, d.y, "bernoulli", estimator="map", progress=True)
    err = capsys.readouterr().err
    assert "L-BFGS bernoulli/map/normal" in err and "it" in err
    # the estimators pass it through
    LikelihoodClassifier(progress=True).fit(d.X, d.y)
    assert "L-BFGS bernoulli/map/normal" in capsys.readouterr().err


def test_estimators_warn_like_fit_when_an_mle_is_given_a_prior():
    """The prior keywords reach fit, which warns once that an MLE has no prior; unset, they
    are quiet, and a MAP uses them."""
    d = make_synthetic("bernoulli", n=200, d=3, seed=5)
    for model in (LikelihoodRegressor(prior_scale=5.0),
                  LikelihoodClassifier(estimator="mle", prior="laplace")):
        with pytest.warns(bayesloss.PriorWarning, match="given to an MLE fit") as record:
            model.fit(d.X, d.y)
        assert sum(w.category is bayesloss.PriorWarning for w in record) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error", bayesloss.PriorWarning)
        LikelihoodRegressor().fit(d.X, d.y)
        LikelihoodClassifier(estimator="mle").fit(d.X, d.y)
        clf = LikelihoodClassifier(prior="laplace", prior_scale=0.05).fit(d.X, d.y)
    assert clf.fit_.spec.prior == "laplace" and clf.fit_.spec.prior_scale == 0.05


def test_penalize_intercept_without_an_intercept_raises():
    d = make_synthetic("bernoulli", n=200, d=3, seed=5)
    for model in (LikelihoodRegressor(estimator="map", penalize_intercept=True,
                                      fit_intercept=False),
                  LikelihoodClassifier(penalize_intercept=True, fit_intercept=False)):
        with pytest.raises(ValueError, match="penalize_intercept=True needs an intercept"):
            model.fit(d.X, d.y)
