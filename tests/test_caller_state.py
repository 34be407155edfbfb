"""The caller's state is theirs (issue 17): every public entry point leaves the global random
streams, a param in Pyro's store, torch's and BLAS's thread counts as it found them, and the
same ``seed=`` still gives the same numbers.

Each check primes the caller's state, replays the draws the caller would take next without
our call, primes again, calls us, and takes the same draws: they must be identical.
"""

import random
import warnings

import numpy as np
import pyro
import pytest
import torch
from threadpoolctl import threadpool_info

import bayesloss
from bayesloss.check import Case, run_check
from bayesloss.data import make_synthetic
from bayesloss.experiments import run_sweep, validate_config
from bayesloss.sklearn import LikelihoodClassifier, LikelihoodRegressor

CALLER_THREADS = 3  # neither the machine's default nor the one thread small calls run with
USER_PARAM = "AutoDelta.weight"  # our guide's own name: the fit must neither see nor clear it


def _blas_threads():
    return sorted(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")


def _prime():
    random.seed(11)
    np.random.seed(12)
    torch.manual_seed(13)
    pyro.clear_param_store()
    pyro.param(USER_PARAM, torch.tensor([[7.0, -7.0]]))


def _next_draws():
    return random.random(), np.random.standard_normal(4), torch.randn(4), np.random.rand()


def _tiny(likelihood="gaussian", n=40, d=2, seed=5):
    data = make_synthetic(likelihood, n, d, seed=seed)
    return data.X, data.y


def _sweep(tmp_path):
    config = validate_config({
        "sweep": {"name": "state", "seeds": [0]},
        "data": {"n": [30], "d": 2, "test_n": 20},
        "model": {"likelihood": "gaussian", "estimator": ["mle", "map"], "prior_scale": 1.0},
    })
    return run_sweep(config, tmp_path / "sweep", progress=False, export=())


X, Y = _tiny()
XB, YB = _tiny("bernoulli")
NUTS = dict(chains=1, warmup=50, draws=50)

ENTRY_POINTS = {
    "fit": lambda tmp: bayesloss.fit(X, Y, "gaussian", seed=3),
    "fit-laplace": lambda tmp: bayesloss.fit(X, Y, "laplace", seed=3),
    "fit-map-cauchy": lambda tmp: bayesloss.fit(X, Y, "gaussian", estimator="map",
                                                prior="cauchy", noise_scale=1.0, seed=3),
    "fit-adam": lambda tmp: bayesloss.fit(X, Y, "gaussian", optimizer="adam", batch_size=10,
                                          num_steps=50, seed=3),
    "fit-mlp": lambda tmp: bayesloss.fit(X, Y, "gaussian", mean="mlp", hidden=(3,),
                                         max_iter=30, seed=3),
    "fit-hetero": lambda tmp: bayesloss.fit(X, Y, "hetero_gaussian", seed=3),
    "fit-multioutput": lambda tmp: bayesloss.fit(X, np.c_[Y, Y + 1], ["gaussian", "laplace"],
                                                 seed=3),
    "reference_fit": lambda tmp: bayesloss.reference_fit(XB, YB, "bernoulli"),
    "compare": lambda tmp: bayesloss.compare(XB, YB, "bernoulli", seed=3),
    "posterior-nuts": lambda tmp: bayesloss.posterior(X, Y, "gaussian", seed=3, **NUTS),
    "posterior-laplace": lambda tmp: bayesloss.posterior(X, Y, "gaussian", method="laplace",
                                                         seed=3, **NUTS),
    "approximations": lambda tmp: bayesloss.approximations(
        X, Y, "gaussian", methods=["map", "laplace"], seed=3, **NUTS),
    "compare_likelihoods": lambda tmp: bayesloss.compare_likelihoods(
        X, Y, ["gaussian", "laplace"], seed=3, **NUTS),
    "which_loss": lambda tmp: bayesloss.which_loss(XB, YB, seed=3, **NUTS),
    "shrinkage_path": lambda tmp: bayesloss.shrinkage_path(X, Y, "gaussian", [0.5, 2.0],
                                                           seed=3),
    "mode_space_demo": lambda tmp: bayesloss.mode_space_demo(),
    "torch_equivalence": lambda tmp: bayesloss.torch_equivalence(X, Y, "gaussian", hidden=(3,),
                                                                 steps=20, seed=3),
    "run_check": lambda tmp: run_check([Case("diabetes", "gaussian")], include_longley=False,
                                       progress=False),
    "run_sweep": _sweep,
    "LikelihoodRegressor": lambda tmp: LikelihoodRegressor(seed=3).fit(X, Y),
    "LikelihoodClassifier": lambda tmp: LikelihoodClassifier(seed=3).fit(XB, YB),
}


@pytest.fixture
def caller_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(CALLER_THREADS)
    yield CALLER_THREADS
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", list(ENTRY_POINTS))
def test_entry_point_leaves_the_callers_state_alone(name, tmp_path, caller_threads):
    _prime()
    expected = _next_draws()
    _prime()
    param = pyro.param(USER_PARAM)
    blas = _blas_threads()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tiny data and budgets: mechanics only
        ENTRY_POINTS[name](tmp_path)
    assert list(pyro.get_param_store().keys()) == [USER_PARAM]
    assert pyro.param(USER_PARAM) is param
    assert torch.equal(param, torch.tensor([[7.0, -7.0]]))
    assert torch.get_num_threads() == caller_threads
    assert _blas_threads() == blas
    got = _next_draws()
    assert got[0] == expected[0]
    np.testing.assert_array_equal(got[1], expected[1])
    assert torch.equal(got[2], expected[2])
    assert got[3] == expected[3]


@pytest.mark.parametrize("likelihood", ["gaussian", "bernoulli", "laplace"])
def test_same_seed_same_numbers_whatever_the_callers_streams(likelihood):
    X, y = _tiny(likelihood)
    first = bayesloss.fit(X, y, likelihood, optimizer="adam", batch_size=8, num_steps=100,
                          seed=4)
    random.seed(99)
    np.random.seed(99)
    torch.manual_seed(99)
    _ = torch.randn(10), np.random.rand(10)
    again = bayesloss.fit(X, y, likelihood, optimizer="adam", batch_size=8, num_steps=100,
                          seed=4)
    other = bayesloss.fit(X, y, likelihood, optimizer="adam", batch_size=8, num_steps=100,
                          seed=5)
    np.testing.assert_array_equal(first.coef_, again.coef_)
    assert first.intercept_ == again.intercept_
    assert not np.array_equal(first.coef_, other.coef_)  # the seed does reach the minibatches


def test_small_calls_run_single_threaded_and_large_ones_with_the_callers_threads(
        caller_threads):
    from bayesloss.engine.policy import PARALLEL_WORK, caller_state

    blas = _blas_threads()
    with caller_state(work=PARALLEL_WORK - 1):
        assert torch.get_num_threads() == 1
        assert set(_blas_threads()) == {1}
        with caller_state(work=PARALLEL_WORK):  # nested: the outer call decided
            assert torch.get_num_threads() == 1
    with caller_state(work=PARALLEL_WORK):
        assert torch.get_num_threads() == caller_threads
        assert _blas_threads() == blas
    assert torch.get_num_threads() == caller_threads


def test_the_caller_state_comes_back_when_the_call_raises(caller_threads):
    _prime()
    expected = _next_draws()
    _prime()
    with pytest.raises(ValueError):
        bayesloss.fit(X, Y, "no-such-likelihood")
    with pytest.raises(ValueError):  # raises inside the fit, after it has seeded
        bayesloss.fit(XB, XB[:, 0] > 0, "bernoulli", seed=3)
    assert torch.get_num_threads() == caller_threads
    assert list(pyro.get_param_store().keys()) == [USER_PARAM]
    got = _next_draws()
    assert got[0] == expected[0] and got[3] == expected[3]
    assert torch.equal(got[2], expected[2])


def test_a_warning_for_the_caller_names_the_callers_line_and_errors_still_raise():
    with pytest.warns(bayesloss.ConvergenceWarning) as record:
        bayesloss.fit(X, Y, "studentt", max_iter=2)
    with pytest.warns(bayesloss.PriorWarning) as prior:
        bayesloss.fit(X, Y, "gaussian", prior_scale=2.0)
    with pytest.warns(bayesloss.ConvergenceWarning) as estimator:  # fit nested in the estimator
        LikelihoodRegressor(likelihood="studentt", max_iter=2).fit(X, Y)
    assert [w.filename for r in (record, prior, estimator) for w in r] == [__file__] * 3
    with warnings.catch_warnings():
        warnings.simplefilter("error", bayesloss.ConvergenceWarning)
        with pytest.raises(bayesloss.ConvergenceWarning):
            bayesloss.fit(X, Y, "studentt", max_iter=2)
