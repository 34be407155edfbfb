"""Time least absolute deviations, ``bayesloss.fit(X, y, "laplace")``, against HiGHS (n = 1,000)
and statsmodels ``QuantReg(q=0.5)`` (n = 50,000), and ours alone at n = 1,000,000 (d = 20).

    python scripts/benchmark_lad.py
    OMP_NUM_THREADS=1 python scripts/benchmark_lad.py
    python scripts/benchmark_lad.py --sizes 1000 50000 --repeats 5

Seeded synthetic data: standard normal columns, Laplace noise. HiGHS solves the LP
(``scipy.optimize.linprog``, sparse ``[X, 1, I, −I]``); QuantReg runs its iteratively reweighted
least squares to its default ``p_tol=1e-6``. The table shows each time (median over
``--repeats`` after one warm-up, the two sides interleaved so a shared machine's load falls on
both alike), the ratio ours / theirs, and the relative gap of the LAD objectives
(ours − theirs)/theirs, each evaluated at its own coefficients: negative means ours is lower.
Our fit must report converged (its duality-gap certificate ≤ 1e-9).
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.optimize import linprog
from statsmodels.regression.quantile_regression import QuantReg

import bayesloss

D = 20


def data(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, D))
    return X, X @ rng.standard_normal(D) + 1.0 + rng.laplace(size=n)


def ours(X, y):
    fit = bayesloss.fit(X, y, "laplace", noise_scale=1.0)
    if not fit.converged:
        raise RuntimeError(f"our LAD fit did not converge: {fit.info}")
    return fit.coef_, fit.intercept_


def highs(X, y):
    n, d = X.shape
    A = sp.hstack([sp.csr_matrix(np.c_[X, np.ones(n)]), sp.eye(n), -sp.eye(n)]).tocsr()
    res = linprog(np.r_[np.zeros(d + 1), np.ones(2 * n)], A_eq=A, b_eq=y,
                  bounds=[(None, None)] * (d + 1) + [(0, None)] * (2 * n), method="highs")
    return res.x[:d], res.x[d]


def quantreg(X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its iteration-limit and collinearity notes
        params = QuantReg(y, np.c_[np.ones(len(y)), X]).fit(q=0.5).params
    return params[1:], params[0]


def timed(fns, X, y, repeats):
    """Median seconds of each of ``fns`` on (X, y), interleaved, after one warm-up; outputs."""
    outs = [fn(X, y) for fn in fns]
    times = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            outs[i] = fn(X, y)
            times[i].append(time.perf_counter() - start)
    return [float(np.median(t)) for t in times], outs


def lad(X, y, coef_intercept):
    coef, intercept = coef_intercept
    return float(np.abs(y - X @ coef - intercept).sum())


def main(argv=None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 50_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", help="also write the table here as CSV (docs/benchmarks/tabulate.py reads it)")
    args = parser.parse_args(argv)
    rows = []
    for n in args.sizes:
        X, y = data(n)
        other = {1_000: ("HiGHS", highs), 50_000: ("QuantReg", quantreg)}.get(n)
        fns = [ours] + ([other[1]] if other else [])
        repeats = args.repeats if n < 1_000_000 else 1
        times, outs = timed(fns, X, y, repeats)
        row = {"n": n, "ours_s": times[0], "reference": other[0] if other else "",
               "reference_s": np.nan, "ratio": np.nan, "objective_gap": np.nan}
        if other:
            theirs = lad(X, y, outs[1])
            row.update(reference_s=times[1], ratio=times[0] / times[1],
                       objective_gap=(lad(X, y, outs[0]) - theirs) / theirs)
        rows.append(row)
    table = pd.DataFrame(rows)
    print(f"LAD, d = {D}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'default')}")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    if args.out:
        table.to_csv(args.out, index=False)
    return table


if __name__ == "__main__":
    main()
