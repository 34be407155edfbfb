"""Posterior figures: sampler health, where MLE and MAP sit in the posterior, prior vs
posterior, predictive checks, a forest of estimates and the shrinkage path.

Each function reads a :class:`~bayesloss.posterior.Posterior` (or the tidy table of
:func:`~bayesloss.posterior.shrinkage_path`) and returns the axes it drew on; nothing here fits.
Parameters are labelled with the posterior's own names (:attr:`Posterior.names`), so the
figures say what the summaries say. ArviZ is reached only through :mod:`bayesloss.diagnostics`
(the one ArviZ import).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Patch
from scipy.stats import rankdata

from .. import diagnostics
from ..families.support import CONTINUOUS
from ..labels import parameter_label

MARKS = {"mle": ("MLE", "tab:red", "--"), "map": ("MAP (constrained space)", "tab:green", ":")}
HDI_PROB = 0.94
SITES = ("weight", "bias", "scale", "scale_weight", "scale_bias")  # the summary's order


def _parameters(post) -> list[tuple[str, str, tuple]]:
    """(label, site, index) for every scalar of the posterior, in summary order; weights and
    intercepts take the posterior's names (row-major for per-class weights), the learned extra
    parameter the family's name for it and a σ(x) head's ``a``, ``c`` theirs
    (:func:`~bayesloss.labels.parameter_label`: ``scale``, ``alpha``, ``log σ: age``,
    ``log σ: intercept``)."""
    coef_names = iter(post.names)
    out = []
    for site in SITES:
        if site not in post.idata.posterior:
            continue
        for idx in np.ndindex(*post.idata.posterior[site].shape[2:]):
            label = next(coef_names) if site in ("weight", "bias") \
                else parameter_label(site, idx, post.feature_names,
                                     scale_name=post.spec.family.scale_name)
            out.append((label, site, idx))
    return out


def _chains(post, site, idx) -> np.ndarray:
    """Draws of one scalar, (chain, draw)."""
    return post.idata.posterior[site].values[(slice(None), slice(None)) + idx]


def _point(fit, site, idx):
    if fit is None:
        return None
    return float(np.asarray(fit.params_[site])[idx])


def _grid(n, axes=None, cols=4, width=3.4, height=2.7):
    """``n`` axes: the caller's (flattened), or a constrained-layout grid (which keeps titles,
    tick labels and legends from overlapping) with the unused cells removed."""
    if axes is not None:
        return np.ravel(axes)
    cols = min(n, cols)
    rows = int(np.ceil(n / cols))
    fig, ax = plt.subplots(rows, cols, figsize=(width * cols, height * rows + 0.6),
                           squeeze=False, layout="constrained")
    for extra in ax.ravel()[n:]:
        extra.remove()
    for panel in ax.ravel()[:n]:
        panel.locator_params(axis="x", nbins=4)  # long tick labels (0.0015) need the room
    return ax.ravel()[:n]


def _legend(axes, handles=None, own_figure=True):
    """One legend for a grid: below the panels on a figure of ours, in the first panel on the
    caller's axes."""
    handles = handles or axes[0].get_legend_handles_labels()[0]
    if own_figure:
        axes[0].figure.legend(handles=handles, loc="outside lower center",
                              ncol=min(len(handles), 4), fontsize="small")
    else:
        axes[0].legend(handles=handles, fontsize="small")


def plot_trace(post, axes=None):
    """Trace plot: one row per parameter, its draws per chain (right) and each chain's
    histogram (left); chains that mix overlap on both.

    Parameters
    ----------
    post : Posterior
    axes : array of matplotlib Axes, shape (parameters, 2), optional
        Histograms in the first column, draws in the second.

    Returns
    -------
    numpy.ndarray of Axes, shape (parameters, 2)
    """
    params = _parameters(post)
    if axes is None:
        _, axes = plt.subplots(len(params), 2, figsize=(10, 1.9 * len(params) + 0.8),
                               squeeze=False, layout="constrained", width_ratios=(1, 2))
        axes[0, 0].figure.suptitle(f"Trace: {post.spec.label()}, {post.method}")
    axes = np.reshape(axes, (len(params), 2))
    for density in axes[:, 0]:
        density.locator_params(axis="x", nbins=4)
    # Laplace and variational draws are independent sets, not Markov chains after a warm-up
    sampled = post.method == "nuts"
    for (density, trace), (label, site, idx) in zip(axes, params):
        draws = _chains(post, site, idx)
        bins = np.histogram_bin_edges(draws, bins=30)
        for c, chain in enumerate(draws):
            density.hist(chain, bins=bins, density=True, histtype="step", color=f"C{c}")
            trace.plot(chain, color=f"C{c}", lw=0.6, alpha=0.8,
                       label=f"chain {c}" if sampled else f"set {c}")
        density.set_title(label, fontsize="medium")
        density.set_xlabel(label)
        density.set_ylabel("density")
        trace.set_title(f"{label}: draws", fontsize="medium")
        trace.set_xlabel("draw (after warm-up)" if sampled else "draw (independent)")
        trace.set_ylabel(label)
    if post.idata.posterior.sizes["chain"] > 1:
        axes[0, 1].legend(fontsize="small", ncol=post.idata.posterior.sizes["chain"],
                          loc="upper right")
    return axes


