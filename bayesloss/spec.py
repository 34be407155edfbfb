"""What a fit is asked to do (:class:`ModelSpec`), and the checks of its inputs.

Every public entry point (``fit``, ``reference_fit``, ``compare``) goes through
:func:`make_spec` and :func:`check_data`, so bad input fails the same way everywhere: a
ValueError naming the problem, or a warning of ours where the fit still means something.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Optional, Union

import numpy as np
import pandas as pd

from .families import FAMILIES, Family, Likelihood, get_family
from .priors import Prior, get_prior

ESTIMATORS = ("mle", "map")
DEFAULT_COMPONENTS = 2  # K of a mixture likelihood when components= is not given


class ConvergenceWarning(UserWarning):
    """A fit stopped before its convergence criterion held (like scikit-learn's)."""


class PriorWarning(UserWarning):
    """A prior was given to a fit that does not use it (an MLE: the prior is masked off)."""


class IdentifiabilityWarning(UserWarning):
    """The MLE is not unique (constant or duplicated columns); a MAP fit still is."""


@dataclass(frozen=True)
class RowScales:
    """Known per-row noise scales σᵢ (a ``noise_scale`` array), held by a :class:`ModelSpec`.

    Immutable and hashable (a tuple), so specs stay usable as keys and labels; printed as a
    short summary (``per row (n=200, 0.5…3)``), never as n numbers; ``np.asarray`` gives the
    (n,) float64 array.
    """

    values: tuple

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self.values, dtype=np.float64 if dtype is None else dtype)

    def __len__(self) -> int:
        return len(self.values)

    def __str__(self) -> str:
        return f"per row (n={len(self)}, {min(self.values):.3g}…{max(self.values):.3g})"

    __repr__ = __str__

    def __format__(self, spec: str) -> str:  # f"{noise_scale:g}" in labels and tables
        return str(self)


@dataclass(frozen=True)
class ModelSpec:
    """The model a fit stands for: likelihood, estimator and prior, and their constants.

    ``likelihood`` is a registered family's name or a :class:`~bayesloss.Likelihood` of your
    own (printed by its name).

    ``noise_scale=None`` means the family's scale (σ, b) is learned with a flat prior on
    (0, ∞); a number fixes it; :class:`RowScales` fixes one known σᵢ per row (gaussian:
    the MLE is then weighted least squares, the normal-prior MAP weighted ridge). For a family
    with a known per-row input (``Family.row_input``: binomial's trials) it holds that input
    (a number, or :class:`RowScales`), which then travels where a fixed scale does; ``df`` is the Student-t likelihood's degrees of freedom, ``prior_df`` the Student-t
    prior's. ``penalize_intercept`` puts the weight prior on the intercept too.
    ``components`` is K of a mixture family (gaussian_mixture; default 2), None for the others.
    """

    likelihood: Union[str, Likelihood]
    estimator: str = "mle"
    prior: str = "normal"
    prior_scale: float = 1.0
    noise_scale: Optional[Union[float, RowScales]] = None
    df: float = 4.0
    prior_df: float = 3.0
    fit_intercept: bool = True
    penalize_intercept: bool = False
    components: Optional[int] = None

    @property
    def row_scales(self) -> bool:
        """The noise scale is known per row (:class:`RowScales`)."""
        return isinstance(self.noise_scale, RowScales)

    @property
    def family(self) -> Family:
        return get_family(self.likelihood)

    @property
    def prior_spec(self) -> Prior:
        return get_prior(self.prior)

    @property
    def is_map(self) -> bool:
        return self.estimator == "map"

    @property
    def effective_prior_df(self) -> float:
        fixed = self.prior_spec.fixed_df
        return self.prior_df if fixed is None else fixed

    @property
    def learns_scale(self) -> bool:
        return self.family.has_scale and self.noise_scale is None

    @property
    def kinked(self) -> bool:
        """The objective has kinks (Laplace likelihood, or a Laplace prior in a MAP fit)."""
        return self.family.kinked or (self.is_map and self.prior_spec.kinked)

    def label(self) -> str:
        """A short name such as ``gaussian/map/normal`` (MLE rows carry no prior)."""
        parts = [str(self.likelihood), self.estimator] + ([self.prior] if self.is_map else [])
        if self.components is not None:
            parts.append(f"K={self.components}")
        family = self.family
        if family.has_scale:
            name = "σ" if family.scale_name == "scale" else family.scale_name
            parts.append(f"{name} learned" if self.learns_scale else f"{name}={self.noise_scale:g}")
        elif family.row_input:
            parts.append(f"{family.row_input}={self.noise_scale:g}")
        return "/".join(parts)


