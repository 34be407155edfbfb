r"""From a point to a posterior: the same model through each approximation, side by side.

:func:`approximations` fits one model (``likelihood`` + ``prior`` on X, y, as
:func:`bayesloss.posterior` builds it) by every method asked for, from a point (the MAP, a
delta guide) through the Laplace approximation and variational guides to NUTS, and tabulates
each parameter's posterior mean and sd against a reference: NUTS, or the exact Gaussian
posterior where the model is conjugate,

.. math::

    y \mid w, b \sim \mathcal N(Xw + b, \sigma^2 I),\ \sigma\ \text{known},\quad
    w_j \sim \mathcal N(0, \tau^2)\ \text{or flat},\ b\ \text{flat}
    \;\Longrightarrow\;
    \theta = (w, b) \mid y \sim \mathcal N\big(\Lambda^{-1} D^\top y / \sigma^2,\ \Lambda^{-1}\big),
    \quad \Lambda = D^\top D / \sigma^2 + \operatorname{diag}(1/\tau^2, \dots, 1/\tau^2, 0)

with ``D = [X, 1]`` (the intercept's prior precision is ``1/τ²`` too when it is penalised).
"""

from __future__ import annotations

import time
import warnings
from typing import Optional, Sequence

import numpy as np
import pandas as pd
import scipy.linalg
import torch

from .engine.policy import entry_point
from .inference import fit
from .posterior import Posterior, posterior
from .labels import Table, feature_labels, parameter_label
from .spec import check_data, feature_names as frame_names, make_spec
from .variational import KHAT_DRAWS, log_posterior

#: the methods, from a point to the full posterior
LADDER = ("map", "laplace", "vi-diagonal", "vi-mvn", "vi-lowrank", "vi-flow", "nuts")
#: what :func:`approximations` runs unless told otherwise (the low-rank guide on request)
DEFAULT_METHODS = ("map", "laplace", "vi-diagonal", "vi-mvn", "vi-flow", "nuts")
REFERENCES = ("nuts", "exact")
COLUMNS = ["method", "parameter", "mean", "sd", "mean_error_sd", "sd_ratio", "khat", "seconds"]


class ApproximationTable(Table):
    """The tidy table of :func:`approximations` (a DataFrame that prints whole), which also
    keeps what each method returned, for :func:`bayesloss.plots.plot_approximations`.

    Attributes
    ----------
    posteriors:
        ``method → result``: a :class:`~bayesloss.Posterior` (its draws) for the sampling
        methods, the :class:`~bayesloss.Fit` for ``map``; the exact reference has no entry
        (its rows are its closed form). A table read back from a file has none: the plot then
        draws each method as the Gaussian of its mean and sd.
    reference:
        ``"nuts"`` or ``"exact"``.
    """

    _metadata = ["posteriors", "reference"]

    @property
    def _constructor(self):
        return ApproximationTable


def _check_methods(methods, reference) -> list[str]:
    if reference not in REFERENCES:
        raise ValueError(f"reference must be one of {list(REFERENCES)}; got {reference!r}")
    if isinstance(methods, str):
        methods = [methods]
    methods = list(methods)
    unknown = [m for m in methods if m not in LADDER]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; valid names are {list(LADDER)}")
    if len(set(methods)) != len(methods) or not methods:
        raise ValueError(f"methods must name each method once (at least one); got {methods}")
    if reference == "nuts" and "nuts" not in methods:
        methods.append("nuts")  # the reference is always run, and listed
    return methods


