r"""Our Pyro fit against the reference fit of the same model: a tidy table with tolerances.

Errors are relative, with each parameter's denominator floored at its natural unit so that
weights near zero (lasso zeros, tiny effects) are judged on the scale they act on:

.. math::

    \text{rel}_j = \frac{|\hat\theta_j - \theta^{\text{ref}}_j|}{\max(|\theta^{\text{ref}}_j|, u_j)},
    \qquad u_{\text{coef}_j} = s_y / s_{x_j},\quad
    u_{\text{intercept}} = s_y \sqrt{1 + \textstyle\sum_j (m_j / s_{x_j})^2},\quad
    u_{\text{scale}} = s_y,\quad u_{a_j} = 1/s_{x_j},\quad u_c = u_{\text{intercept}}/s_y

with ``m`` and ``s`` the means and standard deviations of the columns and ``s_y`` that of the
target (1 for classes and counts); ``a`` and ``c`` are a log σ(x) head's weights and intercept
(hetero_gaussian), whose output is in log units; a mixture's σₖ have ``s_y`` and its mixing
logits 1. The intercept is the prediction at x = 0, which lies
‖m/s‖ standard deviations from the data's centre, so its natural unit grows with that distance.

The objective gap is judged per observation, in nats:

.. math::

    \text{gap} = \frac{F(\hat\theta) - F(\theta^{\text{ref}})}{n},

with ``F`` the −log joint. The difference of two −log joints is a log-likelihood (-posterior)
ratio, in which every normalising constant (n·log σ, Σ log y!, log Γ terms) cancels exactly;
dividing by n makes it the mean log ratio per observation, which no constant, unit of y or
data size can distort. Dividing by ``|F|`` instead (as before) failed correct fits whose
constants cancel ``F`` to ~0 (a gaussian with σ fixed near 0.386: ``F ≈ 0``) and hid gaps
behind large constants. A negative gap means ours is lower: better, never a failure. With
θ standardised, the per-observation curvature is O(1), so a parameter error δ shows as a gap
of order δ²: the smooth fits' 1e-9 tolerance sits well above (1e-6)².

A row fails whenever either fit did not converge: ours (``converged``) or the reference
(``reference_converged``; a reference whose own solver did not certify its answer proves
nothing). Laplace likelihoods can have many minimisers, so they are judged on
the objective alone; categorical MLE coefficients are compared under the centred convention and
the class probabilities are compared as well (alone, with the objective, for a laplace prior
and an even number of classes, whose class shift is not identified).
"""

from __future__ import annotations

import inspect
from typing import Optional

import numpy as np
import pandas as pd

from .engine.policy import entry_point
from .inference import fit as pyro_fit
from .references import reference_fit
from .labels import Table
from .results import Fit
from .spec import ModelSpec

COLUMNS = [
    "family", "estimator", "prior", "scale", "data", "parameter", "ours", "reference",
    "abs_err", "rel_err", "tolerance", "judged", "passed", "converged", "reference_converged",
    "reference_kind", "seed",
]


def tolerances(spec: ModelSpec, optimizer: str = "lbfgs", batch_size=None) -> tuple[float, float]:
    """``(parameter tolerance, objective tolerance)`` for a fit of ``spec``.

    L-BFGS: 1e-6 relative on parameters (1e-5 with a laplace prior, whose smoothing leaves
    zeros at ~1e-8 of their unit); objective gap per observation (module docstring) 1e-6 nats
    for laplace likelihoods, 1e-9 elsewhere (the gap is second order in the parameter error).
    Adam full batch: 1e-4; minibatches: 1e-2, each for parameters and objective alike.
    """
    if optimizer == "adam":
        tol = 1e-2 if batch_size else 1e-4
        return tol, tol
    param_tol = 1e-5 if spec.is_map and spec.prior == "laplace" else 1e-6
    return param_tol, 1e-6 if spec.family.kinked else 1e-9


def _units(spec: ModelSpec, X: np.ndarray, y: np.ndarray):
    sx = X.std(axis=0)
    sx = np.where(sx > 0, sx, 1.0)
    sy = float(y.std()) if spec.family.continuous and y.std() > 0 else 1.0
    return sx, sy, sy * float(np.sqrt(1.0 + np.sum((X.mean(axis=0) / sx) ** 2)))


def _param_rows(fit: Fit, ref: Fit, units: tuple, significant: bool):
    sx, sy, intercept_unit = units
    coef_unit = sy / (sx[:, None] if fit.coef_.ndim == 2 else sx)
    names = fit.params()["parameter"].tolist()
    units = list(np.broadcast_to(coef_unit, fit.coef_.shape).ravel())
    if fit.spec.fit_intercept:
        units += [intercept_unit] * np.atleast_1d(fit.intercept_).size
    if fit.scale_ is not None:  # (a mixture's σₖ: one per component)
        units += [sy] * np.size(fit.scale_)
    if "mixing" in fit.params_:  # a mixture's logits: unitless
        units += [1.0] * fit.params_["mixing"].size
    if "scale_weight" in fit.params_:  # log σ(x): its units are those of the mean over s_y
        units += list(1.0 / sx) + [intercept_unit / sy]
    ours = fit.params()["value"].to_numpy()
    theirs = ref.params()["value"].to_numpy()
    abs_err = np.abs(ours - theirs)
    floor = 0.0 if significant else np.asarray(units)
    rel_err = abs_err / np.maximum(np.abs(theirs), floor)
    return names, ours, theirs, abs_err, rel_err


