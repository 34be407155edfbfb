"""The names and tables every result shows: one label per parameter, and a DataFrame that
prints whole."""

from __future__ import annotations

import html

import pandas as pd

#: the one word for each scalar site in every table and figure
SITE_LABELS = {"bias": "intercept", "mixing": "mixing logit"}


def feature_labels(names, d: int) -> tuple[str, ...]:
    """The names of ``d`` feature columns: a DataFrame's column names (``names``), else
    ``x0, x1, …`` (scikit-learn's ``get_feature_names_out`` convention)."""
    if names is None:
        return tuple(f"x{j}" for j in range(d))
    if len(names) != d:
        raise ValueError(f"{len(names)} feature names for {d} columns")
    return tuple(map(str, names))


def parameter_label(site: str, index: tuple = (), features=None, scale_name: str = "scale") -> str:
    """The one name of a parameter, used by fit summaries, :meth:`Fit.params`, posterior
    summaries, figures, ``compare`` tables and sweep exports.

    A weight is named by its feature (``features`` from :func:`feature_labels`): ``age``,
    ``age[2]`` for class 2; the intercept is ``intercept`` (``intercept[2]``), the family's
    extra positive parameter by its ``scale_name`` (``scale`` for σ and b, ``shape``,
    ``alpha``, ``phi``, ``kappa``); a log σ(x) head's are ``log σ: age`` and ``log σ: intercept``; any other site
    (a network's layers) by site name and index, ``layers.0.weight[3,1]``; a mixture's scales
    are ``scale[k]`` and its mixing logits ``mixing logit[k]`` (k ≥ 1, against component 0).

    Parameters
    ----------
    site:
        The model site: ``weight``, ``bias``, ``scale``, ``scale_weight``, ``scale_bias``, or a
        network's.
    index:
        The element's index within the site (``()`` for a scalar).
    features:
        The feature names, needed for ``weight`` and ``scale_weight``.
    scale_name:
        The family's name for the ``scale`` site (:attr:`~bayesloss.families.base.Family.
        scale_name`); the site itself keeps its name in the model and in ``idata``.
    """
    index = tuple(int(i) for i in index)
    if site in ("weight", "scale_weight"):
        name, rest = str(features[index[0]]), index[1:]
        if site == "scale_weight":
            name = f"log σ: {name}"
    elif site == "scale_bias":
        name, rest = "log σ: intercept", index
    elif site == "scale":
        name, rest = scale_name, index
    elif site == "mixing":  # a mixture's logit of component k ≥ 1 against component 0
        name, rest = SITE_LABELS[site], (index[0] + 1,)
    else:
        name, rest = SITE_LABELS.get(site, site), index
    return name + (f"[{','.join(map(str, rest))}]" if rest else "")


class Table(pd.DataFrame):
    """A DataFrame that prints whole: ``print(table)`` shows every row and column (pandas'
    display options would hide the middle columns behind ``...``), and notebooks render all
    of it as HTML."""

    @property
    def _constructor(self):
        return Table

    def __str__(self) -> str:
        return self.to_string()

    __repr__ = __str__

    def _repr_html_(self) -> str:
        return self.to_html(max_rows=None, max_cols=None)


class Report(str):
    """Text that shows as itself at a prompt and as preformatted HTML in a notebook (a plain
    ``str`` would show its repr, ``\\n`` escapes and all)."""

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        return f"<pre>{html.escape(self)}</pre>"
