"""Figures: the only place in bayesloss that imports matplotlib.

Plot functions read results (tidy tables, :class:`~bayesloss.results.Fit` objects, ArviZ
``InferenceData`` through :mod:`bayesloss.diagnostics`), never fit anything; each takes
``ax=None`` (or builds its own figure) and returns the figure or axes it drew on. One submodule
per topic keeps them small; import them as ``bayesloss.plots.<topic>`` or use the names
re-exported here.
"""

from .approximations import plot_approximations
from .experiments import (COMPARISON_PLOTS, plot_classification, plot_map_vs_mle,
                          plot_regularization_path, plot_robustness, save_figure)
from .deep import hetero_band, loss_landscape, mlp_band
from .losses import plot_nll_and_loss
from .posterior import (
    plot_forest, plot_pair, plot_posterior, plot_ppc, plot_prior_posterior, plot_rank,
    plot_shrinkage, plot_trace,
)

__all__ = [
    "COMPARISON_PLOTS", "plot_map_vs_mle", "plot_regularization_path", "plot_robustness",
    "plot_classification", "save_figure", "plot_nll_and_loss", "loss_landscape",
    "hetero_band", "mlp_band",
    "plot_trace", "plot_rank", "plot_posterior", "plot_prior_posterior", "plot_pair",
    "plot_ppc", "plot_forest", "plot_shrinkage", "plot_approximations",
]
