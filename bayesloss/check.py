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
from typing import Iterable, Optional

import numpy as np
import pandas as pd

from .compare import comparison_table, summarize
from .data import Dataset, load_dataset, make_synthetic
from .families import FAMILIES
from .inference import fit as pyro_fit
from .priors import PRIORS
from .references import reference_fit
from .results import Fit
from .spec import ConvergenceWarning, RowScales, make_spec

SYNTHETIC_N, SYNTHETIC_D = 2000, 10

# NIST StRD, Longley (1967) linear regression, certified values (itl.nist.gov/div898/strd,
# "Longley" data set): intercept, then GNPDEFL, GNP, UNEMP, ARMED, POP, YEAR; residual SD.
LONGLEY_CERTIFIED = np.array([
    -3482258.63459582, 15.0618722713733, -0.358191792925910e-01, -2.02022980381683,
    -1.03322686717359, -0.511041056535807e-01, 1829.15146461355,
])
LONGLEY_RESIDUAL_SD = 304.854073561965


@dataclass(frozen=True)
class Case:
    """One row of the matrix: data set name plus the keywords of ``fit`` / ``reference_fit``."""

    data: str
    likelihood: str
    model: dict = field(default_factory=dict)

    @property
    def id(self) -> str:
        spec = make_spec(self.likelihood, **self.model)
        return f"{self.data}:{spec.label()}"


@lru_cache(maxsize=None)
def dataset(name: str) -> Dataset:
    """Synthetic sets are ``synthetic-<family>`` (n = 2,000, d = 10, seed 0); others are real."""
    if name.startswith("synthetic-"):
        return make_synthetic(name.removeprefix("synthetic-"), SYNTHETIC_N, SYNTHETIC_D, seed=0)
    return load_dataset(name)


def synthetic_cases() -> list[Case]:
    """Every family: MLE (scale learned), and MAP under every prior (scale fixed at the truth);
    plus MLE and MAP-normal with the other scale setting for the families that have one, and
    with known per-row scales (:func:`row_scales`) for those that take them;
    hetero_gaussian (σ(x) learned): MLE and MAP-normal."""
    cases = []
    for name, family in FAMILIES.items():
        data = f"synthetic-{name}"
        if family.scale_head:  # σ(x) is learned, never fixed; a smooth prior on the mean
            cases += [Case(data, name, {}), Case(data, name, {"estimator": "map"})]
            continue
        fixed = {"noise_scale": 1.0} if family.has_scale else {}
        cases.append(Case(data, name, {}))
        cases += [Case(data, name, {"estimator": "map", "prior": p, **fixed}) for p in PRIORS]
        if family.has_scale:
            cases.append(Case(data, name, {"noise_scale": 1.0}))
            cases.append(Case(data, name, {"estimator": "map", "prior": "normal"}))
        if family.row_scales:  # known σᵢ: weighted least squares and weighted ridge
            cases += [Case(data, name, {"noise_scale": row_scales()}),
                      Case(data, name, {"estimator": "map", "noise_scale": row_scales()})]
    return cases


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


@lru_cache(maxsize=None)
def _reference(data: str, likelihood: str, model: tuple) -> Fit:
    d = dataset(data)
    return reference_fit(d.X, d.y, likelihood, **dict(model))


def run_case(case: Case, optimizer: str = "lbfgs", batch_size: Optional[int] = None,
             seed: int = 0) -> pd.DataFrame:
    """Fit one case both ways and return its comparison rows (reference fits are computed
    once per process and shared by the optimisers)."""
    d = dataset(case.data)
    with warnings.catch_warnings():
        # non-convergence is reported in the table; any other warning is the caller's to see
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = pyro_fit(d.X, d.y, case.likelihood, optimizer=optimizer, batch_size=batch_size,
                        seed=seed, **case.model)
    ref = _reference(case.data, case.likelihood, tuple(sorted(case.model.items())))
    return comparison_table(ours, ref, d.X, d.y, data=case.data, optimizer=optimizer,
                            batch_size=batch_size)


def _announce(items: list, desc: str):
    """Yield ``items`` with progress on stderr: tqdm's bar on a terminal; one plain line per
    case elsewhere (a pipe, a log file, CI), where a bar's carriage returns would pile up."""
    if sys.stderr.isatty():
        from tqdm.auto import tqdm

        yield from tqdm(items, desc=desc, unit="case")
        return
    for i, item in enumerate(items, 1):
        name = item if isinstance(item, str) else item.id
        print(f"{desc} [{i}/{len(items)}] {name}", file=sys.stderr, flush=True)
        yield item


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
    items = cases + (["longley"] if include_longley else [])
    if progress:
        items = _announce(items, "bayesloss check")
    for case in items:
        if case == "longley":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                ours, nist = longley_fit(optimizer, seed=seed)
            table = comparison_table(ours, nist, dataset("longley").X, dataset("longley").y,
                                     data="longley (NIST)", optimizer=optimizer,
                                     significant=True)
        else:
            table = run_case(case, optimizer, batch_size, seed)
        tables.append(table)
    if training is not None:
        from .training import equivalence_rows

        tables.append(equivalence_rows(list(training), seed=seed))
    rows = pd.concat(tables, ignore_index=True)
    return rows, summarize(rows)
