"""Formulas (issue 16 item 9) and softmax contrasts (item 8).

Every formula fit is checked against statsmodels' formula fit of the same model, computed
here: the same names (statsmodels' ``Intercept`` is our intercept) and the same estimates to
≤ 1e-8. The references run Newton / IRLS to a 1e-14 tolerance, and our L-BFGS stops at a
gradient ∞-norm of 1e-9 on unit-curvature coordinates, so 1e-8 leaves a margin. statsmodels'
``QuantReg`` is an IRLS that stops near, not at, the LAD vertex (1e-4 here), so the Laplace
fit's values are checked against the exact LP (HiGHS through scipy.linprog) and its objective
against QuantReg's.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf

import bayesloss
from bayesloss.cli import main

NEWTON = dict(method="newton", tol=1e-14, maxiter=100, disp=0)
TOL = 1e-8


@pytest.fixture(scope="module")
def frame():
    """80 rows: a numeric predictor on a scale of its own (age), a 3-level factor, a second
    numeric one, and a target of each kind."""
    rng = np.random.default_rng(7)
    n = 80
    df = pd.DataFrame({"age": rng.normal(40, 10, n), "group": rng.choice(list("abc"), n),
                       "w": rng.normal(size=n)})
    df["z"] = (df["age"] - 40) / 10
    eta = (0.3 + 0.5 * df["z"] + 0.4 * (df["group"] == "b") - 0.3 * (df["group"] == "c")
           + 0.2 * df["w"])
    df["y"] = eta + 0.5 * rng.laplace(size=n)
    df["yb"] = (rng.uniform(size=n) < 1 / (1 + np.exp(-eta))).astype(int)
    df["yc"] = rng.poisson(np.exp(eta))
    logits = np.column_stack([np.zeros(n), 0.8 * df["w"] + 0.5 * (df["group"] == "b"),
                              -0.6 * df["w"] + 0.3])
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    df["k"] = [rng.choice(3, p=row) for row in p]
    df["label"] = np.array(["low", "mid", "top"])[df["k"]]
    return df


def ours(fit) -> pd.Series:
    """A one-output fit's estimate named as statsmodels names it."""
    out = pd.Series(fit.coef_, index=list(fit.feature_names))
    if fit.spec.fit_intercept:
        out["Intercept"] = fit.intercept_
    return out


def assert_same(fit, params: pd.Series, tol=TOL):
    mine = ours(fit)
    assert sorted(mine.index) == sorted(params.index)
    np.testing.assert_allclose(mine[params.index], params, rtol=tol, atol=tol)


@pytest.mark.parametrize("formula", ["y ~ age + C(group)", "y ~ age * C(group) + w",
                                     "y ~ 0 + age + C(group)", "y ~ I(z ** 2) + z:w + group"])
def test_gaussian_formula_equals_ols(frame, formula):
    fit = bayesloss.fit(formula, data=frame, likelihood="gaussian")
    ref = smf.ols(formula, frame).fit()
    assert fit.converged
    assert fit.spec.fit_intercept == ("Intercept" in ref.params.index)
    assert_same(fit, ref.params)
    # new rows go through the same formula (levels, interactions, transforms)
    new = frame.iloc[:7].drop(columns=["y"])
    np.testing.assert_allclose(fit.predict(new), ref.predict(new), rtol=TOL, atol=TOL)


def test_bernoulli_formula_equals_logit(frame):
    formula = "yb ~ age + C(group) + age:w"
    fit = bayesloss.fit(formula, data=frame, likelihood="bernoulli")
    ref = smf.logit(formula, frame).fit(**NEWTON)
    assert fit.converged
    assert_same(fit, ref.params)
    se = pd.Series(fit.standard_errors(), index=list(fit.feature_names) + ["Intercept"])
    np.testing.assert_allclose(se[ref.bse.index], ref.bse, rtol=TOL)
    np.testing.assert_allclose(fit.predict_proba(frame)[:, 1], ref.predict(frame), rtol=TOL)


def test_poisson_formula_equals_glm(frame):
    formula = "yc ~ z + C(group, Treatment('b')) + np.log(age)"
    fit = bayesloss.fit(formula, frame, "poisson")  # statsmodels' argument order works too
    ref = smf.glm(formula, frame, family=sm.families.Poisson()).fit(tol=1e-14, maxiter=100)
    assert fit.converged
    # formulaic writes the quotes of a call as Python's repr does
    assert_same(fit, ref.params.rename(lambda c: c.replace('"', "'")))


