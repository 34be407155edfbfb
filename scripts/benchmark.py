"""Time ``bayesloss.fit(optimizer="lbfgs")`` against scikit-learn's exact solver for the same
estimator, per thread setting, and print the ratio ours / theirs per case.

    python scripts/benchmark.py                 # d = 20, n = 1,000 and 100,000, both settings
    python docs/benchmarks/tabulate.py docs/benchmarks/generated/speed.md \
        scripts/benchmark.py --n 1000 100000 --repeats 7    # the docs' dated table

Each thread setting runs in its own child process, so that its environment takes effect before
torch and numpy start their thread pools: ``default`` is what a user has (the machine's
default threads: the ``*_NUM_THREADS`` variables removed), ``1`` sets ``OMP_NUM_THREADS``,
``MKL_NUM_THREADS`` and ``OPENBLAS_NUM_THREADS`` to 1. Within a setting scikit-learn uses the
threads it gets, and our fits the threads their policy chooses
(:mod:`bayesloss.engine.policy`).

Both sides solve the same problem to the same accuracy: scikit-learn's iterative solvers run
with ``tol=1e-10``, and the table shows how far apart the two answers are (max relative
difference of the weights in their natural unit, |Δw_j|·sd(x_j)/sd(y), and of the class
probabilities for softmax). Times are medians over ``--repeats`` runs after one warm-up, the
two sides interleaved (ours, theirs, ours, …) so that a shared machine's changing load falls
on both alike.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LinearRegression, LogisticRegression, PoissonRegressor, Ridge

import bayesloss
from bayesloss.data import make_synthetic

TAU = 0.5  # prior scale of the MAP cases (σ = 1): ridge α = σ²/τ² = 4, logistic C = τ² = 0.25


def _newton(cls, **kw):
    return cls(solver="newton-cholesky", tol=1e-10, max_iter=1000, **kw)


# name, likelihood, our keywords, scikit-learn estimator factory
CASES = [
    ("gaussian MLE", "gaussian", {}, lambda n: LinearRegression()),
    ("gaussian ridge-MAP", "gaussian",
     {"estimator": "map", "prior": "normal", "prior_scale": TAU, "noise_scale": 1.0},
     lambda n: Ridge(alpha=1.0 / TAU**2, solver="cholesky")),
    ("bernoulli MLE", "bernoulli", {}, lambda n: _newton(LogisticRegression, C=np.inf)),
    ("bernoulli L2-MAP", "bernoulli", {"estimator": "map", "prior": "normal", "prior_scale": TAU},
     lambda n: _newton(LogisticRegression, C=TAU**2)),
    ("poisson MLE", "poisson", {}, lambda n: _newton(PoissonRegressor, alpha=0.0)),
    ("categorical MLE", "categorical", {}, lambda n: _newton(LogisticRegression, C=np.inf)),
]


def _median_times(fns, repeats):
    """Median wall time of each of ``fns``, run in turn ``repeats`` times after one warm-up
    each, and their last outputs."""
    outs = [fn() for fn in fns]  # warm-up: imports, allocator, first-call overheads
    times = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            outs[i] = fn()
            times[i].append(time.perf_counter() - start)
    return [float(np.median(t)) for t in times], outs


def _difference(likelihood, ours, theirs, X, y):
    if likelihood == "categorical":
        return float(np.abs(ours.predict_proba(X) - theirs.predict_proba(X)).max())
    sy = y.std() if likelihood == "gaussian" else 1.0
    coef = np.ravel(theirs.coef_)
    return float((np.abs(ours.coef_ - coef) * X.std(axis=0) / sy).max())


THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
SETTINGS = ("default", "1")


def run(ns, d, repeats, seed=0) -> pd.DataFrame:
    """The table for this process's thread setting."""
    rows = []
    for n in ns:
        for name, likelihood, kw, make in CASES:
            data = make_synthetic(likelihood, n, d, seed=seed, scale_range=(0.5, 2.0))
            X, y = data.X, data.y
            with warnings.catch_warnings():
                warnings.simplefilter("error", bayesloss.ConvergenceWarning)
                (t_ours, t_sk), (ours, sk) = _median_times(
                    [lambda: bayesloss.fit(X, y, likelihood, **kw), lambda: make(n).fit(X, y)],
                    repeats)
            rows.append({
                "case": name, "n": n, "d": d, "ours_ms": 1e3 * t_ours, "sklearn_ms": 1e3 * t_sk,
                "ratio": t_ours / t_sk, "iterations": ours.n_iter,
                "max_rel_diff": _difference(likelihood, ours, sk, X, y),
            })
            print(f"{name:20s} n={n:>7,d}  ours {1e3 * t_ours:8.1f} ms  sklearn "
                  f"{1e3 * t_sk:8.1f} ms  ratio {t_ours / t_sk:6.2f}", file=sys.stderr,
                  flush=True)
    return pd.DataFrame(rows)


def _environment(setting: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    if setting != "default":
        env.update({k: setting for k in THREAD_VARIABLES})
    return env


def _child(setting: str, args) -> pd.DataFrame:
    """Run one thread setting in a fresh interpreter; its table comes back as CSV."""
    print(f"--- threads: {setting}", file=sys.stderr, flush=True)
    argv = [sys.executable, str(Path(__file__).resolve()), "--child", "--n", *map(str, args.n),
            "--d", str(args.d), "--repeats", str(args.repeats)]
    done = subprocess.run(argv, env=_environment(setting), check=True, stdout=subprocess.PIPE,
                          text=True)
    table = pd.read_csv(io.StringIO(done.stdout))
    table.insert(0, "threads", setting)
    return table


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[1_000, 100_000])
    parser.add_argument("--d", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", nargs="+", choices=SETTINGS, default=list(SETTINGS),
                        help="thread settings to measure, each in its own process")
    parser.add_argument("--out", help="also write the table as CSV here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:  # one setting, in the environment the parent gave this process
        print(run(args.n, args.d, args.repeats).to_csv(index=False), end="")
        return None
    table = pd.concat([_child(s, args) for s in args.threads], ignore_index=True)
    print()
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    if args.out:
        table.to_csv(args.out, index=False)
    return table


if __name__ == "__main__":
    main()
