r"""Full posteriors of the same Pyro models: NUTS on a derived potential, and the Laplace
approximation.

The model is :func:`~bayesloss.models.build_model`'s, as in the point fits:

.. math::

    p(w, b, \sigma \mid X, y) \propto \prod_i p(y_i \mid x_i^\top w + b, \sigma)\;
    \prod_j p(w_j)

with a flat intercept and, when it is learned, a flat noise scale on (0, ∞) (a Stan model that
declares ``real<lower=0> sigma;`` with no prior statement). ``prior=None`` makes the weights flat
too: the posterior whose mode is the MLE.

* ``method="nuts"``: Pyro's ``NUTS``/``MCMC`` given a potential derived once from the model
  (:class:`~bayesloss.potential.Potential`; no trace per step), in the coordinates ``z`` with
  ``u = û + A z``: ``u`` the unconstrained parameters (``log σ`` for a learned scale), ``û`` the
  mode in that space and ``A Aᵀ`` the inverse of the exact Hessian there. The posterior of ``z``
  is close to N(0, I) however unscaled or collinear the design is.
* ``method="laplace"``: the Gaussian ``N(û, A Aᵀ)`` itself; weights and intercept are Gaussian
  in their own (user's) coordinates, a learned scale is log-normal (Gaussian in ``log σ``).
* ``method="vi"``: a Pyro autoguide over the model's sites fitted by SVI
  (:mod:`bayesloss.variational`: the guides, the stopping rule, k̂).

Where the mode lives: a point fit's MAP (AutoDelta) is the mode of the density of θ (the
*constrained* space); the Laplace approximation's mode is that of the density of ``u``, which
carries the Jacobian ``log|∂θ/∂u|`` (as Stan's ``jacobian=True``). They differ only for
constrained parameters (the learned scale): see :func:`bayesloss.studies.mode_space_demo`.
"""

from __future__ import annotations

import multiprocessing
import time
import warnings
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np
import pandas as pd
import pyro
import torch
from pyro.infer import MCMC, NUTS

from .console import show_progress
from .engine.policy import entry_point
from .families import FAMILIES
from .inference import fit
from .labels import Table, feature_labels, parameter_label
from .potential import GaussianApproximation, NumpyPotential, Potential, laplace_approximation
from .results import Fit
from .spec import IdentifiabilityWarning, check_data, feature_names as frame_names, make_spec
from .variational import check_guide, fit_guide

METHODS = ("nuts", "laplace", "vi")
MIN_DRAWS = 50  # split R-hat and the ESS estimates need a few dozen draws per chain


class SamplerWarning(UserWarning):
    """NUTS diagnostics failed a threshold: R-hat > 1.01, ESS < 100 per chain, divergent
    transitions, or E-BFMI < 0.3. The draws may not represent the posterior."""


class _RecordingNUTS(NUTS):
    """Pyro's NUTS, also recording per draw what ArviZ's ``sample_stats`` needs: the
    Hamiltonian at the start of the transition (``energy``, for E-BFMI), the step size, and
    whether the trajectory diverged. Returned through ``diagnostics()``, which Pyro sends back
    from worker processes."""

    def setup(self, warmup_steps, *args, **kwargs):
        torch.set_num_threads(1)  # one chain per process; 2 threads per chain only contend
        self._records = {"energy": [], "step_size": [], "diverging": []}
        super().setup(warmup_steps, *args, **kwargs)

    def _sample_r(self, name):
        r, r_unscaled = super()._sample_r(name)
        self._energy_start = float(self._kinetic_energy(r_unscaled) + self._potential_energy_last)
        return r, r_unscaled

    def sample(self, params):
        divergences, step_size = len(self._divergences), self.step_size
        out = super().sample(params)
        if self._t > self._warmup_steps:
            self._records["energy"].append(self._energy_start)
            self._records["step_size"].append(step_size)
            self._records["diverging"].append(len(self._divergences) > divergences)
        return out

    def diagnostics(self):
        return {**super().diagnostics(), **self._records}


