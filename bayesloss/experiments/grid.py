"""The grid: a validated config → the list of runs, each with a stable ``run_id``.

Every list-valued key is swept and the grid is their product. Each point is then *resolved*:
keys that cannot matter for it are set to None (no prior for an MLE, no ``df`` unless the
family is Student-t, no noise scale for classes, …), so points that describe the same
computation collapse into one run. The ``run_id`` is a hash of the resolved point (seed
included, sweep name excluded), so it is the same in every sweep, on every machine, in every
Python session.
"""

from __future__ import annotations

import hashlib
import itertools
import json

from ..families import get_family
from .config import SweepConfig

#: the keys of a resolved run, in table order
RUN_KEYS = (
    "seed", "dataset", "test_fraction", "n", "d", "noise", "noise_family", "noise_df",
    "outliers", "test_n", "scale_range", "likelihood", "estimator", "prior", "prior_scale",
    "prior_df", "noise_scale", "df", "fit_intercept", "optimizer", "max_iter", "reference",
)


def run_id(run: dict) -> str:
    """Stable id of a resolved run: the first 16 hex digits of SHA-256 of its sorted JSON."""
    blob = json.dumps({k: run[k] for k in RUN_KEYS}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _resolve(point: dict) -> dict:
    run = dict(point)
    if run["dataset"] is not None:
        for key in ("n", "d", "noise", "noise_family", "noise_df", "outliers", "test_n",
                    "scale_range"):
            run[key] = None
    else:
        run["test_fraction"] = None
        run["scale_range"] = list(run["scale_range"])
        source = get_family(run["noise_family"])
        if run["noise_family"] != "studentt":
            run["noise_df"] = None
        if not source.continuous:
            run["outliers"] = 0.0
        if not source.has_scale:
            run["noise"] = None
    family = get_family(run["likelihood"])
    if run["estimator"] == "mle":
        run["prior"] = run["prior_scale"] = None
    if run["prior"] != "studentt":
        run["prior_df"] = None
    if not family.has_scale:
        run["noise_scale"] = None
    if run["likelihood"] != "studentt":
        run["df"] = None
    return {k: run[k] for k in RUN_KEYS}


def axes(config: SweepConfig) -> dict[str, list]:
    """The keys a config may sweep, each with its list of values (one value: fixed)."""
    data, model = config.data, config.model
    return {
        "seed": config.sweep.seeds,
        "n": data.n, "d": data.d, "noise": data.noise, "noise_family": data.noise_family,
        "noise_df": data.noise_df, "outliers": data.outliers,
        "likelihood": model.likelihood, "estimator": model.estimator, "prior": model.prior,
        "prior_scale": model.prior_scale, "noise_scale": model.noise_scale, "df": model.df,
    }


def swept_axes(config: SweepConfig) -> dict[str, list]:
    """The axes the config sweeps (more than one value), seeds excluded."""
    return {k: v for k, v in axes(config).items() if k != "seed" and len(v) > 1}


def expand(config: SweepConfig) -> list[dict]:
    """All runs of ``config``, deduplicated, in a fixed order; each has a ``run_id``."""
    data, model = config.data, config.model
    swept = axes(config)
    fixed = {
        "dataset": data.dataset, "test_fraction": data.test_fraction, "test_n": data.test_n,
        "scale_range": data.scale_range, "prior_df": model.prior_df,
        "fit_intercept": model.fit_intercept, "optimizer": model.optimizer,
        "max_iter": model.max_iter, "reference": model.reference,
    }
    runs: dict[str, dict] = {}
    for values in itertools.product(*swept.values()):
        run = _resolve({**fixed, **dict(zip(swept, values))})
        runs.setdefault(run_id(run), run)
    return [{"run_id": rid, **run} for rid, run in runs.items()]
