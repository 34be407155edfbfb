"""Data: seeded synthetic generators for every family, and real data sets that packages ship.

Nothing here downloads: the real sets come from scikit-learn and statsmodels' bundled files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch

from .families import get_family


@dataclass(frozen=True)
class Dataset:
    """A design matrix, a target, and where they came from."""

    name: str
    X: np.ndarray
    y: np.ndarray
    feature_names: tuple
    source: str
    truth: Optional[dict] = None
    """For generated data, the true parameters by model site (``weight``, ``bias``, ``scale``)
    on the user's scale, so experiments can score estimation error; None for real data."""
    inputs: dict = field(default_factory=dict)
    """Known per-row inputs the likelihood needs besides ``y`` (binomial: ``{"trials": nᵢ}``):
    ``fit(d.X, d.y, likelihood, **d.inputs)``."""


def make_synthetic(
    likelihood: str,
    n: int = 2000,
    d: int = 10,
    *,
    seed: int = 0,
    n_classes: int = 3,
    noise: float = 1.0,
    scale_range: tuple = (1e-2, 1e3),
    df: float = 4.0,
    outlier_fraction: float = 0.0,
    components: int = 2,
) -> Dataset:
    """Draw ``(X, y)`` from the ``likelihood``'s own model, with an awkward design.

    Columns are correlated (AR(1), ρ = 0.3) with standard deviations spread log-uniformly over
    ``scale_range`` and offsets of several standard deviations, so an unpreconditioned solver
    meets a badly conditioned problem. True weights give every column a comparable effect on
    the linear predictor; ``noise`` is σ (gaussian, studentt) or b (laplace), and for
    hetero_gaussian σ at the columns' offsets, with log σ(x) linear in x (truth:
    ``scale_weight``, ``scale_bias``).
    ``outlier_fraction`` replaces that share of continuous targets by gross errors.
    A family with an inner link (von_mises, ``b + g(x·w)``) gets columns without offsets. A
    mixture (gaussian_mixture) draws ``components`` lines with equal weights and σₖ =
    ``noise``, 3σ apart at the columns' offsets (truth: ``weight`` (d, K), ``bias``, ``scale``
    and ``mixing`` (K − 1,), the components in the fit's order).
    """
    family = get_family(likelihood)
    rng = np.random.default_rng(seed)
    rho = 0.3
    cov = rho ** np.abs(np.subtract.outer(np.arange(d), np.arange(d)))
    Z = rng.standard_normal((n, d)) @ np.linalg.cholesky(cov).T
    col_scale = np.logspace(np.log10(scale_range[0]), np.log10(scale_range[1]), d)
    rng.shuffle(col_scale)
    offset = rng.uniform(-5, 5, d) * col_scale
    if family.inner_link is not None:  # η = b + g(x·w): offsets cannot go into b
        offset = np.zeros(d)
    X = offset + Z * col_scale
    width = n_classes if family.multiclass else components if family.components else None
    effect = rng.uniform(-1, 1, d if width is None else (d, width)) / np.sqrt(d)
    weight = effect / (col_scale if width is None else col_scale[:, None])
    eta = Z @ effect  # = (X - offset) @ weight
    # each family's linear predictor is gain · eta + base: its true weight is gain · weight
    gain, base = family.synthetic_eta
    if family.components:  # the lines 3σ apart, then the mixing logits (equal weights)
        base = base + 3 * noise * (np.arange(components) - (components - 1) / 2)
    truth = {"weight": gain * weight, "bias": base - offset @ (gain * weight)}
    if family.scale_head:  # log σ(x) = log noise + ½ · (a second standardised signal)
        scale_effect = 0.5 * rng.uniform(-1, 1, d) / np.sqrt(d)
        truth["scale_weight"] = scale_effect / col_scale
        truth["scale_bias"] = math.log(noise) - offset @ truth["scale_weight"]
    sigma = noise * np.exp(Z @ scale_effect) if family.scale_head else noise
    inputs = {}
    if family.row_input:  # a known per-row input (binomial's trials) is the second parameter
        sigma = inputs[family.row_input] = family.synthetic_input(rng, n)
    if family.inner_link is None:
        predictor = base + gain * eta
    else:
        predictor = base + family.inner_link(torch.as_tensor(gain * eta)).numpy()
    if family.components:
        sigma = np.full(components, float(noise))
        truth["mixing"] = np.zeros(components - 1)
        predictor = np.column_stack([predictor, np.zeros((n, components - 1))])
    y = family.sample(rng, predictor, sigma, df)
    if family.has_scale:
        truth["scale"] = sigma if family.components else float(noise)
    if outlier_fraction > 0 and family.continuous:
        hit = rng.random(n) < outlier_fraction
        y[hit] += rng.choice([-1, 1], hit.sum()) * 20 * noise * (1 + rng.random(hit.sum()))
    return Dataset(
        name=f"synthetic-{likelihood}",
        X=X,
        y=y,
        feature_names=tuple(f"x{j}" for j in range(d)),
        source=f"make_synthetic({likelihood!r}, n={n}, d={d}, seed={seed})",
        truth=truth,
        inputs=inputs,
    )


