r"""One run of a sweep: seeded data → our fit and the reference fit → one row of numbers.

:func:`run_one` never raises: an exception inside a run becomes a ``failed`` row carrying the
error message, so one bad grid point never loses a sweep. Its scores:

.. math::

    \text{coef\_error} = \lVert \hat w - w^\ast \rVert_2,\qquad
    \text{test\_nll} = -\frac{1}{m}\sum_{i \in \text{test}} \log p(y_i \mid x_i, \hat\theta),\qquad
    \text{test\_loss} = \frac{1}{m}\sum_{i \in \text{test}} \ell(y_i, \hat\eta_i)

with ``w*`` the generator's true weights (synthetic data only) and ℓ the family's classical
loss (squared / absolute error, t-loss, cross-entropy, Poisson deviance / 2). Classifiers also
get the held-out accuracy and the expected calibration error (10 equal-width bins). ``params``
holds the estimate as JSON ``{name: value}`` under the names every table uses
(:func:`bayesloss.labels.parameter_label`: a data set's column names, ``x0, x1, …`` for
synthetic data, ``intercept``, ``scale``).
"""

from __future__ import annotations

import json
import os
import socket
import time
import traceback
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .. import fit as pyro_fit
from .. import get_family, reference_fit
from ..engine.policy import entry_point
from ..compare import comparison_table
from ..data import load_dataset, make_synthetic

#: columns that measure time or place: they differ between two executions of the same run
TIMING_COLUMNS = ("seconds", "seconds_reference", "worker", "finished_at")
#: result columns of a row, in table order (after run_id, status, error and the run's keys)
RESULT_COLUMNS = (
    "converged", "n_iter", "objective", "coef_error", "bias_error", "scale_error", "test_nll",
    "test_loss", "test_accuracy", "test_ece", "ref_max_abs_diff", "ref_max_rel_err",
    "objective_gap", "ref_passed", "ref_converged", "coef", "intercept", "scale", "ref_coef",
    "ref_intercept", "true_coef", "params", "warnings", *TIMING_COLUMNS,
)
ECE_BINS = 10


def _data(run: dict):
    """Train / test arrays and the true parameters (None for a shipped data set); the
    training design is a DataFrame where the data set names its columns, so the fit's
    parameters carry those names."""
    if run["dataset"] is not None:
        ds = load_dataset(run["dataset"])
        rng = np.random.default_rng(run["seed"])
        order = rng.permutation(len(ds.y))
        m = int(np.ceil(run["test_fraction"] * len(ds.y)))
        test, train = order[:m], order[m:]
        Xtr = pd.DataFrame(ds.X[train], columns=[str(c) for c in ds.feature_names])
        return Xtr, ds.y[train], ds.X[test], ds.y[test], None
    # one draw of n + test_n rows: the held-out rows share the training rows' truth
    n = run["n"]
    ds = make_synthetic(
        run["noise_family"], n + run["test_n"], run["d"], seed=run["seed"],
        noise=run["noise"] if run["noise"] is not None else 1.0,
        scale_range=tuple(run["scale_range"]),
        df=run["noise_df"] if run["noise_df"] is not None else 4.0,
        outlier_fraction=run["outliers"],
    )
    return ds.X[:n], ds.y[:n], ds.X[n:], ds.y[n:], ds.truth


def model_kwargs(run: dict) -> dict:
    """The keywords of :func:`bayesloss.fit` / :func:`bayesloss.reference_fit` for ``run``."""
    kw = dict(estimator=run["estimator"], fit_intercept=run["fit_intercept"])
    if run["estimator"] == "map":
        kw.update(prior=run["prior"], prior_scale=run["prior_scale"])
        if run["prior_df"] is not None:
            kw["prior_df"] = run["prior_df"]
    if run["noise_scale"] not in (None, "learned"):
        kw["noise_scale"] = run["noise_scale"]
    if run["df"] is not None:
        kw["df"] = run["df"]
    return kw