def comparison_table(
    fit: Fit, ref: Fit, X, y, *, data: str = "", optimizer: str = "lbfgs", batch_size=None,
    significant: bool = False,
) -> pd.DataFrame:
    """Tidy rows comparing two fits of the same spec on the same data (see module doc).

    ``significant=True`` drops the unit floor: plain relative error, i.e. significant digits,
    as for certified reference values.
    """
    spec = fit.spec
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    param_tol, obj_tol = tolerances(spec, optimizer, batch_size)
    # With an even number of classes a laplace prior leaves each feature's class shift free
    # between its two middle weights: only probabilities and the objective are identified.
    even_l1 = (spec.family.multiclass and spec.is_map and spec.prior == "laplace"
               and fit.coef_.shape[1] % 2 == 0)
    judge_params = not spec.family.kinked and not even_l1
    names, ours, theirs, abs_err, rel_err = _param_rows(fit, ref, _units(spec, X, y),
                                                        significant)
    rows = [
        dict(parameter=n, ours=o, reference=t, abs_err=a, rel_err=r, tolerance=param_tol,
             judged=judge_params)
        for n, o, t, a, r in zip(names, ours, theirs, abs_err, rel_err)
    ]
    if spec.family.multiclass:
        dp = np.abs(fit.predict_proba(X) - ref.predict_proba(X)).max()
        rows.append(dict(parameter="max |Δ proba|", ours=np.nan, reference=np.nan, abs_err=dp,
                         rel_err=dp, tolerance=param_tol, judged=True))
    gap = (fit.objective - ref.objective) / fit.n_samples  # nats per observation
    rows.append(dict(parameter="objective", ours=fit.objective, reference=ref.objective,
                     abs_err=abs(fit.objective - ref.objective), rel_err=gap,
                     tolerance=obj_tol, judged=True))
    table = Table(rows)
    # a negative objective gap means ours is lower: better, never a failure
    err = np.where(table["parameter"] == "objective", table["rel_err"], table["rel_err"].abs())
    table["passed"] = (err <= table["tolerance"]) | ~table["judged"]
    table["passed"] &= bool(fit.converged) and bool(ref.converged)
    scale = "" if spec.family.has_scale is False else (
        "learned" if spec.learns_scale else f"{spec.noise_scale:g}")
    table = table.assign(
        family=str(spec.likelihood), estimator=spec.estimator,
        prior=spec.prior if spec.is_map else "", scale=scale, data=data,
        converged=bool(fit.converged), reference_converged=bool(ref.converged),
        reference_kind=ref.info.get("kind", ""), seed=fit.seed,
    )
    return table[COLUMNS]


@entry_point
def compare(
    X,
    y,
    likelihood: str,
    *,
    data: str = "",
    optimizer: str = "lbfgs",
    batch_size: Optional[int] = None,
    seed: int = 0,
    **kwargs,
) -> Table:
    """Fit ``likelihood`` with our Pyro code and with the reference solver; tabulate both.

    Takes the keywords of :func:`bayesloss.fit` (the model ones go to both fits). Returns one
    row per parameter (family, estimator, prior, ours, reference, abs and rel error, tolerance,
    passed) plus the objective-gap row; see :func:`tolerances` for the tolerances. The
    :class:`~bayesloss.labels.Table` prints whole (``print(compare(…))`` shows every column);
    with a DataFrame ``X`` the weights are named by its columns.
    """
    ours = pyro_fit(X, y, likelihood, optimizer=optimizer, batch_size=batch_size, seed=seed,
                    **kwargs)
    # the model's keywords (binomial's trials too): those reference_fit takes
    model_kwargs = {k: v for k, v in kwargs.items()
                    if k in inspect.signature(reference_fit).parameters}
    ref = reference_fit(X, y, likelihood, **model_kwargs)
    return comparison_table(ours, ref, X, y, data=data, optimizer=optimizer,
                            batch_size=batch_size)


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """One row per case: max relative parameter error, objective gap, tolerance, convergence
    of both fits, the reference's kind (trusted / verified), pass."""
    keys = ["family", "estimator", "prior", "scale", "data"]

    def one(case: pd.DataFrame) -> pd.Series:
        params = case[(case["parameter"] != "objective") & case["judged"]]
        obj = case[case["parameter"] == "objective"]  # none for the training rows
        return pd.Series({
            "max_rel_err": params["rel_err"].abs().max() if len(params) else np.nan,
            "objective_gap": obj["rel_err"].iloc[0] if len(obj) else np.nan,
            "param_tol": params["tolerance"].max() if len(params) else np.nan,
            "objective_tol": obj["tolerance"].iloc[0] if len(obj) else np.nan,
            "converged": bool(case["converged"].all()),
            "reference_converged": bool(case["reference_converged"].all()),
            "reference_kind": case["reference_kind"].iloc[0],
            "passed": bool(case["passed"].all()),
        })

    return table.groupby(keys, sort=False).apply(one, include_groups=False).reset_index()
