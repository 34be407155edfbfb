"""Bad input fails with a ValueError naming the problem (or warns where the fit still means
something), the same way in fit, reference_fit and compare — never a torch traceback."""

import warnings

import numpy as np
import pytest

import bayesloss
from bayesloss import ConvergenceWarning, IdentifiabilityWarning
from bayesloss.data import make_synthetic

ENTRY_POINTS = {
    "fit": bayesloss.fit,
    "reference_fit": bayesloss.reference_fit,
    "compare": bayesloss.compare,
}


@pytest.fixture(scope="module")
def gauss():
    d = make_synthetic("gaussian", n=60, d=3, seed=1)
    return d.X, d.y


def _with(arr, index, value):
    arr = np.array(arr, dtype=float)
    arr[index] = value
    return arr


BAD_DATA = [
    ("NaN in X", lambda X, y: (_with(X, (0, 0), np.nan), y), "X contains NaN or inf"),
    ("inf in X", lambda X, y: (_with(X, (3, 1), np.inf), y), "X contains NaN or inf"),
    ("NaN in y", lambda X, y: (X, _with(y, 2, np.nan)), "y contains NaN or inf"),
    ("inf in y", lambda X, y: (X, _with(y, 2, -np.inf)), "y contains NaN or inf"),
    ("X 1-d", lambda X, y: (X[:, 0], y), "X must be 2-d"),
    ("X 3-d", lambda X, y: (X[:, :, None], y), "X must be 2-d"),
    ("lengths", lambda X, y: (X, y[:-1]), "X has 60 rows but y has 59"),
    ("empty", lambda X, y: (X[:0], y[:0]), "X is empty"),
    ("y 2-d", lambda X, y: (X, y[:, None]), "y must be 1-d"),
]


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
@pytest.mark.parametrize("case, corrupt, message", BAD_DATA, ids=[b[0] for b in BAD_DATA])
def test_bad_data_raises_named_value_error(gauss, entry, case, corrupt, message):
    X, y = corrupt(*gauss)
    with pytest.raises(ValueError, match=message):
        ENTRY_POINTS[entry](X, y, "gaussian")


BAD_TARGETS = [
    ("bernoulli", lambda y: np.where(y > 0, 1.0, 0.0) + (np.arange(y.size) == 0) * 2,
     "bernoulli targets must be 0 or 1"),
    ("bernoulli", lambda y: np.where(y > 0, 1.0, -1.0), "bernoulli targets must be 0 or 1"),
    ("poisson", lambda y: np.round(np.abs(y)) - (np.arange(y.size) == 0) * 5,
     "non-negative counts"),
    ("poisson", lambda y: np.abs(y) + 0.5, "integer counts"),
    ("categorical", lambda y: (np.abs(y) > 1).astype(int) + 1, "labels 0..K-1"),
    ("categorical", lambda y: np.where(y > 0, 0, 2), "labels 0..K-1"),
    ("categorical", lambda y: np.where(y > 0, 0.5, 1.0), "non-integers"),
    ("categorical", lambda y: np.zeros(y.size, dtype=int), "at least two classes"),
]


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
@pytest.mark.parametrize("likelihood, make_y, message", BAD_TARGETS)
def test_bad_targets_raise(gauss, entry, likelihood, make_y, message):
    X, y = gauss
    with pytest.raises(ValueError, match=message):
        ENTRY_POINTS[entry](X, make_y(y), likelihood)


BAD_KEYWORDS = [
    (dict(likelihood="gausian"), "unknown likelihood 'gausian'; valid names are"),
    (dict(likelihood="gaussian", prior="ridge"), "unknown prior 'ridge'; valid names are"),
    (dict(likelihood="gaussian", estimator="mcmc"), "unknown estimator 'mcmc'; valid names"),
    (dict(likelihood="gaussian", prior_scale=0.0), "prior_scale must be a positive"),
    (dict(likelihood="gaussian", prior_scale=-1.0), "prior_scale must be a positive"),
    (dict(likelihood="gaussian", noise_scale=0.0), "noise_scale must be a positive"),
    (dict(likelihood="gaussian", noise_scale=-2.0), "noise_scale must be a positive"),
    (dict(likelihood="studentt", df=0.0), "df must be a positive"),
    (dict(likelihood="studentt", df=-3.0), "df must be a positive"),
    (dict(likelihood="gaussian", prior="studentt", prior_df=0.0), "prior_df must be a positive"),
    (dict(likelihood="gaussian", prior_scale=float("nan")), "prior_scale must be a positive"),
    (dict(likelihood="gaussian", estimator="map", penalize_intercept=True, fit_intercept=False),
     "penalize_intercept=True needs an intercept"),
]


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
@pytest.mark.parametrize("kwargs, message", BAD_KEYWORDS)
def test_bad_keywords_raise_and_list_valid_names(gauss, entry, kwargs, message):
    X, y = gauss
    kwargs = dict(kwargs)
    likelihood = kwargs.pop("likelihood")
    with pytest.raises(ValueError, match=message):
        ENTRY_POINTS[entry](X, y, likelihood, **kwargs)


def test_valid_names_are_listed(gauss):
    X, y = gauss
    with pytest.raises(ValueError) as err:
        bayesloss.fit(X, y, "gausian")
    for name in bayesloss.FAMILIES:
        assert name in str(err.value)


