"""One name per parameter: a DataFrame's column names (``x0, x1, …`` without columns),
``intercept`` and ``scale`` — in fit summaries, ``params()``, ``compare`` tables, posterior
summaries, InferenceData coordinates, the forest figure and the shrinkage table. Values are
matched by name against scikit-learn fitted inside the test, so a label on the wrong number
fails."""

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

import bayesloss
from bayesloss.data import make_synthetic
from bayesloss.posterior import MIN_DRAWS, shrinkage_path
from bayesloss.labels import parameter_label


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(4)
    X = pd.DataFrame({"temp_c": rng.normal(20, 5, 80), "humidity": rng.normal(0.5, 0.2, 80)})
    y = 0.3 * X["temp_c"] - 2.0 * X["humidity"] + 1.0 + rng.normal(0, 1, 80)
    return X, y.to_numpy()


@pytest.mark.parametrize("columns", [True, False], ids=["dataframe", "array"])
def test_every_surface_names_a_parameter_the_same(frame, columns):
    import matplotlib

    matplotlib.use("Agg")
    from bayesloss.plots.posterior import plot_forest

    X, y = frame
    if not columns:
        X = X.to_numpy()
    features = ["temp_c", "humidity"] if columns else ["x0", "x1"]
    coefs = features + ["intercept"]

    fit = bayesloss.fit(X, y, "gaussian")
    params = fit.params().set_index("parameter")["value"]
    assert list(params.index) == coefs + ["scale"]
    ols = LinearRegression().fit(np.asarray(X), y)
    np.testing.assert_allclose(params[coefs], np.r_[ols.coef_, ols.intercept_], rtol=1e-8)
    for name in coefs + ["scale"]:
        assert any(line.split()[:1] == [name] for line in fit.summary().splitlines()), name

    table = bayesloss.compare(X, y, "gaussian")
    assert list(table["parameter"]) == coefs + ["scale", "objective"]

    post = bayesloss.posterior(X, y, "gaussian", method="laplace", chains=2, draws=MIN_DRAWS)
    assert list(post.idata.posterior["weight"].coords["feature"].values) == features
    assert post.names == coefs
    summary = post.summary().set_index("parameter")
    assert list(summary.index) == coefs + ["scale"]
    # each row's mle is the OLS number of that name
    np.testing.assert_allclose(summary.loc[coefs, "mle"], np.r_[ols.coef_, ols.intercept_],
                               rtol=1e-8)
    ax = plot_forest(post)
    assert [t.get_text() for t in ax.get_yticklabels()] == coefs

    path = shrinkage_path(X, y, "gaussian", [0.5, 5.0], noise_scale=1.0)
    assert list(path["parameter"].unique()) == coefs


def test_class_weights_are_named_by_feature_and_class_in_fit_and_posterior():
    data = make_synthetic("categorical", n=150, d=2, seed=1)
    X = pd.DataFrame(data.X, columns=["a", "b"])
    k = int(data.y.max()) + 1
    expected = [f"{f}[{c}]" for f in "ab" for c in range(k)] + [f"intercept[{c}]"
                                                                for c in range(k)]
    fit = bayesloss.fit(X, data.y, "categorical", estimator="map")
    assert list(fit.params()["parameter"]) == expected
    post = bayesloss.posterior(X, data.y, "categorical", method="laplace", chains=2,
                               draws=MIN_DRAWS)
    summary = post.summary().set_index("parameter")
    # then the contrasts to class 0, named from the same labels
    contrasts = [f"{f}[{c}] − {f}[0]" for f in ("a", "b", "intercept") for c in range(1, k)]
    assert list(summary.index) == expected + contrasts
    # the labels sit on the right draws: each row's mean is the mean of that element
    weights, bias = post.draws("weight"), post.draws("bias")
    for j, f in enumerate("ab"):
        for c in range(k):
            assert summary.loc[f"{f}[{c}]", "mean"] == pytest.approx(weights[:, j, c].mean(),
                                                                    rel=1e-12)
    for c in range(k):
        assert summary.loc[f"intercept[{c}]", "mean"] == pytest.approx(bias[:, c].mean(),
                                                                      rel=1e-12)
    np.testing.assert_allclose(summary.loc[expected, "map_constrained"],
                               fit.params()["value"], rtol=1e-6, atol=1e-8)