def _positive(name, value):
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number; got {value!r}") from None
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number; got {value!r}")
    return value


def _noise_scale(likelihood: str, family: Family, value):
    """A positive number, or per-row scales as :class:`RowScales` (families that take them)."""
    if value is None:
        return None
    if isinstance(value, RowScales) or np.ndim(value) >= 1:
        if not family.row_scales:
            raise ValueError(
                f"per-row noise_scale (an array of σᵢ) is available for "
                f"{[name for name, f in FAMILIES.items() if f.row_scales]}; the "
                f"{likelihood} likelihood takes one positive number")
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError("noise_scale must be a positive number or a 1-d array of "
                             "positive per-row scales") from None
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError(f"per-row noise_scale must be 1-d with one σᵢ per row; got shape "
                             f"{arr.shape}")
        bad = ~np.isfinite(arr) | ~(arr > 0)
        if bad.any():
            raise ValueError(
                f"per-row noise_scale must be positive and finite; {int(bad.sum())} entries "
                f"are not (first at row {int(np.flatnonzero(bad)[0])}: {arr[bad][0]!r})")
        return RowScales(tuple(arr.tolist()))
    return _positive("noise_scale", value)


def _components(likelihood: str, family: Family, components, noise_scale, prior, estimator):
    """K of a mixture family (an int ≥ 2, :data:`DEFAULT_COMPONENTS` when not given; refused
    by the other families)."""
    if not family.components:
        if components is not None:
            raise ValueError(f"components= is for mixture likelihoods (gaussian_mixture); the "
                             f"{likelihood} likelihood has one component")
        return None
    if components is None:
        components = DEFAULT_COMPONENTS
    if isinstance(components, bool) or not isinstance(components, (int, np.integer)) \
            or components < 2:
        raise ValueError(f"the {likelihood} likelihood needs components=K, an integer ≥ 2 "
                         f"(K = 1 is likelihood='gaussian'); got {components!r}")
    if noise_scale is not None:
        raise ValueError(f"the {likelihood} likelihood learns one σₖ per component; drop "
                         "noise_scale")
    if estimator == "map" and get_prior(prior).kinked:
        raise ValueError(f"the {likelihood} likelihood takes a smooth prior on the weights "
                         f"(normal, studentt, cauchy); {prior!r} has kinks")
    return int(components)
def _row_input(likelihood: str, family: Family, value):
    """A family's known per-row input (binomial's trials: positive integers), one number or
    :class:`RowScales`, checked as such."""
    name = family.row_input
    if value is None:
        raise ValueError(f"the {likelihood} likelihood needs {name}= (one number, or one per "
                         f"row); 1 for 0/1 outcomes")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive integer or a 1-d array of them") from None
    if arr.ndim > 1 or arr.size == 0:
        raise ValueError(f"{name} must be one number or 1-d with one per row; got shape "
                         f"{arr.shape}")
    bad = ~np.isfinite(arr) | ~(arr >= 1) | (arr != np.round(arr))
    if bad.any():
        raise ValueError(f"{name} must be positive integers; {int(bad.sum())} entries are not "
                         f"(first: {arr[bad].ravel()[0]!r})")
    return RowScales(tuple(arr.tolist())) if arr.ndim else float(arr)


