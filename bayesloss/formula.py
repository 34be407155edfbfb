"""Formulas: ``bayesloss.fit("y ~ age + C(group)", data=frame, likelihood="gaussian")``.

A string in ``X``'s place is a Wilkinson formula, turned into a design by `formulaic
<https://matthewwardrop.github.io/formulaic/>`_ (the engine Bambi uses) with ``data=`` the
frame. The columns carry statsmodels' formula names (``C(group)[T.b]`` for treatment-coded
levels, ``age:C(group)[T.b]`` for interactions, ``I(age ** 2)``, ``np.log(w)``) in the
formula's order (statsmodels groups the categorical terms first); the ``Intercept`` column is
the fit's own intercept (``fit_intercept``), so a formula with ``0 +`` or ``- 1`` fits none.
The MLE equals statsmodels' formula fit of the same likelihood (``smf.ols``, ``smf.logit``,
``smf.glm(..., family=Poisson())``, ``smf.quantreg(q=0.5)``, ``smf.mnlogit``).

Rows with a missing value in a column the formula uses are dropped (as statsmodels and Bambi
do), with a warning that says how many. A class-label target may hold strings: its levels,
in sorted order, become the labels 0..K−1 (``Formula.classes``). The fit keeps the
:class:`Formula` (``Fit.formula``), so ``fit.predict(new_frame)`` builds the new rows' design
the same way (the training data's levels and, for stateful transforms such as ``center``,
its statistics).
"""

from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass, replace
from typing import Callable, Optional

import numpy as np
import pandas as pd
from formulaic import Formula as _FormulaicFormula
from formulaic import ModelSpec, model_matrix
from formulaic.errors import DataMismatchWarning, FormulaicError

INTERCEPT = "Intercept"  # formulaic's (and statsmodels') name of the constant column


@dataclass(frozen=True)
class Formula:
    """A formula as fitted: how to build the design of new rows.

    Attributes
    ----------
    text:
        The formula as written.
    model_spec:
        formulaic's ``ModelSpec`` of the right-hand side, with the training data's levels
        and transform states.
    fit_intercept:
        Whether the formula has an intercept (the fit's own, not a column).
    response:
        The left-hand side as written (normalised by formulaic).
    classes:
        The target's levels, code 0 first, when it held labels (strings, categories); None
        when it was numeric.
    """

    text: str
    model_spec: ModelSpec
    fit_intercept: bool
    response: str
    classes: Optional[tuple] = None

    @property
    def columns(self) -> tuple[str, ...]:
        """The design's column names: the fit's feature names (no ``Intercept``)."""
        return tuple(c for c in self.model_spec.column_names if c != INTERCEPT)

    def design(self, data) -> pd.DataFrame:
        """The design of the rows of ``data`` (float64, columns :attr:`columns`), one row per
        row of ``data``: a missing value or a level unseen in training is a ValueError rather
        than a dropped row or a silent zero."""
        frame = _frame(data)
        _check_columns(self.model_spec.formula.required_variables, frame)
        with warnings.catch_warnings():
            warnings.simplefilter("error", DataMismatchWarning)
            try:
                matrix = self.model_spec.get_model_matrix(frame, na_action="raise")
            except DataMismatchWarning as err:  # formulaic would code the level as 0s
                seen = str(err).split(". ")[0]
                raise ValueError(f"{self.text!r} on new data: {seen}; a fit predicts only for "
                                 "the levels it was trained on") from None
            except (FormulaicError, ValueError) as err:
                raise ValueError(f"{self.text!r} on new data: {err}") from None
        return _numeric(matrix).drop(columns=[INTERCEPT], errors="ignore")

    def __repr__(self) -> str:
        return f"Formula({self.text!r})"


@dataclass(frozen=True)
class Design:
    """A formula applied to its data: the design ``X`` (a DataFrame named by the formula's
    columns), the target ``y`` and the :class:`Formula` that builds new rows."""

    X: pd.DataFrame
    y: np.ndarray
    formula: Formula


def _frame(data) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        return data
    try:
        return pd.DataFrame(data)
    except (TypeError, ValueError) as err:
        raise ValueError(f"data= must be a DataFrame (or a mapping of columns): {err}") from None


def _check_columns(required, frame: pd.DataFrame) -> None:
    """A variable the formula uses that ``frame`` lacks: a ValueError naming both."""
    columns = [str(c) for c in frame.columns]
    missing = sorted(set(required) - set(columns))
    if missing:
        raise ValueError(f"the formula uses {missing}, not column(s) of the data; its columns "
                         f"are {columns}")


def _numeric(matrix) -> pd.DataFrame:
    """formulaic's matrix as a float64 DataFrame (indicator columns come as integers)."""
    return pd.DataFrame(np.asarray(matrix, dtype=np.float64), columns=list(matrix.columns),
                        index=matrix.index)


def _target(lhs, likelihood: Optional[str]) -> tuple[np.ndarray, Optional[tuple]]:
    """The response: one numeric column, or the indicators formulaic makes of a label column
    (strings, categories), which become codes 0..K−1 for a classifier."""
    columns = list(lhs.columns)
    if len(columns) == 1:
        return np.asarray(lhs.iloc[:, 0], dtype=np.float64), None
    from .families import get_family

    if likelihood is None or not get_family(likelihood).classifier:
        raise ValueError(f"the formula's left-hand side gives {len(columns)} columns "
                         f"{columns}: a {likelihood} target is one numeric column")
    term = str(lhs.model_spec.terms[0])
    classes = tuple(c[len(term) + 1:-1] if c.startswith(term + "[") else c for c in columns)
    return np.asarray(lhs).argmax(axis=1).astype(np.int64), classes


