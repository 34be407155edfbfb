"""which-loss by the kind of y: the kind read from the values, the rule that admits a family's
support, the registry-driven table of reasons, and the ranking end to end (tiny NUTS)."""

import dataclasses
import math
import warnings

import numpy as np
import pandas as pd
import pytest

import bayesloss
from bayesloss import studies
from bayesloss.cli import main
from bayesloss.families import FAMILIES, SUPPORTS
from bayesloss.families.support import (ADMITS, MAX_CLASSES, admission, detect_support,
                                        membership)

RNG = np.random.default_rng(5)
NORMAL = 3 * RNG.standard_normal(200)  # reaches beyond ±π: not read as angles
UNIFORM_ANGLES = RNG.uniform(-math.pi, math.pi, 200)
TINY = dict(chains=1, warmup=60, draws=60, progress=False)


# --- the kind of y, read from its values ----------------------------------------------------

KINDS = {
    "normal reals": (NORMAL, "real"),
    "integer-valued with a negative value": ([-2.0, 0.0, 3.0, 5.0], "real"),
    "reals with an exact 0 and values ≥ 1": ([0.0, 0.5, 2.5], "real"),
    "counts": ([0.0, 1.0, 2.0, 5.0, 3.0], "counts"),
    "integer-valued positive amounts": ([3.0, 10.0, 7.0], "counts"),
    "integer dtype counts": (np.array([0, 4, 2], dtype=np.int64), "counts"),
    "0/1 floats": ([0.0, 1.0, 1.0, 0.0], "binary"),
    "booleans": (np.array([True, False, True]), "binary"),
    "all zeros": ([0.0, 0.0, 0.0], "binary"),
    "all ones": ([1, 1, 1], "binary"),
    "proportions": (RNG.beta(2.0, 5.0, 100), "proportion"),
    "proportions with an exact 0": ([0.0, 0.2, 0.5], "real"),
    "proportions with an exact 1": ([0.2, 0.5, 1.0], "positive"),
    "positive reals": (np.exp(RNG.standard_normal(100)), "positive"),
    "angles uniform on the circle": (UNIFORM_ANGLES, "angle"),
    "angles bunched at ±π (wrapping)": (
        np.angle(np.exp(1j * (math.pi + 0.3 * RNG.standard_normal(100)))), "angle"),
    "angles including π": ([math.pi, -2.0, 0.5, 1.5], "angle"),
    "−π is outside (−π, π]": ([-math.pi, -2.0, 0.5, 1.5], "real"),
    "angles bunched at 0 (half the circle)": (0.2 * RNG.standard_normal(100), "real"),
    "reals in (−π, π] spanning over π": ([-2.0, -1.0, 0.5, 1.5], "angle"),
    "reals in (−π, π] spanning under π": ([-1.0, 0.5, 1.5], "real"),
    "one column of a 2-d array": (np.array([[0.5], [2.5], [1.5]]), "positive"),
}


@pytest.mark.parametrize("y, kind", KINDS.values(), ids=KINDS.keys())
def test_detect_support_reads_the_kind_of_y(y, kind):
    assert detect_support(y) == kind


def test_successes_need_trials_and_stay_within_them():
    assert detect_support([0.0, 3.0, 5.0], trials=[5, 5, 6]) == "successes"
    assert detect_support([0, 1, 1], trials=np.ones(3)) == "successes"
    with pytest.raises(ValueError, match="more successes than trials"):
        detect_support([0.0, 6.0], trials=[5, 5])
    with pytest.raises(ValueError, match="non-integer"):
        detect_support([0.5, 1.0], trials=[5, 5])
    with pytest.raises(ValueError, match="negative"):
        detect_support([-1.0, 1.0], trials=[5, 5])
    with pytest.raises(ValueError, match="whole numbers ≥ 1"):
        detect_support([0.0, 1.0], trials=[0, 5])
    with pytest.raises(ValueError, match="whole numbers ≥ 1"):
        detect_support([0.0, 1.0], trials=[2.5, 5])
    with pytest.raises(ValueError, match="trials has 3 rows, y has 2"):
        detect_support([0.0, 1.0], trials=[5, 5, 5])