def make_spec(
    likelihood: Union[str, Likelihood],
    *,
    estimator: str = "mle",
    prior: str = "normal",
    prior_scale: float = 1.0,
    noise_scale: Optional[float] = None,
    trials=None,
    df: float = 4.0,
    prior_df: float = 3.0,
    fit_intercept: bool = True,
    penalize_intercept: bool = False,
    components: Optional[int] = None,
) -> ModelSpec:
    """Validate the keywords shared by ``fit``, ``reference_fit`` and ``compare``.

    ``trials``: binomial's known number of trials (its ``row_input``), held as its fixed
    second parameter in ``noise_scale``."""
    family = get_family(likelihood)
    get_prior(prior)
    components = _components(likelihood, family, components, noise_scale, prior, estimator)
    if family.row_input:
        if noise_scale is not None:
            raise ValueError(f"the {likelihood} likelihood has no noise scale; its known "
                             f"{family.row_input} are given as {family.row_input}=")
        known = _row_input(likelihood, family, trials)
    elif trials is not None:
        raise ValueError(f"trials= is for {[n for n, f in FAMILIES.items() if f.row_input]}; "
                         f"the {likelihood} likelihood takes none")
    if family.scale_head and noise_scale is not None:
        raise ValueError(
            f"the {likelihood} likelihood learns σ(x) as a second head (log σ(x) = x·a + c); "
            "noise_scale contradicts it: drop noise_scale, or use likelihood='gaussian' with "
            "noise_scale for known scales"
        )
    if not family.has_scale and noise_scale is not None:
        raise ValueError(f"the {likelihood} likelihood has no noise scale; drop noise_scale")
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown estimator {estimator!r}; valid names are {list(ESTIMATORS)}")
    if penalize_intercept and not fit_intercept:
        raise ValueError("penalize_intercept=True needs an intercept to penalise; "
                         "fit_intercept=False has none: drop one of the two")
    spec = ModelSpec(
        likelihood=likelihood,
        estimator=estimator,
        prior=prior,
        prior_scale=_positive("prior_scale", prior_scale),
        noise_scale=known if family.row_input else _noise_scale(likelihood, family, noise_scale),
        df=_positive("df", df),
        prior_df=_positive("prior_df", prior_df),
        fit_intercept=bool(fit_intercept),
        penalize_intercept=bool(penalize_intercept),
        components=components,
    )
    if family.scale_head and spec.penalize_intercept:
        raise ValueError(f"penalize_intercept is not available for {likelihood}: its "
                         "intercepts (mean and log σ) are flat")
    if family.scale_head and spec.is_map and spec.prior_spec.kinked:
        raise ValueError(
            f"the {likelihood} likelihood takes a smooth prior on the mean weights (normal, "
            f"studentt, cauchy); {prior!r} has kinks"
        )
    return spec


def feature_names(X) -> Optional[tuple[str, ...]]:
    """The column names of a DataFrame ``X`` (as strings), or None for arrays."""
    columns = getattr(X, "columns", None)
    return None if columns is None else tuple(str(c) for c in columns)


def check_X(X, *, finite: bool = True) -> np.ndarray:
    """``X`` as a finite 2-d float64 array with at least one row (``finite=False`` leaves the
    finiteness to the caller, who reads it from the Gram matrix's diagonal).

    A DataFrame may hold numbers and booleans; other columns (strings, categories) are named
    in the error, with the one-hot encoding that turns them into numbers.
    """
    if isinstance(X, pd.DataFrame):
        text = X.select_dtypes(exclude=["number", "bool"]).columns.tolist()
        if text:
            raise ValueError(
                f"X has non-numeric column(s) {text}: encode them as numbers first, e.g. one-hot "
                f"with pandas.get_dummies(X, columns={text}, drop_first=True, dtype=float)"
            )
    try:
        X = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"X must be a numeric 2-d array: {err}") from None
    if X.ndim != 2:
        raise ValueError(f"X must be 2-d (n_samples, n_features); got shape {X.shape}")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"X is empty: shape {X.shape}")
    if finite and not np.isfinite(X).all():
        raise ValueError("X contains NaN or inf")
    return X


