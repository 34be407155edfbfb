r"""The kind of ``y``: which of :data:`~bayesloss.families.base.SUPPORTS` the data's targets
are, and which families' supports admit them (``which-loss``).

**Detection** (:func:`detect_support`) reads the values alone and names the narrowest kind:

=============  ===============================================================================
kind           y is …
=============  ===============================================================================
successes      integers 0 ≤ yᵢ ≤ nᵢ, given a number of trials nᵢ per row (``trials=``)
binary         every value 0 or 1 (integer-valued; booleans too)
counts         integer-valued and ≥ 0, not all 0/1
classes        non-numeric labels (strings, categories), encoded 0..K−1 by the caller
real           integer-valued with a negative value, or none of the kinds below
proportion     non-integer, every value strictly inside (0, 1)
positive       non-integer, every value > 0, some ≥ 1
angle          non-integer, every value in (−π, π], of both signs, spanning more than π
=============  ===============================================================================

The values cannot always tell: integer-valued amounts read as counts, labels 0..K−1 read as
counts (with ``classes`` admitted, below), angles bunched in less than half the circle read
as reals, and reals that happen to lie in (−π, π] with both signs and a span over π read as
angles. A caller who knows better names the kind (``kind=`` / ``--kind``).

**The rule** (:func:`admission`): a family is proposed when (1) every observed ``y`` lies in
its support and (2) its support is one that the detected kind admits, :data:`ADMITS`: the
kind itself and the wider supports that measure ``y`` the same way — a density for
continuous ``y``, a probability for discrete ``y`` — so that PSIS-LOO's log predictive
densities are of the same quantity and can be ranked. Positive ``y`` admits the real families
(a mixture among them), proportions the positive and the real ones, angles the real ones,
0/1 labels the count families, successes the count families (which ignore nᵢ); counts admit
the classes when they are labels 0..K−1 with every label present and at most
:data:`MAX_CLASSES` of them. Not admitted: a density for a discrete ``y`` (or the reverse),
whose LOO values are not comparable; a narrower support (a positive family for a ``y`` with
values ≤ 0); two classes of a 0/1 ``y`` (categorical is then bernoulli's likelihood with a
redundant logit); successes without the number of trials.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from .base import SUPPORTS

#: What each kind of ``y`` is, in words (for tables and messages).
KIND_TEXT = {
    "real": "real numbers",
    "positive": "positive reals",
    "counts": "counts 0, 1, 2, …",
    "binary": "0/1 labels",
    "classes": "class labels 0..K−1",
    "proportion": "proportions in (0, 1)",
    "angle": "angles in (−π, π]",
    "successes": "successes out of nᵢ trials",
}

#: Kind of ``y`` → the supports whose families are proposed for it (itself first, then the
#: wider supports that measure ``y`` the same way).
ADMITS = {
    "real": ("real",),
    "positive": ("positive", "real"),
    "proportion": ("proportion", "positive", "real"),
    "angle": ("angle", "real"),
    "counts": ("counts", "classes"),
    "binary": ("binary", "counts"),
    "classes": ("classes",),
    "successes": ("successes", "counts"),
}

#: Counts with more distinct values than this are not read as class labels.
MAX_CLASSES = 10

#: The supports of continuous ``y``, whose families have densities (the others: probabilities).
CONTINUOUS = frozenset({"real", "positive", "proportion", "angle"})


def _as_values(y) -> np.ndarray:
    """``y`` as a 1-d float array (booleans as 0/1), raising ValueError where it cannot be."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"y must be one column; got shape {y.shape}")
    if y.size == 0:
        raise ValueError("y is empty")
    if y.dtype.kind not in "biuf":
        raise ValueError(f"y is not numeric (dtype {y.dtype}); class labels: encode them as "
                         "0..K−1 first (pandas.factorize) and name the kind 'classes'")
    y = y.astype(np.float64)
    if not np.isfinite(y).all():
        raise ValueError("y has missing or infinite values: drop those rows first")
    return y


def _as_trials(trials, n: int) -> np.ndarray:
    trials = np.asarray(trials, dtype=np.float64).reshape(-1)
    if trials.shape[0] != n:
        raise ValueError(f"trials has {trials.shape[0]} rows, y has {n}")
    if not np.isfinite(trials).all() or (trials < 1).any() or (trials != np.round(trials)).any():
        raise ValueError("trials must be whole numbers ≥ 1 (the number of trials of each row)")
    return trials


