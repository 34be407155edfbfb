"""Studies built on the posterior: where the mode lives (:func:`mode_space_demo`) and which
likelihood the data prefer (:func:`compare_likelihoods`, PSIS-LOO; :func:`which_loss` proposes
the likelihoods by the kind of y)."""

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


def _same_measure(likelihoods) -> None:
    """Refuse to rank densities (continuous supports) with probabilities (discrete ones):
    their log predictive densities are not of the same quantity. By the support, not by
    ``Family.continuous``, which says whether the fit standardises y (angles are not)."""
    from .families import get_family
    from .families.support import CONTINUOUS

    if len({get_family(name).support in CONTINUOUS for name in likelihoods}) > 1:
        raise ValueError("LOO compares densities of the same y: mix continuous likelihoods "
                         f"with discrete ones and the numbers mean nothing ({likelihoods})")


def _posterior(X, y, name, trials, **kw):
    """The NUTS posterior of one likelihood; the number of trials goes to the families of
    successes (binomial), which need it, and to no other."""
    from .families import get_family

    extra = {"trials": trials} if get_family(name).support == "successes" else {}
    return posterior(X, y, name, **kw, **extra)


def _posteriors(X, y, likelihoods, trials, **kw) -> dict:
    return {name: _posterior(X, y, name, trials, **kw) for name in likelihoods}


def _rank(posteriors: dict) -> LikelihoodComparison:
    """PSIS-LOO of each posterior, ranked (``arviz.compare``), with the Pareto-k columns; a
    :class:`LOOWarning` per likelihood with unreliable rows, aimed at the entry point's
    caller."""
    from . import diagnostics

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
                          " PSIS-LOO is unreliable there", LOOWarning, stacklevel=3)
    return LikelihoodComparison(table=table, posteriors=posteriors)


