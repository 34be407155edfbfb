"""What every subcommand shares: the data options and loading, the exit codes, the sampler
options, and how a run's health becomes an exit code."""

from __future__ import annotations

import argparse
import textwrap
from dataclasses import replace
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from ..io import is_table_path, load_table, read_table

MATRICES = ("all", "synthetic", "real")
BUILTIN = ("diabetes, breast_cancer, iris, wine, longley, cpunish, randhie, or "
           "synthetic-<family>")
LABEL_LIKELIHOODS = ("bernoulli", "categorical")  # targets that are class labels

#: exit code → meaning, the same for every subcommand
EXIT_CODES = {
    0: "done (every check row passed, every fit converged, the sampler healthy)",
    1: "a check row failed, a fit or sampler did not converge (R-hat, ESS, E-BFMI), a "
       "variational posterior missed the posterior's shape (Pareto k̂ > 0.7), or sweep runs "
       "failed",
    2: "bad input (arguments, data, config) or a missing optional package (the message names "
       "the extra to install)",
    3: "numerical failure: a fit diverged (NaN or infinite objective) or NUTS had divergent "
       "transitions",
}
# a bullet list: the terminal shows it as written, and the docs' CLI page renders it as a list
EPILOG = "exit codes:\n\n" + "\n".join(
    textwrap.fill(text, 88, initial_indent=f"- {code}: ", subsequent_indent="  ")
    for code, text in EXIT_CODES.items())


def _load(args, likelihood: str, default: Optional[str] = None,
          labels: Optional[bool] = None):
    """The data ``--data`` names: a CSV / Parquet file (with ``--target``, ``--features``) or
    a built-in set (when not given: ``default``, else synthetic data of the likelihood).
    Text labels are encoded for the likelihoods of labels (or where ``labels``); prints how."""
    from ..check import dataset

    if args.data is None or not is_table_path(args.data):
        if args.target or args.features:
            raise ValueError("--target and --features go with a data file (--data PATH.csv or "
                             f"PATH.parquet); {args.data!r} is not one")
        return dataset(args.data or default or f"synthetic-{likelihood}")
    if not args.target:
        raise ValueError(f"--data {args.data}: say which column to predict with --target "
                         "COLUMN")
    features = [c.strip() for c in args.features.split(",")] if args.features else None
    trials = getattr(args, "trials", None)
    if trials and features is None:  # binomial's trials column is data, not a feature
        features = [str(c) for c in read_table(args.data).columns
                    if str(c) not in (args.target, trials)]
    data, classes = load_table(args.data, args.target, features,
                               labels=likelihood in LABEL_LIKELIHOODS if labels is None
                               else labels)
    if trials:
        frame = read_table(args.data)
        if trials not in frame.columns or trials == args.target:
            raise ValueError(f"--trials {trials!r}: not a column of {args.data} besides the "
                             f"target; its columns are {list(frame.columns)}")
        data = replace(data, inputs={"trials": frame[trials].to_numpy(dtype=np.float64)})
    if classes is not None:
        print(f"target {args.target!r} encoded as: "
              + ", ".join(f"{k} = {c}" for k, c in enumerate(classes)))
    return data


def _load_formula(args, likelihood: str):
    """``--data PATH --formula "y ~ x + C(g)"``: the design the formula builds from the file
    (statsmodels' names), and whether the formula has an intercept."""
    from ..data import Dataset
    from ..formula import design_matrices

    if args.target or args.features:
        raise ValueError("--formula names the target and the features: give no --target or "
                         "--features with it")
    if args.data is None or not is_table_path(args.data):
        raise ValueError(f"--formula goes with a data file of yours (--data PATH.csv or "
                         f"PATH.parquet); {args.data!r} is not one")
    design = design_matrices(args.formula, read_table(args.data), likelihood)
    if design.formula.classes is not None:
        print("target encoded as: "
              + ", ".join(f"{k} = {c}" for k, c in enumerate(design.formula.classes)))
    data = Dataset(name=Path(args.data).name, X=design.X.to_numpy(), y=design.y,
                   feature_names=design.formula.columns,
                   source=f"{args.data}, formula {args.formula!r}")
    return data, design.formula.fit_intercept