def membership(kind: str, y, trials=None) -> Optional[str]:
    """Whether every value of ``y`` lies in the support ``kind`` (a set question: how ``y`` is
    measured and what was detected do not enter): None if it does, else the fact that fails.

    Parameters
    ----------
    kind:
        One of :data:`~bayesloss.families.base.SUPPORTS`.
    y:
        The targets.
    trials:
        The number of trials of each row (``successes`` only).
    """
    y = _as_values(y)
    whole = bool((y == np.round(y)).all())
    low, high = float(y.min()), float(y.max())
    if kind == "real":
        return None
    if kind == "positive":
        return None if low > 0 else f"{int((y <= 0).sum())} values ≤ 0 (min {low:g})"
    if kind == "proportion":
        out = int(((y <= 0) | (y >= 1)).sum())
        edge = "; exact 0 or 1 included" if ((y == 0) | (y == 1)).any() else ""
        return None if not out else (f"{out} values outside (0, 1) (range [{low:g}, {high:g}]"
                                     f"{edge})")
    if kind == "angle":
        out = int(((y <= -math.pi) | (y > math.pi)).sum())
        return None if not out else f"{out} values outside (−π, π] (range [{low:g}, {high:g}])"
    if not whole:
        return "non-integer values"
    if low < 0:
        return f"negative values (min {low:g})"
    if kind == "counts":
        return None
    if kind == "binary":
        return None if high <= 1 else f"values other than 0 and 1 (max {high:g})"
    if kind == "classes":
        k = int(high) + 1
        if k > MAX_CLASSES:
            return f"{k} possible labels 0..{k - 1}: read as counts (classes: ≤ {MAX_CLASSES})"
        missing = sorted(set(range(k)) - set(y.astype(np.int64).tolist()))
        return None if not missing else f"labels {missing[:5]} of 0..{k - 1} never occur"
    if kind == "successes":
        if trials is None:
            return "no number of trials per row (trials= / --trials COLUMN)"
        over = int((y > _as_trials(trials, y.shape[0])).sum())
        return None if not over else f"{over} rows with more successes than trials"
    raise ValueError(f"unknown kind {kind!r}; the kinds are {SUPPORTS}")


def detect_support(y, trials=None) -> str:
    """The kind of ``y``: the narrowest of :data:`~bayesloss.families.base.SUPPORTS` that holds
    it, read from the values (the table in this module's docstring).

    Parameters
    ----------
    y:
        The targets, numbers (booleans read as 0/1). Class labels that are not numbers are
        encoded by the caller, who then knows the kind is ``classes``.
    trials:
        The number of trials of each row: ``y`` is then successes out of them.

    Returns
    -------
    str
        One of ``successes``, ``binary``, ``counts``, ``real``, ``proportion``, ``positive``,
        ``angle`` (``classes`` is never guessed from numbers: labels 0..K−1 read as counts,
        which admit the classes).

    Raises
    ------
    ValueError
        Empty, non-numeric or non-finite ``y``; ``trials`` of the wrong length or not whole
        numbers ≥ 1; successes that are not integers 0 ≤ yᵢ ≤ nᵢ.
    """
    y = _as_values(y)
    if trials is not None:
        fact = membership("successes", y, trials)
        if fact:
            raise ValueError(f"y with trials must be successes 0 ≤ yᵢ ≤ nᵢ: {fact}")
        return "successes"
    if (y == np.round(y)).all():
        if membership("binary", y) is None:
            return "binary"
        return "counts" if y.min() >= 0 else "real"
    if membership("proportion", y) is None:
        return "proportion"
    if membership("positive", y) is None:
        return "positive"
    if (membership("angle", y) is None and y.min() < 0 < y.max()
            and y.max() - y.min() > math.pi):
        return "angle"
    return "real"


def admission(kind: str, support: str, y, trials=None) -> tuple[bool, str]:
    """Whether a family of support ``support`` is proposed for a ``y`` of kind ``kind``, and
    why (the rule in this module's docstring).

    Returns
    -------
    (bool, str)
        Proposed or not, and the reason in a few words.
    """
    fact = membership(support, y, trials)
    if support == kind:
        return (True, "the kind of y") if fact is None else (False, fact)
    if fact is not None:
        return False, fact
    if support in ADMITS[kind]:
        return True, f"{support} holds this {kind} y too, measured alike: LOO compares it"
    if (support in CONTINUOUS) != (kind in CONTINUOUS):
        if kind in CONTINUOUS:
            return False, "y is continuous: a probability of it is not comparable by LOO"
        return False, ("y is discrete: a density is not comparable by LOO (an amount? name "
                       "its kind)")
    if kind == "binary" and support == "classes":
        return False, "two classes: bernoulli's likelihood, with a redundant logit"
    if kind == "classes":
        return False, "labels have no order or size: a count family reads them as amounts"
    if support == "angle":
        return False, f"not read as angles ({kind}): name the kind 'angle' to compare it"
    return False, f"not among the supports a {kind} y admits {ADMITS[kind]}"


__all__ = ["ADMITS", "CONTINUOUS", "KIND_TEXT", "MAX_CLASSES", "admission", "detect_support", "membership"]