def calibration_error(proba: np.ndarray, y: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error: Σ_bins (share of rows) · |observed rate − mean predicted|.

    Binary: the probability of class 1 against the frequency of class 1; several classes: the
    top-label confidence against the accuracy.
    """
    if proba.shape[1] == 2:
        p, hit = proba[:, 1], (y == 1).astype(float)
    else:
        p, hit = proba.max(axis=1), (proba.argmax(axis=1) == y).astype(float)
    which = np.minimum((p * bins).astype(int), bins - 1)
    ece = 0.0
    for b in range(bins):
        sel = which == b
        if sel.any():
            ece += sel.mean() * abs(hit[sel].mean() - p[sel].mean())
    return float(ece)


def _held_out(ours, X, y) -> dict:
    family = get_family(ours.spec.likelihood)
    eta = torch.as_tensor(ours.linear_predictor(X))
    y_t = torch.as_tensor(family.check_target(y))
    scale = None if ours.scale_ is None else torch.tensor(ours.scale_, dtype=torch.float64)
    with torch.no_grad():
        out = {"test_nll": float(family.nll(y_t, eta, scale, ours.spec.df)) / len(y),
               "test_loss": float(family.loss(y_t, eta, scale, ours.spec.df)) / len(y)}
    if ours.spec.likelihood in ("bernoulli", "categorical"):
        proba = ours.predict_proba(X)
        out["test_accuracy"] = float((proba.argmax(axis=1) == np.asarray(y)).mean())
        out["test_ece"] = calibration_error(proba, np.asarray(y))
    return out


def _truth_errors(ours, truth: dict, run: dict) -> dict:
    out = {"coef_error": float(np.linalg.norm(ours.coef_ - truth["weight"])),
           "true_coef": json.dumps(np.asarray(truth["weight"]).tolist())}
    if run["fit_intercept"]:
        out["bias_error"] = float(np.linalg.norm(np.asarray(ours.intercept_) - truth["bias"]))
    # a scale is comparable only when the fitted family is the one that made the noise
    if ours.scale_ is not None and "scale" in truth and run["likelihood"] == run["noise_family"]:
        out["scale_error"] = abs(ours.scale_ - truth["scale"])
    return out


def _reference(ours, run, X, y) -> dict:
    start = time.perf_counter()
    ref = reference_fit(X, y, run["likelihood"], **model_kwargs(run))
    seconds = time.perf_counter() - start
    table = comparison_table(ours, ref, X, y)
    params = table[~table["parameter"].isin(["objective", "max |Δ proba|"])]
    judged = params[params["judged"]]
    return {
        "ref_max_abs_diff": float(params["abs_err"].max()),
        "ref_max_rel_err": float(judged["rel_err"].abs().max()) if len(judged) else np.nan,
        "objective_gap": float(table.loc[table["parameter"] == "objective", "rel_err"].iloc[0]),
        "ref_passed": bool(table["passed"].all()),
        "ref_converged": bool(ref.converged),
        "ref_coef": json.dumps(ref.coef_.tolist()),
        "ref_intercept": json.dumps(np.asarray(ref.intercept_).tolist()),
        "seconds_reference": seconds,
    }


@entry_point
def run_one(run: dict) -> dict:
    """Execute one resolved run (a row of :func:`~bayesloss.experiments.grid.expand`).

    Returns the run's keys plus ``status`` (``done`` / ``failed``), ``error`` and the
    :data:`RESULT_COLUMNS`; never raises. A run is single-threaded (torch and BLAS, see
    :mod:`bayesloss.engine.policy`), so that parallel workers do not oversubscribe the cores
    and every backend computes bit-identical numbers.
    """
    row = {**run, "status": "done", "error": None}
    row.update({c: None for c in RESULT_COLUMNS})
    start = time.perf_counter()
    try:
        Xtr, ytr, Xte, yte, truth = _data(run)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ours = pyro_fit(Xtr, ytr, run["likelihood"], optimizer=run["optimizer"],
                            max_iter=run["max_iter"], seed=run["seed"], **model_kwargs(run))
        row["seconds"] = time.perf_counter() - start
        row.update(
            converged=bool(ours.converged), n_iter=int(ours.n_iter), objective=ours.objective,
            coef=json.dumps(ours.coef_.tolist()),
            intercept=json.dumps(np.asarray(ours.intercept_).tolist()), scale=ours.scale_,
            # every estimate under its one name (labels.parameter_label), as fit prints it
            params=json.dumps(dict(ours.params().itertuples(index=False))),
            warnings="; ".join(sorted({f"{w.category.__name__}: {w.message}" for w in caught}))
            or None,
        )
        row.update(_held_out(ours, Xte, yte))
        if truth is not None:
            row.update(_truth_errors(ours, truth, run))
        if run["reference"]:
            row.update(_reference(ours, run, Xtr, ytr))
    except Exception as exc:  # noqa: BLE001 - any failure of a run is data, not a crash
        where = traceback.extract_tb(exc.__traceback__)[-1]
        row["status"] = "failed"
        row["error"] = (f"{type(exc).__name__}: {exc} "
                        f"[{Path(where.filename).name}:{where.lineno} in {where.name}]")
        row["seconds"] = row["seconds"] or time.perf_counter() - start
    row["worker"] = f"{socket.gethostname()}:{os.getpid()}"
    row["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    return row
