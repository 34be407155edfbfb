"""bayesloss: everyday machine-learning losses are negative log-likelihoods.

Fit the explicit-likelihood Pyro model (MLE with the prior off, MAP with it on) and the
classical loss with a trusted solver, and see both agree::

    import bayesloss
    ours = bayesloss.fit(X, y, "bernoulli", estimator="map", prior="normal", prior_scale=2.0)
    ref = bayesloss.reference_fit(X, y, "bernoulli", estimator="map", prior="normal",
                                  prior_scale=2.0)   # scikit-learn LogisticRegression(C=4)
    bayesloss.compare(X, y, "bernoulli", estimator="map", prior_scale=2.0)  # tidy table
"""

import importlib

from . import console  # first: it imports tqdm.auto before Pyro does, without a warning
from .approximations import approximations
from .compare import compare
from .families import FAMILIES, Family, Likelihood, get_family
from .families.support import detect_support
from .inference import DivergenceError, fit
from .multioutput import MultiFit
from .posterior import Posterior, SamplerWarning, posterior, shrinkage_path
from .priors import PRIORS, Prior, get_prior, penalty_mapping
from .references import reference_fit
from .results import Fit
from .spec import ConvergenceWarning, IdentifiabilityWarning, ModelSpec, PriorWarning, make_spec
from .studies import (LikelihoodComparison, LOOWarning, WhichLoss, compare_likelihoods,
                      mode_space_demo, which_loss)
from .training import TrainingEquivalence, torch_equivalence
from .variational import ApproximationWarning

__version__ = "0.1.0"

#: subpackages loaded on first use (``bayesloss.plots.plot_forest(post)`` after a bare
#: ``import bayesloss``): matplotlib, ArviZ and scikit-learn's base stay unloaded until then
SUBMODULES = ("data", "diagnostics", "experiments", "io", "plots", "sklearn")


def __getattr__(name: str):
    if name in SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "fit", "reference_fit", "compare", "Fit", "Likelihood", "MultiFit", "Family", "Prior",
    "ModelSpec", "make_spec",
    "get_family", "get_prior", "penalty_mapping", "FAMILIES", "PRIORS",
    "ConvergenceWarning", "IdentifiabilityWarning", "PriorWarning", "DivergenceError",
    "torch_equivalence", "TrainingEquivalence",
    "posterior", "Posterior", "compare_likelihoods", "LikelihoodComparison", "shrinkage_path",
    "mode_space_demo", "SamplerWarning", "LOOWarning", "ApproximationWarning", "which_loss",
    "WhichLoss", "detect_support", "approximations",
]