@pytest.mark.parametrize("y, message", [
    ([], "empty"),
    ([1.0, np.nan], "missing or infinite"),
    ([1.0, np.inf], "missing or infinite"),
    (np.array(["a", "b"]), "not numeric"),
    (np.ones((3, 2)), "one column"),
])
def test_detect_support_refuses_what_is_not_a_y(y, message):
    with pytest.raises(ValueError, match=message):
        detect_support(y)


def test_membership_states_the_fact_that_fails():
    assert membership("real", [-5.0, 3.2]) is None
    assert "exact 0 or 1" in membership("proportion", [0.0, 0.5])
    assert "values ≤ 0" in membership("positive", [0.0, 0.5])
    assert "outside (−π, π]" in membership("angle", [-math.pi, 0.0])
    assert membership("angle", [math.pi, 0.0]) is None
    assert membership("classes", [0, 1, 2, 1]) is None
    assert "[1] of 0..2 never occur" in membership("classes", [0, 2, 2])
    assert "read as counts" in membership("classes", np.arange(MAX_CLASSES + 1))
    assert membership("classes", np.arange(MAX_CLASSES)) is None
    assert "trials" in membership("successes", [0.0, 1.0])
    with pytest.raises(ValueError, match="unknown kind"):
        membership("ordinal", [0.0])


# --- the rule: which supports a kind admits --------------------------------------------------

#: kind → (a y of that kind, trials, the supports proposed for it) — the rule, stated here
#: independently of ADMITS
RULE = {
    "real": (NORMAL, None, {"real"}),
    "positive": ([0.5, 2.5, 1.5], None, {"positive", "real"}),
    "proportion": ([0.2, 0.5, 0.7], None, {"proportion", "positive", "real"}),
    "angle": (UNIFORM_ANGLES, None, {"angle", "real"}),
    "counts": ([0, 1, 2, 3, 1], None, {"counts", "classes"}),
    "binary": ([0, 1, 1, 0], None, {"binary", "counts"}),
    "classes": ([0, 1, 2, 2], None, {"classes"}),
    "successes": ([0, 2, 5, 1], [5, 5, 6, 1], {"successes", "counts"}),
}


def test_the_rule_covers_every_kind():
    assert set(RULE) == set(SUPPORTS) == set(ADMITS)


@pytest.mark.parametrize("kind", RULE)
def test_admission_proposes_the_kind_and_the_wider_supports_measured_alike(kind):
    y, trials, expected = RULE[kind]
    proposed = {s for s in SUPPORTS if admission(kind, s, y, trials)[0]}
    assert proposed == expected
    reasons = {s: admission(kind, s, y, trials)[1] for s in SUPPORTS}
    assert reasons[kind] == "the kind of y"
    continuous = {"real", "positive", "proportion", "angle"}
    for support in set(SUPPORTS) - expected:  # every refusal says why, in its own words
        assert reasons[support] and reasons[support] != "the kind of y"
        if (support in continuous) != (kind in continuous) and membership(support, y,
                                                                         trials) is None:
            assert "not comparable by LOO" in reasons[support]


def test_admission_reasons_for_the_edge_cases():
    # counts with too many values are not classes; two classes of a 0/1 y are bernoulli
    assert not admission("counts", "classes", np.arange(20), None)[0]
    assert "redundant logit" in admission("binary", "classes", [0, 1], None)[1]
    # a proportion with an exact 1 is positive, and the beta's support refuses it
    ok, why = admission("positive", "proportion", [0.2, 1.0], None)
    assert not ok and "exact 0 or 1" in why
    # positive y in (−π, π] is not read as angles unless the kind is named
    assert "name the kind 'angle'" in admission("positive", "angle", [0.5, 1.0], None)[1]
    assert "trials" in admission("binary", "successes", [0, 1], None)[1]


# --- the table: every registered family, proposed or not, and why ---------------------------