@dataclass(frozen=True)
class DesignStats:
    """Column means and Gram matrices of X, from one product ``XᵀX`` (and one ``1ᵀX``).

    The input checks (constant, zero and duplicated columns) and the fit's preconditioner both
    read them, so the design is summarised once. ``centred`` is ``(X − m)ᵀ(X − m)/n``; where a
    column's mean dwarfs its spread, ``XᵀX/n − m mᵀ`` would cancel to noise, and those entries
    are computed from the centred columns instead.
    """

    n: int
    mean: np.ndarray
    gram: np.ndarray
    centred: np.ndarray

    @classmethod
    def of(cls, X: np.ndarray) -> "DesignStats":
        n = X.shape[0]
        mean = (np.ones(n) @ X) / n
        gram = X.T @ X  # numpy recognises Xᵀ X: a symmetric rank-k update, half of torch's work
        centred = gram / n - np.outer(mean, mean)
        # digits lost to cancellation: recompute those columns from centred data
        lossy = np.flatnonzero(np.diag(centred) <= 1e-6 * mean**2)
        if lossy.size:
            Xc = X[:, lossy] - mean[lossy]
            cross = (X - mean).T @ Xc / n
            centred[:, lossy] = cross
            centred[lossy, :] = cross.T
        return cls(n, mean, gram, centred)

    def mean_square(self) -> np.ndarray:
        return np.diag(self.gram) / self.n

    def centred_gram(self) -> np.ndarray:
        return self.centred


def check_data(X, y, spec: ModelSpec, *, stats: bool = False):
    """Validate ``X`` and ``y`` for ``spec``; warn where the MLE is not unique.

    Returns float64 ``X`` and the family's target (integer labels for categorical), and with
    ``stats=True`` also the :class:`DesignStats` of X that the checks computed.
    """
    summarise = stats or not spec.is_map
    X = check_X(X, finite=not summarise)
    _check_label_kind(y, spec)
    y_arr = np.asarray(y)
    if y_arr.ndim != 1:
        raise ValueError(f"y must be 1-d; got shape {y_arr.shape}")
    if y_arr.shape[0] != X.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but y has {y_arr.shape[0]}")
    try:
        as_float = y_arr.astype(np.float64)
    except (TypeError, ValueError):
        raise ValueError("y must be numeric") from None
    if not np.isfinite(as_float).all():
        raise ValueError("y contains NaN or inf")
    if spec.row_scales and len(spec.noise_scale) != y_arr.shape[0]:
        name, what = ((spec.family.row_input, "values") if spec.family.row_input
                      else ("noise_scale", "scales"))
        raise ValueError(f"{name} has {len(spec.noise_scale)} per-row {what} but X has "
                         f"{y_arr.shape[0]} rows")
    y_arr = (spec.family.check_target(y_arr, np.asarray(spec.noise_scale))
             if spec.family.row_input else spec.family.check_target(y_arr))
    if spec.learns_scale and np.ptp(y_arr) == 0:
        raise ValueError(
            f"y is constant: a learned {spec.likelihood} noise scale would shrink to 0 (the "
            "likelihood is unbounded); pass noise_scale or use other data"
        )
    design = None
    if summarise:
        with np.errstate(invalid="ignore", over="ignore"):  # (judged just below)
            design = DesignStats.of(X)
        # diag(XᵀX) = Σ x² is finite iff every x is finite and nothing overflows (|G_ij| is at
        # most √(G_ii G_jj)): one check instead of a pass over X
        if not np.isfinite(np.diag(design.gram)).all():
            check_X(X)  # NaN or inf in X: its own message
            raise ValueError("X has values so large that XᵀX overflows; rescale its columns")
    if not spec.is_map:
        _warn_unidentifiable(X, spec.fit_intercept, design)
    return (X, y_arr, design) if stats else (X, y_arr)


def _check_label_kind(y, spec: ModelSpec) -> None:
    """Labels (strings, pandas categories, booleans) are not numbers: say how to encode them.
    Booleans are exactly a two-class family's 0/1 (bernoulli: True = 1) and pass there."""
    dtype = getattr(y, "dtype", None)
    if isinstance(dtype, pd.CategoricalDtype):
        kind = "pandas category"
    else:
        kind = {"b": "boolean", "O": "object", "U": "string", "S": "string"}.get(
            np.asarray(y).dtype.kind)
        two_class = spec.family.classifier and not spec.family.multiclass
        if kind == "boolean" and two_class:
            return
        if kind == "object":  # numbers held as objects are fine; anything else is a label
            try:
                np.asarray(y, dtype=np.float64)
                return
            except (TypeError, ValueError):
                kind = "string"
    if kind is None:
        return
    raise ValueError(
        f"y holds {kind} labels, but the {spec.likelihood} likelihood needs numbers: encode "
        "them first, e.g. `y_codes, classes = pandas.factorize(y, sort=True)` (labels 0..K-1, "
        "classes[k] names label k), or use bayesloss.sklearn.LikelihoodClassifier, which "
        "encodes labels itself"
    )