def exact_gaussian(X, y, spec) -> tuple[np.ndarray, np.ndarray]:
    r"""The exact posterior ``N(mean, cov)`` of ``[coef…, intercept]`` of a conjugate model:
    gaussian likelihood with a known σ (one number), normal or flat prior on the weights, flat
    (or, penalised, normal) intercept; see the module's formula.

    Raises
    ------
    ValueError
        For any other model, or where flat weights leave the posterior improper (a singular
        ``DᵀD``).
    """
    conjugate = (spec.likelihood == "gaussian" and spec.noise_scale is not None
                 and not spec.row_scales and (not spec.is_map or spec.prior == "normal"))
    if not conjugate:
        raise ValueError(
            f"reference='exact' needs a conjugate model: gaussian likelihood with a known σ "
            f"(noise_scale=, one number) and a normal or flat (prior=None) prior; "
            f"{spec.label()} is not one: use reference='nuts'")
    X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
    d = X.shape[1]
    D = np.c_[X, np.ones(len(y))] if spec.fit_intercept else X
    prior_precision = np.zeros(D.shape[1])
    if spec.is_map:
        prior_precision[:d] = 1.0 / spec.prior_scale**2
        if spec.fit_intercept and spec.penalize_intercept:
            prior_precision[d] = 1.0 / spec.prior_scale**2
    sigma2 = float(spec.noise_scale) ** 2
    precision = D.T @ D / sigma2 + np.diag(prior_precision)
    try:
        factor = scipy.linalg.cho_factor(precision)
    except np.linalg.LinAlgError:
        raise ValueError("the exact posterior is improper: DᵀD is singular and the weights "
                         "are flat (prior=None); use a prior") from None
    mean = scipy.linalg.cho_solve(factor, D.T @ y / sigma2)
    cov = scipy.linalg.cho_solve(factor, np.eye(D.shape[1]))
    return mean, cov


def _posterior_moments(post: Posterior, features) -> dict:
    """``label → (mean, sd)`` of a posterior's parameters: the coefficients' from its
    :attr:`~Posterior.mean_` and :attr:`~Posterior.cov_` (exact for the Laplace and the
    Gaussian guides, the draws' for NUTS and the flow); a learned scale's from its draws, or
    for Laplace in closed form (log-normal: Gaussian in ``log σ``)."""
    out = {name: (float(m), float(np.sqrt(v)))
           for name, m, v in zip(post.names, post.mean_, np.diag(post.cov_))}
    if "scale" not in post.idata.posterior:
        return out
    label = parameter_label("scale", (), features, scale_name=post.spec.family.scale_name)
    if post.method == "laplace":
        (site,) = [s for s in post.potential.sites if s.name == "scale"]
        mu = post.approximation.mode[site.start]
        var = post.approximation.cov[site.start, site.start]
        mean = np.exp(mu + var / 2)
        out[label] = (float(mean), float(mean * np.sqrt(np.expm1(var))))
    else:
        draws = post.draws("scale")
        out[label] = (float(draws.mean()), float(draws.std(ddof=1)))
    return out


def laplace_khat(post: Posterior, seed: int = 0) -> float:
    """The Pareto k̂ of ``log p − log q`` over draws from the Laplace approximation ``q`` (as
    :mod:`bayesloss.variational` computes it for a guide; Yao et al. 2018): ``u = û + T z``
    with ``z ~ N(0, I)``, so ``log q`` is ``−‖z‖²/2`` up to a constant, which k̂ ignores.
    −inf where ``log p − log q`` is constant to rounding (``q`` is the posterior itself)."""
    from . import diagnostics

    approx = post.approximation
    gen = torch.Generator().manual_seed(seed)
    size = max(post.idata.posterior.sizes["chain"] * post.idata.posterior.sizes["draw"],
               KHAT_DRAWS)
    z = torch.randn((size, approx.factor.shape[0]), generator=gen, dtype=torch.float64)
    u = torch.as_tensor(approx.mode) + z @ torch.as_tensor(approx.transform).T
    with torch.no_grad():
        log_ratio = (log_posterior(post.potential, u) + 0.5 * (z**2).sum(-1)).numpy()
    if np.ptp(log_ratio) <= 1e-9 * max(1.0, np.abs(log_ratio).max()):
        # constant to rounding: q is the posterior (a conjugate Gaussian's Laplace); the
        # ratios have no tail, the Pareto shape's limit is −∞ (a fit to rounding noise is
        # anything from −0.2 to ∞)
        return -np.inf
    return diagnostics.pareto_khat(log_ratio)


