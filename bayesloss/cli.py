"""Command line: ``bayesloss check`` (the verification matrix), ``bayesloss fit``,
``bayesloss sweep`` (a TOML-configured experiment), ``bayesloss report``,
``bayesloss posterior`` and ``bayesloss which-loss``.

A thin layer over the package: it parses arguments, calls :mod:`bayesloss.check` or
:func:`bayesloss.fit` / :func:`bayesloss.reference_fit`, and prints. ``--data`` names a
built-in data set or a file of your own (``--data PATH.csv|.parquet --target COLUMN
[--features a,b,c]``, read by :mod:`bayesloss.io`).

Output is for people: progress bars only on a terminal, warnings as one line each (once), and
the exit codes of :data:`EXIT_CODES`.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from . import __version__
from .console import interactive
from .families import FAMILIES, SUPPORTS
from .inference import DivergenceError
from .io import is_table_path, load_table, read_table
from .optional import MissingExtraError
from .priors import PRIORS

MATRICES = ("all", "synthetic", "real")
BUILTIN = ("diabetes, breast_cancer, iris, wine, longley, cpunish, randhie, or "
           "synthetic-<family>")
LABEL_LIKELIHOODS = ("bernoulli", "categorical")  # targets that are class labels

#: exit code → meaning, the same for every subcommand
EXIT_CODES = {
    0: "done (every check row passed, every fit converged, the sampler healthy)",
    1: "a check row failed, a fit or sampler did not converge (R-hat, ESS, E-BFMI), or "
       "sweep runs failed",
    2: "bad input (arguments, data, config) or a missing optional package (the message names "
       "the extra to install)",
    3: "numerical failure: a fit diverged (NaN or infinite objective) or NUTS had divergent "
       "transitions",
}
# a bullet list: the terminal shows it as written, and the docs' CLI page renders it as a list
EPILOG = "exit codes:\n\n" + "\n".join(
    textwrap.fill(text, 88, initial_indent=f"- {code}: ", subsequent_indent="  ")
    for code, text in EXIT_CODES.items())

TRAINING_DATA = "training: "  # check's rows that compare PyTorch-loss training with Pyro SVI


def _case(row) -> str:
    """A check case in a few words: likelihood, estimator, prior and the noise scale."""
    scale = str(row["scale"])
    family = FAMILIES.get(row["family"])  # σ and b are "scale"; a shape, α or φ say so
    name = "σ" if family is None or family.scale_name == "scale" else family.scale_name
    words = [row["family"], row["estimator"], row["prior"],
             f"{name} learned" if scale == "learned" else "σᵢ known" if scale.startswith("per row")
             else f"{name} = {scale}" if scale else ""]
    return " ".join(w for w in words if w)


def _format_summary(summary: pd.DataFrame) -> str:
    """The check's summary in at most 120 columns, every cell filled: a training row (PyTorch
    loss vs Pyro SVI, one trajectory each) has no objective gap, and its error is absolute."""
    training = summary["data"].str.startswith(TRAINING_DATA)
    # synthetic-<family>: the family is in the case already
    data = summary["data"].where(~summary["data"].str.startswith("synthetic-"), "synthetic")
    shown = pd.DataFrame({
        "case": summary.apply(_case, axis=1),
        "data": data.where(~training, "training (Adam)"),
        "reference": summary["reference_kind"].where(~training, "PyTorch"),
        "max error": ["—" if pd.isna(v) else f"{v:.1e}" for v in summary["max_rel_err"]],
        "objective gap": ["—" if t else f"{v:+.1e}"
                          for v, t in zip(summary["objective_gap"], training)],
        "tolerance": [f"{p:.0e} abs." if t else "— / " + f"{o:.0e}" if pd.isna(p)
                      else f"{p:.0e} / {o:.0e}"
                      for p, o, t in zip(summary["param_tol"], summary["objective_tol"],
                                         training)],
        "converged": [f"{'yes' if a else 'NO'}/{'yes' if b else 'NO'}"
                      for a, b in zip(summary["converged"], summary["reference_converged"])],
        "result": summary["passed"].map({True: "PASS", False: "FAIL"}),
    })
    for column in ("case", "data"):  # text reads left-aligned
        shown[column] = shown[column].str.ljust(shown[column].str.len().max())
    lines = [shown.to_string(index=False, justify="left")]
    lines.append("max error: largest parameter error, relative to max(|reference|, its "
                 "unit); objective gap: ours − reference,")
    lines.append("  nats per row;")
    lines.append("tolerance: parameters / objective; converged: ours/reference.")
    if summary["max_rel_err"].isna().any():
        lines.append("max error —: a Laplace likelihood's optimum need not be unique (ties): "
                     "judged on the objective alone.")
    if training.any():
        lines.append("training (Adam), reference PyTorch: Pyro SVI on the NLL vs training on "
                     "the PyTorch loss, same data, seed and steps;")
        lines.append("  max error = the largest |Δparam| along the trajectories (absolute; "
                     "no objective compared).")
    return "\n".join(lines)


def _load(args, likelihood: str, default: Optional[str] = None,
          labels: Optional[bool] = None):
    """The data ``--data`` names: a CSV / Parquet file (with ``--target``, ``--features``) or
    a built-in set (when not given: ``default``, else synthetic data of the likelihood).
    Text labels are encoded for the likelihoods of labels (or where ``labels``); prints how."""
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
                                 ("df", args.df), ("components", args.components))
               if v is not None})
    return kw


def _write_check(out, rows: pd.DataFrame, summary: pd.DataFrame) -> list[Path]:
    """``check_rows.csv``, ``check_summary.csv`` and ``check_summary.json`` in ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "check_rows.csv", out / "check_summary.csv", out / "check_summary.json"]
    rows.to_csv(paths[0], index=False)
    summary.to_csv(paths[1], index=False)
    paths[2].write_text(summary.to_json(orient="records", indent=1))
    return paths