def plot_rank(post, axes=None, bins=20):
    """Rank plot: the draws of all chains ranked together, one histogram of ranks per chain;
    chains that sample the same distribution give flat histograms near the dashed line.

    Parameters
    ----------
    post : Posterior
    axes : array of matplotlib Axes, optional
        One per parameter.
    bins : int
        Rank bins.

    Returns
    -------
    numpy.ndarray of Axes, one per parameter
    """
    params = _parameters(post)
    own = axes is None
    axes = _grid(len(params), axes)
    for ax, (label, site, idx) in zip(axes, params):
        draws = _chains(post, site, idx)
        ranks = rankdata(draws, method="average").reshape(draws.shape)
        edges = np.linspace(0.5, draws.size + 0.5, bins + 1)
        for c, chain in enumerate(ranks):
            ax.hist(chain, bins=edges, histtype="step", color=f"C{c}", label=f"chain {c}")
        ax.axhline(draws.shape[1] / bins, color="black", ls="--", lw=1,
                   label="uniform (expected per bin)")
        ax.set_title(label, fontsize="medium")
        ax.set_xlabel("rank among all chains' draws")
        ax.set_ylabel("draws per bin")
    if own:
        axes[0].figure.suptitle(f"Rank plot: {post.spec.label()}")
    if len(params):
        _legend(axes, own_figure=own)
    return axes


def plot_posterior(post, axes=None, hdi_prob=HDI_PROB):
    """Posterior of every parameter (histogram of the draws) with its mean and HDI, and the
    MLE and MAP marked (the MAP is AutoDelta's mode in the constrained space).

    Parameters
    ----------
    post : Posterior
    axes : array of matplotlib Axes, optional
        One per parameter.
    hdi_prob : float
        Probability of the highest-density interval (ArviZ's, drawn as a bar on the axis).

    Returns
    -------
    numpy.ndarray of Axes, one per parameter
    """
    params = _parameters(post)
    own = axes is None
    axes = _grid(len(params), axes)
    for ax, (label, site, idx) in zip(axes, params):
        draws = _chains(post, site, idx).ravel()
        lo, hi = diagnostics.hdi(draws[:, None], hdi_prob)[0]
        ax.hist(draws, bins=40, density=True, color="tab:blue", alpha=0.45, label="posterior")
        ax.plot([lo, hi], [0, 0], color="black", lw=5, solid_capstyle="butt",
                label=f"{hdi_prob:.0%} HDI", clip_on=False)
        ax.axvline(draws.mean(), color="tab:blue", lw=1.2, label="posterior mean")
        for key, fit in (("mle", post.mle), ("map", post.map)):
            value = _point(fit, site, idx)
            if value is not None:
                name, color, style = MARKS[key]
                ax.axvline(value, color=color, linestyle=style, lw=1.5, label=name)
        ax.set_title(label, fontsize="medium")
        ax.set_xlabel(f"mean {draws.mean():.4g}; {hdi_prob:.0%} HDI [{lo:.4g}, {hi:.4g}]",
                      fontsize="small")
        ax.set_ylabel("density")
    if own:
        axes[0].figure.suptitle(f"Posterior: {post.spec.label()}, {post.method}")
    if len(params):
        _legend(axes, own_figure=own)
    return axes


