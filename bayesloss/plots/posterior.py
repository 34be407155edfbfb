"""Posterior figures: sampler health, where MLE and MAP sit in the posterior, prior vs
posterior, predictive checks, a forest of estimates and the shrinkage path.

Each function reads a :class:`~bayesloss.posterior.Posterior` (or the tidy table of
:func:`~bayesloss.posterior.shrinkage_path`) and returns the figure's axes; nothing here fits.
ArviZ's own plots are called through :mod:`bayesloss.diagnostics` (the one ArviZ import).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from .. import diagnostics

MARKS = {"mle": ("MLE", "tab:red", "--"), "map": ("MAP (constrained space)", "tab:green", ":")}


def _scalar_names(post) -> list[tuple[str, str, tuple]]:
    """(label, site, index) for every scalar of the posterior, in summary order."""
    out = []
    for site in ("weight", "bias", "scale"):
        if site not in post.idata.posterior:
            continue
        shape = post.idata.posterior[site].shape[2:]
        for idx in np.ndindex(*shape):
            if site == "weight":
                name = post.feature_names[idx[0]]
                label = f"weight[{name}" + (f", {idx[1]}]" if len(idx) > 1 else "]")
            else:
                label = site + (f"[{idx[0]}]" if idx else "")
            out.append((label, site, idx))
    return out


def _point(fit, site, idx):
    if fit is None:
        return None
    value = {"weight": fit.coef_, "bias": fit.intercept_, "scale": fit.scale_}[site]
    return float(np.asarray(value)[idx]) if idx else float(np.asarray(value))


def _grid(n, axes=None, width=3.2, height=2.4):
    if axes is not None:
        return np.ravel(axes)
    cols = min(n, 4)
    rows = int(np.ceil(n / cols))
    fig, ax = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for extra in ax.ravel()[n:]:
        extra.remove()
    return ax.ravel()[:n]


def plot_trace(post, var_names=None, axes=None):
    """Trace plot (ArviZ): densities and draws per chain, one row per site."""
    return diagnostics.plot_trace(post.idata, var_names=var_names, axes=axes)


def plot_rank(post, var_names=None, axes=None):
    """Rank plot (ArviZ): uniform ranks across chains mean the chains mix."""
    return diagnostics.plot_rank(post.idata, var_names=var_names, axes=axes)


def plot_pair(post, var_names=None, axes=None):
    """Pair plot (ArviZ) with divergent transitions marked."""
    return diagnostics.plot_pair(post.idata, var_names=var_names, axes=axes)


def plot_ppc(post, ax=None):
    """Posterior predictive check (ArviZ): replicated data sets against the observed ``y``."""
    return diagnostics.plot_ppc(post.idata, axes=ax)


def plot_posterior(post, axes=None):
    """Posterior density of every scalar with its mean and 94 % HDI (ArviZ), and the MLE and
    MAP marked (the MAP is AutoDelta's mode in the constrained space)."""
    names = _scalar_names(post)
    axes = _grid(len(names), axes)
    for ax, (label, site, idx) in zip(axes, names):
        draws = post.idata.posterior[site].values[(slice(None), slice(None)) + idx]
        diagnostics.plot_posterior({label: draws}, axes=ax)
        for key, fit in (("mle", post.mle), ("map", post.map)):
            value = _point(fit, site, idx)
            if value is not None:
                name, color, style = MARKS[key]
                ax.axvline(value, color=color, linestyle=style, label=name)
    if names:
        axes[0].legend(fontsize="small")
    return axes


def plot_prior_posterior(post, axes=None):
    """Each weight's posterior (histogram) against its prior density (line; flat priors say
    so in the title)."""
    spec = post.spec
    names = [n for n in _scalar_names(post) if n[1] == "weight"]
    axes = _grid(len(names), axes)
    prior = None
    if spec.is_map:
        prior = spec.prior_spec.distribution(torch.tensor(spec.prior_scale, dtype=torch.float64),
                                             spec.effective_prior_df, 0.0)
    for ax, (label, site, idx) in zip(axes, names):
        draws = post.idata.posterior[site].values[(slice(None), slice(None)) + idx].ravel()
        ax.hist(draws, bins=40, density=True, alpha=0.5, color="tab:blue", label="posterior")
        if prior is not None:
            lo, hi = np.percentile(draws, [0.5, 99.5])
            width = max(hi - lo, 3 * spec.prior_scale)
            grid = np.linspace(min(lo, -width / 2), max(hi, width / 2), 400)
            density = prior.log_prob(torch.as_tensor(grid)).exp().numpy()
            ax.plot(grid, density, color="tab:orange", label=f"prior {spec.prior}")
        ax.set_title(label + ("" if prior is not None else " (flat prior)"), fontsize="small")
    if names:
        axes[0].legend(fontsize="small")
    return axes


def plot_forest(post, ax=None, hdi_prob=0.94):
    """Per coefficient: MLE ± 2 SE (Laplace at the MLE), the MAP, and the posterior mean with
    its HDI; one row each."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 0.45 * len(post.names) + 1.2))
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
    ax.legend(fontsize="small")
    return ax


def plot_shrinkage(table, ax=None):
    """MAP and posterior interval of each coefficient against the prior scale τ (log axis),
    from :func:`bayesloss.posterior.shrinkage_path`'s table."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    for i, (name, rows) in enumerate(table.groupby("parameter", sort=False)):
        color = f"C{i % 10}"
        ax.plot(rows["prior_scale"], rows["map"], color=color, label=name)
        ax.fill_between(rows["prior_scale"], rows["lower"], rows["upper"], color=color,
                        alpha=0.15)
    ax.set_xscale("log")
    ax.set_xlabel("prior scale τ")
    ax.set_ylabel("coefficient (MAP, band: posterior interval)")
    ax.axhline(0, color="grey", lw=0.5)
    ax.legend(fontsize="x-small", ncol=2)
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