def test_candidates_sort_every_registered_family_by_its_support():
    table = studies._candidates("positive", [0.5, 2.5, 1.5], None, None)
    assert set(table.index) == set(FAMILIES)
    assert table.loc[["gaussian", "laplace", "studentt"], "proposed"].all()
    assert not table.loc[["poisson", "bernoulli", "categorical"], "proposed"].any()
    # a noise scale that is a function of x is fitted, not sampled
    assert not table.loc["hetero_gaussian", "proposed"]
    assert "not sampled" in table.loc["hetero_gaussian", "reason"]
    assert table["proposed"].iloc[:3].all()  # the proposed ones first


def test_a_family_added_to_the_registry_is_proposed_where_its_support_fits(monkeypatch):
    monkeypatch.setitem(FAMILIES, "positive_family",
                        dataclasses.replace(FAMILIES["gaussian"], name="positive_family",
                                            support="positive"))
    positive = studies._candidates("positive", [0.5, 2.5], None, None)
    real = studies._candidates("real", [-0.5, 2.5], None, None)
    assert positive.loc["positive_family", "proposed"]
    assert positive.loc["positive_family", "reason"] == "the kind of y"
    assert not real.loc["positive_family", "proposed"]
    assert "values ≤ 0" in real.loc["positive_family", "reason"]


def test_named_likelihoods_override_and_the_table_says_what_the_kind_would_do():
    table = studies._candidates("counts", [0, 3, 12], None, ["poisson", "gaussian"])
    assert table.index[table["proposed"]].tolist() == ["gaussian", "poisson"]
    assert table.loc["poisson", "reason"] == "named"
    assert table.loc["gaussian", "reason"].startswith("named (by kind: y is discrete")
    assert table.loc["laplace", "reason"].startswith("not named")


def test_trials_go_to_the_families_of_successes_only(monkeypatch):
    monkeypatch.setitem(FAMILIES, "successes_family",
                        dataclasses.replace(FAMILIES["poisson"], name="successes_family",
                                            support="successes"))
    calls = {}
    monkeypatch.setattr(studies, "posterior",
                        lambda X, y, name, **kw: calls.setdefault(name, kw))
    trials = np.array([5, 5, 6])
    studies._posteriors(None, None, ["poisson", "successes_family"], trials, seed=1)
    assert "trials" not in calls["poisson"] and calls["poisson"]["seed"] == 1
    assert calls["successes_family"]["trials"] is trials


def test_which_loss_refuses_before_sampling(monkeypatch):
    X = np.zeros((3, 1))
    with pytest.raises(ValueError, match="y is not positive reals: 1 values ≤ 0"):
        bayesloss.which_loss(X, [0.0, 1.5, 2.5], kind="positive")
    with pytest.raises(ValueError, match="unknown kind"):
        bayesloss.which_loss(X, [0.0, 1.5, 2.5], kind="ordinal")
    with pytest.raises(ValueError, match="trials go with successes"):
        bayesloss.which_loss(X, [0.0, 1.0, 2.0], trials=[3, 3, 3], kind="counts")
    with pytest.raises(ValueError, match="not comparable|mean nothing"):
        bayesloss.which_loss(X, [0.0, 1.0, 2.0], likelihoods=["poisson", "gaussian"])
    monkeypatch.setattr(bayesloss.families, "FAMILIES", {"gaussian": FAMILIES["gaussian"]})
    with pytest.raises(ValueError, match="no registered family describes counts"):
        bayesloss.which_loss(X, [0.0, 1.0, 2.0])


# --- end to end ------------------------------------------------------------------------------


def test_which_loss_on_0_1_labels_ranks_bernoulli_above_a_count_family():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((80, 1))
    y = (rng.random(80) < 1 / (1 + np.exp(-1.5 * X[:, 0]))).astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bayesloss.SamplerWarning)  # 60 draws: mechanics only
        warnings.simplefilter("ignore", bayesloss.LOOWarning)
        out = bayesloss.which_loss(X, y, **TINY)
    assert out.kind == "binary" and out.proposed == ["bernoulli", "poisson"]
    # every distribution on {0, 1} is a Bernoulli: the Poisson wastes mass on 2, 3, …
    assert out.best == "bernoulli" and out.comparison.beaten_beyond_se("poisson", 2.0)
    assert set(out.comparison.table.index) == {"bernoulli", "poisson"}


