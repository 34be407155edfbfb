"""The verification matrix behind ``bayesloss check``: every family × {MLE, MAP × prior}.

Each :class:`Case` names a data set, a model and its constants. :func:`run_check` fits each case
with our Pyro code and with the reference solver and returns the tidy comparison table and a
one-row-per-case summary. The same table drives the test suite (``tests/test_equivalence.py``).
"""

from __future__ import annotations

import math
import sys
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Iterable, Optional, Union

import numpy as np
import pandas as pd

from .compare import comparison_table, summarize
from .console import interactive, progress_bar
from .data import Dataset, load_dataset, make_synthetic
from .engine.policy import entry_point
from .families import FAMILIES, Likelihood
from .inference import fit as pyro_fit
from .priors import PRIORS
from .references import reference_fit
from .results import Fit
from .spec import ConvergenceWarning, RowScales, make_spec
from .training import TRAINING_CASES, equivalence_rows

SYNTHETIC_N, SYNTHETIC_D = 2000, 10

# NIST StRD, Longley (1967) linear regression, certified values (itl.nist.gov/div898/strd,
# "Longley" data set): intercept, then GNPDEFL, GNP, UNEMP, ARMED, POP, YEAR; residual SD.
LONGLEY_CERTIFIED = np.array([
    -3482258.63459582, 15.0618722713733, -0.358191792925910e-01, -2.02022980381683,
    -1.03322686717359, -0.511041056535807e-01, 1829.15146461355,
])
LONGLEY_RESIDUAL_SD = 304.854073561965
# quantreg's documented example, ``example(rq)``: rq(stack.loss ~ stack.x, .5), a non-unique
# LAD optimum (R warns "Solution may be nonunique"), as R prints it (8 decimals; the same as
# L1pack::lad(stack.loss ~ ., data = stackloss)): intercept, Air.Flow, Water.Temp, Acid.Conc.
R_RQ_STACKLOSS = np.array([-39.68985507, 0.83188406, 0.57391304, -0.06086957])


@dataclass(frozen=True)
class Case:
    """One row of the matrix: data set name plus the keywords of ``fit`` / ``reference_fit``.

    ``likelihood`` may be a :class:`~bayesloss.Likelihood` of your own, with ``data``
    ``"synthetic"`` (drawn from it, see :func:`dataset`) or a real set's name."""

    data: str
    likelihood: Union[str, Likelihood]
    model: dict = field(default_factory=dict)

    @property
    def id(self) -> str:
        spec = make_spec(self.likelihood, **self.model)
        return f"{self.data}:{spec.label()}"


@lru_cache(maxsize=None)
def dataset(name: str, likelihood: Optional[Likelihood] = None) -> Dataset:
    """Synthetic sets are ``synthetic-<family>`` (n = 2,000, d = 10, seed 0), or
    ``synthetic`` with ``likelihood`` a :class:`~bayesloss.Likelihood` (drawn from it, its
    extra parameter 1); others are real."""
    if name == "synthetic" and likelihood is not None:
        return make_synthetic(likelihood, SYNTHETIC_N, SYNTHETIC_D, seed=0)
    if name.startswith("synthetic-"):
        return make_synthetic(name.removeprefix("synthetic-"), SYNTHETIC_N, SYNTHETIC_D, seed=0)
    return load_dataset(name)


def synthetic_cases() -> list[Case]:
    """Every family: MLE (scale learned), and MAP under every prior (scale fixed at the truth);
    plus MLE and MAP-normal with the other scale setting for the families that have one, and
    with known per-row scales (:func:`row_scales`) for those that take them;
    hetero_gaussian (σ(x) learned) and gaussian_mixture (σₖ learned): MLE and MAP-normal."""
    cases = []
    for name, family in FAMILIES.items():
        data = f"synthetic-{name}"
        if family.scale_head or family.components:  # σ(x) or σₖ learned, never fixed; a
            # smooth prior on the mean
            cases += [Case(data, name, {}), Case(data, name, {"estimator": "map"})]
            continue
        fixed = {"noise_scale": 1.0} if family.has_scale else {}
        known = _known(data)
        cases.append(Case(data, name, known))
        cases += [Case(data, name, {"estimator": "map", "prior": p, **fixed, **known})
                  for p in PRIORS]
        if family.has_scale:
            cases.append(Case(data, name, {"noise_scale": 1.0}))
            cases.append(Case(data, name, {"estimator": "map", "prior": "normal"}))
        if family.row_scales:  # known σᵢ: weighted least squares and weighted ridge
            cases += [Case(data, name, {"noise_scale": row_scales()}),
                      Case(data, name, {"estimator": "map", "noise_scale": row_scales()})]
    return cases