def _design(args):
    """The data of a command that fits ``args.likelihood``: the design a ``--formula`` builds
    (and whether it has an intercept), else ``--data`` as :func:`_load` reads it (with one)."""
    if args.formula:
        return _load_formula(args, args.likelihood)
    return _load(args, args.likelihood), True


def _frame(data) -> pd.DataFrame:
    """The design with its column names, which label the weights in every summary."""
    return pd.DataFrame(data.X, columns=[str(c) for c in data.feature_names])


def _data_args(parser, default_help: str) -> None:
    parser.add_argument("--data", default=None,
                        help=f"{default_help}, or a file of yours: PATH.csv or PATH.parquet "
                        "(with --target)")
    parser.add_argument("--target", default=None, help="the column to predict (data file)")
    parser.add_argument("--trials", default=None, metavar="COLUMN",
                        help="binomial: the column of each row's number of trials (data file; "
                        "not a feature; built-in sets carry theirs)")
    parser.add_argument("--features", default=None,
                        help="comma-separated columns to predict it from (data file; default: "
                        "every other column)")


def _formula_arg(parser) -> None:
    parser.add_argument("--formula", default=None,
                        help="a formula on the data file's columns instead of --target and "
                        "--features, e.g. 'y ~ x + C(g) + x:z' (statsmodels' names; '0 +' for "
                        "no intercept)")


def _noise_args(parser, df_default: Optional[float] = 4.0) -> None:
    parser.add_argument("--noise-scale", type=float, default=None, metavar="SIGMA",
                        help="fix the noise scale σ (gaussian, studentt) or b (laplace) at "
                        "SIGMA instead of learning it")
    parser.add_argument("--df", type=float, default=df_default, metavar="NU",
                        help="degrees of freedom ν of the studentt likelihood"
                        + (f" (default {df_default:g})" if df_default is not None else
                           " (default 4)"))
    parser.add_argument("--components", type=int, default=None, metavar="K",
                        help="gaussian_mixture: the number K ≥ 2 of regression lines "
                        "(default 2)")


def _sampler_args(parser) -> None:
    parser.add_argument("--chains", type=int, default=4,
                        help="NUTS chains, run in parallel where the CPUs allow (default 4)")
    parser.add_argument("--warmup", type=int, default=500,
                        help="warm-up iterations per chain, which tune the step size and mass "
                        "matrix (default 500)")
    parser.add_argument("--draws", type=int, default=1000,
                        help="draws kept per chain (default 1000, at least 50)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the point fits, the starts and the sampler (default 0)")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bar (bars are shown only on a terminal anyway)")


def _health_code(posteriors) -> int:
    """3 where NUTS diverged, 1 where it did not converge by R-hat / ESS / E-BFMI or a
    variational posterior's Pareto k̂ says it misses the posterior's shape, else 0."""
    from ..diagnostics import PARETO_K_MAX

    posteriors = list(posteriors)
    health = [p.info["health"] for p in posteriors if "health" in p.info]
    if any(h["divergences"] for h in health):
        return 3
    unhealthy = any(h["problems"] for h in health)
    return 1 if unhealthy or any(p.info.get("khat", -np.inf) > PARETO_K_MAX
                                 for p in posteriors) else 0


def _subcommand(sub, name: str, help: str, description: str):
    """A subcommand whose help ends with the exit codes (the epilog keeps its line breaks)."""
    return sub.add_parser(name, help=help, description=textwrap.fill(description, 88),
                          epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)


# a Likelihood of your own is Python code (make(loc, scale)): no command line can carry it
LIKELIHOOD_HELP = ("the likelihood (the loss), a registered name; your own "
                   "bayesloss.Likelihood(name, make) is for the Python API")