class _KnownGradient(torch.autograd.Function):
    """A value whose gradient was computed with it: autograd's backward pass is one product."""

    @staticmethod
    def forward(ctx, z, value, grad):
        ctx.save_for_backward(grad)
        return value

    @staticmethod
    def backward(ctx, upstream):
        (grad,) = ctx.saved_tensors
        return upstream * grad, None, None


class _Whitened:
    """``z ↦ U(û + T z)``: the potential in whitened coordinates (a picklable callable, so
    chains can run in spawned processes too). Where the model has a closed form
    (:class:`~bayesloss.potential.NumpyPotential`), value and gradient come from it in one
    numpy pass; otherwise from the torch potential by autograd."""

    def __init__(self, potential: Potential, center: np.ndarray, transform: np.ndarray):
        self.potential = potential
        self.center = torch.as_tensor(center)
        self.transform = torch.as_tensor(transform)
        self.numpy = NumpyPotential.of(potential, np.asarray(center))
        self._center, self._transform = np.asarray(center), np.asarray(transform)

    def to_u(self, z: torch.Tensor) -> torch.Tensor:
        return self.center + z @ self.transform.T

    def __call__(self, params: dict) -> torch.Tensor:
        z = params["z"]
        if self.numpy is None:
            return self.potential(self.center + self.transform @ z)
        value, grad = self.numpy.value_and_grad(
            self._center + self._transform @ z.detach().numpy())
        return _KnownGradient.apply(z, torch.tensor(value, dtype=z.dtype),
                                    torch.from_numpy(self._transform.T @ grad))


