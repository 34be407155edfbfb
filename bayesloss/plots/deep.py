r"""Figures of the deep-learning side: the loss landscape of least squares and the Gaussian
NLL, and the predictive bands of heteroscedastic and network fits.

Nothing here fits: the landscape evaluates the family's own NLL and loss on a grid, and the
band figures read fits (``predict``, ``predict_interval``, ``predict_scale``).
"""

from __future__ import annotations

import math
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..families import get_family

# The share of a normal distribution within ±2σ of its mean: the material's band "mean ±
# 2σ(x)" as a central predictive interval.
TWO_SIGMA = math.erf(2 / math.sqrt(2))
# Contours drawn at these heights above each NLL surface's minimum (nats per observation),
# so the rings' spacing shows each surface's curvature.
CONTOUR_STEPS = (0.02, 0.1, 0.3, 1.0, 3.0)


def _column(x, name: str = "x") -> np.ndarray:
    """A single feature as a (n,) float64 array (a (n, 1) design is accepted)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 2 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 1 or x.size < 2:
        raise ValueError(f"{name} must be one feature: shape (n,) or (n, 1) with n >= 2; "
                         f"got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} has NaN or infinite values")
    return x


def _grid_axis(values, name: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or values.size < 3 or not (np.diff(values) > 0).all():
        raise ValueError(f"{name} must be an increasing 1-d grid of at least 3 values")
    return values


def landscape_surfaces(x, y, slopes, intercepts, sigmas=(0.5, 1.0, 2.0)) -> dict:
    r"""MSE and the Gaussian NLL of :math:`y = a x + b + \varepsilon` over a grid of (a, b).

    Both come from the ``gaussian`` family itself (:meth:`Family.loss`, the sum of squared
    errors, and :meth:`Family.nll`, the Pyro ``Normal``'s exact negative log-likelihood), per
    observation:

    .. math:: \text{MSE}(a, b) = \tfrac1n\textstyle\sum_i (y_i - a x_i - b)^2,\qquad
              \tfrac1n\text{NLL}_\sigma(a, b) = \tfrac12\log(2\pi\sigma^2)
              + \text{MSE}(a, b) / (2\sigma^2)

    Returns
    -------
    dict
        ``"mse"``: (len(intercepts), len(slopes)); ``"nll"``: {σ: array of that shape}
        (rows are intercepts, columns slopes, as ``pcolormesh(slopes, intercepts, Z)`` reads).
    """
    family = get_family("gaussian")
    x_t = torch.as_tensor(_column(x))
    y_t = torch.as_tensor(_column(y, "y"))
    if x_t.shape != y_t.shape:
        raise ValueError(f"x and y differ in length: {x_t.shape[0]} vs {y_t.shape[0]}")
    slopes = _grid_axis(slopes, "slopes")
    intercepts = _grid_axis(intercepts, "intercepts")
    sigmas = [float(s) for s in sigmas]
    if not sigmas or min(sigmas) <= 0 or not np.isfinite(sigmas).all():
        raise ValueError(f"sigmas must be positive numbers; got {sigmas}")
    n = x_t.shape[0]
    scales = [torch.tensor(s, dtype=torch.float64) for s in sigmas]
    mse = np.empty((intercepts.size, slopes.size))
    nll = {s: np.empty_like(mse) for s in sigmas}
    with torch.no_grad():
        for i, b in enumerate(intercepts):
            for j, a in enumerate(slopes):
                eta = a * x_t + b
                mse[i, j] = float(family.loss(y_t, eta, None, None)) / n
                for s, s_t in zip(sigmas, scales):
                    nll[s][i, j] = float(family.nll(y_t, eta, s_t)) / n
    return {"mse": mse, "nll": nll}


def loss_landscape(x, y, slopes, intercepts, *, sigmas: Sequence[float] = (0.5, 1.0, 2.0),
                   fit=None):
    r"""The material's picture: MSE and the Gaussian NLL for several σ over slope × intercept.

    Top row: one heat map per surface (MSE, then NLL/n for each σ in ``sigmas``; see
    :func:`landscape_surfaces`) with the grid's minimum marked and contours at fixed heights
    above each minimum: :data:`CONTOUR_STEPS` nats for the NLL; for the MSE the same steps
    times 2σ̂², σ̂² the smallest MSE on the grid (the NLL's rings at the learned σ). Every σ
    has its minimum at the least-squares line; the NLL's values shift by ½ log 2πσ² and its
    curvature scales as 1/σ² (tight rings for small σ). Bottom row: the slices through the
    grid minimum along the slope and along the intercept, the NLLs on the left axis and the
    MSE (dashed, black) on a twin right axis, its values being on another scale.

    Parameters
    ----------
    x, y:
        One feature ((n,) or (n, 1)) and the targets.
    slopes, intercepts:
        Increasing 1-d grids of the parameters.
    sigmas:
        The fixed noise scales σ of the NLL panels.
    fit:
        Optionally a gaussian fit on ``x`` whose (``coef_[0]``, ``intercept_``) is marked.

    Returns
    -------
    matplotlib.figure.Figure
        Its axes, in order: the 1 + len(sigmas) heat maps (each ``collections[0]`` a
        ``QuadMesh`` holding its surface; ``lines[0]`` the grid minimum), the slope and the
        intercept slices (``lines``: one NLL per σ), their twin axes (``lines[0]``: the MSE),
        then the colour bars.
    """
    surfaces = landscape_surfaces(x, y, slopes, intercepts, sigmas)
    slopes, intercepts = np.asarray(slopes, float), np.asarray(intercepts, float)
    panels = [("MSE", surfaces["mse"])] + [
        (f"NLL / n, σ = {s:g}", z) for s, z in surfaces["nll"].items()]
    k = len(panels)
    fig = plt.figure(figsize=(3.0 * k, 6.4), constrained_layout=True)
    # 2k columns: each heat map spans two, each slice k
    gs = fig.add_gridspec(2, 2 * k, height_ratios=(1.15, 1.0))
    top = [fig.add_subplot(gs[0, 2 * i:2 * i + 2]) for i in range(k)]
    bottom = [fig.add_subplot(gs[1, :k]), fig.add_subplot(gs[1, k:])]
    meshes = []
    for ax, (label, z) in zip(top, panels):
        i, j = np.unravel_index(np.argmin(z), z.shape)
        meshes.append(ax.pcolormesh(slopes, intercepts, z, shading="nearest", cmap="viridis"))
        ax.plot(slopes[j], intercepts[i], "w+", ms=10, mew=2, label="grid minimum")
        unit = 1.0 if label != "MSE" else 2.0 * z.min()
        ax.contour(slopes, intercepts, z, levels=z.min() + unit * np.asarray(CONTOUR_STEPS),
                   colors="white", linewidths=0.6)
        if fit is not None:
            ax.plot(float(np.ravel(fit.coef_)[0]), float(fit.intercept_), "rx", ms=7,
                    label="fit")
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("slope a")
    top[0].set_ylabel("intercept b")
    top[0].legend(fontsize=7, loc="lower left")
    i, j = np.unravel_index(np.argmin(surfaces["mse"]), surfaces["mse"].shape)
    twins = [ax.twinx() for ax in bottom]
    for ax, twin, grid, at, cut, name in (
            (bottom[0], twins[0], slopes, j, lambda z: z[i, :], "slope a"),
            (bottom[1], twins[1], intercepts, i, lambda z: z[:, j], "intercept b")):
        twin.plot(grid, cut(surfaces["mse"]), color="black", ls="--", label="MSE")
        for index, (label, z) in enumerate(panels[1:]):
            ax.plot(grid, cut(z), color=f"C{index}", label=label)
        ax.axvline(grid[at], color="grey", ls=":", lw=0.8)
        ax.set_xlabel(f"{name} (the other parameter at the grid minimum)")
        ax.set_ylabel("NLL / n (nats)")
        twin.set_ylabel("MSE")
    bottom[0].legend(handles=bottom[0].lines[:-1] + twins[0].lines, fontsize=7)
    for ax, mesh in zip(top, meshes):
        fig.colorbar(mesh, ax=ax, shrink=0.8)
    fig.suptitle("MSE and the Gaussian NLL share one minimiser for every σ, while σ shifts "
                 "the NLL's value and scales its curvature.", fontsize=10)
    return fig
def _band(ax, fit, x, y, grid, level: float, title: str):
    """Data, the fit's prediction and its central predictive interval over ``grid``."""
    lower, upper = fit.predict_interval(grid[:, None], level=level)
    label = ("mean ± 2σ (95.4 % interval)" if level == TWO_SIGMA
             else f"central {level:.1%} predictive interval")
    ax.scatter(x, y, s=8, color="grey", alpha=0.5, label="data")
    ax.plot(grid, fit.predict(grid[:, None]), color="C0", label="mean")
    ax.plot(grid, lower, color="C1", lw=1, label=label)
    ax.plot(grid, upper, color="C1", lw=1)
    ax.fill_between(grid, lower, upper, color="C1", alpha=0.2)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("x")
    ax.set_ylabel("y")


def _band_grid(x, num: int) -> np.ndarray:
    if int(num) < 2:
        raise ValueError(f"num must be at least 2; got {num}")
    pad = 0.02 * (x.max() - x.min())
    return np.linspace(x.min() - pad, x.max() + pad, int(num))


def hetero_band(homoscedastic, heteroscedastic, x, y, *, level: float = TWO_SIGMA,
                num: int = 200):
    r"""A 1-d fit with constant σ and one with σ(x) side by side: data, mean, ±2σ band.

    Left: a ``gaussian`` fit (one σ, so its band has one width); right: a
    ``hetero_gaussian`` fit (log σ(x) a second head, so its band follows the noise). Each band
    is the fit's :meth:`~bayesloss.results.Fit.predict_interval` at ``level`` (default
    :data:`TWO_SIGMA`, the normal mass within ±2σ, so the band is mean ± 2σ(x)), drawn over
    an even grid spanning ``x``.

    Parameters
    ----------
    homoscedastic, heteroscedastic:
        Fits of ``y`` on the one feature ``x`` (linear or network means).
    x, y:
        The feature ((n,) or (n, 1)) and the targets, drawn as points.
    level:
        The central probability of the band.
    num:
        Grid points along x.

    Returns
    -------
    matplotlib.figure.Figure
        Two axes (constant σ, then σ(x)), each with ``lines``: mean, lower, upper.
    """
    x, y = _column(x), _column(y, "y")
    grid = _band_grid(x, num)
    fig, axes = plt.subplots(1, 2, figsize=(10.0, 4.0), sharey=True, constrained_layout=True)
    sigma = heteroscedastic.predict_scale(grid[:, None])
    _band(axes[0], homoscedastic, x, y, grid, level,
          f"{homoscedastic.spec.likelihood}: σ̂ = {homoscedastic.scale_:.3g} for every x")
    _band(axes[1], heteroscedastic, x, y, grid, level,
          f"{heteroscedastic.spec.likelihood}: σ̂(x) from {sigma.min():.3g} to "
          f"{sigma.max():.3g}")
    axes[1].set_ylabel("")
    axes[0].legend(fontsize=7)
    fig.suptitle("A constant σ gives one band width everywhere, while the heteroscedastic "
                 "fit's band widens where the data are noisier.", fontsize=10)
    return fig


def mlp_band(fit, x, y, *, level: float = TWO_SIGMA, num: int = 200):
    """A network regression fit on one feature: data, the network's mean and its ±2σ band.

    ``fit`` is a ``gaussian`` fit with ``mean="mlp"``; the band is its plug-in predictive
    interval (:meth:`~bayesloss.results.Fit.predict_interval` at ``level``, default
    :data:`TWO_SIGMA`: mean ± 2σ̂, σ̂ the learned or fixed scale), over an even grid spanning
    ``x``.

    Returns
    -------
    matplotlib.figure.Figure
        One axis with ``lines``: mean, lower, upper.
    """
    x, y = _column(x), _column(y, "y")
    fig, ax = plt.subplots(figsize=(7.0, 4.0), constrained_layout=True)
    _band(ax, fit, x, y, _band_grid(x, num), level,
          f"MLP {tuple(fit.hidden)} {fit.activation}, {fit.spec.label()}, σ̂ = {fit.scale_:.3g}")
    ax.legend(fontsize=7)
    fig.suptitle("The network's mean follows the curve, and its band is mean ± 2σ̂ with one "
                 "σ̂ for every x.", fontsize=10)
    return fig