def _known(data: str) -> dict:
    """The known per-row inputs a data set comes with (binomial's trials), as fit keywords."""
    return {k: RowScales(tuple(v.tolist())) for k, v in dataset(data).inputs.items()}


def row_scales(n: int = SYNTHETIC_N, seed: int = 0) -> RowScales:
    """Known per-row σᵢ for the check's weighted rows: log-uniform on [0.5, 2], seeded. Any
    positive σᵢ define a weighted least-squares problem; these need not have made the data."""
    sigma = np.exp(np.random.default_rng(seed).uniform(math.log(0.5), math.log(2.0), n))
    return RowScales(tuple(sigma.tolist()))


def real_cases() -> list[Case]:
    """Real data shipped by scikit-learn and statsmodels (iris and wine have separable classes,
    so their MLE does not exist: MAP only)."""
    diabetes = {"prior_scale": 300.0, "noise_scale": 55.0}
    return [
        Case("diabetes", "gaussian", {}),
        Case("diabetes", "gaussian", {"estimator": "map", "prior": "normal", **diabetes}),
        Case("diabetes", "gaussian", {"estimator": "map", "prior": "laplace", **diabetes}),
        Case("diabetes", "laplace", {}),
        Case("diabetes", "studentt", {}),
        Case("breast_cancer", "bernoulli", {}),
        Case("breast_cancer", "bernoulli", {"estimator": "map", "prior": "normal"}),
        Case("breast_cancer", "bernoulli", {"estimator": "map", "prior": "laplace"}),
        Case("iris", "categorical", {"estimator": "map", "prior": "normal"}),
        Case("wine", "categorical", {"estimator": "map", "prior": "normal"}),
        Case("wine", "categorical", {"estimator": "map", "prior": "laplace"}),
        Case("cpunish", "poisson", {}),
        Case("randhie", "poisson", {}),
        Case("randhie", "poisson", {"estimator": "map", "prior": "normal", "prior_scale": 0.1}),
        # least absolute deviations: ties, integer columns, degenerate and non-unique optima
        Case("stackloss", "laplace", {}),
        Case("scotland", "laplace", {}),
        Case("engel", "laplace", {}),
        Case("fair", "laplace", {}),
        Case("fair", "laplace", {"estimator": "map", "prior": "laplace", "prior_scale": 0.05,
                                 "noise_scale": 1.0}),
        Case("randhie", "laplace", {}),
        # the GLM families on their textbook data sets
        Case("scotland", "gamma", {}),
        Case("star98", "binomial", _known("star98")),
        Case("star98", "binomial", {"estimator": "map", "prior": "normal", **_known("star98")}),
        Case("randhie", "negative_binomial", {}),
    ]


def default_cases() -> list[Case]:
    """The embedded default matrix: synthetic for every combination, then the real sets."""
    return synthetic_cases() + real_cases()


def longley_fit(optimizer: str = "lbfgs", **kwargs) -> tuple[Fit, Fit]:
    """Our gaussian MLE on Longley, and NIST's certified answer as a :class:`Fit`."""
    d = dataset("longley")
    ours = pyro_fit(d.X, d.y, "gaussian", optimizer=optimizer, **kwargs)
    n, p = d.X.shape[0], d.X.shape[1] + 1
    sigma_mle = LONGLEY_RESIDUAL_SD * np.sqrt((n - p) / n)  # NIST's SD uses n − p
    nist = Fit.build(
        make_spec("gaussian"), d.X, d.y, LONGLEY_CERTIFIED[1:], LONGLEY_CERTIFIED[0], sigma_mle,
        converged=True, n_iter=0, grad_norm=float("nan"), method="NIST StRD certified values",
        info={"kind": "trusted"},
    )
    return ours, nist