@dataclass
class Posterior:
    """Posterior draws of one model, with its point fits and diagnostics.

    Attributes
    ----------
    spec:
        The model (``estimator="mle"`` when ``prior=None``: flat weights).
    method:
        ``"nuts"``, ``"laplace"`` or ``"vi"`` (``info["guide"]`` names the guide).
    idata:
        ``arviz.InferenceData`` with ``posterior`` (the model's sites ``weight`` over the
        ``feature`` dimension, whose coordinates are :attr:`feature_names`, ``bias``, ``scale``
        when learned, and for a σ(x) head (hetero_gaussian, ``log σ(x) = x·a + c``) its sites
        ``scale_weight`` (``a``, over ``feature``) and ``scale_bias`` (``c``) in place of
        ``scale``; tables and figures name each scalar by
        :func:`~bayesloss.labels.parameter_label`: ``age``, ``scale``, ``log σ: age``),
        ``sample_stats`` (NUTS: ``energy``, ``step_size``, ``diverging``),
        ``log_likelihood`` and ``posterior_predictive`` (``obs``), ``observed_data``.
    mean_, cov_:
        Posterior mean and covariance of ``[coef…, intercept]`` (coef row-major for
        categorical) in the user's coordinates: exact Gaussian moments for ``"laplace"`` and
        the Gaussian guides of ``"vi"``, sample moments for ``"nuts"`` and the flow guide.
        :attr:`names` labels them (:func:`~bayesloss.labels.parameter_label`: ``age``,
        ``intercept``).
    mle, map:
        The core's point fits (:func:`bayesloss.fit`); ``mle`` is None where the MLE does not
        exist (separable classes), ``map`` is None for ``prior=None``.
    approximation:
        The Gaussian at the mode in the unconstrained space (the Laplace approximation, and the
        preconditioner of NUTS).
    feature_names:
        The columns' names: a DataFrame's, ``feature_names=``, or ``x0, x1, …``.
    info:
        Timing, chain method (parallel processes or sequential, and why), sampler health
        (``info["health"]``), etc.; for ``"vi"``: ``guide``, ``elbo`` (the estimate per
        step), ``steps``, ``converged``, ``khat`` (PSIS k̂ of log p − log q).
    """

    spec: object
    method: str
    idata: object
    mean_: np.ndarray
    cov_: np.ndarray
    names: list
    mle: Optional[Fit]
    map: Optional[Fit]
    approximation: GaussianApproximation
    feature_names: tuple
    info: dict = field(default_factory=dict)
    potential: Optional[Potential] = field(default=None, repr=False)
    _warned: bool = field(default=False, repr=False)

    def summary(self) -> Table:
        """ArviZ's summary (mean, sd, HDI, MCSE, ESS, R-hat) with the MLE and the MAP beside
        it, one row per parameter named as in :meth:`Fit.params`
        (:func:`~bayesloss.labels.parameter_label`); the MAP is AutoDelta's mode of the
        density of θ (the *constrained* space), labelled so; ``laplace_mode_unconstrained`` is
        the Laplace approximation's mode (the density of ``u``, with ``log σ`` for a learned
        scale). A :class:`~bayesloss.labels.Table`: it prints whole.

        A categorical posterior's per-class weights are identified only relative to one
        another (a shift common to the K classes leaves the likelihood unchanged: only the
        prior pins it, so each has a wide sd while their differences are sharp). Its summary
        ends with the contrasts to class 0 (rows ``age[k] − age[0]`` and
        ``intercept[k] − intercept[0]``; see :meth:`contrasts`) and says so in
        ``attrs["note"]``."""
        from . import diagnostics

        table = diagnostics.summary(self.idata)
        post = self.idata.posterior
        # ArviZ lists each variable's elements in C order, as np.ndindex does
        keys = [(site, idx) for site in post.data_vars for idx in np.ndindex(post[site].shape[2:])]
        mode_values, _ = self.potential.unpack(torch.as_tensor(self.approximation.mode))
        columns = {"mle": _site_values(self.mle), "map_constrained": _site_values(self.map),
                   "laplace_mode_unconstrained": {k: v.numpy() for k, v in mode_values.items()}}
        table.insert(0, "parameter",
                     [parameter_label(site, idx, self.feature_names,
                                      self.spec.family.scale_name) for site, idx in keys])
        for column, values in columns.items():
            table[column] = [np.nan if values is None or site not in values
                             else float(np.asarray(values[site])[idx]) for site, idx in keys]
        table = table.reset_index(drop=True)
        if not self.spec.family.multiclass:
            return Table(table)
        contrasts = self.contrasts()
        contrasts.insert(0, "parameter", [
            f"{name}[{k}] − {name}[0]"
            for name, k in zip(contrasts.pop("parameter"), contrasts.pop("class"))])
        table = Table(pd.concat([table, contrasts], ignore_index=True))
        table.attrs["note"] = (
            "softmax: a shift common to the K classes leaves the likelihood unchanged, so the "
            "per-class weights are identified only relative to one another (by the prior "
            "alone otherwise: wide sd); the rows '… − …[0]' are the contrasts to class 0, "
            "which the data determine")
        return table

    def contrasts(self, reference: int = 0) -> pd.DataFrame:
        """The posterior of each class's weights and intercept minus those of class
        ``reference`` (categorical): ArviZ's summary of the draws of ``w[j, k] − w[j,
        reference]`` (mean, sd, HDI, MCSE, ESS, R-hat), with the same contrasts of the MLE,
        the MAP and the Laplace mode beside them.

        The per-class weights themselves are identified only relative to one another (see
        :meth:`summary`); these differences are what the data determine.

        Returns
        -------
        pandas.DataFrame
            One row per feature (then ``intercept``) and class k ≠ ``reference``:
            ``parameter``, ``class``, then the summary's columns.
        """
        from . import diagnostics

        if not self.spec.family.multiclass:
            raise AttributeError(f"contrasts are for categorical (softmax) posteriors; this "
                                 f"is {self.spec.likelihood}")
        post = self.idata.posterior
        n_classes = post["weight"].shape[-1]
        if not (isinstance(reference, (int, np.integer)) and 0 <= reference < n_classes):
            raise ValueError(f"reference must be a class 0..{n_classes - 1}; got "
                             f"{reference!r}")
        values, names = [post["weight"].values], list(self.feature_names)
        if "bias" in post:
            values.append(post["bias"].values[..., None, :])
            names.append("intercept")
        values = np.concatenate(values, axis=2)  # (chain, draw, feature (+ intercept), class)
        others = [k for k in range(n_classes) if k != reference]
        draws = values[..., others] - values[..., [reference]]
        table = diagnostics.summary({"contrast": draws}).reset_index(drop=True)
        table.insert(0, "parameter", np.repeat(names, len(others)))
        table.insert(1, "class", np.tile(others, len(names)))
        mode, _ = self.potential.unpack(torch.as_tensor(self.approximation.mode))
        mode = {k: v.numpy() for k, v in mode.items()}
        points = (("mle", _site_values(self.mle)), ("map_constrained", _site_values(self.map)),
                  ("laplace_mode_unconstrained", mode))
        for column, point in points:
            if point is None:
                table[column] = np.nan
                continue
            rows = [point["weight"]] + ([np.atleast_1d(point["bias"])[None, :]]
                                        if "bias" in post else [])
            rows = np.concatenate(rows, axis=0)
            table[column] = (rows[:, others] - rows[:, [reference]]).ravel()
        return table

    def diagnostics(self, warn: Optional[bool] = None) -> dict:
        """Max R-hat, min bulk / tail ESS, divergences, min E-BFMI, and the thresholds missed
        (``problems``): R-hat > 1.01, ESS < 100 per chain, any divergence, E-BFMI < 0.3.

        ``warn``: raise a :class:`SamplerWarning` naming the problems; by default only the
        first time (:func:`posterior` does it once when sampling, so asking again stays
        quiet)."""
        return self._health(warn, stacklevel=3)

    def _health(self, warn: Optional[bool], stacklevel: int) -> dict:
        """:meth:`diagnostics`, its warning attributed ``stacklevel`` frames up: to the
        caller's line, not to this module."""
        from . import diagnostics

        health = diagnostics.sampler_health(self.idata)
        health["problems"] = diagnostics.health_problems(health) if self.method == "nuts" else []
        if (not self._warned if warn is None else warn) and health["problems"]:
            warnings.warn(f"{self.spec.label()} NUTS: " + "; ".join(health["problems"]),
                          SamplerWarning, stacklevel=stacklevel)
            self._warned = True
        return health

    def draws(self, site: str) -> np.ndarray:
        """All draws of one site, chains stacked: (chains · draws, …)."""
        values = self.idata.posterior[site].values
        return values.reshape((-1,) + values.shape[2:])

    def __repr__(self) -> str:
        post = self.idata.posterior
        return (f"Posterior({self.spec.label()}, method={self.method!r}, "
                f"chains={post.sizes['chain']}, draws={post.sizes['draw']})")