def plot_prior_posterior(post, axes=None):
    """Each weight's posterior (histogram) against its prior, zoomed on the posterior.

    Priors are usually far wider than posteriors (a prior of scale 1 on a coefficient of an
    unscaled feature), so one axis cannot show both: each panel spans the posterior (and the
    prior's ±2τ range when that is at most ten times wider), draws the prior's density over
    that span on its own axis (right) and shades the prior's ±2τ range. Flat priors say so in
    the title.

    Parameters
    ----------
    post : Posterior
    axes : array of matplotlib Axes, optional
        One per weight.

    Returns
    -------
    numpy.ndarray of Axes, one per weight (the prior's right-hand axes are their twins)
    """
    spec = post.spec
    params = [p for p in _parameters(post) if p[1] == "weight"]
    own = axes is None
    axes = _grid(len(params), axes)
    prior, tau = None, spec.prior_scale
    if spec.is_map:
        prior = spec.prior_spec.distribution(torch.tensor(tau, dtype=torch.float64),
                                             spec.effective_prior_df, 0.0)
    handles = []
    for ax, (label, site, idx) in zip(axes, params):
        draws = _chains(post, site, idx).ravel()
        lo, hi = np.percentile(draws, [0.5, 99.5])
        pad = 0.1 * (hi - lo)
        view = [lo - pad, hi + pad]
        ax.hist(draws, bins=40, density=True, color="tab:blue", alpha=0.5, label="posterior")
        ax.set_ylabel("posterior density")
        ax.set_xlabel(label)
        ax.set_title(label + ("" if prior is not None else " (flat prior)"), fontsize="medium")
        if prior is not None:
            if 4 * tau <= 10 * (view[1] - view[0]):
                view = [min(view[0], -2.2 * tau), max(view[1], 2.2 * tau)]
            ax.axvspan(-2 * tau, 2 * tau, color="tab:orange", alpha=0.12,
                       label=f"prior ±2τ = [{-2 * tau:.3g}, {2 * tau:.3g}]")
            twin = ax.twinx()
            grid = np.linspace(*view, 300)
            twin.plot(grid, prior.log_prob(torch.as_tensor(grid)).exp().numpy(),
                      color="tab:orange", label=f"prior {spec.prior}(τ = {tau:g}) density")
            twin.set_ylim(0, 1.15 * twin.get_ylim()[1])
            twin.set_ylabel("prior density", color="tab:orange")
        ax.set_xlim(view)
        if not handles:
            handles = ax.get_legend_handles_labels()[0] + (
                twin.get_legend_handles_labels()[0] if prior is not None else [])
    if own:
        axes[0].figure.suptitle(f"Prior vs posterior of each weight: {spec.label()}")
    if params:
        _legend(axes, handles, own_figure=own)
    return axes


def plot_ppc(post, ax=None, prob=0.9):
    """Posterior predictive check: the observed ``y`` against data sets replicated from the
    posterior.

    Counts and classes are drawn as bars (a density of integers is a comb): the observed share
    of rows at each value, and the median and central ``prob`` interval of that share over the
    replicated data sets. Continuous targets get ArviZ's densities.

    Parameters
    ----------
    post : Posterior
    ax : matplotlib Axes, optional
    prob : float
        Probability of the replicated shares' interval (discrete targets).

    Returns
    -------
    matplotlib Axes
    """
    if post.spec.family.support in CONTINUOUS:  # a density (not: the fit standardises y)
        ax = diagnostics.plot_ppc(post.idata, axes=ax)
        ax.set_xlabel("y")
        ax.set_ylabel("density")
    else:
        if ax is None:
            _, ax = plt.subplots(figsize=(6.5, 4), layout="constrained")
        observed = np.asarray(post.idata.observed_data["obs"].values).astype(int)
        replicated = np.asarray(post.idata.posterior_predictive["obs"].values)
        replicated = replicated.reshape(-1, replicated.shape[-1]).astype(int)
        top = int(max(observed.max(), np.percentile(replicated, 99.5)))
        values = np.arange(top + 1)
        # replicated values above ``top`` (under 0.5 % of them) fall outside the axis
        shares = np.stack([np.bincount(r, minlength=top + 1)[:top + 1] for r in
                           replicated]) / observed.size
        ax.bar(values, np.bincount(observed, minlength=top + 1) / observed.size, width=0.8,
               color="tab:blue", alpha=0.5, label="observed")
        middle = np.median(shares, axis=0)
        low, high = np.quantile(shares, [(1 - prob) / 2, (1 + prob) / 2], axis=0)
        ax.errorbar(values, middle, yerr=[middle - low, high - middle], fmt="o", ms=4,
                    color="black", capsize=3,
                    label=f"replicated: median and {prob:.0%} interval "
                          f"({len(replicated)} draws)")
        kind = "class" if post.spec.family.multiclass or post.spec.likelihood == "bernoulli" \
            else "count"
        ax.set_xlabel(f"y ({kind})")
        ax.set_ylabel("share of rows")
        if top <= 30:
            ax.set_xticks(values)
        ax.legend(fontsize="small")
    ax.set_title(f"Posterior predictive check: {post.spec.label()}")
    return ax