def test_laplace_formula_is_the_median_regression(frame):
    from scipy.optimize import linprog

    formula = "y ~ z + C(group) + z:w"
    fit = bayesloss.fit(formula, data=frame, likelihood="laplace")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # QuantReg's IRLS iteration-limit warning
        ref = smf.quantreg(formula, frame).fit(q=0.5, max_iter=5000, p_tol=1e-12)
    assert fit.converged
    assert sorted(ours(fit).index) == sorted(ref.params.index)
    sae = float(np.abs(frame["y"] - fit.predict(frame)).sum())
    assert sae <= float(np.abs(ref.resid).sum()) * (1 + 1e-12)
    # the LAD LP on statsmodels' own design: min Σ(u + v) s.t. Zβ + u − v = y
    Z, y = np.asarray(ref.model.exog), frame["y"].to_numpy()
    n, p = Z.shape
    lp = linprog(np.r_[np.zeros(p), np.ones(2 * n)], A_eq=np.hstack([Z, np.eye(n), -np.eye(n)]),
                 b_eq=y, bounds=[(None, None)] * p + [(0, None)] * (2 * n), method="highs")
    # LAD optima need not be unique (a flat face: here the C(group)[T.c] coefficient can
    # move), so ours is judged on the LP's objective, not on HiGHS's vertex
    assert sae == pytest.approx(lp.fun, rel=1e-9)


def test_categorical_formula_contrasts_equal_mnlogit(frame):
    formula = "k ~ w + C(group)"
    fit = bayesloss.fit(formula, data=frame, likelihood="categorical")
    ref = smf.mnlogit(formula, frame).fit(**NEWTON)
    assert fit.converged
    table = fit.contrasts()
    names = [n if n != "intercept" else "Intercept" for n in table["parameter"]]
    assert sorted(set(names)) == sorted(ref.params.index)
    # MNLogit's column c is class c + 1 against class 0
    theirs = [ref.params.loc[n].iloc[c - 1] for n, c in zip(names, table["class"])]
    theirs_se = [ref.bse.loc[n].iloc[c - 1] for n, c in zip(names, table["class"])]
    np.testing.assert_allclose(table["value"], theirs, rtol=TOL, atol=TOL)
    np.testing.assert_allclose(table["se"], theirs_se, rtol=TOL)
    text = fit.summary()
    assert "identified only relative to one another" in text and "fit.contrasts()" in text
    np.testing.assert_allclose(fit.predict_proba(frame), ref.predict(frame), rtol=TOL)


def test_string_labels_become_classes_in_sorted_order(frame):
    fit = bayesloss.fit("label ~ w + C(group)", data=frame, likelihood="categorical")
    codes = bayesloss.fit("k ~ w + C(group)", data=frame, likelihood="categorical")
    assert fit.formula.classes == ("low", "mid", "top")
    np.testing.assert_array_equal(fit.coef_, codes.coef_)


def test_weak_prior_widens_class_weights_not_contrasts(frame):
    """The issue's finding: under a weak prior only the prior pins the common shift, so each
    class's weight has a large SE while the contrasts keep the data's; a posterior shows the
    same in its sd."""
    fit = bayesloss.fit("k ~ w + C(group)", data=frame, likelihood="categorical",
                        estimator="map", prior_scale=20.0)
    table = fit.params().assign(se=fit.standard_errors())
    weights = table[~table["parameter"].str.startswith("intercept")]
    assert weights["se"].min() > 5 * fit.contrasts()["se"].max()
    post = bayesloss.posterior("k ~ w + C(group)", data=frame, likelihood="categorical",
                               prior_scale=20.0, method="laplace", chains=2, draws=1000)
    summary = post.summary()
    contrasts = summary[summary["parameter"].str.contains("−")]
    single = summary[~summary["parameter"].str.contains("−")
                     & ~summary["parameter"].str.startswith(("intercept", "scale"))]
    assert len(contrasts) == 2 * 4 and "identified" in summary.attrs["note"]
    assert single["sd"].min() > 5 * contrasts["sd"].max()
    # the contrasts of the MAP beside them are the point fit's
    np.testing.assert_allclose(contrasts["map_constrained"], fit.contrasts()["value"],
                               rtol=1e-7, atol=1e-7)


def test_flat_posterior_contrasts_center_on_mnlogit(frame):
    formula = "k ~ w + C(group)"
    post = bayesloss.posterior(formula, data=frame, likelihood="categorical", prior=None,
                               method="laplace", chains=2, draws=2000, seed=1)
    ref = smf.mnlogit(formula, frame).fit(**NEWTON)
    table = post.contrasts()
    names = [n if n != "intercept" else "Intercept" for n in table["parameter"]]
    theirs = [ref.params.loc[n].iloc[c - 1] for n, c in zip(names, table["class"])]
    theirs_se = np.array([ref.bse.loc[n].iloc[c - 1] for n, c in zip(names, table["class"])])
    np.testing.assert_allclose(table["laplace_mode_unconstrained"], theirs, rtol=TOL, atol=TOL)
    # 4000 independent draws: a sample sd is within ~1.1 % (one s.e.) of the true one
    np.testing.assert_allclose(table["sd"], theirs_se, rtol=0.06)
    assert list(post.idata.posterior["weight"].coords["feature"].values) == \
        ["w", "C(group)[T.b]", "C(group)[T.c]"]