def _site_values(point: Optional[Fit]) -> Optional[dict]:
    """A point fit's parameters by model site (a learned scale's, a mixture's mixing too)."""
    return None if point is None else point.params_


def check_sampling_args(method, chains, warmup, draws, guide="diagonal"):
    """A ValueError naming the first of ``method``, ``chains``, ``warmup``, ``draws`` (and
    ``guide`` for ``method="vi"``) that a sampler cannot take (before any fit runs)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; valid names are {list(METHODS)}")
    if method == "vi":
        check_guide(guide)
    for name, value, low in (("chains", chains, 1), ("warmup", warmup, 0),
                             ("draws", draws, MIN_DRAWS)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            extra = " (fewer draws leave R-hat and ESS meaningless)" if name == "draws" else ""
            raise ValueError(f"{name} must be an integer ≥ {low}{extra}; got {value!r}")


def _validated(X, y, spec):
    """``check_data``; with flat weights, what would only be a warning for the MLE (too few
    rows, constant or duplicated columns) makes the posterior improper: a ValueError."""
    if spec.is_map:
        return check_data(X, y, spec)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", IdentifiabilityWarning)
        X, y = check_data(X, y, spec)
    for w in caught:
        if issubclass(w.category, IdentifiabilityWarning):
            raise ValueError(f"prior=None (flat weights) gives an improper posterior here: "
                             f"{w.message}; use a prior")
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return X, y


def _point_fits(X, y, likelihood, spec, model_kw, seed):
    """The MLE (None where it does not exist, unless the posterior needs it) and the MAP."""
    try:
        with warnings.catch_warnings():
            if spec.is_map:  # the MLE is only a mark on the plots here
                warnings.simplefilter("ignore", IdentifiabilityWarning)
            # the prior's knobs would only make the MLE warn that its prior is off
            mle_kw = {k: v for k, v in model_kw.items()
                      if k not in ("prior", "prior_scale", "prior_df")}
            mle = fit(X, y, likelihood, estimator="mle", seed=seed, **mle_kw)
    except ValueError as err:
        if not spec.is_map:
            raise ValueError(f"prior=None (flat weights) gives an improper posterior: {err}") \
                from None
        mle = None
    map_fit = fit(X, y, likelihood, estimator="map", seed=seed, **model_kw) if spec.is_map \
        else None
    return mle, map_fit


def _chain_plan(chains: int, mp_context: Optional[str]) -> tuple[bool, str]:
    """Parallel processes where Pyro runs them (it keeps one CPU for the main process)."""
    if chains == 1:
        return False, "sequential (one chain)"
    free = max(multiprocessing.cpu_count() - 1, 1)
    if chains > free:
        return False, (f"sequential: {chains} chains > {free} free CPU(s) (Pyro keeps one for "
                       "the main process)")
    return True, f"parallel processes ({mp_context})"


def _run_nuts(whitened: _Whitened, size: int, *, chains, warmup, draws, seed, target_accept,
              max_tree_depth, mp_context, progress):
    pyro.set_rng_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    # dispersed starts: draws from the Laplace approximation, which N(0, I) is in z
    init = torch.randn((chains, size), generator=gen, dtype=torch.float64)
    parallel, plan = _chain_plan(chains, mp_context)

    def run(parallel):
        kernel = _RecordingNUTS(potential_fn=whitened, target_accept_prob=target_accept,
                                max_tree_depth=max_tree_depth)
        params = {"z": init if chains > 1 else init[0]}
        with warnings.catch_warnings():
            # Pyro's own note when it falls back to sequential chains: we say why in info
            warnings.filterwarnings("ignore", message="num_chains=.*more than available_cpu")
            mcmc = MCMC(kernel, num_samples=draws, warmup_steps=warmup, initial_params=params,
                        num_chains=chains, mp_context=mp_context if parallel else None,
                        disable_progbar=not progress)
            threads = torch.get_num_threads()
            try:
                mcmc.run()
            finally:
                torch.set_num_threads(threads)
        return mcmc

    try:
        mcmc = run(parallel)
    except (TypeError, AttributeError, RuntimeError) as err:
        if not parallel or "pickle" not in str(err).lower():
            raise
        plan = f"sequential: the chains could not be sent to worker processes ({err})"
        mcmc = run(False)
    z = mcmc.get_samples(group_by_chain=True)["z"]
    diag = mcmc.diagnostics()
    stats = {key: np.array([diag[key][f"chain {c}"] for c in range(chains)])
             for key in ("energy", "step_size", "diverging")}
    stats["diverging"] = stats["diverging"].astype(bool)
    return z, stats, plan


@entry_point
def posterior(
    X,
    y=None,
    likelihood: Optional[str] = None,
    *,
    data=None,
    prior: Optional[str] = "normal",
    prior_scale: float = 1.0,
    noise_scale: Optional[float] = None,
    trials=None,
    df: float = 4.0,
    prior_df: float = 3.0,
    fit_intercept: bool = True,
    penalize_intercept: bool = False,
    components: Optional[int] = None,
    method: str = "nuts",
    guide: str = "diagonal",
    chains: int = 4,
    warmup: int = 500,
    draws: int = 1000,
    seed: int = 0,
    target_accept: float = 0.8,
    max_tree_depth: int = 10,
    mp_context: Optional[str] = None,
    progress: Optional[bool] = None,
    feature_names: Optional[Sequence[str]] = None,
) -> Posterior:
    r"""The posterior of the model ``likelihood`` + ``prior`` on (X, y), by NUTS, Laplace or
    variational inference.

    .. math::

        p(\theta \mid X, y) \propto p(y \mid X, \theta)\, p(\theta),\qquad
        \theta = (w, b, \sigma)

    Parameters
    ----------
    X, y, likelihood, data:
        As in :func:`bayesloss.fit`: a formula in ``X``'s place, with ``data=`` its frame,
        names the features as statsmodels does.
    prior_scale, noise_scale, trials, df, prior_df, fit_intercept, penalize_intercept:
        As in :func:`bayesloss.fit`. The intercept is flat unless ``penalize_intercept``; a
        learned scale is flat on (0, ∞), a σ(x) head's ``a`` and ``c`` flat on the reals;
        ``noise_scale`` an (n,) array fixes a known σᵢ per row.
    components:
        K of ``gaussian_mixture`` (default 2), whose posterior is Laplace only: permuting
        the components leaves the likelihood unchanged, so the posterior has K! label-permuted
        copies of every mode; ``method="laplace"`` describes one of them, the mode reached
        from the fit's ordered labelling (each copy's mass is 1/K! of the whole).
    prior:
        ``normal``, ``laplace``, ``studentt``, ``cauchy`` on the weights, or None for flat
        weights (the posterior whose mode is the MLE; improper, hence a ValueError, for
        separable classes, fewer rows than coefficients, constant or duplicated columns).
    method:
        ``"nuts"`` (Pyro NUTS on the derived, whitened potential) or ``"laplace"`` (the
        Gaussian at the mode in the unconstrained space, exact Hessian; smooth models only) or
        ``"vi"`` (a Pyro autoguide fitted by SVI; kinked models too:
        :mod:`bayesloss.variational`).
    guide:
        For ``"vi"``: ``"diagonal"`` (mean-field Gaussian), ``"mvn"`` (full-rank Gaussian),
        ``"lowrank"`` or ``"flow"`` (inverse autoregressive flow).
    chains, warmup, draws:
        NUTS chains (parallel processes where the machine has a CPU per chain besides the main
        one, sequential otherwise: ``info["chains"]`` says which and why), warm-up iterations
        (step size and diagonal mass adaptation), and draws kept per chain (≥ 50). The Laplace
        and VI methods draw ``chains × draws`` from their distribution so every plot works on
        them.
    seed:
        Seeds the point fits, the starting points and the sampler (or the guide's fit).
    target_accept, max_tree_depth:
        NUTS settings (Pyro's ``target_accept_prob`` and ``max_tree_depth``).
    mp_context:
        Multiprocessing start method for parallel chains (default ``"fork"`` where available,
        else ``"spawn"``; the potential is picklable).
    progress:
        Pyro's progress bar while sampling or fitting a guide (default: on a terminal, or in
        a notebook with ipywidgets; never into a pipe or a log file).
    feature_names:
        The columns' names: the ``feature`` coordinates of :attr:`Posterior.idata` and the
        weights' names in every table and figure (default: a DataFrame ``X``'s columns, as
        :func:`bayesloss.fit` takes them, else ``x0, x1, …``).

    Returns
    -------
    Posterior
        Draws as ``arviz.InferenceData``, posterior mean and covariance, the MLE and MAP point
        fits, diagnostics. NUTS runs that fail the health thresholds warn
        (:class:`SamplerWarning`); a VI posterior whose k̂ exceeds 0.7 warns
        (:class:`~bayesloss.variational.ApproximationWarning`).
    """
    if isinstance(X, str) or data is not None or y is None or likelihood is None:
        from .formula import call_with_formula  # a formula on a frame (or arguments missing)

        return call_with_formula(posterior, locals())
    check_sampling_args(method, chains, warmup, draws, guide)
    if method != "laplace" and likelihood in FAMILIES and FAMILIES[likelihood].components:
        raise ValueError(
            f"posterior() does not sample {likelihood}: permuting its components leaves the "
            "likelihood unchanged, so the posterior has K! copies of every mode (label "
            "switching), which chains visit in different labellings and summaries average "
            "into nonsense. method='laplace' approximates it at the fit's ordered mode")
    model_kw = dict(prior="normal" if prior is None else prior, prior_scale=prior_scale,
                    noise_scale=noise_scale, trials=trials, df=df, prior_df=prior_df,
                    fit_intercept=fit_intercept, penalize_intercept=penalize_intercept,
                    components=components)
    spec = make_spec(likelihood, estimator="mle" if prior is None else "map", **model_kw)
    if method == "laplace" and spec.kinked:
        raise ValueError(
            f"the Laplace approximation needs a twice-differentiable log density; "
            f"{spec.label()} has kinks (a laplace likelihood or prior): use method='nuts' "
            "or 'vi'")
    names = frame_names(X) if feature_names is None else feature_names
    X, y = _validated(X, y, spec)
    feature_names = feature_labels(names, X.shape[1])
    if mp_context is None:
        mp_context = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    progress = show_progress(progress)

    start = time.perf_counter()
    mle, map_fit = _point_fits(X, y, likelihood, spec, model_kw, seed)
    point = map_fit if spec.is_map else mle
    k = int(y.max()) + 1 if spec.family.multiclass else spec.components or 1
    potential = Potential(spec, X, y, k)
    approx = laplace_approximation(potential, point.params_)
    info = {"setup_seconds": time.perf_counter() - start, "newton_iterations": approx.n_iter,
            "mode_converged": approx.converged, "preconditioner_exact": approx.exact}

    start = time.perf_counter()
    if method == "laplace":
        gen = torch.Generator().manual_seed(seed)
        z = torch.randn((chains, draws, approx.factor.shape[0]), generator=gen,
                        dtype=torch.float64)
        u = torch.as_tensor(approx.mode) + z @ torch.as_tensor(approx.transform).T
        stats, info["chains"] = None, "independent draws from the Gaussian"
    elif method == "vi":
        vi = fit_guide(potential, approx, guide, chains=chains, draws=draws, seed=seed,
                       progress=progress, stacklevel=3)  # the entry point: the caller
        u, stats = torch.as_tensor(vi.draws), None
        info.update(vi.info, chains="independent draws from the guide")
    else:
        whitened = _Whitened(potential, approx.mode, approx.transform)
        z, stats, info["chains"] = _run_nuts(
            whitened, approx.factor.shape[0], chains=chains, warmup=warmup, draws=draws,
            seed=seed, target_accept=target_accept, max_tree_depth=max_tree_depth,
            mp_context=mp_context, progress=progress)
        u = whitened.to_u(z)
    info["sampling_seconds"] = time.perf_counter() - start

    idata = _inference_data(potential, u, stats, y, feature_names, seed, spec, method)
    names, idx = _coef_layout(potential, feature_names)
    if method == "laplace":
        mean, cov = approx.mode[idx], approx.cov[np.ix_(idx, idx)]
    elif method == "vi":
        mean, cov = vi.mean[idx], vi.cov[np.ix_(idx, idx)]
    else:
        flat = u.reshape(-1, u.shape[-1]).numpy()[:, idx]
        mean, cov = flat.mean(0), np.cov(flat, rowvar=False)
    result = Posterior(spec=spec, method=method, idata=idata, mean_=mean, cov_=np.atleast_2d(cov),
                       names=names, mle=mle, map=map_fit, approximation=approx,
                       feature_names=tuple(feature_names), info=info, potential=potential)
    if method == "nuts":
        info["health"] = result._health(None, stacklevel=3)  # warns at the caller's line
    return result


def _coef_layout(potential: Potential, feature_names):
    """Names (:func:`~bayesloss.labels.parameter_label`) and positions in ``u`` of
    ``[coef…, intercept]`` (identity-transformed sites)."""
    names, idx = [], []
    for s in potential.sites:
        if s.name not in ("weight", "bias"):
            continue
        idx += list(range(s.start, s.stop))
        names += [parameter_label(s.name, i, feature_names) for i in np.ndindex(*s.shape)]
    return names, np.array(idx)


def _inference_data(potential, u, stats, y, feature_names, seed, spec, method):
    from . import diagnostics

    n_chains, n_draws = u.shape[:2]
    values, _ = potential.unpack(u.reshape(-1, u.shape[-1]))
    values = {k: v.detach() for k, v in values.items()}
    pyro.set_rng_seed(seed)
    loglik = potential.pointwise_log_likelihood(values)
    y_rep = potential.predictive_draws(values)

    def by_chain(a):
        a = a.numpy() if torch.is_tensor(a) else a
        return a.reshape((n_chains, n_draws) + a.shape[1:])

    posterior = {k: by_chain(v) for k, v in values.items()}
    dims = {"weight": ["feature"] + (["class"] if spec.family.multiclass else []),
            "scale_weight": ["feature"], "obs": ["row"]}
    coords = {"feature": list(feature_names), "row": np.arange(len(y))}
    if spec.family.multiclass:
        dims["bias"] = ["class"]
        coords["class"] = np.arange(posterior["weight"].shape[-1])
    return diagnostics.inference_data(
        posterior=posterior, sample_stats=stats,
        log_likelihood={"obs": by_chain(loglik)},
        posterior_predictive={"obs": by_chain(y_rep)},
        observed_data={"obs": np.asarray(y)}, coords=coords, dims=dims,
        attrs={"model": spec.label(), "inference": method, "library": "bayesloss + pyro"},
    )


@entry_point
def shrinkage_path(
    X,
    y,
    likelihood: str,
    prior_scales: Sequence[float],
    *,
    prior: str = "normal",
    noise_scale: Optional[float] = None,
    trials=None,
    df: float = 4.0,
    prior_df: float = 3.0,
    fit_intercept: bool = True,
    prob: float = 0.94,
    seed: int = 0,
    feature_names: Optional[Sequence[str]] = None,
) -> pd.DataFrame:
    """The MAP and the central ``prob`` posterior interval of each coefficient over prior
    scales τ: a tidy table (prior_scale, parameter, map, mode, lower, upper) for
    :func:`bayesloss.plots.plot_shrinkage`.

    The interval is the Laplace approximation's (Gaussian in the coefficients' own
    coordinates, exact for a Gaussian likelihood with σ fixed and a normal prior); ``map`` is
    AutoDelta's mode in the constrained space and ``mode`` the Laplace approximation's
    (equal for the coefficients unless a learned scale's Jacobian moves them). ``parameter``
    names the coefficients as every table does (:func:`~bayesloss.labels.parameter_label`:
    ``feature_names``, else a DataFrame ``X``'s columns, else ``x0, x1, …``). ``trials``:
    binomial's number of trials per row, as in :func:`bayesloss.fit`.
    """
    from scipy.stats import norm

    rows = []
    model_kw = dict(prior=prior, noise_scale=noise_scale, trials=trials, df=df,
                    prior_df=prior_df, fit_intercept=fit_intercept)
    z = norm.ppf(0.5 + prob / 2)
    features = feature_labels(frame_names(X) if feature_names is None else feature_names,
                              np.shape(X)[1])
    for tau in prior_scales:
        spec = make_spec(likelihood, estimator="map", prior_scale=tau, **model_kw)
        if spec.kinked:
            raise ValueError(f"{spec.label()} has kinks: its Laplace approximation does not "
                             "exist (run posterior(method='nuts') per τ instead)")
        Xc, yc = check_data(X, y, spec)
        point = fit(Xc, yc, likelihood, estimator="map", prior_scale=tau, seed=seed, **model_kw)
        k = int(yc.max()) + 1 if spec.family.multiclass else 1
        potential = Potential(spec, Xc, yc, k)
        approx = laplace_approximation(potential, point.params_)
        names, idx = _coef_layout(potential, features)
        sd = np.sqrt(np.diag(approx.cov)[idx])
        point_values = np.r_[np.ravel(point.coef_), np.ravel(point.intercept_)] \
            if fit_intercept else np.ravel(point.coef_)
        for name, m, s, v in zip(names, approx.mode[idx], sd, point_values):
            rows.append({"prior_scale": float(tau), "parameter": name, "map": float(v),
                         "mode": float(m), "lower": float(m - z * s), "upper": float(m + z * s)})
    return pd.DataFrame(rows)