@entry_point
def compare_likelihoods(
    X,
    y,
    likelihoods: Sequence[str] = ("gaussian", "laplace", "studentt"),
    *,
    trials=None,
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
    ``trials`` (the number of trials of each row) goes to the families of successes.
    Rows with Pareto k > 0.7 raise a :class:`LOOWarning`. To have the likelihoods proposed by
    the kind of ``y``, see :func:`which_loss`.
    """
    likelihoods = list(dict.fromkeys(likelihoods))
    if len(likelihoods) < 2:
        raise ValueError("compare at least two likelihoods")
    _same_measure(likelihoods)
    check_sampling_args("nuts", chains, warmup, draws)
    return _rank(_posteriors(X, y, likelihoods, trials, prior=prior, prior_scale=prior_scale,
                             df=df, chains=chains, warmup=warmup, draws=draws, seed=seed,
                             progress=progress))


@dataclass
class WhichLoss:
    """The registered families sorted by the kind of ``y``, and the proposed ones ranked.

    ``kind`` is the kind of ``y`` (one of :data:`~bayesloss.families.SUPPORTS`);
    ``candidates`` has one row per registered family (index: family) with its ``support``,
    whether it was ``proposed`` and the ``reason``; ``comparison`` ranks the proposed ones by
    PSIS-LOO (a single one is scored, not ranked).
    """

    kind: str
    candidates: pd.DataFrame
    comparison: LikelihoodComparison

    @property
    def best(self) -> str:
        return self.comparison.best

    @property
    def proposed(self) -> list:
        return self.candidates.index[self.candidates["proposed"]].tolist()


def _candidates(kind: str, y, trials, likelihoods) -> pd.DataFrame:
    """One row per registered family: its support, proposed or not, and why (the rule of
    :mod:`bayesloss.families.support`; ``likelihoods`` named by the caller override it)."""
    from .families import FAMILIES
    from .families.support import admission

    rows = []
    for name, family in FAMILIES.items():
        proposed, reason = admission(kind, family.support, y, trials)
        if proposed and family.scale_head:
            proposed, reason = False, "its σ(x) head is fitted by fit(), not sampled"
        if proposed and family.components:
            proposed, reason = False, ("its posterior has K! label-permuted copies of every "
                                       "mode: NUTS cannot sample it")
        if likelihoods is not None:
            reason = ("named" if name in likelihoods else "not named") + (
                "" if proposed else f" (by kind: {reason})")
            proposed = name in likelihoods
        rows.append({"family": name, "support": family.support, "proposed": proposed,
                     "reason": reason})
    table = pd.DataFrame(rows).set_index("family")
    return pd.concat([table[table["proposed"]], table[~table["proposed"]]])  # proposed first


@entry_point
def which_loss(
    X,
    y,
    *,
    trials=None,
    kind: Optional[str] = None,
    likelihoods: Optional[Sequence[str]] = None,
    prior: Optional[str] = "normal",
    prior_scale: float = 1.0,
    df: float = 4.0,
    chains: int = 4,
    warmup: int = 500,
    draws: int = 1000,
    seed: int = 0,
    progress: Optional[bool] = None,
) -> WhichLoss:
    """Which loss for this ``y``? Propose the families whose support fits it, rank them by
    PSIS-LOO, and say why each registered family was or was not considered.

    The kind of ``y`` (real, positive, counts, 0/1, classes, proportions in (0, 1), angles,
    successes out of ``trials``) is read from its values by
    :func:`~bayesloss.families.support.detect_support`; a family is proposed when its
    support admits that kind (the rule in :mod:`bayesloss.families.support`: the kind itself
    and the wider supports measured the same way, e.g. the real families for a positive
    ``y``). Every registered family is sorted, so a family added to the registry is proposed
    wherever its ``support`` fits. Families whose noise scale is a function of x
    (hetero_gaussian) are not sampled and not proposed.

    Parameters
    ----------
    X, y:
        The design and the targets (class labels as integers 0..K−1: name the kind
        ``classes``, or it is read as counts).
    trials:
        The number of trials of each row: ``y`` is then successes out of them.
    kind:
        The kind of ``y``, where the values cannot tell (integer-valued amounts, labels,
        angles bunched in half the circle): one of :data:`~bayesloss.families.SUPPORTS`.
        ``y`` must lie in it.
    likelihoods:
        Rank these instead of the proposed ones (the table still says what the kind
        would have proposed).
    prior, prior_scale, df, chains, warmup, draws, seed, progress:
        As in :func:`compare_likelihoods`.

    Returns
    -------
    WhichLoss
        The kind, the table of candidates with their reasons, and the ranking.

    Raises
    ------
    ValueError
        A ``y`` that is not of the named ``kind``, ``trials`` without successes, no family
        proposed, or named likelihoods that mix densities with probabilities.
    """
    from .families import SUPPORTS, get_family
    from .families.support import KIND_TEXT, detect_support, membership

    if kind is None:
        kind = detect_support(y, trials)
    elif kind not in SUPPORTS:
        raise ValueError(f"unknown kind {kind!r}; the kinds are {SUPPORTS}")
    elif membership(kind, y, trials):
        raise ValueError(f"y is not {KIND_TEXT[kind]}: {membership(kind, y, trials)}")
    if trials is not None and kind != "successes":
        raise ValueError(f"trials go with successes out of them; the kind named is {kind!r}")
    if likelihoods is not None:
        likelihoods = [get_family(name).name for name in dict.fromkeys(likelihoods)]
    candidates = _candidates(kind, y, trials, likelihoods)
    chosen = candidates.index[candidates["proposed"]].tolist()
    if not chosen:
        raise ValueError(f"no registered family describes {KIND_TEXT[kind]}: "
                         + "; ".join(f"{n}: {r}" for n, r in candidates["reason"].items()))
    _same_measure(chosen)
    check_sampling_args("nuts", chains, warmup, draws)
    posteriors = {}
    for name in chosen:  # a proposed family whose posterior does not exist here is dropped
        try:
            posteriors[name] = _posterior(X, y, name, trials, prior=prior,
                                          prior_scale=prior_scale, df=df, chains=chains,
                                          warmup=warmup, draws=draws, seed=seed,
                                          progress=progress)
        except ValueError as err:
            candidates.loc[name, ["proposed", "reason"]] = [
                False, f"{candidates.loc[name, 'reason']}, but not scored: {err}"]
    if not posteriors:
        raise ValueError("no proposed family has a posterior on these data: "
                         + "; ".join(f"{n}: {candidates.loc[n, 'reason']}" for n in chosen))
    return WhichLoss(kind=kind, candidates=candidates, comparison=_rank(posteriors))