def _sklearn(loader, name, columns=None):
    bunch = loader()
    X, names = bunch.data, tuple(bunch.feature_names)
    if columns is not None:
        X, names = X[:, columns], names[columns]
    return Dataset(name, np.asarray(X, float), np.asarray(bunch.target), names,
                   f"sklearn.datasets.{loader.__name__}")


def _statsmodels(module_name, name):
    import statsmodels.api as sm

    frame = getattr(sm.datasets, module_name).load_pandas()
    y = np.asarray(frame.endog, dtype=np.float64).ravel()
    return Dataset(name, np.asarray(frame.exog, dtype=np.float64), y,
                   tuple(frame.exog.columns), f"statsmodels.datasets.{module_name}")


def _star98() -> Dataset:
    """STAR98 (statsmodels' binomial GLM example): pupils above the national median maths
    score (successes) out of those tested (trials) per California school district."""
    import statsmodels.api as sm

    frame = sm.datasets.star98.load_pandas()
    above, below = frame.endog.to_numpy(dtype=np.float64).T
    return Dataset("star98", frame.exog.to_numpy(dtype=np.float64), above,
                   tuple(frame.exog.columns), "statsmodels.datasets.star98",
                   inputs={"trials": above + below})


def load_dataset(name: str) -> Dataset:
    """Load a real data set shipped inside a package (no download).

    ========================  ==========  =================================================
    name                      target      notes
    ========================  ==========  =================================================
    diabetes                  real        scikit-learn; 442 × 10
    breast_cancer             0/1         scikit-learn; the 10 "mean" features (the full 30
                                          are linearly separable, so their MLE does not exist)
    iris, wine                labels      scikit-learn; some classes separable: MAP only
    longley                   real        statsmodels; NIST StRD certified least squares
    cpunish                   counts      statsmodels; 17 × 6
    randhie                   counts      statsmodels; 20,190 × 9 (RAND health insurance)
    stackloss                 real        statsmodels; 21 × 3, the textbook LAD data set
    fair                      real        statsmodels; 6,366 × 8, integer-valued columns
    scotland                  positive    statsmodels; 32 × 7 (the Gamma GLM example)
    star98                    successes   statsmodels; 303 × 20, out of ``inputs["trials"]``
    engel                     real        statsmodels; 235 × 1 (food expenditure, income)
    ========================  ==========  =================================================
    """
    from sklearn import datasets as skd

    loaders = {
        "diabetes": lambda: _sklearn(skd.load_diabetes, "diabetes"),
        "breast_cancer": lambda: _sklearn(skd.load_breast_cancer, "breast_cancer", slice(0, 10)),
        "iris": lambda: _sklearn(skd.load_iris, "iris"),
        "wine": lambda: _sklearn(skd.load_wine, "wine"),
        "longley": lambda: _statsmodels("longley", "longley"),
        "cpunish": lambda: _statsmodels("cpunish", "cpunish"),
        "randhie": lambda: _statsmodels("randhie", "randhie"),
        "star98": _star98,
        **{name: (lambda name=name: _statsmodels(name, name))
           for name in ("stackloss", "fair", "scotland", "engel")},
    }
    try:
        return loaders[name]()
    except KeyError:
        raise ValueError(f"unknown data set {name!r}; valid names are {sorted(loaders)}") from None