def stackloss_fit(optimizer: str = "lbfgs", **kwargs) -> tuple[Fit, Fit]:
    """Our LAD fit on stackloss, and R's published ``rq`` answer as a :class:`Fit` (its scale
    the MLE given its residuals, mean |r|)."""
    d = dataset("stackloss")
    ours = pyro_fit(d.X, d.y, "laplace", optimizer=optimizer, **kwargs)
    coef, intercept = R_RQ_STACKLOSS[1:], R_RQ_STACKLOSS[0]
    r_fit = Fit.build(
        make_spec("laplace"), d.X, d.y, coef, intercept,
        float(np.abs(d.y - d.X @ coef - intercept).mean()), converged=True, n_iter=0,
        grad_norm=float("nan"), method="R quantreg::rq, published (example(rq))",
        info={"kind": "trusted"},
    )
    return ours, r_fit


def _case_data(data: str, likelihood) -> Dataset:
    return dataset(data, likelihood if isinstance(likelihood, Likelihood) else None)


@lru_cache(maxsize=None)
def _reference(data: str, likelihood, model: tuple) -> Fit:
    d = _case_data(data, likelihood)
    return reference_fit(d.X, d.y, likelihood, **dict(model))


def run_case(case: Case, optimizer: str = "lbfgs", batch_size: Optional[int] = None,
             seed: int = 0) -> pd.DataFrame:
    """Fit one case both ways and return its comparison rows (reference fits are computed
    once per process and shared by the optimisers)."""
    d = _case_data(case.data, case.likelihood)
    with warnings.catch_warnings():
        # non-convergence is reported in the table; any other warning is the caller's to see
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = pyro_fit(d.X, d.y, case.likelihood, optimizer=optimizer, batch_size=batch_size,
                        seed=seed, **case.model)
    ref = _reference(case.data, case.likelihood, tuple(sorted(case.model.items())))
    return comparison_table(ours, ref, d.X, d.y, data=case.data, optimizer=optimizer,
                            batch_size=batch_size)


def _announce(items: list, desc: str):
    """Yield ``(item, cases)`` pairs with progress on stderr, counted in cases (summary rows):
    tqdm's bar on a terminal (a widget in a notebook); one plain line per item elsewhere (a
    pipe, a log file, CI), where a bar's carriage returns would pile up."""
    total = sum(n for _, n, _ in items)
    if interactive():
        with progress_bar(total=total, desc=desc, unit="case") as bar:
            for item, n, _ in items:
                yield item
                bar.update(n)
        return
    done = 0
    for item, n, name in items:
        done += n
        print(f"{desc} [{done}/{total}] {name}", file=sys.stderr, flush=True)
        yield item


@entry_point
def run_check(
    cases: Optional[Iterable[Case]] = None,
    *,
    optimizer: str = "lbfgs",
    batch_size: Optional[int] = None,
    seed: int = 0,
    include_longley: bool = True,
    progress: bool = True,
    training: Optional[Iterable[str]] = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run the matrix; return ``(tidy rows, one-row-per-case summary)``.

    ``training`` names likelihoods whose PyTorch-loss training is also checked against Pyro
    SVI on the NLL (:func:`bayesloss.training.equivalence_rows`); None adds none."""
    cases = list(default_cases() if cases is None else cases)
    tables = []
    # (item, its summary rows, its name): a training likelihood has one row per TRAINING_CASE
    items = [(case, 1, case.id) for case in cases]
    if include_longley:
        items += [("longley", 1, "longley (NIST)"), ("stackloss", 1, "stackloss (R rq)")]
    for lik in dict.fromkeys(training or ()):
        n = sum(name == lik for name, _ in TRAINING_CASES)
        if n:
            items.append((("training", lik), n, f"training: {lik}"))
    steps = _announce(items, "bayesloss check") if progress else (item for item, _, _ in items)
    for case in steps:
        if isinstance(case, tuple):  # PyTorch-loss training vs Pyro SVI on the NLL
            tables.append(equivalence_rows([case[1]], seed=seed))
            continue
        if case == "longley":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                ours, nist = longley_fit(optimizer, seed=seed)
            table = comparison_table(ours, nist, dataset("longley").X, dataset("longley").y,
                                     data="longley (NIST)", optimizer=optimizer,
                                     significant=True)
        elif case == "stackloss":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                ours, r_rq = stackloss_fit(optimizer, seed=seed)
            table = comparison_table(ours, r_rq, dataset("stackloss").X, dataset("stackloss").y,
                                     data="stackloss (R rq)", optimizer=optimizer)
        else:
            table = run_case(case, optimizer, batch_size, seed)
        tables.append(table)
    rows = pd.concat(tables, ignore_index=True)
    return rows, summarize(rows)
