"""Everything ArviZ: InferenceData, summaries, sampler health, PSIS-LOO and ArviZ's plots.

This is the only module that imports :mod:`arviz` (ArviZ 0.2x). ArviZ 1.x replaces
``InferenceData`` by ``DataTree`` and moves plotting to ``arviz-plots``; keeping every call here
means that move touches this one file. The plotting wrappers take ``ax``/``axes`` and return
what they drew on; :mod:`bayesloss.plots.posterior` composes them.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

with warnings.catch_warnings():  # ArviZ 0.2x announces its 1.x refactor on import
    warnings.simplefilter("ignore", FutureWarning)
    import arviz as az

RHAT_MAX = 1.01
ESS_PER_CHAIN_MIN = 100
EBFMI_MIN = 0.3
PARETO_K_MAX = 0.7

InferenceData = az.InferenceData


def inference_data(*, posterior: dict, sample_stats: dict | None, log_likelihood: dict,
                   posterior_predictive: dict, observed_data: dict, coords: dict,
                   dims: dict, attrs: dict | None = None) -> az.InferenceData:
    """An ``InferenceData`` from arrays shaped (chain, draw, …)."""
    return az.from_dict(
        posterior=posterior, sample_stats=sample_stats, log_likelihood=log_likelihood,
        posterior_predictive=posterior_predictive, observed_data=observed_data,
        coords=coords, dims=dims, attrs=attrs or {},
    )


def summary(idata: az.InferenceData, var_names=None) -> pd.DataFrame:
    """ArviZ's summary (mean, sd, 94 % HDI, MCSE, bulk/tail ESS, R-hat), one row per scalar,
    unrounded (ArviZ rounds to 3 decimals by default, which hides small coefficients)."""
    return az.summary(idata, var_names=var_names, round_to="none")


def sampler_health(idata: az.InferenceData, var_names=None) -> dict:
    """Max split R-hat, min bulk / tail ESS, divergences and min E-BFMI over the posterior."""
    post = idata.posterior
    n_chains, n_draws = post.sizes["chain"], post.sizes["draw"]
    rhat = az.rhat(idata, var_names=var_names)
    ess_bulk = az.ess(idata, var_names=var_names, method="bulk")
    ess_tail = az.ess(idata, var_names=var_names, method="tail")

    def extreme(ds, fn):
        return float(fn([fn(ds[v].values) for v in ds.data_vars]))

    out = {
        "chains": int(n_chains),
        "draws": int(n_draws),
        "max_rhat": extreme(rhat, np.max) if n_chains > 1 else float("nan"),
        "min_ess_bulk": extreme(ess_bulk, np.min),
        "min_ess_tail": extreme(ess_tail, np.min),
        "divergences": 0,
        "min_ebfmi": float("nan"),
    }
    stats = getattr(idata, "sample_stats", None)
    if stats is not None and "diverging" in stats:
        out["divergences"] = int(stats["diverging"].values.sum())
    if stats is not None and "energy" in stats:
        out["min_ebfmi"] = float(np.min(az.bfmi(idata)))
    return out


def health_problems(health: dict) -> list[str]:
    """The thresholds a run misses: R-hat > 1.01, ESS < 100 per chain, any divergence,
    E-BFMI < 0.3 (Vehtari et al. 2021; Betancourt 2016)."""
    problems = []
    if health["max_rhat"] > RHAT_MAX:
        problems.append(f"max R-hat {health['max_rhat']:.3f} > {RHAT_MAX}")
    min_ess = ESS_PER_CHAIN_MIN * health["chains"]
    for kind in ("bulk", "tail"):
        if health[f"min_ess_{kind}"] < min_ess:
            problems.append(f"min {kind} ESS {health[f'min_ess_{kind}']:.0f} < {min_ess} "
                            f"({ESS_PER_CHAIN_MIN} per chain)")
    if health["divergences"]:
        problems.append(f"{health['divergences']} divergent transitions")
    if health["min_ebfmi"] < EBFMI_MIN:
        problems.append(f"E-BFMI {health['min_ebfmi']:.2f} < {EBFMI_MIN}")
    return problems


def loo(idata: az.InferenceData):
    """PSIS-LOO (``az.loo`` with pointwise Pareto k)."""
    return az.loo(idata, pointwise=True)


def pareto_khat(log_ratios: np.ndarray) -> float:
    """The Pareto-smoothed importance sampling shape k̂ of importance ratios given as logs
    (one per draw; ArviZ's ``psislw``, Vehtari et al. 2024): below 0.5 the proposal is close
    to the target, above :data:`PARETO_K_MAX` the importance ratios' tail is too heavy to
    trust."""
    with warnings.catch_warnings():  # the verdict is the caller's to give
        warnings.simplefilter("ignore", UserWarning)
        _, khat = az.psislw(np.asarray(log_ratios, dtype=np.float64))
    return float(khat)


def compare(idatas: dict) -> pd.DataFrame:
    """Rank models by PSIS-LOO expected log predictive density (``az.compare``)."""
    return az.compare(idatas, ic="loo")


# --- ArviZ plots (each returns its axes) --------------------------------------------------


def plot_trace(idata, var_names=None, axes=None):
    return az.plot_trace(idata, var_names=var_names, axes=axes, compact=True)


def plot_rank(idata, var_names=None, axes=None):
    return az.plot_rank(idata, var_names=var_names, ax=axes)


def plot_posterior(idata, var_names=None, axes=None, ref_val=None):
    return az.plot_posterior(idata, var_names=var_names, ax=axes, ref_val=ref_val,
                             hdi_prob=0.94)


def plot_pair(idata, var_names=None, axes=None):
    return az.plot_pair(idata, var_names=var_names, ax=axes, divergences=True, kind="scatter")


def plot_ppc(idata, axes=None, num_pp_samples=50):
    return az.plot_ppc(idata, ax=axes, num_pp_samples=num_pp_samples, random_seed=0)


def hdi(values: np.ndarray, prob: float = 0.94) -> np.ndarray:
    """Highest-density interval of draws along axis 0 (… , 2)."""
    return az.hdi(np.asarray(values)[None], hdi_prob=prob)


def min_ess_bulk(draws: dict) -> float:
    """The smallest bulk ESS over every scalar of ``{name: array (chain, draw, …)}``."""
    ess = az.ess(az.convert_to_dataset({k: np.asarray(v) for k, v in draws.items()}),
                 method="bulk")
    return float(min(np.min(ess[v].values) for v in ess.data_vars))


def _stored(data, group: str):
    """The group as written: draws of y that are whole numbers (classes, counts) as integers,
    continuous draws of y in float32, whose 7 digits are plenty for a predictive check (the
    random low bits of float64 do not compress); each variable zlib-compressed after the byte
    shuffle. The pointwise log-likelihood (PSIS-LOO's input) stays float64: it is most of the
    file (n × chains × draws × 8 bytes), and no lossless codec shrinks it much."""
    encoding = {}
    for name, var in data.data_vars.items():
        if var.dtype.kind not in "biuf":
            continue
        encoding[name] = {"zlib": True, "shuffle": True, "complevel": 6}
        if group == "posterior_predictive" and var.dtype.kind == "f":
            values = var.values
            if np.all(np.isfinite(values)) and np.all(values == np.round(values)):
                data = data.assign({name: var.astype(np.int64)})
            else:
                encoding[name]["dtype"] = "float32"
    return data, encoding


def to_netcdf(idata: az.InferenceData, path) -> None:
    """Write the InferenceData (every group) to a compressed NetCDF file that
    ``arviz.from_netcdf`` reads (see :func:`_stored` for what is stored how)."""
    path = str(path)
    mode = "w"
    for group in idata.groups():
        data, encoding = _stored(idata[group], group)
        data.to_netcdf(path, mode=mode, group=group, engine="h5netcdf", encoding=encoding)
        mode = "a"