def test_posterior_formula_names_and_mode_equal_ols(frame):
    formula = "y ~ age + C(group)"
    post = bayesloss.posterior(formula, data=frame, likelihood="gaussian", prior=None,
                               method="laplace", chains=1, draws=100)
    ref = smf.ols(formula, frame).fit()
    assert post.feature_names == ("age", "C(group)[T.b]", "C(group)[T.c]")
    # mean_ of the Laplace method is the mode, [coef…, intercept]: the OLS estimate
    mode = pd.Series(post.mean_, index=list(post.feature_names) + ["Intercept"])
    np.testing.assert_allclose(mode[ref.params.index], ref.params, rtol=TOL, atol=TOL)


def test_missing_column_names_it_and_the_frame_columns(frame):
    with pytest.raises(ValueError, match=r"\['agee'\].*columns are \['age', 'group'"):
        bayesloss.fit("y ~ agee + C(group)", data=frame, likelihood="gaussian")
    fit = bayesloss.fit("y ~ age + C(group)", data=frame, likelihood="gaussian")
    with pytest.raises(ValueError, match=r"\['group'\].*columns are \['age'\]"):
        fit.predict(frame[["age"]])


def test_predict_refuses_unseen_levels_and_missing_values(frame):
    fit = bayesloss.fit("y ~ age + C(group)", data=frame, likelihood="gaussian")
    with pytest.raises(ValueError, match="levels it was trained on"):
        fit.predict(pd.DataFrame({"age": [40.0], "group": ["d"]}))
    with pytest.raises(ValueError, match="null"):
        fit.predict(pd.DataFrame({"age": [np.nan, 1.0], "group": ["a", "b"]}))


def test_rows_with_missing_values_are_dropped_as_statsmodels_does(frame):
    holes = frame.copy()
    holes.loc[[3, 11], "age"] = np.nan
    with pytest.warns(UserWarning, match="2 of 80 rows dropped"):
        fit = bayesloss.fit("y ~ age + C(group)", data=holes, likelihood="gaussian")
    assert fit.n_samples == 78
    assert_same(fit, smf.ols("y ~ age + C(group)", holes).fit().params)


@pytest.mark.parametrize("call, message", [
    (lambda df: bayesloss.fit("y ~ age", likelihood="gaussian"), "needs data="),
    (lambda df: bayesloss.fit("y ~ age", df["y"], "gaussian", data=df), "no y beside it"),
    (lambda df: bayesloss.fit(df[["age"]], data=df, likelihood="gaussian"), "data= goes with"),
    (lambda df: bayesloss.fit(df[["age"]].to_numpy(), likelihood="gaussian"), "needs X, y"),
])
def test_misused_arguments_are_type_errors(frame, call, message):
    with pytest.raises(TypeError, match=message):
        call(frame)


@pytest.mark.parametrize("formula, message", [
    ("~ age", "has no target"), ("y ~ age +", "cannot parse"), ("y ~ 1", "no terms besides"),
    ("group ~ age", "a gaussian target is one numeric column"),
])
def test_formulas_that_cannot_be_fitted_say_why(frame, formula, message):
    with pytest.raises(ValueError, match=message):
        bayesloss.fit(formula, data=frame, likelihood="gaussian")


def test_formula_intercept_and_fit_intercept_disagree(frame):
    with pytest.raises(ValueError, match="'0 \\+'"):
        bayesloss.fit("y ~ age", data=frame, likelihood="gaussian", fit_intercept=False)


def test_cli_fit_with_formula(frame, tmp_path, capsys):
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    code = main(["fit", "gaussian", "--data", str(path), "--formula", "y ~ age + C(group)"])
    out = capsys.readouterr().out
    assert code == 0
    ref = smf.ols("y ~ age + C(group)", frame).fit().params
    for name in ("age", "C(group)[T.b]", "C(group)[T.c]"):
        line = next(l for l in out.splitlines() if l.split() and l.split()[0] == name)
        assert float(line.split()[1]) == pytest.approx(ref[name], rel=1e-9)
    assert main(["fit", "gaussian", "--data", str(path), "--formula", "y ~ nope"]) == 2
    assert "'nope'" in capsys.readouterr().err


def test_cli_posterior_with_formula(frame, tmp_path, capsys):
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    code = main(["posterior", "categorical", "--data", str(path), "--formula",
                 "label ~ 0 + w + C(group)", "--method", "laplace", "--chains", "1",
                 "--draws", "100", "--quiet"])
    out = capsys.readouterr().out
    assert code == 0
    assert "target encoded as: 0 = low, 1 = mid, 2 = top" in out
    assert "C(group)[a][2] − C(group)[a][0]" in out
    assert "intercept" not in out  # '0 +': no intercept
    assert main(["posterior", "gaussian", "--data", str(path), "--formula", "y ~ w",
                 "--target", "y"]) == 2
    assert "no --target" in capsys.readouterr().err
