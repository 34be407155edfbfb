"""The fitting engine: one problem protocol, one driver, one exact finish, one preconditioner.

Linear, network, heteroscedastic and multi-output fits are adapters that build a problem; the
driver knows nothing of families (see ``../shared/DESIGN.md``, "The engine").

* :mod:`.problem`: the :class:`Problem` protocol the driver reads;
* :mod:`.driver`: :class:`Solver` (the optimiser keywords), L-BFGS stages with the smoothing
  continuation and Adam/SVI under one budget, one stopping rule, one progress bar, one
  acceptance rule for Newton steps;
* :mod:`.precondition`: the :class:`Preconditioner`;
* :mod:`.newton`: the smooth exact finishes (Newton steps, exact scale, active-set polish);
* :mod:`.kink`: the exact finish of a Laplace likelihood and its certificate;
* :mod:`.linear`: the linear-mean adapter.
"""

from .driver import (
    DEFAULT_CHECK_EVERY, DEFAULT_LR, DTYPE, SMOOTHING_SCHEDULE, STAGE_ITER, DivergenceError,
    ElboPlateau, Objective, ObjectiveChange, Solver, elbo_loss, full_grad_norm, lbfgs_stage,
    minimise_elbo, progress_bar, run_adam, run_lbfgs, stop_rule,
)
from .kink import kink_finish
from .linear import (
    LinearProblem, Run, check_separation, initial_values, optimize,
)
from .newton import newton_start, polish_active_set, profile_scale, site_newton
from .precondition import Preconditioner
from .problem import Problem, SmoothFinish

__all__ = [
    "DEFAULT_CHECK_EVERY", "DEFAULT_LR", "DTYPE", "SMOOTHING_SCHEDULE", "STAGE_ITER",
    "DivergenceError", "ElboPlateau", "LinearProblem", "Objective", "ObjectiveChange",
    "Preconditioner", "Problem", "Run", "SmoothFinish", "Solver", "check_separation", "elbo_loss",
    "full_grad_norm", "initial_values", "kink_finish", "lbfgs_stage", "minimise_elbo",
    "newton_start", "optimize", "polish_active_set", "profile_scale", "progress_bar",
    "run_adam", "run_lbfgs", "site_newton", "stop_rule",
]
