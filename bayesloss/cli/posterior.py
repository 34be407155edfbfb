"""The posterior subcommands: ``posterior`` (NUTS, Laplace or a variational guide),
``approximations`` (one model by every method against a reference) and ``which-loss`` (the
likelihoods the kind of y admits, ranked by PSIS-LOO)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..approximations import DEFAULT_METHODS, LADDER, REFERENCES
from ..families import FAMILIES, SUPPORTS
from ..io import is_table_path
from ..priors import PRIORS
from ..variational import GUIDES
from .common import (
    BUILTIN, LIKELIHOOD_HELP, _data_args, _design, _formula_arg, _frame, _health_code, _load,
    _noise_args, _sampler_args, _subcommand,
)


def _posterior(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from .. import diagnostics
    from ..plots.posterior import save_figures
    from ..posterior import posterior, shrinkage_path

    d, fit_intercept = _design(args)  # before anything is written to --out
    prior = None if args.prior == "flat" else args.prior
    post = posterior(_frame(d), d.y, args.likelihood, prior=prior, prior_scale=args.prior_scale,
                     fit_intercept=fit_intercept,
                     noise_scale=args.noise_scale, df=args.df, components=args.components,
                     method=args.method, guide=args.guide, chains=args.chains,
                     warmup=args.warmup, draws=args.draws, seed=args.seed,
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
    if args.method == "vi":
        print(f"guide {args.guide}: {post.info['steps']} SVI steps (plateau "
              f"{'reached' if post.info['converged'] else 'not reached'}), final ELBO "
              f"{post.info['elbo'][-1]:.2f}, Pareto k̂ {post.info['khat']:.2f}")
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
                                       fit_intercept=fit_intercept, **d.inputs)
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


def _approximations(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..approximations import approximations
    from ..plots import plot_approximations

    d, fit_intercept = _design(args)  # before anything is written to --out
    methods = [m.strip() for m in args.methods.split(",")] if args.methods else None
    table = approximations(
        _frame(d), d.y, args.likelihood, **({"methods": methods} if methods else {}),
        reference=args.reference, prior=None if args.prior == "flat" else args.prior,
        prior_scale=args.prior_scale, noise_scale=args.noise_scale, df=args.df,
        components=args.components, **d.inputs,
        fit_intercept=fit_intercept, chains=args.chains, warmup=args.warmup,
        draws=args.draws, seed=args.seed, progress=False if args.quiet else None)
    print(f"data: {d.name}, n = {d.X.shape[0]}, d = {d.X.shape[1]};  reference: "
          f"{args.reference}")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print("mean_error_sd: (mean − reference mean) / reference sd;  sd_ratio: sd / reference "
          "sd;  map's sd: its Laplace standard error")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        table.to_csv(out / "approximations.csv", index=False)
        fig = plot_approximations(table)[0].figure
        fig.savefig(out / "approximations.png", dpi=90, bbox_inches="tight")
        plt.close(fig)
        print(f"wrote {out / 'approximations.csv'} and {out / 'approximations.png'}")
    # a method that fails is what the table shows: only the reference sampler's health counts
    return _health_code(p for p in table.posteriors.values()
                        if getattr(p, "method", None) == "nuts")


def _which_loss(args) -> int:
    from ..families.support import KIND_TEXT
    from ..studies import which_loss

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


def _approximations_parser(sub) -> None:
    """``bayesloss approximations``: the same model by each method, against a reference."""
    a = _subcommand(sub, "approximations", "one posterior by every approximation, from the "
                    "point fit to NUTS, against a reference",
                    "Fit one model by the point fit (MAP), the Laplace approximation, "
                    "variational guides and NUTS, and tabulate each parameter's mean and sd "
                    "against NUTS or the exact conjugate posterior, with each method's time.")
    a.add_argument("likelihood", choices=sorted(FAMILIES), help=LIKELIHOOD_HELP)
    _data_args(a, f"{BUILTIN} (default: synthetic data of the likelihood)")
    _formula_arg(a)
    a.add_argument("--methods", default=None, metavar="M1,M2,...",
                   help="comma-separated methods among " + ", ".join(LADDER)
                   + " (default: " + ",".join(DEFAULT_METHODS) + ")")
    a.add_argument("--reference", choices=list(REFERENCES), default="nuts",
                   help="nuts (default), or exact: the closed-form posterior of a gaussian "
                   "likelihood with --noise-scale and a normal or flat prior")
    a.add_argument("--prior", choices=sorted(PRIORS) + ["flat"], default="normal",
                   help="prior on the weights (default normal); flat: the posterior whose "
                   "mode is the MLE")
    a.add_argument("--prior-scale", type=float, default=1.0,
                   help="the prior's scale τ (default 1)")
    _noise_args(a)
    _sampler_args(a)
    a.add_argument("--out", metavar="DIR",
                   help="write approximations.csv and approximations.png here")
    a.set_defaults(run=_approximations)


def add_posterior_parsers(sub) -> None:
    """The ``posterior``, ``approximations`` and ``which-loss`` subcommands."""
    p = _subcommand(sub, "posterior", "sample the posterior (NUTS), its Laplace or a "
                    "variational approximation; write summary, InferenceData and figures",
                    "The posterior of likelihood + prior: NUTS draws (or the Laplace "
                    "approximation's, or a fitted guide's), summarised beside the MLE and the "
                    "MAP.")
    p.add_argument("likelihood", choices=sorted(FAMILIES), help=LIKELIHOOD_HELP)
    _data_args(p, f"{BUILTIN} (default: synthetic data of the likelihood)")
    _formula_arg(p)
    p.add_argument("--method", choices=["nuts", "laplace", "vi"], default="nuts",
                   help="nuts: Pyro NUTS draws (default); laplace: draws from the Gaussian "
                   "at the mode (smooth models only); vi: draws from a Pyro autoguide fitted "
                   "by SVI (see --guide)")
    p.add_argument("--guide", choices=list(GUIDES), default="diagonal",
                   help="the guide of --method vi: diagonal (mean-field Gaussian, default), "
                   "mvn (full-rank Gaussian), lowrank, flow (inverse autoregressive flow)")
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

    _approximations_parser(sub)

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
