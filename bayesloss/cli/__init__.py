"""Command line: ``bayesloss check`` (the verification matrix), ``bayesloss fit``,
``bayesloss sweep`` (a TOML-configured experiment), ``bayesloss report``,
``bayesloss posterior``, ``bayesloss approximations`` and ``bayesloss which-loss``.

A thin layer over the package: it parses arguments, calls :mod:`bayesloss.check` or
:func:`bayesloss.fit` / :func:`bayesloss.reference_fit`, and prints. ``--data`` names a
built-in data set or a file of your own (``--data PATH.csv|.parquet --target COLUMN
[--features a,b,c]``, read by :mod:`bayesloss.io`).

Output is for people: progress bars only on a terminal, warnings as one line each (once), and
the exit codes of :data:`EXIT_CODES`. The subcommands that fit and check live here, the
posterior ones in :mod:`bayesloss.cli.posterior`, what they share in :mod:`bayesloss.cli.common`.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
import warnings
from pathlib import Path

import pandas as pd

from .. import __version__
from ..console import interactive
from ..families import FAMILIES
from ..inference import DivergenceError
from ..io import is_table_path
from ..optional import MissingExtraError
from ..priors import PRIORS
from .common import (
    BUILTIN, EPILOG, EXIT_CODES, LIKELIHOOD_HELP, MATRICES, _data_args, _design, _formula_arg,
    _frame, _load, _noise_args, _subcommand,
)
from .posterior import add_posterior_parsers

__all__ = ["EXIT_CODES", "build_parser", "main"]

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
    from ..compare import compare, summarize

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
    from ..check import default_cases, real_cases, run_check, synthetic_cases

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
    from ..inference import fit
    from ..references import reference_fit

    model = _model_kwargs(args)
    d, model["fit_intercept"] = _design(args)
    X = _frame(d)
    ours = fit(X, d.y, args.likelihood, optimizer=args.optimizer, batch_size=args.batch_size,
               seed=args.seed, progress=interactive(), **model, **d.inputs)
    print(f"data: {d.name} ({d.source.split(';')[0]}), n = {d.X.shape[0]}, d = {d.X.shape[1]}")
    print(ours.summary())
    if args.reference:
        print()
        print(reference_fit(X, d.y, args.likelihood, **model, **d.inputs).summary())
    return 0 if ours.converged else 1


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


def _sweep(args) -> int:
    from ..experiments import load_config, run_sweep

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
    from ..experiments.report import write_report

    paths = write_report(args.out)
    print("report: " + ", ".join(str(p) for p in paths))
    return 0


def _optimizer_args(parser) -> None:
    parser.add_argument("--optimizer", choices=["lbfgs", "adam"], default="lbfgs",
                        help="lbfgs: full-batch L-BFGS to a tight stopping rule (default); "
                        "adam: Pyro SVI's Adam, looser tolerances")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="minibatch size (adam only; default: full batch)")


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

    add_posterior_parsers(sub)
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
