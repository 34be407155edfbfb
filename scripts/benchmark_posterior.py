"""NUTS speed on Bayesian logistic regression: wall time (compilation and setup included) and
min bulk-ESS per second, for bayesloss.posterior and the samplers it is measured against.

    python scripts/benchmark_posterior.py                        # n = 1,000, d = 10, 500 + 1,000
    python scripts/benchmark_posterior.py --repeats 3 --traced   # + Pyro NUTS on the traced model
    python scripts/benchmark_posterior.py --suite small          # everyday linear regressions

Model: w ~ Normal(0, 1) (d weights), flat intercept, y ~ Bernoulli(logits = X w + b), one
chain, ``--warmup`` + ``--draws``. Rows:

* ``bayesloss.posterior``: the whole call (point fits, mode and Hessian, Pyro NUTS on the
  derived whitened potential, InferenceData with log-likelihood and predictive draws);
* ``… (sampling only)``: the NUTS run inside it;
* ``pyro NUTS (traced model)`` with ``--traced``: ``NUTS(model)`` on the same
  ``build_model``, which traces the model at every step;
* ``numpyro NUTS``: the same model in NumPyro (JAX, CPU), compilation included, when
  ``numpyro`` is installed (an optional dependency: ``pip install numpyro``); the row says so
  when it is not.

``--suite small``: flat-prior linear regressions of everyday size on data sets shipped with
statsmodels and scikit-learn (n = 51 to 1,200, 3 to 8 parameters, unscaled columns as they
come), y ~ Normal(X w + b, σ) with flat w, b and σ on (0, ∞), 4 chains × (1,000 warm-up +
1,000 draws) (``--warmup``/``--draws`` override); bayesloss.posterior (its chain policy
decides parallel or sequential) against the same model in NumPyro (4 chains, sequential on
one JAX device), both measured in the same run, one row per model and sampler.

ESS is ArviZ's bulk ESS (the same estimator for every row), the minimum over parameters.
The design is standard normal (``--unscaled`` uses ``make_synthetic``'s columns spread over
1e-2 … 1e3, which only the whitened sampler takes in its stride).
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np
import pandas as pd

import bayesloss
from bayesloss import diagnostics
from bayesloss.data import make_synthetic


def _data(n, d, seed, unscaled):
    if unscaled:
        data = make_synthetic("bernoulli", n, d, seed=seed)
        return data.X, data.y
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    w = rng.uniform(-1, 1, d)
    y = (rng.random(n) < 1 / (1 + np.exp(-(X @ w + 0.3)))).astype(np.float64)
    return X, y


def _small_models():
    """(name, X, y): everyday linear regressions on shipped data sets, unscaled."""
    import statsmodels.api as sm
    from sklearn.datasets import load_diabetes

    crime = sm.datasets.statecrime.load_pandas().data
    engel = sm.datasets.engel.load_pandas().data
    diabetes = load_diabetes(as_frame=True, scaled=False).frame
    anes = sm.datasets.anes96.load_pandas().data
    fair = sm.datasets.fair.load_pandas().data.iloc[:1200]
    cases = [
        ("statecrime murder ~ 5", crime, "murder",
         ["poverty", "hs_grad", "single", "urban", "white"]),
        ("engel foodexp ~ income", engel, "foodexp", ["income"]),
        ("diabetes target ~ 3", diabetes, "target", ["bmi", "bp", "s5"]),
        ("anes96 selfLR ~ 4", anes, "selfLR", ["age", "educ", "income", "TVnews"]),
        ("fair[:1200] rate_marriage ~ 6", fair, "rate_marriage",
         ["age", "yrs_married", "children", "religious", "educ", "occupation"]),
    ]
    return [(f"{name} (n = {len(frame)})", frame[cols].to_numpy(float),
             frame[target].to_numpy(float)) for name, frame, target, cols in cases]


def run_small_bayesloss(X, y, warmup, draws, seed):
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bayesloss.SamplerWarning)
        post = bayesloss.posterior(X, y, "gaussian", prior=None, chains=4, warmup=warmup,
                                   draws=draws, seed=seed, progress=False)
    wall = time.perf_counter() - start
    ess = diagnostics.min_ess_bulk({s: post.idata.posterior[s].values
                                    for s in ("weight", "bias", "scale")})
    return [(f"bayesloss.posterior ({post.info['chains'].split(':')[0]})", wall, ess)]


def run_small_numpyro(X, y, warmup, draws, seed):
    try:
        import jax
        import numpyro
        import numpyro.distributions as ndist
        from numpyro.distributions import constraints
        from numpyro.infer import MCMC, NUTS
    except ImportError:
        return [("numpyro NUTS: not installed (pip install numpyro)", np.nan, np.nan)]
    jax.config.update("jax_enable_x64", True)

    def model(X, y):
        w = numpyro.sample("weight", ndist.ImproperUniform(constraints.real, (),
                                                           (X.shape[1],)))
        b = numpyro.sample("bias", ndist.ImproperUniform(constraints.real, (), ()))
        s = numpyro.sample("scale", ndist.ImproperUniform(constraints.positive, (), ()))
        numpyro.sample("obs", ndist.Normal(X @ w + b, s), obs=y)

    start = time.perf_counter()
    mcmc = MCMC(NUTS(model), num_warmup=warmup, num_samples=draws, num_chains=4,
                chain_method="sequential", progress_bar=False)
    mcmc.run(jax.random.PRNGKey(seed), jax.numpy.asarray(X), jax.numpy.asarray(y))
    samples = mcmc.get_samples(group_by_chain=True)
    jax.block_until_ready(samples)
    wall = time.perf_counter() - start
    ess = diagnostics.min_ess_bulk({k: np.asarray(v) for k, v in samples.items()})
    return [(f"numpyro {numpyro.__version__} NUTS (sequential)", wall, ess)]


def small_suite(args):
    """Every small model, bayesloss then NumPyro on each, in this one process."""
    runners = [run_small_bayesloss] + ([] if args.no_numpyro else [run_small_numpyro])
    rows = []
    for repeat in range(args.repeats):
        for model, X, y in _small_models():
            for runner in runners:
                load = os.getloadavg()[0]
                for name, wall, ess in runner(X, y, args.warmup, args.draws,
                                              args.seed + repeat):
                    rows.append({"model": model, "sampler": name, "repeat": repeat,
                                 "wall_s": wall, "min_ess_bulk": ess,
                                 "min_ess_per_s": ess / wall, "load_1min": load})
    print(f"flat-prior linear regressions, 4 chains, {args.warmup} + {args.draws}; "
          f"{os.cpu_count()} CPUs")
    return pd.DataFrame(rows)


def run_bayesloss(X, y, warmup, draws, seed):
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bayesloss.SamplerWarning)
        post = bayesloss.posterior(X, y, "bernoulli", prior="normal", prior_scale=1.0,
                                   chains=1, warmup=warmup, draws=draws, seed=seed,
                                   progress=False)
    wall = time.perf_counter() - start
    ess = diagnostics.min_ess_bulk({s: post.idata.posterior[s].values
                                    for s in ("weight", "bias")})
    return [("bayesloss.posterior (whitened derived potential)", wall, ess),
            ("  … sampling only (Pyro NUTS)", post.info["sampling_seconds"], ess)]


def run_traced(X, y, warmup, draws, seed):
    import pyro
    import torch
    from pyro.infer import MCMC, NUTS

    from bayesloss.models import build_model
    from bayesloss.spec import make_spec

    spec = make_spec("bernoulli", estimator="map", prior="normal", prior_scale=1.0)
    model = build_model(spec, X.shape[1])
    Xt, yt = torch.as_tensor(X), torch.as_tensor(y)
    pyro.set_rng_seed(seed)
    start = time.perf_counter()
    mcmc = MCMC(NUTS(model), num_samples=draws, warmup_steps=warmup, disable_progbar=True)
    mcmc.run(Xt, yt)
    wall = time.perf_counter() - start
    samples = mcmc.get_samples(group_by_chain=True)
    ess = diagnostics.min_ess_bulk({k: v.numpy() for k, v in samples.items()})
    return [("pyro NUTS (traced model)", wall, ess)]


def run_numpyro(X, y, warmup, draws, seed):
    try:
        import jax
        import numpyro
        import numpyro.distributions as ndist
        from numpyro.distributions import constraints
        from numpyro.infer import MCMC, NUTS
    except ImportError:
        return [("numpyro NUTS: not installed (pip install numpyro)", np.nan, np.nan)]
    jax.config.update("jax_enable_x64", True)
    numpyro.set_host_device_count(1)

    def model(X, y):
        w = numpyro.sample("weight", ndist.Normal(0.0, 1.0).expand([X.shape[1]]).to_event(1))
        b = numpyro.sample("bias", ndist.ImproperUniform(constraints.real, (), ()))
        numpyro.sample("obs", ndist.Bernoulli(logits=X @ w + b), obs=y)

    start = time.perf_counter()
    mcmc = MCMC(NUTS(model), num_warmup=warmup, num_samples=draws, num_chains=1,
                progress_bar=False)
    mcmc.run(jax.random.PRNGKey(seed), jax.numpy.asarray(X), jax.numpy.asarray(y))
    samples = mcmc.get_samples(group_by_chain=True)
    jax.block_until_ready(samples)
    wall = time.perf_counter() - start
    ess = diagnostics.min_ess_bulk({k: np.asarray(v) for k, v in samples.items()})
    return [(f"numpyro {numpyro.__version__} NUTS (JAX CPU, compile incl.)", wall, ess)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--d", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=None,
                        help="default 500 (1,000 for --suite small)")
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--suite", choices=("logistic", "small"), default="logistic")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--traced", action="store_true",
                        help="also time Pyro NUTS on the traced model (about a minute)")
    parser.add_argument("--no-numpyro", action="store_true")
    parser.add_argument("--unscaled", action="store_true")
    parser.add_argument("--out", help="also write the table as CSV here")
    args = parser.parse_args(argv)
    if args.warmup is None:
        args.warmup = 1000 if args.suite == "small" else 500
    if args.suite == "small":
        table = small_suite(args)
        print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
        if args.out:
            table.to_csv(args.out, index=False)
        return table
    X, y = _data(args.n, args.d, args.seed, args.unscaled)
    runners = [run_bayesloss] + ([run_traced] if args.traced else []) + \
        ([] if args.no_numpyro else [run_numpyro])
    rows = []
    for repeat in range(args.repeats):
        for runner in runners:
            load = os.getloadavg()[0]
            for name, wall, ess in runner(X, y, args.warmup, args.draws, args.seed + repeat):
                rows.append({"sampler": name, "repeat": repeat, "wall_s": wall,
                             "min_ess_bulk": ess, "min_ess_per_s": ess / wall,
                             "load_1min": load})
    table = pd.DataFrame(rows)
    print(f"logistic regression n = {args.n}, d = {args.d}, one chain, {args.warmup} + "
          f"{args.draws}; {os.cpu_count()} CPUs")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    if args.out:
        table.to_csv(args.out, index=False)
    return table


if __name__ == "__main__":
    main()