def _check_one(args) -> int:
    """Single-case mode: one likelihood on one data file, ours against the reference."""
    from .compare import compare, summarize

    if not args.family or len(args.family) != 1:
        raise ValueError("with a data file, check runs one case: give exactly one --family")
    likelihood = args.family[0]
    data = _load(args, likelihood)
    rows = compare(_frame(data), data.y, likelihood, data=data.name, optimizer=args.optimizer,
                   batch_size=args.batch_size, seed=args.seed, **_model_kwargs(args),
                   **data.inputs)
    summary = summarize(rows)
    if args.out:
        _write_check(args.out, rows, summary)
    if args.json:
        print(rows.to_json(orient="records"))
    else:
        print(f"data: {data.source}, n = {data.X.shape[0]}, d = {data.X.shape[1]}")
        print(rows[["parameter", "ours", "reference", "abs_err", "rel_err", "tolerance",
                    "passed"]].to_string(index=False, float_format=lambda v: f"{v:.10g}"))
        print()
        print(_format_summary(summary))
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
              "--df": args.df, "--components": args.components}
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
        progress=not args.json,  # plain lines on stderr where no terminal shows a bar
        # PyTorch-loss training vs Pyro SVI on the NLL, for the matrices with synthetic data
        training=(args.family or sorted(FAMILIES)) if args.data in ("all", "synthetic") else None,
    )
    if args.out:
        _write_check(args.out, rows, summary)
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
               seed=args.seed, progress=interactive(), **model, **d.inputs)
    print(f"data: {d.name} ({d.source.split(';')[0]}), n = {d.X.shape[0]}, d = {d.X.shape[1]}")
    print(ours.summary())
    if args.reference:
        print()
        print(reference_fit(X, d.y, args.likelihood, **model, **d.inputs).summary())
    return 0 if ours.converged else 1


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


def _model_args(parser, defaults: bool = True) -> None:
    """The model's knobs; ``defaults=False`` leaves them None, to tell whether they were
    given."""
    def default(value):
        return value if defaults else None

    parser.add_argument("--estimator", choices=["mle", "map"], default=default("mle"),
                        help="mle: the likelihood alone (the plain loss); map: with the prior on "
                        "the weights (the penalised loss)" + (" (default: mle)" if defaults
                                                              else ""))
    parser.add_argument("--prior", choices=sorted(PRIORS),
                        help="the prior on the weights, MAP only (default normal: ridge; "
                        "laplace: lasso)")
    parser.add_argument("--prior-scale", type=float,
                        help="the prior's scale τ, MAP only (default 1; smaller shrinks more)")
    _noise_args(parser, df_default=default(4.0))


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


