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
von_mises      Σ [1 − cos(y − μ)]          κ · loss + n · [log 2π + log(e^{−κ} I₀(κ))]
               μ = b + 2·atan(x·w)
gaussian_      none: the mixture NLL       −Σ log Σₖ πₖ N(y; ηₖ, σₖ²)   (K lines, K σₖ, πₖ)
mixture
=============  ==========================  ==================================================

The package: :mod:`~bayesloss.families.base` holds the record and the shared target checks,
:mod:`~bayesloss.families.classic` the seven classical families above,
:mod:`~bayesloss.families.glm` binomial (successes out of known trials), gamma,
negative_binomial and beta, :mod:`~bayesloss.families.circular` von_mises,
:mod:`~bayesloss.families.mixture` the mixture of regressions, and
:mod:`~bayesloss.families.custom` the :class:`Likelihood` that turns your own distribution
into a family. A new family is one entry in one
module here, its reference route in :mod:`bayesloss.references`, and its tests.
"""

from __future__ import annotations

from .base import SUPPORTS, Family
from .circular import CIRCULAR
from .classic import CLASSIC
from .custom import Likelihood
from .glm import GLM
from .mixture import MIXTURE

#: Every registered family by name. A new family is one entry in one of this package's modules.
FAMILIES: dict[str, Family] = {**CLASSIC, **GLM, **CIRCULAR, **MIXTURE}


def get_family(name) -> Family:
    """Return the registered family ``name`` (a :class:`Likelihood`: its own family); a
    ValueError lists the valid names otherwise."""
    if isinstance(name, Likelihood):
        return name.family
    try:
        return FAMILIES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown likelihood {name!r}; valid names are {sorted(FAMILIES)}"
        ) from None


__all__ = ["FAMILIES", "SUPPORTS", "Family", "Likelihood", "get_family"]