# --- command line -----------------------------------------------------------------------------


@pytest.fixture
def trials_csv(tmp_path):
    rng = np.random.default_rng(8)
    n = 60
    frame = pd.DataFrame({"x": rng.standard_normal(n), "n": rng.integers(1, 9, n),
                          "colour": rng.choice(["red", "green", "blue"], n)})
    frame["k"] = rng.binomial(frame["n"], 1 / (1 + np.exp(-frame["x"])))
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    return path


def test_cli_which_loss_reads_successes_with_a_trials_column(trials_csv, capsys):
    rc = main(["which-loss", "--data", str(trials_csv), "--target", "k", "--trials", "n",
               "--features", "x", "--chains", "1", "--warmup", "60", "--draws", "60",
               "--quiet"])
    out = capsys.readouterr().out
    assert rc in (0, 1)  # 1: the sampler's health at 60 draws, reported honestly
    assert "y: successes (successes out of nᵢ trials), read from its values" in out
    assert "d = 1" in out  # the trials column is not a feature
    candidates = out.split("\n\n")[0].splitlines()[2:]  # after the data line and the header
    rows = {line.split()[0]: line for line in candidates}
    assert set(rows) == set(FAMILIES)
    assert " yes " in rows["poisson"] and "not comparable by LOO" in rows["gaussian"]
    assert " yes " in rows["binomial"]
    assert "best: binomial" in out  # the data are binomial draws out of the column n


def test_cli_which_loss_text_labels_are_classes(trials_csv, capsys, monkeypatch):
    seen = {}

    def capture(X, y, **kw):
        seen.update(X=X, y=y, **kw)
        raise ValueError("captured")

    monkeypatch.setattr(studies, "which_loss", capture)
    assert main(["which-loss", "--data", str(trials_csv), "--target", "colour",
                 "--features", "x,n"]) == 2
    assert "encoded as: 0 = blue, 1 = green, 2 = red" in capsys.readouterr().out
    assert seen["kind"] == "classes" and seen["trials"] is None
    assert list(seen["X"].columns) == ["x", "n"] and set(seen["y"]) == {0, 1, 2}


@pytest.mark.parametrize("argv, message", [
    (["--trials", "n"], "--trials names a column of a data file"),
    (["--target", "k", "--trials", "m", "--features", "x"], "--trials 'm': not a column"),
    (["--target", "k", "--trials", "n", "--features", "x,n"], "also listed in --features"),
    (["--target", "x", "--features", "n", "--kind", "positive"], "y is not positive reals"),
])
def test_cli_which_loss_bad_trials_or_kind_exit_2(trials_csv, capsys, argv, message):
    data = str(trials_csv) if "--target" in argv else "diabetes"
    assert main(["which-loss", "--data", data] + argv) == 2
    assert message in capsys.readouterr().err


def test_densities_and_probabilities_are_told_apart_by_the_support(monkeypatch):
    # Family.continuous says whether the fit standardises y (angles are not): not the measure
    monkeypatch.setitem(FAMILIES, "unscaled_real",
                        dataclasses.replace(FAMILIES["gaussian"], name="unscaled_real",
                                            continuous=False))
    studies._same_measure(["gaussian", "unscaled_real"])  # two densities: no error
    with pytest.raises(ValueError, match="mean nothing"):
        studies._same_measure(["unscaled_real", "poisson"])


def test_a_mixture_is_not_proposed_and_reasons_state_only_what_holds():
    # a mixture's posterior has label-permuted modes (NUTS refuses it): not proposed, with why
    y = np.random.default_rng(0).normal(size=50)
    table = studies._candidates("real", y, None, None)
    assert not table.loc["gaussian_mixture", "proposed"]
    assert "label-permuted" in table.loc["gaussian_mixture", "reason"]
    # the proportion check names exact 0s and 1s only where there are some
    from bayesloss.families.support import membership

    assert "exact 0 or 1" not in membership("proportion", np.array([0.2, 3.0, 18.9]))
    assert "exact 0 or 1" in membership("proportion", np.array([0.0, 0.5, 0.7]))
