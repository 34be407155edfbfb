r"""Likelihood families: each one the Pyro distribution behind a classical loss.

A :class:`Family` is a small declarative record (in the spirit of statsmodels'
``genmod.families``): its link, its Pyro distribution given the linear predictor ``η``, the
classical loss it reduces to, the exact constant between the negative log-likelihood and that
loss, its point-prediction rule (the mode of the predictive) and its target check.

=============  ==========================  ==================================================
family         classical loss (sum)        NLL in terms of the loss
=============  ==========================  ==================================================
gaussian       SSE = Σ (y − η)²            SSE / (2σ²) + n/2 · log(2πσ²)
laplace        SAE = Σ |y − η|             SAE / b + n · log(2b)
bernoulli      Σ binary cross-entropy      the loss itself (n · sklearn ``log_loss``)
categorical    Σ multiclass cross-entropy  the loss itself (n · sklearn ``log_loss``)
poisson        deviance D                  D / 2 + Σ [log y! − y log y + y]
studentt       Σ (ν+1)/2 · log(1 + r²/νσ²) loss + n · [log σ + ½ log(νπ) + lgΓ(ν/2) − lgΓ((ν+1)/2)]
hetero_        Σ r²/(2σ(x)²) + log σ(x)    loss + n/2 · log(2π)   (log σ(x) a second head)
gaussian
=============  ==========================  ==================================================

The package: :mod:`~bayesloss.families.base` holds the record and the shared target checks,
:mod:`~bayesloss.families.classic` the seven families above. A new family is one entry in one
module here, its reference route in :mod:`bayesloss.references`, and its tests.
"""

from __future__ import annotations

from .base import SUPPORTS, Family
from .classic import CLASSIC

#: Every registered family by name. A new family is one entry in one of this package's modules.
FAMILIES: dict[str, Family] = {**CLASSIC}


def get_family(name: str) -> Family:
    """Return the registered family ``name``; a ValueError lists the valid names otherwise."""
    try:
        return FAMILIES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown likelihood {name!r}; valid names are {sorted(FAMILIES)}"
        ) from None


__all__ = ["FAMILIES", "SUPPORTS", "Family", "get_family"]
