"""Your own data: a CSV or Parquet file read into a design matrix, a target and column names.

Every problem with the file is a :class:`DataError` (a ValueError, so the command line exits
with code 2) that names what is wrong and how to fix it: a missing target or feature column,
non-numeric feature columns (with the one-hot encoding that fixes them), missing values, an
empty file. Parquet without pyarrow is a :class:`~bayesloss.optional.MissingExtraError` naming
the extra to install (exit code 2 as well). Reading only reads, so a failure leaves nothing
behind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from .data import Dataset
from .optional import require

SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


class DataError(ValueError):
    """A data file that cannot be used as it is; the message says why and what to do."""


def is_table_path(name: str) -> bool:
    """Whether ``--data NAME`` names a file (by its suffix, or because it exists) rather than
    a built-in data set."""
    return Path(name).suffix.lower() in SUFFIXES or Path(name).is_file()


def read_table(path) -> pd.DataFrame:
    """Read a ``.csv`` or ``.parquet`` file into a DataFrame with at least one row."""
    path = Path(path)
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise DataError(f"{path}: unsupported file type {path.suffix!r}; use .csv or .parquet")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        if kind == "csv":
            frame = pd.read_csv(path)
        else:
            require("pyarrow", f"reading Parquet ({path}; or save it as CSV)")
            frame = pd.read_parquet(path)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty: expected a header row of column names, then data"
                        ) from None
    except pd.errors.ParserError as err:
        raise DataError(f"{path} is not a readable CSV file: {err}") from None
    if frame.shape[1] == 0:
        raise DataError(f"{path} has no columns")
    if frame.shape[0] == 0:
        raise DataError(f"{path} has column names but no rows of data")
    return frame


def _missing_values(frame: pd.DataFrame, what: str) -> None:
    counts = frame.isna().sum()
    counts = counts[counts > 0]
    if len(counts):
        listed = ", ".join(f"{c!r} ({n} rows)" for c, n in counts.items())
        raise DataError(f"missing values in {what} column(s) {listed}: drop those rows or fill "
                        "them in first (e.g. frame.dropna())")


def load_table(path, target: str, features: Optional[Sequence[str]] = None, *,
               labels: bool = False) -> tuple[Dataset, Optional[list]]:
    """Read ``path`` and split it into the features and the ``target`` column.

    Parameters
    ----------
    path:
        A ``.csv`` or ``.parquet`` file with a header row.
    target:
        The column to predict.
    features:
        The columns to predict it from, in this order (default: every other column).
    labels:
        Whether the target holds class labels (bernoulli, categorical). A non-numeric label
        column (strings, booleans, categories) is then encoded as 0..K−1 in sorted order;
        otherwise it is an error.

    Returns
    -------
    (Dataset, classes)
        The data (float64 ``X``, ``feature_names``, ``source`` naming the file), and the
        original label of each code 0..K−1 when the target was encoded (else None).
    """
    frame = read_table(path)
    columns = [str(c) for c in frame.columns]
    frame.columns = columns
    if target not in columns:
        raise DataError(f"no target column {target!r} in {path}; its columns are {columns}")
    if features is None:
        features = [c for c in columns if c != target]
    else:
        features = list(features)
        unknown = [c for c in features if c not in columns]
        if unknown:
            raise DataError(f"no feature column(s) {unknown} in {path}; its columns are "
                            f"{columns}")
        if target in features:
            raise DataError(f"the target {target!r} is also listed as a feature")
        if len(set(features)) < len(features):
            raise DataError(f"feature columns listed twice: {features}")
    if not features:
        raise DataError(f"{path} has no columns besides the target {target!r}")
    X = frame[features]
    text = X.select_dtypes(exclude=["number", "bool"]).columns.tolist()
    if text:
        raise DataError(
            f"non-numeric feature column(s) {text} in {path}: encode them as numbers first, "
            f"e.g. one-hot with pandas.get_dummies(frame, columns={text}, drop_first=True, "
            "dtype=float), or leave them out with --features"
        )
    _missing_values(frame[features + [target]], "feature/target")
    y_col = frame[target]
    classes = None
    if not pd.api.types.is_numeric_dtype(y_col) or pd.api.types.is_bool_dtype(y_col):
        if not labels:
            raise DataError(
                f"the target column {target!r} is not numeric (dtype {y_col.dtype}; e.g. "
                f"{y_col.iloc[0]!r}): encode it as numbers first, or fit a likelihood of class "
                "labels (bernoulli, categorical), which encodes them itself"
            )
        codes, uniques = pd.factorize(y_col, sort=True)
        y, classes = codes.astype(np.int64), list(uniques)
    else:
        y = y_col.to_numpy(dtype=np.float64)
    data = Dataset(
        name=Path(path).name,
        X=X.to_numpy(dtype=np.float64),
        y=y,
        feature_names=tuple(features),
        source=f"{path}, target {target!r}",
    )
    return data, classes


__all__ = ["DataError", "is_table_path", "read_table", "load_table"]
