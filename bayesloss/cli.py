"""Command line: ``bayesloss check`` (the verification matrix) and ``bayesloss fit``.

A thin layer over the package: it parses arguments, calls :mod:`bayesloss.check` or
:func:`bayesloss.fit` / :func:`bayesloss.reference_fit`, and prints.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from .families import FAMILIES
from .priors import PRIORS


def _format_summary(summary: pd.DataFrame) -> str:
    shown = summary.assign(
        max_rel_err=summary["max_rel_err"].map(lambda v: "—" if pd.isna(v) else f"{v:.1e}"),
        objective_gap=summary["objective_gap"].map(lambda v: f"{v:+.1e}"),
        tolerance=[
            f"{o:.0e}" if pd.isna(p) else f"{p:.0e} / {o:.0e}"
            for p, o in zip(summary["param_tol"], summary["objective_tol"])
        ],
        passed=summary["passed"].map({True: "PASS", False: "FAIL"}),
    )
    cols = ["family", "estimator", "prior", "scale", "data", "max_rel_err", "objective_gap",
            "tolerance", "converged", "passed"]
    return shown[cols].to_string(index=False)


def _check(args) -> int:
    from .check import default_cases, real_cases, run_check, synthetic_cases

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
    from .check import dataset
    from .inference import fit
    from .references import reference_fit

    d = dataset(args.data)
    model = dict(estimator=args.estimator, prior=args.prior, prior_scale=args.prior_scale,
                 noise_scale=args.noise_scale, df=args.df)
    ours = fit(d.X, d.y, args.likelihood, optimizer=args.optimizer, batch_size=args.batch_size,
               seed=args.seed, progress=args.optimizer == "adam", **model)
    print(f"data: {d.name} ({d.source.split(';')[0]}), n = {d.X.shape[0]}, d = {d.X.shape[1]}")
    print(ours.summary())
    if args.reference:
        print()
        print(reference_fit(d.X, d.y, args.likelihood, **model).summary())
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
    check.add_argument(
        "--data", choices=["all", "synthetic", "real"], default=None,
        help="which cases (default: all for lbfgs; synthetic for adam, which does not reach "
        "1e-4 with a laplace prior on collinear real designs, breast_cancer and wine, within "
        "its default budget)")
    check.add_argument("--family", action="append", choices=sorted(FAMILIES),
                       help="restrict to these families (repeatable)")
    check.add_argument("--seed", type=int, default=0)
    check.add_argument("--json", action="store_true", help="print the rows as JSON")
    check.add_argument("--out", help="write check_rows.csv, check_summary.csv/.json here")
    check.set_defaults(run=_check)

    f = sub.add_parser("fit", help="fit one model on one data set and print its summary")
    f.add_argument("likelihood", choices=sorted(FAMILIES))
    f.add_argument("--data", default=None,
                   help="diabetes, breast_cancer, iris, wine, longley, cpunish, randhie, or "
                   "synthetic-<family> (default: synthetic data of the likelihood)")
    f.add_argument("--estimator", choices=["mle", "map"], default="mle")
    f.add_argument("--prior", choices=sorted(PRIORS), default="normal")
    f.add_argument("--prior-scale", type=float, default=1.0)
    f.add_argument("--noise-scale", type=float, default=None)
    f.add_argument("--df", type=float, default=4.0)
    f.add_argument("--optimizer", choices=["lbfgs", "adam"], default="lbfgs")
    f.add_argument("--batch-size", type=int, default=None)
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--reference", action="store_true", help="also print the reference fit")
    f.set_defaults(run=_fit)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "data", None) is None and args.command == "fit":
        args.data = f"synthetic-{args.likelihood}"
    try:
        return args.run(args)
    except ValueError as err:
        print(f"bayesloss: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