def _sweep(args) -> int:
    from .experiments import load_config, run_sweep

    config = load_config(args.config, overrides=args.set)
    table = run_sweep(config, args.out, workers=args.workers, backend=args.backend,
                      scheduler=args.scheduler, retry_failed=args.retry_failed,
                      progress=False if args.quiet else None)
    failed = table[table["status"] == "failed"]
    exported = [n for n in ("runs.csv", "runs.parquet") if (Path(args.out) / n).exists()]
    print(f"{len(table)} runs stored in {Path(args.out) / 'runs.sqlite'} "
          f"({len(failed)} failed); table: {', '.join(exported)}")
    for _, row in failed.head(5).iterrows():
        print(f"  failed {row['run_id']}: {row['error']}")
    if not args.no_report:
        _report(args)
    return 1 if len(failed) else 0


def _report(args) -> int:
    from .experiments.report import write_report

    paths = write_report(args.out)
    print("report: " + ", ".join(str(p) for p in paths))
    return 0


def _health_code(posteriors) -> int:
    """3 where NUTS diverged, 1 where it did not converge by R-hat / ESS / E-BFMI, else 0."""
    health = [p.info["health"] for p in posteriors if "health" in p.info]
    if any(h["divergences"] for h in health):
        return 3
    return 1 if any(h["problems"] for h in health) else 0


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
    post = posterior(_frame(d), d.y, args.likelihood, prior=prior, prior_scale=args.prior_scale,
                     fit_intercept=fit_intercept,
                     noise_scale=args.noise_scale, df=args.df, components=args.components,
                     method=args.method,
                     chains=args.chains, warmup=args.warmup, draws=args.draws, seed=args.seed,
                     progress=False if args.quiet else None, **d.inputs)
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
        # (a mixture's τ path would need its labels followed across τ: not drawn)
        if prior is not None and not post.spec.kinked and not post.spec.family.components:
            taus = args.prior_scale * np.logspace(-2, 2, 9)
            shrinkage = shrinkage_path(_frame(d), d.y, args.likelihood, taus, prior=prior,
                                       noise_scale=args.noise_scale, df=args.df,
                                       fit_intercept=fit_intercept)
        paths = save_figures(post, out, shrinkage)
        print(f"wrote {out / 'posterior_summary.csv'}, {out / 'posterior.nc'} and "
              f"{len(paths)} figures to {out}")
    return _health_code([post])


def _which_data(args):
    """which-loss's data, the number of trials (``--trials COLUMN``, left out of the
    features; a built-in set's own) and the kind of y: ``--kind``, else labels (an encoded
    text column, a built-in classification set) are classes or binary, else None (read from
    the values)."""
    if args.trials:
        if args.data is None or not is_table_path(args.data):
            raise ValueError("--trials names a column of a data file (--data PATH.csv or "
                             f"PATH.parquet); {args.data!r} is not one")
        if args.features and args.trials in args.features.split(","):
            raise ValueError(f"--trials {args.trials!r} is also listed in --features")
    d = _load(args, "laplace", default="synthetic-laplace", labels=True)
    kind = args.kind
    if kind is None and d.y.dtype.kind in "iu":  # the loaders hand labels as integers
        kind = "binary" if d.y.max() <= 1 else "classes"
    return d, d.inputs.get("trials"), kind


def _which_loss(args) -> int:
    from .families.support import KIND_TEXT
    from .studies import which_loss

    d, trials, kind = _which_data(args)
    out = which_loss(_frame(d), d.y, trials=trials, kind=kind, likelihoods=args.likelihood,
                     prior=args.prior, prior_scale=args.prior_scale, chains=args.chains,
                     warmup=args.warmup, draws=args.draws, seed=args.seed,
                     progress=False if args.quiet else None)
    print(f"data: {d.name}, n = {d.X.shape[0]}, d = {d.X.shape[1]}; y: {out.kind} "
          f"({KIND_TEXT[out.kind]})" + ("" if kind else ", read from its values"))
    shown = out.candidates.reset_index().assign(
        proposed=out.candidates["proposed"].map({True: "yes", False: "no"}).to_numpy())
    for column in ("family", "support", "reason"):  # text reads left-aligned
        shown[column] = shown[column].str.ljust(shown[column].str.len().max())
    print(shown.to_string(index=False, justify="left"))
    cols = ["rank", "elpd_loo", "p_loo", "elpd_diff", "se", "dse", "weight", "max_pareto_k",
            "n_bad_k"]
    print("\nranked by PSIS-LOO:" if len(out.proposed) > 1 else "\nscored by PSIS-LOO (one "
          "family proposed: nothing to rank):")
    print(out.comparison.table[cols].to_string(float_format=lambda v: f"{v:.3f}"))
    close = [n for n in out.comparison.table.index[1:]
             if not out.comparison.beaten_beyond_se(n, 2.0)]
    print(f"best: {out.best}" + (f" (within 2 SE of the difference: {', '.join(close)})"
                                 if close else ""))
    return _health_code(out.comparison.posteriors.values())


