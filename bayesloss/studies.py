"""Studies built on the posterior: where the mode lives (:func:`mode_space_demo`) and which
likelihood the data prefer (:func:`compare_likelihoods`, PSIS-LOO)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import pandas as pd
import pyro
import torch

from .engine import minimise_elbo
from .engine.policy import entry_point
from .posterior import check_sampling_args, posterior

@entry_point
def mode_space_demo(a: float = 10.0, b: float = 10.0, heads: int = 6, trials: int = 10) -> dict:
    r"""Where the mode lives: the same posterior, maximised in two spaces, by fits.

    .. math::

        p \sim \mathrm{Beta}(a, b),\quad k \mid p \sim \mathrm{Binomial}(n, p)

    * ``map_constrained``: AutoDelta's mode of the density of p, ``(k + a − 1)/(n + a + b − 2)``
      (15/28 ≈ 0.5357 for Beta(10, 10) and 6 heads in 10);
    * ``map_unconstrained``: ``AutoLaplaceApproximation``'s mode of the density of
      ``u = logit p``, which carries the Jacobian ``p(1 − p)``: ``(k + a)/(n + a + b)``
      (16/30 ≈ 0.5333), mapped back to p. Stan's ``jacobian=True`` and this package's
      ``method="laplace"`` use this space;
    * ``mle_p`` and ``mle_logit``: the likelihood maximised over p and over logit p: a
      likelihood has no Jacobian, so both give k/n = 0.6.

    Every number is an optimiser's output (L-BFGS on the Pyro model), not a formula.
    """
    from pyro.infer.autoguide import AutoDelta, AutoLaplaceApproximation
    import pyro.distributions as dist

    dtype = torch.float64
    k, n = torch.tensor(float(heads), dtype=dtype), float(trials)

    def model(prior_on=True):
        prior = dist.Beta(torch.tensor(a, dtype=dtype), torch.tensor(b, dtype=dtype))
        p = pyro.sample("p", prior if prior_on else prior.mask(False))
        pyro.sample("k", dist.Binomial(n, probs=p), obs=k)

    def logit_likelihood():
        u = pyro.sample("u", dist.Normal(torch.tensor(0.0, dtype=dtype), 1.0).mask(False))
        pyro.sample("k", dist.Binomial(n, logits=u), obs=k)

    out = {}
    for key, m, guide_cls, site in (
        ("map_constrained", model, AutoDelta, "p"),
        ("map_unconstrained", model, AutoLaplaceApproximation, "p"),
        ("mle_p", lambda: model(False), AutoDelta, "p"),
        ("mle_logit", logit_likelihood, AutoDelta, "u"),
    ):
        pyro.clear_param_store()
        pyro.set_rng_seed(0)
        guide = guide_cls(m)
        minimise_elbo(m, guide)
        if isinstance(guide, AutoLaplaceApproximation):  # its mode sits in its Gaussian
            guide = guide.laplace_approximation()
        value = guide.median()[site].detach()
        out[key] = float(torch.sigmoid(value) if site == "u" else value)
    return out


class LOOWarning(UserWarning):
    """PSIS-LOO is unreliable for some rows (Pareto k > 0.7): their leave-one-out predictive
    density is estimated with high variance."""


@dataclass
class LikelihoodComparison:
    """Likelihoods ranked by PSIS-LOO.

    ``table`` is ``arviz.compare``'s (rank, elpd_loo, p_loo, elpd_diff, weight, se, dse,
    warning) with ``max_pareto_k`` and ``n_bad_k`` (rows with k > 0.7) per model;
    ``posteriors`` the NUTS posteriors; ``best`` the top-ranked likelihood.
    """

    table: pd.DataFrame
    posteriors: dict

    @property
    def best(self) -> str:
        return str(self.table.index[0])

    def beaten_beyond_se(self, likelihood: str, n_se: float = 1.0) -> bool:
        """True when ``likelihood`` trails the best by more than ``n_se`` standard errors of
        the difference (``elpd_diff > n_se · dse``)."""
        row = self.table.loc[likelihood]
        return bool(row["elpd_diff"] > n_se * row["dse"])


@entry_point
def compare_likelihoods(
    X,
    y,
    likelihoods: Sequence[str] = ("gaussian", "laplace", "studentt"),
    *,
    prior: Optional[str] = "normal",
    prior_scale: float = 1.0,
    df: float = 4.0,
    chains: int = 4,
    warmup: int = 500,
    draws: int = 1000,
    seed: int = 0,
    progress: Optional[bool] = None,
) -> LikelihoodComparison:
    r"""Which loss fits these data? Fit each likelihood by NUTS and rank them by PSIS-LOO.

    .. math:: \widehat{\mathrm{elpd}}_{\mathrm{loo}} = \sum_i \log p(y_i \mid y_{-i})

    estimated by Pareto-smoothed importance sampling (``arviz.loo`` / ``arviz.compare``).
    Every likelihood gets the same prior on the weights, a flat intercept and a learned scale.
    The densities must be of the same ``y``: all continuous or all discrete families.
    Rows with Pareto k > 0.7 raise a :class:`LOOWarning`.
    """
    from . import diagnostics
    from .families import get_family

    likelihoods = list(dict.fromkeys(likelihoods))
    if len(likelihoods) < 2:
        raise ValueError("compare at least two likelihoods")
    if len({get_family(name).continuous for name in likelihoods}) > 1:
        raise ValueError("LOO compares densities of the same y: mix continuous likelihoods "
                         f"with discrete ones and the numbers mean nothing ({likelihoods})")
    check_sampling_args("nuts", chains, warmup, draws)
    posteriors = {
        name: posterior(X, y, name, prior=prior, prior_scale=prior_scale, df=df,
                        chains=chains, warmup=warmup, draws=draws, seed=seed, progress=progress)
        for name in likelihoods
    }
    with warnings.catch_warnings():  # ArviZ's Pareto-k notes: ours below name the model
        warnings.filterwarnings("ignore", message=".*Pareto.*")
        warnings.filterwarnings("ignore", message=".*pareto.*")
        table = diagnostics.compare({name: p.idata for name, p in posteriors.items()})
        ks = {name: diagnostics.loo(p.idata).pareto_k.values for name, p in posteriors.items()}
    table["max_pareto_k"] = [float(np.max(ks[name])) for name in table.index]
    table["n_bad_k"] = [int(np.sum(ks[name] > diagnostics.PARETO_K_MAX)) for name in table.index]
    for name in table.index:
        if table.loc[name, "n_bad_k"]:
            warnings.warn(f"{name}: {table.loc[name, 'n_bad_k']} rows with Pareto k > "
                          f"{diagnostics.PARETO_K_MAX} (max {table.loc[name, 'max_pareto_k']:.2f}):"
                          " PSIS-LOO is unreliable there", LOOWarning, stacklevel=2)
    return LikelihoodComparison(table=table, posteriors=posteriors)