def design_matrices(formula: str, data, likelihood: Optional[str] = None) -> Design:
    """Build the design and target of ``formula`` on ``data``.

    Parameters
    ----------
    formula:
        ``"y ~ x1 + C(g) + x1:x2"``: one target on the left; formulaic's grammar on the right
        (``C()``, ``:``, ``*``, ``I()``, ``np.`` functions, ``center``, ``scale``, ``poly``,
        …); ``0 +`` or ``- 1`` for no intercept.
    data:
        A DataFrame (or a mapping of columns) holding every variable the formula uses.
    likelihood:
        The family the target is for: a classifier's target may hold labels (strings),
        coded 0..K−1 in sorted order.

    Returns
    -------
    Design
        ``X`` (float64 DataFrame, no intercept column), ``y`` and the :class:`Formula`.
    """
    if not isinstance(formula, str) or "~" not in formula:
        raise ValueError(f"a formula is a string 'target ~ terms'; got {formula!r}")
    frame = _frame(data)
    try:
        parsed = _FormulaicFormula(formula)
    except FormulaicError as err:  # its first line; the rest draws the formula in colour
        raise ValueError(f"cannot parse the formula {formula!r}: "
                         f"{str(err).splitlines()[0]}") from None
    if not hasattr(parsed, "lhs"):
        raise ValueError(f"the formula {formula!r} has no target: write 'target ~ terms'")
    _check_columns(parsed.required_variables, frame)
    try:
        # context=None: numpy (``np.``) and formulaic's transforms, not this module's names
        matrices = model_matrix(parsed, frame, context=None)
    except (FormulaicError, ValueError) as err:
        raise ValueError(f"cannot build the design of {formula!r}: {err}") from None
    lhs, rhs = matrices.lhs, matrices.rhs
    dropped = len(frame) - len(rhs)
    if dropped:
        warnings.warn(f"{dropped} of {len(frame)} rows dropped for missing values in the "
                      f"columns of {formula!r}", UserWarning, stacklevel=4)  # fit()'s caller
    y, classes = _target(lhs, likelihood)
    X = _numeric(rhs)
    fit_intercept = INTERCEPT in X.columns
    X = X.drop(columns=[INTERCEPT], errors="ignore")
    if X.shape[1] == 0:
        raise ValueError(f"{formula!r} has no terms besides the intercept: give at least one "
                         "predictor")
    spec = Formula(formula, rhs.model_spec, fit_intercept, str(parsed.lhs), classes)
    return Design(X, y, spec)


def call_with_formula(function: Callable, arguments: dict):
    """Run ``function`` (:func:`bayesloss.fit` or :func:`bayesloss.posterior`) on the design
    of the formula in ``arguments["X"]``; ``arguments`` are the call's own, as written.

    ``fit("y ~ x", data=df, likelihood="gaussian")``, ``fit("y ~ x", "gaussian", data=df)``
    and ``fit("y ~ x", df, "gaussian")`` are the same call. The formula's intercept sets
    ``fit_intercept``; its column names are the feature names. A :class:`~bayesloss.Fit`
    comes back holding the :class:`Formula` (``fit.formula``), so it predicts on new frames.
    """
    # the function's own parameters only: ``arguments`` is its locals(), the hook's import too
    kwargs = {k: arguments[k] for k in inspect.signature(function).parameters}
    X, y, likelihood, data = (kwargs.pop(k) for k in ("X", "y", "likelihood", "data"))
    name = function.__name__
    if not isinstance(X, str):
        if data is not None:
            raise TypeError(f"{name}(): data= goes with a formula in X's place, e.g. "
                            f"{name}('y ~ x1 + C(g)', data=frame, likelihood=...)")
        raise TypeError(f"{name}() needs X, y and likelihood, or a formula and data=: "
                        f"{name}('y ~ x1 + C(g)', data=frame, likelihood=...)")
    if isinstance(y, pd.DataFrame) and data is None:  # statsmodels' order: (formula, data)
        y, data = None, y
    if isinstance(y, str) and likelihood is None:  # (formula, likelihood, data=)
        y, likelihood = None, y
    if y is not None:
        raise TypeError(f"{name}(): the formula names the target; give no y beside it")
    if data is None:
        raise TypeError(f"{name}(): the formula {X!r} needs data=, the frame of its columns")
    if likelihood is None:
        raise TypeError(f"{name}(): give likelihood=, e.g. 'gaussian'")
    if not isinstance(likelihood, str):
        raise ValueError(f"a formula has one target, fitted by one likelihood; got "
                         f"{likelihood!r} (several outputs: pass arrays)")
    design = design_matrices(X, data, likelihood)
    if not design.formula.fit_intercept:
        kwargs["fit_intercept"] = False
    elif not kwargs["fit_intercept"]:
        raise ValueError(f"fit_intercept=False and {X!r} has an intercept: write the formula "
                         "with '0 +' (or '- 1') instead")
    if "feature_names" in kwargs:  # posterior(): the formula names the weights
        if kwargs["feature_names"] is not None:
            raise ValueError(f"{name}(): the formula names the features; give no "
                             "feature_names beside it")
        kwargs["feature_names"] = design.formula.columns
    result = function(design.X, design.y, likelihood, **kwargs)
    from .results import Fit

    return replace(result, formula=design.formula) if isinstance(result, Fit) else result


__all__ = ["Formula", "Design", "design_matrices", "call_with_formula"]
