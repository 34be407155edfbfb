"""scikit-learn and statsmodels estimators, each one call at tight tolerances: trusted.

Each docstring states the library's objective and the knob that makes it the model's −log
joint (scikit-learn ``Lasso`` carries 1/(2n), ``LogisticRegression`` a C in front of the loss,
``PoissonRegressor`` a 1/(2n) on the deviance).
"""

from __future__ import annotations

import numpy as np

from .closed_form import _profile_scale, _solve_lstsq
from .lp import _separation
from .problem import _catch, _Problem, PROFILE_NOTE, route, _Solution

#: scikit-learn tolerances (newton-cholesky: max |∇| and Newton decrement of the mean loss).
SKLEARN_NEWTON_TOL = 1e-12


LASSO_TOL = 1e-12


def _lasso_at(pb: _Problem, scale: float) -> _Solution:
    r"""scikit-learn ``Lasso`` at a fixed σ.

    Lasso minimises ``‖y − Xw − b‖²/(2n) + α‖w‖₁``; times ``n/σ²`` this is the MAP objective
    ``‖y − Xw − b‖²/(2σ²) + ‖w‖₁/τ`` when ``α = σ²/(n·τ)`` (σ, τ on the user's scale). The L1
    penalty is uniform, so Lasso runs on the user's columns (coordinate descent is invariant to
    column scaling); ``tol=1e-12`` on the duality gap (1e-14 is below its rounding floor on
    some sets). (An active-set polish after it moved no weight of the check matrix by more
    than 3e-15 of its unit, so it is not applied: the answer is Lasso's.)
    """
    from sklearn.linear_model import Lasso

    sigma = scale * pb.y_scale
    alpha = sigma**2 / (pb.n * pb.spec.prior_scale)
    model = Lasso(alpha=alpha, fit_intercept=pb.free_intercept, tol=LASSO_TOL,
                  max_iter=1_000_000, selection="cyclic")
    model, msgs = _catch(model.fit, pb.X, pb.y)
    intercept = model.intercept_ if pb.free_intercept else None
    theta = pb.from_user(model.coef_, intercept)
    converged = not any("ConvergenceWarning" in m for m in msgs)
    return _Solution(theta, scale, converged, int(model.n_iter_), info={"warnings": msgs})


@route("lasso", "scikit-learn Lasso (coordinate descent, tol=1e-12, α = σ²/(n·τ))",
       PROFILE_NOTE)
def _solve_lasso(pb: _Problem) -> _Solution:
    """Gaussian MAP with a Laplace prior: Lasso; a learned σ by :func:`_profile_scale`."""
    if not pb.spec.learns_scale:
        return _lasso_at(pb, pb.fixed_scale)
    return _profile_scale(pb, _lasso_at, _solve_lstsq(pb))


def _sklearn_design(pb: _Problem):
    """The user's columns, centred when the intercept is free (the intercept absorbs it)."""
    return pb.X - pb.X.mean(axis=0) if pb.free_intercept else pb.X


def _from_sklearn(pb: _Problem, coef, intercept) -> np.ndarray:
    """Map a fit on :func:`_sklearn_design` columns to ``theta``."""
    coef = np.asarray(coef, dtype=np.float64)
    if pb.free_intercept:
        intercept = np.asarray(intercept, dtype=np.float64) - pb.X.mean(axis=0) @ coef
    return pb.from_user(coef, intercept)



def _logistic_method(spec) -> str:
    C = "C=inf" if not spec.is_map else (
        "C=τ² (C=2τ² for two classes)" if spec.family.multiclass else "C=τ²")
    return ("scikit-learn LogisticRegression(solver='newton-cholesky', tol=1e-12, "
            + C + (", multinomial" if spec.family.multiclass else "") + ")")