def _subcommand(sub, name: str, help: str, description: str):
    """A subcommand whose help ends with the exit codes (the epilog keeps its line breaks)."""
    return sub.add_parser(name, help=help, description=textwrap.fill(description, 88),
                          epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)


def _optimizer_args(parser) -> None:
    parser.add_argument("--optimizer", choices=["lbfgs", "adam"], default="lbfgs",
                        help="lbfgs: full-batch L-BFGS to a tight stopping rule (default); "
                        "adam: Pyro SVI's Adam, looser tolerances")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="minibatch size (adam only; default: full batch)")


# a Likelihood of your own is Python code (make(loc, scale)): no command line can carry it
LIKELIHOOD_HELP = ("the likelihood (the loss), a registered name; your own "
                   "bayesloss.Likelihood(name, make) is for the Python API")


def build_parser() -> argparse.ArgumentParser:
    """The ``bayesloss`` command line: every subcommand and option, each with help text, and
    the exit codes in the epilog (rendered by sphinx-argparse in the documentation)."""
    parser = argparse.ArgumentParser(
        prog="bayesloss",
        description=textwrap.fill("Everyday losses are negative log-likelihoods: fit the Pyro "
                                  "model, fit the classical loss, and check that they agree.",
                                  88),
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = _subcommand(sub, "check", "run the verification matrix (exit 1 if a row fails)",
                        "Fit every likelihood × estimator × prior with the Pyro model and with "
                        "a trusted solver, and compare parameters and objectives; or, with a "
                        "data file, one case on your data.")
    _optimizer_args(check)
    _data_args(
        check, "which cases: all, synthetic or real (default: all for lbfgs; synthetic for "
        "adam, which does not reach 1e-4 with a laplace prior on collinear real designs, "
        "breast_cancer and wine, within its default budget); a data file runs one case, "
        "ours against the reference, for one --family")
    check.add_argument("--family", action="append", choices=sorted(FAMILIES),
                       help="restrict to these families (repeatable); with a data file, the "
                       "one likelihood to check")
    _model_args(check, defaults=False)
    check.add_argument("--seed", type=int, default=0, help="seed of our fits (default 0)")
    check.add_argument("--json", action="store_true",
                       help="print the summary (the rows, with a data file) as JSON")
    check.add_argument("--out", metavar="DIR",
                       help="write check_rows.csv, check_summary.csv and check_summary.json "
                       "here")
    check.set_defaults(run=_check)

    f = _subcommand(sub, "fit", "fit one model on one data set and print its summary",
                    "Fit one likelihood (MLE, or MAP with --estimator map) by L-BFGS or Adam "
                    "and print the estimate, NLL, loss, convergence and standard errors.")
    f.add_argument("likelihood", choices=sorted(FAMILIES), help=LIKELIHOOD_HELP)
    _data_args(f, f"{BUILTIN} (default: synthetic data of the likelihood)")
    _formula_arg(f)
    _model_args(f)
    _optimizer_args(f)
    f.add_argument("--seed", type=int, default=0, help="seed of the fit (default 0)")
    f.add_argument("--reference", action="store_true", help="also print the reference fit")
    f.set_defaults(run=_fit)

    sw = _subcommand(sub, "sweep", "run a TOML-configured sweep into OUT (resumable), then "
                     "write its report",
                     "Run every run of a sweep config not yet stored in OUT/runs.sqlite, "
                     "export runs.csv (and runs.parquet where pyarrow is installed), then "
                     "write the report.")
    sw.add_argument("config", help="the sweep's TOML file (see scripts/configs/)")
    sw.add_argument("--out", required=True, help="output directory: runs.sqlite, the tables, "
                    "figures and report")
    sw.add_argument("--workers", type=int, default=1, help="worker processes (default 1: "
                    "in this process)")
    sw.add_argument("--backend", choices=["local", "dask"], default="local",
                    help="local processes, or a Dask LocalCluster of --workers processes "
                    "(needs the dask extra: pip install \"bayesloss[dask]\")")
    sw.add_argument("--scheduler", default=None, metavar="ADDRESS",
                    help="address of an existing Dask scheduler (tcp://host:port); implies "
                    "--backend dask")
    sw.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="override a config value with a TOML value, e.g. --set "
                    "'data.n=[20, 50]' (repeatable; the store records the result)")
    sw.add_argument("--retry-failed", action="store_true", help="run failed runs again")
    sw.add_argument("--no-report", action="store_true", help="skip the report")
    sw.add_argument("--quiet", action="store_true",
                    help="no progress bar (bars are shown only on a terminal anyway)")
    sw.set_defaults(run=_sweep)

    rep = _subcommand(sub, "report", "write OUT/report.md and OUT/report.html (tables and "
                      "PNG figures) from a sweep's store",
                      "Read OUT/runs.sqlite and write the report; fits nothing.")
    rep.add_argument("out", help="the sweep's output directory")
    rep.set_defaults(run=_report)

    p = _subcommand(sub, "posterior", "sample the posterior (NUTS) or its Laplace "
                    "approximation; write summary, InferenceData and figures",
                    "The posterior of likelihood + prior: NUTS draws (or the Laplace "
                    "approximation's), summarised beside the MLE and the MAP.")
    p.add_argument("likelihood", choices=sorted(FAMILIES), help=LIKELIHOOD_HELP)
    _data_args(p, f"{BUILTIN} (default: synthetic data of the likelihood)")
    _formula_arg(p)
    p.add_argument("--method", choices=["nuts", "laplace"], default="nuts",
                   help="nuts: Pyro NUTS draws (default); laplace: draws from the Gaussian "
                   "at the mode (smooth models only)")
    p.add_argument("--prior", choices=sorted(PRIORS) + ["flat"], default="normal",
                   help="prior on the weights (default normal); flat: the posterior whose "
                   "mode is the MLE")
    p.add_argument("--prior-scale", type=float, default=1.0,
                   help="the prior's scale τ (default 1)")
    _noise_args(p)
    _sampler_args(p)
    p.add_argument("--out", metavar="DIR",
                   help="write posterior_summary.csv, posterior.nc (InferenceData, "
                   "compressed) and PNG figures here")
    p.set_defaults(run=_posterior)

    w = _subcommand(sub, "which-loss", "propose the likelihoods (losses) that fit the kind "
                    "of y, and rank them by PSIS-LOO",
                    "Read the kind of y from its values (real, positive, counts, 0/1, classes, "
                    "proportions in (0, 1), angles; successes with --trials), propose every "
                    "registered likelihood whose support fits it, sample each posterior by "
                    "NUTS and rank them by PSIS-LOO expected log predictive density; a table "
                    "says why each likelihood was or was not considered.")
    _data_args(w, f"{BUILTIN} (default: synthetic-laplace)")
    w.add_argument("--kind", choices=SUPPORTS, default=None,
                   help="the kind of y, where its values cannot tell (integer amounts read as "
                   "counts, labels 0..K−1 of a numeric column as counts, angles bunched in half "
                   "the circle as real); default: read from the values, text labels and the "
                   "built-in classification sets as classes")
    w.add_argument("--likelihood", action="append", choices=sorted(FAMILIES),
                   help="rank this likelihood instead of the proposed ones, repeatable")
    w.add_argument("--prior", choices=sorted(PRIORS), default="normal",
                   help="the prior on every likelihood's weights (default normal)")
    w.add_argument("--prior-scale", type=float, default=1.0,
                   help="the prior's scale τ (default 1)")
    _sampler_args(w)
    w.set_defaults(run=_which_loss)
    return parser


def _warning_printer():
    """``warnings.showwarning`` for the command line: each warning as one line on stderr,
    without the source line Python prints under it, and each message once (posterior() and
    a later health check may raise the same one)."""
    seen = set()

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        text = f"bayesloss: warning: {category.__name__}: {message}"
        if text not in seen:
            seen.add(text)
            print(text, file=sys.stderr if file is None else file)

    return show


def main(argv=None) -> int:
    """Run the command line; returns the exit code (see :data:`EXIT_CODES`)."""
    args = build_parser().parse_args(argv)
    if getattr(args, "data", None) is None and args.command == "fit":
        args.data = f"synthetic-{args.likelihood}"
    with warnings.catch_warnings():  # restores the filters and showwarning on leaving
        warnings.simplefilter("always")  # every warning reaches the printer, which dedupes
        warnings.showwarning = _warning_printer()
        try:
            return args.run(args)
        except (ValueError, FileNotFoundError, MissingExtraError) as err:
            print(f"bayesloss: error: {err}", file=sys.stderr)
            return 2
        except DivergenceError as err:
            print(f"bayesloss: numerical failure: {err}", file=sys.stderr)
            return 3


if __name__ == "__main__":
    sys.exit(main())
