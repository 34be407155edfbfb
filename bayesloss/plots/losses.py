"""Figures of the one idea: the negative log-likelihood and the classical loss, side by side."""

from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np

from ..labels import feature_labels, parameter_label
from ..results import Fit, evaluate


def _path(fit: Fit, coordinate: Union[str, int], offsets: np.ndarray):
    """``(coef, intercept)`` pairs moving one coordinate of ``fit`` by each offset."""
    for t in offsets:
        coef = np.array(fit.coef_, dtype=np.float64)
        intercept = np.array(fit.intercept_, dtype=np.float64)
        if coordinate == "intercept":
            intercept = intercept + t
        else:
            coef.reshape(-1)[int(coordinate)] += t
        yield coef, (intercept if intercept.ndim else float(intercept))


def plot_nll_and_loss(
    fit: Fit,
    X,
    y,
    *,
    coordinate: Union[str, int] = "intercept",
    width: Optional[float] = None,
    num: int = 81,
    ax: Optional[Sequence] = None,
):
    r"""Draw the NLL and the classical loss of ``fit``'s likelihood along one coordinate.

    Left: the negative log-likelihood :math:`-\sum_i \log p(y_i \mid \eta_i, s)`; right: the
    classical loss (sum of squares, of absolute errors, cross-entropy, deviance), both evaluated
    (not fitted) at ``fit``'s parameters with one coordinate moved — ``"intercept"`` or the
    index of a weight in ``coef_.ravel()`` — by up to ``± width`` (default: half the
    coordinate's size plus its natural unit), the scale held at ``fit.scale_``. The two curves
    differ by the family's constant and factor (``Family.nll_from_loss``), so they share their
    argmin, which a dashed line marks at the fitted value.

    Parameters
    ----------
    fit : Fit
        Any fit (ours or a reference); it is read, never refitted.
    X, y : array-like
        The training data the curves are evaluated on.
    ax : pair of matplotlib Axes, optional
        Where to draw; a new 1 × 2 figure otherwise.

    Returns
    -------
    (figure, axes)
    """
    import matplotlib.pyplot as plt

    X = np.asarray(X, dtype=np.float64)
    if coordinate == "intercept":
        if not fit.spec.fit_intercept:
            raise ValueError("this fit has no intercept; pass the index of a weight")
        centre = float(np.ravel(fit.intercept_)[0])
        unit = float(np.std(y)) if fit.spec.family.continuous else 1.0
        label = "intercept"
    else:
        j = int(coordinate)
        centre = float(np.ravel(fit.coef_)[j])
        column = j // fit.coef_.shape[1] if fit.coef_.ndim == 2 else j
        sy = float(np.std(y)) if fit.spec.family.continuous else 1.0
        unit = sy / max(float(X[:, column].std()), 1e-300)
        coef = np.asarray(fit.coef_)
        label = parameter_label("weight", np.unravel_index(j, coef.shape),
                                feature_labels(fit.feature_names, coef.shape[0]))
    width = 0.5 * (abs(centre) + unit) if width is None else float(width)
    offsets = np.linspace(-width, width, num)
    values = [evaluate(fit.spec, X, y, c, b, fit.scale_) for c, b in _path(fit, coordinate,
                                                                           offsets)]
    if ax is None:
        fig, ax = plt.subplots(1, 2, figsize=(9.0, 3.4), constrained_layout=True)
    else:
        fig = ax[0].figure
    grid = centre + offsets
    family = fit.spec.family
    for a, curve, title in (
        (ax[0], [v.nll for v in values], f"{family.name} negative log-likelihood"),
        (ax[1], [v.loss for v in values], family.loss_name),
    ):
        a.plot(grid, curve, color="C0")
        a.axvline(centre, color="C3", linestyle="--", linewidth=1,
                  label=f"fitted {label} = {centre:.4g}")
        a.set_xlabel(label)
        a.set_title(title, fontsize=10)
    ax[0].set_ylabel("value on the training data")
    ax[0].legend(fontsize=8)
    return fig, ax
