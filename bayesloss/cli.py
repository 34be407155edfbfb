"""Command line: ``bayesloss check`` (the verification matrix), ``bayesloss fit``,
``bayesloss sweep`` (a TOML-configured experiment), ``bayesloss report``,
``bayesloss posterior`` and ``bayesloss which-loss``.

A thin layer over the package: it parses arguments, calls :mod:`bayesloss.check` or
:func:`bayesloss.fit` / :func:`bayesloss.reference_fit`, and prints. ``--data`` names a
built-in data set or a file of your own (``--data PATH.csv|.parquet --target COLUMN
[--features a,b,c]``, read by :mod:`bayesloss.io`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from .families import FAMILIES
from .io import is_table_path, load_table, read_table
from .priors import PRIORS

MATRICES = ("all", "synthetic", "real")
BUILTIN = ("diabetes, breast_cancer, iris, wine, longley, cpunish, randhie, or "
           "synthetic-<family>")
LABEL_LIKELIHOODS = ("bernoulli", "categorical")  # targets that are class labels


def _format_summary(summary: pd.DataFrame) -> str:
    shown = summary.assign(
        max_rel_err=summary["max_rel_err"].map(lambda v: "—" if pd.isna(v) else f"{v:.1e}"),
        objective_gap=summary["objective_gap"].map(lambda v: f"{v:+.1e}"),
        tolerance=[
            f"{o:.0e}" if pd.isna(p) else f"{p:.0e} / {o:.0e}"
            for p, o in zip(summary["param_tol"], summary["objective_tol"])
        ],
        passed=summary["passed"].map({True: "PASS", False: "FAIL"}),
    ).rename(columns={"reference_kind": "reference", "reference_converged": "ref_converged"})
    cols = ["family", "estimator", "prior", "scale", "data", "reference", "max_rel_err",
            "objective_gap", "tolerance", "converged", "ref_converged", "passed"]
    return shown[cols].to_string(index=False)


def _load(args, likelihood: str, default: Optional[str] = None):
    """The data ``--data`` names: a CSV / Parquet file (with ``--target``, ``--features``) or
    a built-in set (when not given: ``default``, else synthetic data of the likelihood).
    Prints how string labels were encoded."""
    from .check import dataset

    if args.data is None or not is_table_path(args.data):
        if args.target or args.features:
            raise ValueError("--target and --features go with a data file (--data PATH.csv or "
                             f"PATH.parquet); {args.data!r} is not one")
        return dataset(args.data or default or f"synthetic-{likelihood}")
    if not args.target:
        raise ValueError(f"--data {args.data}: say which column to predict with --target "
                         "COLUMN")
    features = [c.strip() for c in args.features.split(",")] if args.features else None
    data, classes = load_table(args.data, args.target, features,
                               labels=likelihood in LABEL_LIKELIHOODS)
    if classes is not None:
        print(f"target {args.target!r} encoded as: "
              + ", ".join(f"{k} = {c}" for k, c in enumerate(classes)))
    return data


def _load_formula(args, likelihood: str):
    """``--data PATH --formula "y ~ x + C(g)"``: the design the formula builds from the file
    (statsmodels' names), and whether the formula has an intercept."""
    from .data import Dataset
    from .formula import design_matrices

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


def _frame(data) -> pd.DataFrame:
    """The design with its column names, which label the weights in every summary."""
    return pd.DataFrame(data.X, columns=[str(c) for c in data.feature_names])


def _model_kwargs(args) -> dict:
    """The keywords of ``fit`` that were given (the prior's, in particular, only when given:
    an MLE has none)."""
    kw = dict(estimator=args.estimator or "mle", noise_scale=args.noise_scale)
    kw.update({k: v for k, v in (("prior", args.prior), ("prior_scale", args.prior_scale),
                                 ("df", args.df)) if v is not None})
    return kw


def _check_one(args) -> int:
    """Single-case mode: one likelihood on one data file, ours against the reference."""
    from .compare import compare

    if not args.family or len(args.family) != 1:
        raise ValueError("with a data file, check runs one case: give exactly one --family")
    likelihood = args.family[0]
    data = _load(args, likelihood)
    rows = compare(_frame(data), data.y, likelihood, data=data.name, optimizer=args.optimizer,
                   batch_size=args.batch_size, seed=args.seed, **_model_kwargs(args))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        rows.to_csv(out / "check_rows.csv", index=False)
    if args.json:
        print(rows.to_json(orient="records"))
    else:
        print(f"data: {data.source}, n = {data.X.shape[0]}, d = {data.X.shape[1]}")
        print(rows)
        print("\nPASS" if rows["passed"].all() else "\nFAIL")
    return 0 if rows["passed"].all() else 1


def _check(args) -> int:
    from .check import default_cases, real_cases, run_check, synthetic_cases

    if args.data is not None and args.data not in MATRICES:
        if not is_table_path(args.data):
            raise ValueError(f"check --data takes {list(MATRICES)} or a data file "
                             f"(PATH.csv, PATH.parquet); got {args.data!r}")
        return _check_one(args)
    single = {"--target": args.target, "--features": args.features,
              "--estimator": args.estimator, "--prior": args.prior,
              "--prior-scale": args.prior_scale, "--noise-scale": args.noise_scale,
              "--df": args.df}
    given = [flag for flag, value in single.items() if value is not None]
    if given:
        raise ValueError(f"{', '.join(given)}: only for check's single-case mode "
                         "(--data PATH.csv --target COLUMN --family LIKELIHOOD)")
    if args.data is None:  # Adam's acceptance matrix is the synthetic one (see --data)
        args.data = "all" if args.optimizer == "lbfgs" else "synthetic"
    cases = {"all": default_cases, "synthetic": synthetic_cases, "real": real_cases}[args.data]()
    if args.family:
        cases = [c for c in cases if c.likelihood in args.family]
    rows, summary = run_check(
        cases,
        optimizer=args.optimizer,
        batch_size=args.batch_size,
        seed=args.seed,
        include_longley=args.optimizer == "lbfgs" and args.data in ("all", "real")
        and (not args.family or "gaussian" in args.family),
        progress=not args.json,
        # PyTorch-loss training vs Pyro SVI on the NLL, for the matrices with synthetic data
        training=(args.family or sorted(FAMILIES)) if args.data in ("all", "synthetic") else None,
    )
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        rows.to_csv(out / "check_rows.csv", index=False)
        summary.to_csv(out / "check_summary.csv", index=False)
        (out / "check_summary.json").write_text(summary.to_json(orient="records", indent=1))
    if args.json:
        print(summary.to_json(orient="records"))
    else:
        print(_format_summary(summary))
        n_fail = int((~summary["passed"]).sum())
        print(f"\n{len(summary) - n_fail} passed, {n_fail} failed "
              f"(optimizer={args.optimizer}"
              + (f", batch_size={args.batch_size}" if args.batch_size else "") + ")")
    return 0 if summary["passed"].all() else 1


def _fit(args) -> int:
    from .inference import fit
    from .references import reference_fit

    model = _model_kwargs(args)
    if args.formula:
        d, model["fit_intercept"] = _load_formula(args, args.likelihood)
    else:
        d = _load(args, args.likelihood)
    X = _frame(d)
    ours = fit(X, d.y, args.likelihood, optimizer=args.optimizer, batch_size=args.batch_size,
               seed=args.seed, progress=True, **model)
    print(f"data: {d.name} ({d.source.split(';')[0]}), n = {d.X.shape[0]}, d = {d.X.shape[1]}")
    print(ours.summary())
    if args.reference:
        print()
        print(reference_fit(X, d.y, args.likelihood, **model).summary())
    return 0


def _data_args(parser, default_help: str) -> None:
    parser.add_argument("--data", default=None,
                        help=f"{default_help}, or a file of yours: PATH.csv or PATH.parquet "
                        "(with --target)")
    parser.add_argument("--target", default=None, help="the column to predict (data file)")
    parser.add_argument("--features", default=None,
                        help="comma-separated columns to predict it from (data file; default: "
                        "every other column)")


def _formula_arg(parser) -> None:
    parser.add_argument("--formula", default=None,
                        help="a formula on the data file's columns instead of --target and "
                        "--features, e.g. 'y ~ x + C(g) + x:z' (statsmodels' names; '0 +' for "
                        "no intercept)")


def _model_args(parser, defaults: bool = True) -> None:
    """The model's knobs; ``defaults=False`` leaves them None, to tell whether they were
    given."""
    def default(value):
        return value if defaults else None

    parser.add_argument("--estimator", choices=["mle", "map"], default=default("mle"))
    parser.add_argument("--prior", choices=sorted(PRIORS), help="MAP only (default normal)")
    parser.add_argument("--prior-scale", type=float, help="MAP only (default 1)")
    parser.add_argument("--noise-scale", type=float, default=None)
    parser.add_argument("--df", type=float, default=default(4.0))


def _sweep(args) -> int:
    from .experiments import load_config, run_sweep

    config = load_config(args.config, overrides=args.set)
    table = run_sweep(config, args.out, workers=args.workers, backend=args.backend,
                      scheduler=args.scheduler, retry_failed=args.retry_failed,
                      progress=not args.quiet)
    failed = table[table["status"] == "failed"]
    print(f"{len(table)} runs stored in {Path(args.out) / 'runs.sqlite'} "
          f"({len(failed)} failed); table: runs.parquet, runs.csv")
    for _, row in failed.head(5).iterrows():
        print(f"  failed {row['run_id']}: {row['error']}")
    if not args.no_report:
        return _report(args)
    return 0


def _report(args) -> int:
    from .experiments.report import write_report

    paths = write_report(args.out)
    print("report: " + ", ".join(str(p) for p in paths))
    return 0


def _posterior(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from . import diagnostics
    from .plots.posterior import save_figures
    from .posterior import posterior, shrinkage_path

    fit_intercept = True
    if args.formula:  # before anything is written to --out
        d, fit_intercept = _load_formula(args, args.likelihood)
    else:
        d = _load(args, args.likelihood)
    prior = None if args.prior == "flat" else args.prior
    post = posterior(d.X, d.y, args.likelihood, prior=prior, prior_scale=args.prior_scale,
                     fit_intercept=fit_intercept,
                     noise_scale=args.noise_scale, df=args.df, method=args.method,
                     chains=args.chains, warmup=args.warmup, draws=args.draws, seed=args.seed,
                     progress=not args.quiet, feature_names=list(map(str, d.feature_names)))
    print(f"data: {d.name}, n = {d.X.shape[0]}, d = {d.X.shape[1]};  {post!r};  "
          f"chains: {post.info['chains']}")
    table = post.summary()
    print(table.to_string(index=False))
    if args.method == "nuts":
        h = post.info["health"]
        print(f"max R-hat {h['max_rhat']:.4f}  min bulk ESS {h['min_ess_bulk']:.0f}  "
              f"min tail ESS {h['min_ess_tail']:.0f}  divergences {h['divergences']}  "
              f"min E-BFMI {h['min_ebfmi']:.2f}")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        table.to_csv(out / "posterior_summary.csv", index=False)
        diagnostics.to_netcdf(post.idata, out / "posterior.nc")
        shrinkage = None
        if prior is not None and not post.spec.kinked:
            taus = args.prior_scale * np.logspace(-2, 2, 9)
            shrinkage = shrinkage_path(d.X, d.y, args.likelihood, taus, prior=prior,
                                       noise_scale=args.noise_scale, df=args.df,
                                       fit_intercept=fit_intercept,
                                       feature_names=list(map(str, d.feature_names)))
        paths = save_figures(post, out, shrinkage)
        print(f"wrote {out / 'posterior_summary.csv'}, {out / 'posterior.nc'} and "
              f"{len(paths)} figures to {out}")
    return 0


def _which_loss(args) -> int:
    from .posterior import compare_likelihoods

    # class labels are encoded only if every likelihood compared takes them
    labels = all(lik in LABEL_LIKELIHOODS for lik in args.likelihood)
    d = _load(args, args.likelihood[0] if labels else "laplace", default="synthetic-laplace")
    out = compare_likelihoods(d.X, d.y, args.likelihood, prior=args.prior,
                              prior_scale=args.prior_scale, chains=args.chains,
                              warmup=args.warmup, draws=args.draws, seed=args.seed,
                              progress=not args.quiet)
    cols = ["rank", "elpd_loo", "p_loo", "elpd_diff", "se", "dse", "weight", "max_pareto_k",
            "n_bad_k"]
    print(f"data: {d.name}, n = {d.X.shape[0]}, d = {d.X.shape[1]}; ranked by PSIS-LOO")
    print(out.table[cols].to_string(float_format=lambda v: f"{v:.3f}"))
    close = [n for n in out.table.index[1:] if not out.beaten_beyond_se(n, 2.0)]
    print(f"best: {out.best}" + (f" (within 2 SE of the difference: {', '.join(close)})"
                                 if close else ""))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bayesloss",
        description="Everyday losses are negative log-likelihoods: fit the Pyro model, fit the "
        "classical loss, and check that they agree.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    check = sub.add_parser("check", help="run the verification matrix (exit 1 if a row fails)")
    check.add_argument("--optimizer", choices=["lbfgs", "adam"], default="lbfgs")
    check.add_argument("--batch-size", type=int, default=None,
                       help="minibatch size (adam only)")
    _data_args(
        check, "which cases: all, synthetic or real (default: all for lbfgs; synthetic for "
        "adam, which does not reach 1e-4 with a laplace prior on collinear real designs, "
        "breast_cancer and wine, within its default budget); a data file runs one case, "
        "ours against the reference, for one --family")
    check.add_argument("--family", action="append", choices=sorted(FAMILIES),
                       help="restrict to these families (repeatable); with a data file, the "
                       "one likelihood to check")
    _model_args(check, defaults=False)
    check.add_argument("--seed", type=int, default=0)
    check.add_argument("--json", action="store_true", help="print the rows as JSON")
    check.add_argument("--out", help="write check_rows.csv, check_summary.csv/.json here")
    check.set_defaults(run=_check)

    f = sub.add_parser("fit", help="fit one model on one data set and print its summary")
    f.add_argument("likelihood", choices=sorted(FAMILIES))
    _data_args(f, f"{BUILTIN} (default: synthetic data of the likelihood)")
    _formula_arg(f)
    _model_args(f)
    f.add_argument("--optimizer", choices=["lbfgs", "adam"], default="lbfgs")
    f.add_argument("--batch-size", type=int, default=None)
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--reference", action="store_true", help="also print the reference fit")
    f.set_defaults(run=_fit)

    sw = sub.add_parser("sweep", help="run a TOML-configured sweep into OUT (resumable), then "
                        "write its report")
    sw.add_argument("config", help="the sweep's TOML file (see scripts/configs/)")
    sw.add_argument("--out", required=True, help="output directory: runs.sqlite, the tables, "
                    "figures and report")
    sw.add_argument("--workers", type=int, default=1, help="worker processes (default 1: "
                    "in this process)")
    sw.add_argument("--backend", choices=["local", "dask"], default="local",
                    help="local processes, or a Dask LocalCluster of --workers processes")
    sw.add_argument("--scheduler", default=None,
                    help="address of an existing Dask scheduler (tcp://host:port)")
    sw.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="override a config value with a TOML value, e.g. --set "
                    "'data.n=[20, 50]' (repeatable; the store records the result)")
    sw.add_argument("--retry-failed", action="store_true", help="run failed runs again")
    sw.add_argument("--no-report", action="store_true", help="skip the report")
    sw.add_argument("--quiet", action="store_true", help="no progress bar")
    sw.set_defaults(run=_sweep)

    rep = sub.add_parser("report", help="write OUT/report.md and OUT/report.html (tables and "
                         "PNG figures) from a sweep's store")
    rep.add_argument("out", help="the sweep's output directory")
    rep.set_defaults(run=_report)

    p = sub.add_parser("posterior", help="sample the posterior (NUTS) or its Laplace "
                       "approximation; write summary, InferenceData and figures")
    p.add_argument("likelihood", choices=sorted(FAMILIES))
    _data_args(p, f"{BUILTIN} (default: synthetic data of the likelihood)")
    _formula_arg(p)
    p.add_argument("--method", choices=["nuts", "laplace"], default="nuts")
    p.add_argument("--prior", choices=sorted(PRIORS) + ["flat"], default="normal",
                   help="prior on the weights; flat: the posterior whose mode is the MLE")
    p.add_argument("--prior-scale", type=float, default=1.0)
    p.add_argument("--noise-scale", type=float, default=None)
    p.add_argument("--df", type=float, default=4.0)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--warmup", type=int, default=500)
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--out", help="write posterior_summary.csv, posterior.nc and PNG figures")
    p.set_defaults(run=_posterior)

    w = sub.add_parser("which-loss", help="rank likelihoods (losses) by PSIS-LOO")
    _data_args(w, f"{BUILTIN} (default: synthetic-laplace)")
    w.add_argument("--likelihood", action="append", choices=sorted(FAMILIES),
                   help="repeatable (default: gaussian, laplace, studentt)")
    w.add_argument("--prior", choices=sorted(PRIORS), default="normal")
    w.add_argument("--prior-scale", type=float, default=1.0)
    w.add_argument("--chains", type=int, default=4)
    w.add_argument("--warmup", type=int, default=500)
    w.add_argument("--draws", type=int, default=1000)
    w.add_argument("--seed", type=int, default=0)
    w.add_argument("--quiet", action="store_true", help="no progress bar")
    w.set_defaults(run=_which_loss)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "which-loss" and not args.likelihood:
        args.likelihood = ["gaussian", "laplace", "studentt"]
    if getattr(args, "data", None) is None and args.command == "fit":
        args.data = f"synthetic-{args.likelihood}"
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"bayesloss: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