def plot_pair(post, var_names=None, axes=None):
    """Pair plot (ArviZ): draws of each pair of sites, divergent transitions marked.

    Parameters
    ----------
    post : Posterior
    var_names : list of str, optional
        Sites to pair (``weight``, ``bias``, ``scale``, ``scale_weight``, ``scale_bias``);
        all by default.
    axes : array of matplotlib Axes, optional

    Returns
    -------
    numpy.ndarray of Axes
    """
    axes = diagnostics.plot_pair(post.idata, var_names=var_names, axes=axes)
    np.ravel(axes)[0].figure.suptitle(f"Pair plot: {post.spec.label()} "
                                      "(divergent transitions marked)")
    return axes


def plot_forest(post, ax=None, hdi_prob=HDI_PROB):
    """Per coefficient: MLE ± 2 SE (Laplace at the MLE), the MAP, and the posterior mean with
    its HDI; one row each, labelled with the posterior's names.

    Parameters
    ----------
    post : Posterior
    ax : matplotlib Axes, optional
    hdi_prob : float
        Probability of the posterior's highest-density interval.

    Returns
    -------
    matplotlib Axes
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 0.45 * len(post.names) + 1.6), layout="constrained")
    rows = np.arange(len(post.names))[::-1]
    flat = np.column_stack([
        post.idata.posterior[s].values.reshape(-1, int(np.prod(post.idata.posterior[s].shape[2:])))
        for s in ("weight", "bias") if s in post.idata.posterior])
    interval = diagnostics.hdi(flat, hdi_prob)
    ax.hlines(rows, interval[:, 0], interval[:, 1], color="tab:blue", lw=3,
              label=f"posterior {hdi_prob:.0%} HDI")
    ax.plot(flat.mean(0), rows, "o", color="tab:blue", label="posterior mean")
    if post.mle is not None:
        mle = np.r_[np.ravel(post.mle.coef_), np.ravel(post.mle.intercept_)][:len(rows)]
        se = post.mle.standard_errors()[:len(rows)]
        ax.errorbar(mle, rows + 0.2, xerr=2 * se, fmt="s", color="tab:red", ms=4,
                    label="MLE ± 2 SE")
    if post.map is not None:
        mp = np.r_[np.ravel(post.map.coef_), np.ravel(post.map.intercept_)][:len(rows)]
        ax.plot(mp, rows - 0.2, "D", color="tab:green", ms=4, label="MAP (constrained)")
    ax.set_yticks(rows)
    ax.set_yticklabels(post.names, fontsize="small")
    ax.axvline(0, color="grey", lw=0.5)
    ax.set_xlabel("coefficient value")
    ax.set_title(f"Estimates per coefficient: {post.spec.label()}")
    # beside the axes: intervals may span the whole width, where a legend inside would hide one
    ax.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.02, 0.5))
    return ax


def plot_shrinkage(table, ax=None):
    """MAP and posterior interval of each coefficient against the prior scale τ (log axis),
    from :func:`bayesloss.posterior.shrinkage_path`'s table.

    Parameters
    ----------
    table : pandas.DataFrame
        Columns ``prior_scale``, ``parameter``, ``map``, ``lower``, ``upper``.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 4.5), layout="constrained")
    handles = []
    for i, (name, rows) in enumerate(table.groupby("parameter", sort=False)):
        color = f"C{i % 10}"
        handles += ax.plot(rows["prior_scale"], rows["map"], color=color, label=name)
        ax.fill_between(rows["prior_scale"], rows["lower"], rows["upper"], color=color,
                        alpha=0.15)
    handles.append(Patch(color="grey", alpha=0.3,
                         label="band: central posterior interval (Laplace)"))
    ax.set_xscale("log")
    ax.set_xlabel("prior scale τ")
    ax.set_ylabel("coefficient (line: MAP)")
    ax.set_title("Shrinkage: each coefficient against the prior scale")
    ax.axhline(0, color="grey", lw=0.5)
    ax.legend(handles=handles, fontsize="x-small", ncol=2)
    return ax


def save_figures(post, directory, shrinkage=None) -> list:
    """Draw every posterior figure of ``post`` (and the shrinkage path when its table is
    given) into ``directory`` as PNG; returns the paths written."""
    from pathlib import Path

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    figures = {
        "trace": lambda: plot_trace(post), "rank": lambda: plot_rank(post),
        "posterior": lambda: plot_posterior(post),
        "prior_posterior": lambda: plot_prior_posterior(post),
        "pair": lambda: plot_pair(post), "ppc": lambda: plot_ppc(post),
        "forest": lambda: plot_forest(post),
    }
    if shrinkage is not None:
        figures["shrinkage"] = lambda: plot_shrinkage(shrinkage)
    paths = []
    for name, draw in figures.items():
        fig = np.ravel(draw())[0].figure
        path = directory / f"{name}.png"
        fig.savefig(path, dpi=90, bbox_inches="tight")
        plt.close(fig)
        paths.append(path)
    return paths