def test_noise_scale_for_a_family_without_one(gauss):
    X, y = gauss
    with pytest.raises(ValueError, match="has no noise scale"):
        bayesloss.fit(X, (y > 0).astype(float), "bernoulli", noise_scale=1.0)


def test_unknown_optimizer_and_bad_batch_size(gauss):
    X, y = gauss
    with pytest.raises(ValueError, match="unknown optimizer 'sgd'; valid names"):
        bayesloss.fit(X, y, "gaussian", optimizer="sgd")
    with pytest.raises(ValueError, match="batch_size .* needs optimizer='adam'"):
        bayesloss.fit(X, y, "gaussian", batch_size=10)
    with pytest.raises(ValueError, match="batch_size must be in 1..60"):
        bayesloss.fit(X, y, "gaussian", optimizer="adam", batch_size=0)


@pytest.fixture(scope="module")
def separable():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(80, 2))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(float)
    return X, y


def test_separable_logistic_mle_raises_saying_the_mle_does_not_exist(separable):
    X, y = separable
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with pytest.raises(ValueError, match="MLE does not exist.*separable.*estimator='map'"):
            bayesloss.fit(X, y, "bernoulli")


def test_separable_softmax_mle_raises(separable):
    X, y = separable
    labels = y.astype(int) + (X[:, 1] > 1.5) * (y == 1)  # three separable groups
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with pytest.raises(ValueError, match="categorical MLE does not exist"):
            bayesloss.fit(X, labels, "categorical")


def test_separable_data_still_have_a_map(separable):
    X, y = separable
    fit = bayesloss.fit(X, y, "bernoulli", estimator="map", prior_scale=2.0)
    assert fit.converged
    from sklearn.linear_model import LogisticRegression  # the same MAP: C = τ² = 4

    sk = LogisticRegression(C=4.0, solver="newton-cholesky", tol=1e-12).fit(X, y)
    np.testing.assert_allclose(fit.predict_proba(X), sk.predict_proba(X), atol=1e-6)


@pytest.mark.parametrize("kind", ["constant", "duplicate"])
def test_constant_or_duplicated_column_warns_for_mle(gauss, kind):
    X, y = gauss
    extra = np.full(X.shape[0], 3.0) if kind == "constant" else X[:, 1]
    X2 = np.column_stack([X, extra])
    with pytest.warns(IdentifiabilityWarning, match=kind if kind == "constant" else "duplicate"):
        bayesloss.fit(X2, y, "gaussian", noise_scale=1.0)


def test_constant_column_does_not_warn_for_map(gauss):
    X, y = gauss
    X2 = np.column_stack([X, np.full(X.shape[0], 3.0)])
    with warnings.catch_warnings():
        warnings.simplefilter("error", IdentifiabilityWarning)
        fit = bayesloss.fit(X2, y, "gaussian", estimator="map", noise_scale=1.0)
    assert fit.converged


def test_non_convergence_warns_with_our_warning_class(gauss):
    X, y = gauss
    labels = (y > np.median(y)).astype(float)
    with pytest.warns(ConvergenceWarning, match="stopped after 2 iterations"):
        fit = bayesloss.fit(X, labels, "bernoulli", max_iter=2)
    assert not fit.converged and fit.n_iter == 2


@pytest.mark.filterwarnings("ignore:Encountered NaN")  # Pyro's own notice before ours raises
def test_divergence_raises_a_clear_error():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 2)) * 1e3
    y = rng.poisson(3.0, 50).astype(float)
    with pytest.raises(bayesloss.DivergenceError, match="objective became"):
        bayesloss.fit(X, y, "poisson", optimizer="adam", lr=1e6, num_steps=50, check_every=10)


def test_predict_checks_its_input(gauss):
    X, y = gauss
    fit = bayesloss.fit(X, y, "gaussian")
    with pytest.raises(ValueError, match="X has 2 columns; the fit has 3"):
        fit.predict(X[:, :2])
    with pytest.raises(ValueError, match="X contains NaN"):
        fit.predict(_with(X, (0, 0), np.nan))
    with pytest.raises(AttributeError, match="predict_proba is for classifiers"):
        fit.predict_proba(X)


def test_constant_target_with_a_learned_scale_raises(gauss):
    X, _ = gauss
    with pytest.raises(ValueError, match="y is constant: a learned gaussian noise scale"):
        bayesloss.fit(X, np.ones(X.shape[0]), "gaussian")
    fit = bayesloss.fit(X, np.ones(X.shape[0]), "gaussian", noise_scale=1.0)  # fixed σ: fine
    assert fit.converged


def test_fewer_rows_than_coefficients_warns(gauss):
    X, y = gauss
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with pytest.warns(IdentifiabilityWarning, match="3 rows for 4 coefficients"):
            bayesloss.fit(X[:3], y[:3], "gaussian", noise_scale=1.0)


def test_zero_column_without_intercept_warns(gauss):
    X, y = gauss
    with pytest.warns(IdentifiabilityWarning, match="all zero"):
        bayesloss.fit(np.column_stack([X, np.zeros(len(y))]), y, "gaussian",
                      fit_intercept=False, noise_scale=1.0)
