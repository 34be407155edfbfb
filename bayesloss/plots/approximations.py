"""The approximations of one posterior side by side: each method's marginal per parameter, and
what each costs against how wrong it is.

Reads the table of :func:`bayesloss.approximations` (and, where it kept them, each method's
draws); nothing here fits.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.ticker import NullFormatter
from scipy.stats import gaussian_kde, norm

from .posterior import _chains, _grid, _legend, _parameters

#: one colour per method, the same in every panel
COLORS = {"map": "black", "laplace": "tab:blue", "vi-diagonal": "tab:orange",
          "vi-mvn": "tab:green", "vi-lowrank": "tab:olive", "vi-flow": "tab:purple",
          "nuts": "tab:red", "exact": "tab:gray"}
GRID_POINTS = 200
#: errors below this are drawn at it: exact to the solvers' precision (1e-15 would squeeze
#: every other method into one corner of a log axis)
ERROR_FLOOR = 1e-4


def _marginal(result, parameter):
    """(site, draws pooled over chains) of ``parameter`` in a Posterior; (None, None) for a
    point fit."""
    if not hasattr(result, "idata"):
        return None, None
    for label, site, idx in _parameters(result):
        if label == parameter:
            return site, _chains(result, site, idx).ravel()
    raise KeyError(f"{parameter!r} is not a parameter of {result!r}")


def _overlay(ax, rows, posteriors, reference):
    """One parameter's panel: a KDE of each method's draws (a Gaussian with the table's mean
    and sd where it kept none), the exact densities of the reference and of the Laplace
    approximation's coefficients (Gaussian; its learned scale is log-normal: drawn from its
    draws), the point fit's value."""
    ref = rows[rows["method"] == reference].iloc[0]
    lo, hi = ref["mean"] - 4.5 * ref["sd"], ref["mean"] + 4.5 * ref["sd"]
    grid = np.linspace(lo, hi, GRID_POINTS)
    for _, row in rows.iterrows():
        method, color = row["method"], COLORS.get(row["method"], "tab:brown")
        style = dict(color=color, lw=2.2 if method == reference else 1.4, label=method)
        if method == "map":
            ax.axvline(row["mean"], ls=":", **style)
            continue
        site, draws = (_marginal(posteriors[method], row["parameter"]) if method in posteriors
                       else (None, None))
        gaussian = method == "exact" or (method == "laplace" and site not in (None, "scale"))
        if draws is not None and not gaussian:
            ax.plot(grid, gaussian_kde(draws)(grid), **style)
        else:  # Gaussian indeed (exact; Laplace's coefficients), or a table read from a file
            ax.plot(grid, norm.pdf(grid, row["mean"], row["sd"]), ls="-" if gaussian else "--",
                    **style)
    ax.set_title(str(ref["parameter"]), fontsize="medium")
    ax.set_xlabel(str(ref["parameter"]))
    ax.set_ylabel("density")
    ax.set_ylim(bottom=0)


def _whole_decades(axis, values):
    """Limits at the powers of ten around ``values``, labelled there only: a log axis that
    spans less than a decade labels its minor ticks, which then overlap."""
    if not len(values):
        return
    # a value on a power of ten gets the next one beyond it: no marker half outside
    lo = np.floor(np.log10(values.min()) - 1e-9)
    hi = np.ceil(np.log10(values.max()) + 1e-9)
    limits = (10.0**lo, 10.0 ** max(hi, lo + 1))
    (axis.axes.set_xlim if axis is axis.axes.xaxis else axis.axes.set_ylim)(limits)
    axis.set_minor_formatter(NullFormatter())


def _cost(ax, table, reference):
    """Largest |mean error| and |sd ratio − 1| over the parameters against seconds, per
    method (log-log, floored at :data:`ERROR_FLOOR`; the reference left out)."""
    worst = table[table["method"] != reference].groupby("method", sort=False).agg(
        seconds=("seconds", "first"),
        mean_error=("mean_error_sd", lambda v: np.max(np.abs(v))),
        sd_error=("sd_ratio", lambda v: np.max(np.abs(v - 1))))
    for method, row in worst.iterrows():
        color = COLORS.get(method, "tab:brown")
        for column, marker in (("mean_error", "o"), ("sd_error", "s")):
            if np.isfinite(row[column]):
                ax.plot(row["seconds"], max(row[column], ERROR_FLOOR), marker, color=color,
                        ms=7, mfc=color if marker == "o" else "none")
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis, values in ((ax.xaxis, worst["seconds"]),
                         (ax.yaxis, np.r_[worst["mean_error"], worst["sd_error"]])):
        _whole_decades(axis, np.maximum(values[np.isfinite(values)], ERROR_FLOOR))
    ax.set_title(f"error vs time (reference: {reference})", fontsize="medium")
    ax.set_xlabel("seconds")
    ax.set_ylabel("worst error (reference sds)")
    ax.legend(handles=[Line2D([], [], marker="o", ls="", color="0.3", label="|mean error|"),
                       Line2D([], [], marker="s", ls="", color="0.3", mfc="none",
                              label="|sd ratio − 1|")],
              fontsize="small")


def plot_approximations(table, parameters=None, axes=None):
    """Each approximation of one posterior, overlaid: one panel per parameter with every
    method's marginal, and a last panel of each method's worst error against its time.

    Parameters
    ----------
    table : DataFrame
        :func:`bayesloss.approximations`'s table. Its ``posteriors`` give each method's draws
        (drawn as a KDE); a plain table (read back from a CSV) draws each method as the
        Gaussian of its mean and sd (dashed). The point fit (``map``) is a vertical line at
        its value, the exact reference its Gaussian density. The last panel plots, per
        method, the largest ``|mean_error_sd|`` (dots) and ``|sd_ratio − 1|`` (squares) over
        the parameters against ``seconds``, log-log; errors below 1e-4 (exact to the solvers'
        precision) are drawn at 1e-4.
    parameters : list of str, optional
        The parameters to draw (default: all, in the table's order).
    axes : array of matplotlib Axes, optional
        One per parameter, then one for the error-vs-time panel.

    Returns
    -------
    numpy.ndarray of Axes
    """
    reference = getattr(table, "reference", None) or (
        "exact" if (table["method"] == "exact").any() else "nuts")
    posteriors = getattr(table, "posteriors", None) or {}
    if parameters is None:
        parameters = list(dict.fromkeys(table["parameter"]))
    unknown = [p for p in parameters if p not in set(table["parameter"])]
    if unknown:
        raise ValueError(f"no parameter(s) {unknown} in the table; it has "
                         f"{list(dict.fromkeys(table['parameter']))}")
    own = axes is None
    axes = _grid(len(parameters) + 1, axes)
    for ax, parameter in zip(axes, parameters):
        _overlay(ax, table[table["parameter"] == parameter], posteriors, reference)
    _cost(axes[-1], table, reference)
    handles = [Line2D([], [], color=COLORS.get(m, "tab:brown"), ls=":" if m == "map" else "-",
                      label=m) for m in dict.fromkeys(table["method"])]
    if own:
        axes[0].figure.suptitle("From a point to a posterior: each approximation's marginals")
    _legend(axes, handles, own_figure=own)
    return axes