def _warn_unidentifiable(X: np.ndarray, fit_intercept: bool, design: DesignStats) -> None:
    n_params = X.shape[1] + int(fit_intercept)
    if X.shape[0] < n_params:
        warnings.warn(
            f"{X.shape[0]} rows for {n_params} coefficients: the MLE is not unique (and may "
            "not exist); a MAP fit still is",
            IdentifiabilityWarning,
            stacklevel=3,
        )
    # candidates from the Gram matrix, confirmed on the columns themselves
    if not fit_intercept:
        cols = [j for j in np.flatnonzero(design.mean_square() == 0) if not X[:, j].any()]
        if cols:
            warnings.warn(f"column(s) {cols} of X are all zero: the MLE is not unique",
                          IdentifiabilityWarning, stacklevel=3)
    var = np.diag(design.centred)
    if fit_intercept:
        near = var <= 1e-12 * np.maximum(design.mean_square(), np.finfo(float).tiny)
        cols = [j for j in np.flatnonzero(near) if np.ptp(X[:, j]) == 0]
        if cols:
            warnings.warn(
                f"column(s) {cols} of X are constant: with an intercept the MLE is not unique",
                IdentifiabilityWarning,
                stacklevel=3,
            )
    dup = _duplicated_columns(X, design)
    if dup:
        warnings.warn(
            f"column(s) {dup} of X duplicate earlier columns: the MLE is not unique",
            IdentifiabilityWarning,
            stacklevel=3,
        )


def _duplicated_columns(X: np.ndarray, design: DesignStats) -> list[int]:
    """Columns equal to an earlier one: equal columns have equal Gram entries
    (G_ii = G_jj = G_ij) and means; candidate pairs are confirmed exactly."""
    G, mean = design.gram, design.mean
    diag = np.diag(G)
    close = lambda a, b: np.abs(a - b) <= 1e-10 * np.maximum(np.abs(a), np.abs(b))  # noqa: E731
    # candidate pairs i < j at once (a loop over the columns costs more than a small fit)
    cand = np.triu(close(diag[:, None], diag) & close(G, diag) & close(mean[:, None], mean), 1)
    return [int(j) for j in np.flatnonzero(cand.any(axis=0))
            if any(np.array_equal(X[:, i], X[:, j]) for i in np.flatnonzero(cand[:, j]))]


def with_changes(spec: ModelSpec, **changes) -> ModelSpec:
    """A copy of ``spec`` with some fields replaced (validated again)."""
    fields = {f: getattr(spec, f) for f in spec.__dataclass_fields__}
    if spec.family.row_input:  # its known input sits in noise_scale; make_spec takes it by name
        fields[spec.family.row_input] = fields.pop("noise_scale")
    fields.update(changes)
    likelihood = fields.pop("likelihood")
    return make_spec(likelihood, **fields)


__all__ = [
    "ConvergenceWarning",
    "IdentifiabilityWarning",
    "PriorWarning",
    "DesignStats",
    "ModelSpec",
    "make_spec",
    "check_data",
    "check_X",
    "feature_names",
    "with_changes",
]


def prior_keywords(prior, prior_scale, prior_df) -> dict:
    """The prior keywords a caller gave (None: not given, the spec's default applies)."""
    return {k: v for k, v in (("prior", prior), ("prior_scale", prior_scale),
                              ("prior_df", prior_df)) if v is not None}


def warn_prior_off(given: dict, spec: ModelSpec, stacklevel: int) -> None:
    """Warn (:class:`~bayesloss.spec.PriorWarning`) when an MLE fit was given a prior."""
    if given and not spec.is_map:
        warnings.warn(
            f"{', '.join(f'{k}=' for k in given)} given to an MLE fit: the prior is off "
            "(estimator='mle' masks it); pass estimator='map' to use it",
            PriorWarning, stacklevel=stacklevel,
        )