def test_a_familys_extra_parameter_is_named_by_the_family_everywhere():
    """negative_binomial's α is ``alpha`` in params(), the summary, compare, the posterior
    summary and its figures (the idata site stays ``scale``); the row named ``alpha`` holds
    statsmodels' NB2 α, fitted here."""
    import matplotlib
    import statsmodels.api as sm

    matplotlib.use("Agg")
    from bayesloss.plots.posterior import plot_posterior

    rng = np.random.default_rng(5)
    X = pd.DataFrame({"dose": rng.normal(0, 1, 300), "age": rng.normal(0, 1, 300)})
    mu = np.exp(1.0 + X.to_numpy() @ [0.4, -0.3])
    y = rng.negative_binomial(2.0, 2.0 / (2.0 + mu)).astype(float)
    names = ["dose", "age", "intercept", "alpha"]

    fit = bayesloss.fit(X, y, "negative_binomial")
    params = fit.params().set_index("parameter")["value"]
    assert list(params.index) == names
    nb = sm.NegativeBinomial(y, sm.add_constant(X.to_numpy()), loglike_method="nb2").fit(
        method="newton", tol=1e-14, maxiter=200, disp=False)
    assert params["alpha"] == pytest.approx(nb.params[-1], rel=1e-6)
    assert any(line.split()[:1] == ["alpha"] for line in fit.summary().splitlines())
    assert list(bayesloss.compare(X, y, "negative_binomial")["parameter"]) == names + [
        "objective"]

    post = bayesloss.posterior(X, y, "negative_binomial", method="laplace", chains=2,
                               draws=MIN_DRAWS)
    assert "scale" in post.idata.posterior  # the site keeps its name; only labels change
    assert list(post.summary()["parameter"]) == names
    assert [ax.get_title() for ax in plot_posterior(post)] == names
    assert parameter_label("scale", (), None, "kappa") == "kappa"
    table = bayesloss.approximations(X, y, "negative_binomial", methods=["map", "laplace"],
                                     chains=1, warmup=50, draws=MIN_DRAWS)
    assert set(table["parameter"]) == set(names)


def test_hetero_scale_head_and_network_names():
    data = make_synthetic("hetero_gaussian", n=120, d=2, seed=0)
    fit = bayesloss.fit(pd.DataFrame(data.X, columns=["u", "v"]), data.y, "hetero_gaussian")
    assert list(fit.params()["parameter"]) == ["u", "v", "intercept", "log σ: u", "log σ: v",
                                               "log σ: intercept"]
    assert parameter_label("layers.0.weight", (3, 1)) == "layers.0.weight[3,1]"
    assert parameter_label("bias", (2,)) == "intercept[2]"
    assert parameter_label("scale") == "scale"


def test_posterior_feature_names_must_match_the_columns(frame):
    X, y = frame
    with pytest.raises(ValueError, match="3 feature names for 2 columns"):
        bayesloss.posterior(X, y, "gaussian", method="laplace", chains=2, draws=MIN_DRAWS,
                            feature_names=["a", "b", "c"])


def test_sweep_rows_name_their_estimates_and_older_stores_gain_the_column(tmp_path):
    import json
    import sqlite3

    from bayesloss.data import load_dataset
    from bayesloss.experiments import RunStore, run_sweep, validate_config

    config = validate_config({"sweep": {"name": "named", "seeds": [0]},
                              "data": {"dataset": "diabetes"},
                              "model": {"likelihood": "gaussian", "estimator": "mle"}})
    table = run_sweep(config, tmp_path, progress=False)
    row = table.iloc[0]
    params = json.loads(row["params"])
    names = [str(c) for c in load_dataset("diabetes").feature_names]
    assert list(params) == names + ["intercept", "scale"]
    np.testing.assert_array_equal([params[n] for n in names], json.loads(row["coef"]))
    assert params["intercept"] == json.loads(row["intercept"]) and params["scale"] == row["scale"]
    # a store from before the column existed: reopening adds it, old rows keep theirs empty
    with sqlite3.connect(tmp_path / "runs.sqlite") as conn:
        conn.execute("ALTER TABLE runs DROP COLUMN params")
    conn.close()
    with RunStore(tmp_path, config) as store:
        assert "params" in store.table().columns