def _point_moments(point, features) -> dict:
    """``label → (value, standard error)`` of a point fit: its Laplace standard errors in
    the constrained space (observed information at the estimate; NaN where they do not
    exist), ordered as :attr:`Fit.cov_` (weight, intercept, learned scale)."""
    values = [("weight", point.coef_)]
    if point.spec.fit_intercept:
        values.append(("bias", np.asarray(point.intercept_)))
    if point.spec.learns_scale:
        values.append(("scale", np.asarray(point.scale_)))
    labels, means = [], []
    for site, value in values:
        value = np.asarray(value)
        for idx in np.ndindex(*value.shape):
            labels.append(parameter_label(site, idx, features,
                                          scale_name=point.spec.family.scale_name))
            means.append(float(value[idx]))
    sd = (np.full(len(labels), np.nan) if point.cov_ is None
          else np.sqrt(np.clip(np.diag(point.cov_), 0.0, None)))
    return {label: (m, float(s)) for label, m, s in zip(labels, means, sd)}


@entry_point
def approximations(
    X,
    y=None,
    likelihood: Optional[str] = None,
    *,
    data=None,
    methods: Sequence[str] = DEFAULT_METHODS,
    reference: str = "nuts",
    prior: Optional[str] = "normal",
    prior_scale: float = 1.0,
    noise_scale: Optional[float] = None,
    trials=None,
    components: Optional[int] = None,
    df: float = 4.0,
    prior_df: float = 3.0,
    fit_intercept: bool = True,
    penalize_intercept: bool = False,
    chains: int = 4,
    warmup: int = 500,
    draws: int = 1000,
    seed: int = 0,
    progress: Optional[bool] = None,
    feature_names: Optional[Sequence[str]] = None,
) -> ApproximationTable:
    r"""Every approximation of one posterior, from a point to NUTS, against a reference.

    Parameters
    ----------
    X, y, likelihood, data:
        As in :func:`bayesloss.posterior` (a formula in ``X``'s place, with ``data=``).
    methods:
        Any of ``"map"`` (the point fit: AutoDelta's mode, the MLE with ``prior=None``),
        ``"laplace"``, ``"vi-diagonal"``, ``"vi-mvn"``, ``"vi-lowrank"``, ``"vi-flow"``
        (:func:`bayesloss.posterior` with ``method="vi"`` and that guide) and ``"nuts"``;
        default: all but the low-rank guide.
    reference:
        ``"nuts"`` (run whether or not ``methods`` names it) or ``"exact"``: the closed-form
        Gaussian posterior, for conjugate models only (gaussian likelihood, ``noise_scale``
        given, ``prior="normal"`` or None); a ValueError otherwise.
    prior, prior_scale, noise_scale, trials, components, df, prior_df:
        The model, as in :func:`bayesloss.posterior` (``trials``: binomial's per-row number of
        trials; ``components``: gaussian_mixture's K, refused: its posterior is Laplace only,
        with nothing to compare).
    fit_intercept, penalize_intercept:
        As in :func:`bayesloss.posterior`.
    chains, warmup, draws:
        NUTS's settings; the Laplace and VI methods draw ``chains × draws`` too.
    seed:
        Seeds every method.
    progress:
        Pyro's progress bars while sampling (as in :func:`bayesloss.posterior`).
    feature_names:
        Names of the columns (default: a DataFrame's, else ``x0, x1, …``).

    Returns
    -------
    ApproximationTable
        A tidy DataFrame, one row per method (the reference's too) and parameter:

        * ``mean``, ``sd``: the method's posterior mean and sd. Laplace and the Gaussian
          guides: their exact moments (Laplace's learned scale is log-normal, in closed form;
          the guides' from their draws); NUTS and the flow: moments of the draws;
          ``map``: the point estimate, and as sd its Laplace standard error in the
          constrained space (the observed information at the mode, as :meth:`Fit.summary`
          prints it; NaN where the density has kinks). A delta guide itself claims no
          spread; the standard error is what a point fit reports beside its estimate.
        * ``mean_error_sd``: ``(mean − reference mean) / reference sd`` (signed);
        * ``sd_ratio``: ``sd / reference sd`` (< 1: too narrow);
        * ``khat``: the Pareto k̂ of ``log p − log q`` over the draws (VI's
          ``info["khat"]``, Laplace's by :func:`~bayesloss.approximations.laplace_khat`: −inf
          where it is exact); NaN for the point, NUTS and the exact reference;
        * ``seconds``: wall time of the method's call (its point fits and setup included;
          not the process's one-time imports of torch's, Pyro's and ArviZ's modules, done
          before the clock starts).

        ``table.posteriors`` keeps each method's result for the overlay plot.
    """
    if isinstance(X, str) or data is not None or y is None or likelihood is None:
        from .formula import call_with_formula  # a formula on a frame (or arguments missing)

        return call_with_formula(approximations, locals())
    methods = _check_methods(methods, reference)
    model_kw = dict(prior=prior, prior_scale=prior_scale, noise_scale=noise_scale,
                    trials=trials, components=components, df=df, prior_df=prior_df,
                    fit_intercept=fit_intercept, penalize_intercept=penalize_intercept)
    spec = make_spec(likelihood, estimator="mle" if prior is None else "map",
                     **{**model_kw, "prior": prior or "normal"})
    if spec.family.components:  # before any method runs
        raise ValueError(f"{likelihood}: its posterior has K! label-permuted copies of every "
                         "mode, so NUTS (the reference) and the guides are refused; only its "
                         "Laplace approximation at the fit's ordered mode exists "
                         "(posterior(..., method='laplace'))")
    if spec.kinked and "laplace" in methods:  # before any method runs
        raise ValueError(f"{spec.label()} has kinks (a laplace likelihood or prior): its "
                         "Laplace approximation does not exist; leave 'laplace' out of methods")
    names = frame_names(X) if feature_names is None else feature_names
    Xc, yc = check_data(X, y, spec)
    features = feature_labels(names, Xc.shape[1])
    ref = None
    if reference == "exact":
        start = time.perf_counter()
        mean, cov = exact_gaussian(Xc, yc, spec)
        labels = [parameter_label("weight", (j,), features) for j in range(Xc.shape[1])]
        labels += [parameter_label("bias", (), features)] if fit_intercept else []
        ref = ("exact", dict(zip(labels, zip(mean, np.sqrt(np.diag(cov))))),
               np.nan, time.perf_counter() - start)

    sampled = dict(chains=chains, warmup=warmup, draws=draws, seed=seed,
                   feature_names=features, progress=progress)
    # the MLE takes no prior's knobs (they would only make it warn that its prior is off)
    point_kw = {k: v for k, v in model_kw.items()
                if prior is not None or k not in ("prior", "prior_scale", "prior_df")}
    point_kw.update(estimator="mle" if prior is None else "map", seed=seed)
    from . import diagnostics  # noqa: F401 (ArviZ's import, seconds, is no method's cost)

    with warnings.catch_warnings():  # the timed call issues its warnings again
        warnings.simplefilter("ignore")
        # untimed: the process's first fit pays torch's and Pyro's lazy imports (~1 s),
        # which would otherwise be charged to whichever method runs first
        fit(Xc, yc, likelihood, **point_kw)
    results, rows = {}, []
    for method in methods:
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if method == "map":
                result = fit(Xc, yc, likelihood, **point_kw)
                moments, khat = _point_moments(result, features), np.nan
            else:
                name, _, guide = method.partition("-")
                extra = {"guide": guide} if guide else {}
                result = posterior(Xc, yc, likelihood, method=name, **model_kw, **sampled,
                                   **extra)
                moments = _posterior_moments(result, features)
                khat = (laplace_khat(result, seed) if name == "laplace"
                        else float(result.info.get("khat", np.nan)))
        rows.append((method, moments, khat, time.perf_counter() - start))
        results[method] = result
        for w in caught:  # at the caller's line (entry_point re-issues those naming it)
            warnings.warn(w.message, w.category, stacklevel=2)
    if ref is None:
        ref = rows[methods.index("nuts")]
    else:
        rows.append(ref)
    return _tidy(rows, ref, results, reference)


def _tidy(rows, ref, results, reference) -> ApproximationTable:
    """One row per (method, parameter), errors in units of the reference's sd."""
    ref_moments = ref[1]
    records = []
    for method, moments, khat, seconds in rows:
        for label, (ref_mean, ref_sd) in ref_moments.items():
            mean, sd = moments[label]
            records.append((method, label, mean, sd, (mean - ref_mean) / ref_sd, sd / ref_sd,
                            khat, seconds))
    table = ApproximationTable(pd.DataFrame.from_records(records, columns=COLUMNS))
    table.posteriors, table.reference = results, reference
    return table


__all__ = ["approximations", "ApproximationTable", "exact_gaussian", "laplace_khat",
           "LADDER", "DEFAULT_METHODS"]