@route("logistic", lambda spec: _logistic_method(spec))
def _solve_logistic(pb: _Problem) -> _Solution:
    r"""Bernoulli / categorical MLE or MAP-normal: scikit-learn ``LogisticRegression``.

    It minimises ``C·Σ_i logloss_i + ½‖W‖²``: divided by C this is
    ``NLL + ‖W‖²/(2τ²)`` for ``C = τ²`` (MAP, the user's columns, all K columns of W penalised,
    the intercept not); ``C = inf`` is the MLE, fitted on standardised columns (the MLE is
    invariant). Solver newton-cholesky (exact Newton steps), tol 1e-12 on max |∇| and on the
    Newton decrement of the mean loss. Categorical uses the multinomial (softmax) loss.
    An MLE is reported converged only if :func:`_separation` finds no separated classes.
    """
    from sklearn.linear_model import LogisticRegression

    mle = not pb.spec.is_map
    if mle:
        design = pb.Z[:, :-1] if pb.free_intercept else pb.Z
    else:
        design = _sklearn_design(pb)
    # no MLE exists for separated classes: the solver's answer then only documents that
    separation = _separation(pb) if mle else None
    separated = bool(separation is not None and not separation <= 1e-9)
    # Two classes: scikit-learn fits one logit v = w₁ − w₀. The softmax prior on both columns
    # is minimised by the even split w = (−v/2, v/2), where it equals N(0, 2τ²) on v: C = 2τ².
    two_class = pb.spec.family.multiclass and pb.n_out == 2
    C = pb.spec.prior_scale**2 * (2.0 if two_class else 1.0)
    model = LogisticRegression(C=np.inf if mle else C,
                               solver="newton-cholesky", tol=SKLEARN_NEWTON_TOL,
                               max_iter=50 if separated else 1000,
                               fit_intercept=pb.free_intercept)
    target = pb.t if pb.spec.family.multiclass else pb.t.astype(np.int64)
    model, msgs = _catch(model.fit, design, target)
    coef = model.coef_.T if pb.spec.family.multiclass else model.coef_[0]
    intercept = model.intercept_ if pb.spec.family.multiclass else model.intercept_[0]
    if two_class:
        coef = np.column_stack([-coef[:, 0] / 2, coef[:, 0] / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
    if mle:
        theta = np.vstack([coef.reshape(-1, pb.n_out), np.reshape(intercept, (1, pb.n_out))]) \
            if pb.free_intercept else coef
        theta = theta.reshape(pb.shape)
    else:
        theta = _from_sklearn(pb, coef, intercept if pb.free_intercept else None)
    # a solver can also stop on a tiny gradient where no MLE exists: separation decides
    converged = not separated and not any("ConvergenceWarning" in m for m in msgs)
    info = {"warnings": msgs, "separation": separation}
    return _Solution(theta, None, converged, int(np.max(model.n_iter_)), info=info)


@route("poisson-glm", "statsmodels GLM(Poisson) IRLS (tol=1e-14)")
def _solve_poisson_mle(pb: _Problem) -> _Solution:
    r"""Poisson MLE: statsmodels ``GLM(family=Poisson())`` by IRLS on standardised columns.

    IRLS is Newton's method for the canonical log link; stopping rule: relative change of the
    deviance below 1e-14 (its quadratic convergence then leaves the weights at full precision).
    """
    import statsmodels.api as sm

    model = sm.GLM(pb.t, pb.Z, family=sm.families.Poisson())
    res, msgs = _catch(model.fit, method="IRLS", tol=1e-14, maxiter=1000)
    converged = bool(res.converged) and not any("ConvergenceWarning" in m for m in msgs)
    return _Solution(np.asarray(res.params), None, converged,
                     int(res.fit_history["iteration"]), info={"warnings": msgs})


@route("poisson-ridge", "scikit-learn PoissonRegressor(solver='newton-cholesky', "
       "tol=1e-12, α = 1/(n·τ²))")
def _solve_poisson_ridge(pb: _Problem) -> _Solution:
    r"""Poisson MAP with a normal prior: scikit-learn ``PoissonRegressor``.

    It minimises ``Σ_i deviance_i/(2n) + α‖w‖²/2``; times n (deviance/2 = NLL + const) this is
    ``NLL + ‖w‖²/(2τ²)`` for ``α = 1/(n·τ²)``. Solver newton-cholesky, tol 1e-12, on the
    user's (centred) columns, since the penalty is uniform there.
    """
    from sklearn.linear_model import PoissonRegressor

    model = PoissonRegressor(alpha=1.0 / (pb.n * pb.spec.prior_scale**2),
                             solver="newton-cholesky", tol=SKLEARN_NEWTON_TOL, max_iter=1000,
                             fit_intercept=pb.free_intercept)
    model, msgs = _catch(model.fit, _sklearn_design(pb), pb.t)
    theta = _from_sklearn(pb, model.coef_, model.intercept_ if pb.free_intercept else None)
    converged = not any("ConvergenceWarning" in m for m in msgs)
    return _Solution(theta, None, converged, int(model.n_iter_), info={"warnings": msgs})
