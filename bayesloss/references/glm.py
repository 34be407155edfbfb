r"""statsmodels and scikit-learn fits of the GLM families (:mod:`bayesloss.families.glm`).

Each is one call of the library at tight tolerances (trusted); a learned shape or precision
that the library does not fit with the coefficients is set by ``scipy.optimize.brentq`` on its
exact first-order condition. The one exception is a Beta model with a *fixed* precision, which
statsmodels cannot hold fixed: it is started at ``BetaModel``'s answer and finished by the
verified smooth solver (labelled verified).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize
from scipy.special import digamma

from .libraries import SKLEARN_NEWTON_TOL, _from_sklearn, _sklearn_design
from .problem import _catch, _Problem, _Solution, route
from .verified import _minimise, _smooth_objective

#: statsmodels IRLS: relative change of the deviance (quadratic convergence then leaves the
#: coefficients at full precision).
IRLS_TOL = 1e-14


def _converged(msgs) -> bool:
    return not any("ConvergenceWarning" in m for m in msgs)


def _irls(pb: _Problem, family, endog=None) -> _Solution:
    import statsmodels.api as sm

    model = sm.GLM(pb.t if endog is None else endog, pb.Z, family=family)
    res, msgs = _catch(model.fit, method="IRLS", tol=IRLS_TOL, maxiter=1000)
    return _Solution(np.asarray(res.params), None, _converged(msgs),
                     int(res.fit_history["iteration"]), info={"warnings": msgs})


@route("binomial-glm", "statsmodels GLM(Binomial) IRLS on (successes, failures) (tol=1e-14)")
def _solve_binomial_glm(pb: _Problem) -> _Solution:
    """Binomial MLE: statsmodels ``GLM(family=Binomial())`` with the two-column endog
    (successes, failures), standardised columns."""
    import statsmodels.api as sm

    trials = np.broadcast_to(pb.fixed_scale, pb.t.shape)
    return _irls(pb, sm.families.Binomial(), np.column_stack([pb.t, trials - pb.t]))


@route("binomial-logistic", "scikit-learn LogisticRegression(solver='newton-cholesky', "
       "tol=1e-12, C=τ²) on (success, failure) rows weighted yᵢ and nᵢ − yᵢ")
def _solve_binomial_logistic(pb: _Problem) -> _Solution:
    r"""Binomial MAP with a normal prior: scikit-learn ``LogisticRegression`` with weights.

    ``yᵢ`` successes out of ``nᵢ`` contribute ``yᵢ log p + (nᵢ − yᵢ) log(1 − p)`` (plus a
    constant): a label-1 row weighted yᵢ and a label-0 row weighted nᵢ − yᵢ. scikit-learn
    minimises ``C·Σ wᵢ logloss_i + ½‖w‖²``, which is the MAP objective for ``C = τ²`` on the
    user's (centred) columns.
    """
    from sklearn.linear_model import LogisticRegression

    trials = np.broadcast_to(pb.fixed_scale, pb.t.shape)
    design = _sklearn_design(pb)
    model = LogisticRegression(C=pb.spec.prior_scale**2, solver="newton-cholesky",
                               tol=SKLEARN_NEWTON_TOL, max_iter=1000,
                               fit_intercept=pb.free_intercept)
    X2 = np.vstack([design, design])
    labels = np.r_[np.ones(pb.n), np.zeros(pb.n)]
    model, msgs = _catch(model.fit, X2, labels, sample_weight=np.r_[pb.t, trials - pb.t])
    theta = _from_sklearn(pb, model.coef_[0], model.intercept_[0] if pb.free_intercept else None)
    return _Solution(theta, None, _converged(msgs), int(np.max(model.n_iter_)),
                     info={"warnings": msgs})


def _gamma_deviance(y, mu) -> float:
    return float(2 * ((y - mu) / mu - np.log(y / mu)).sum())


def _gamma_shape(c: float) -> float:
    """The shape k with ``log k − ψ(k) = c`` (c > 0): the stationarity of the Gamma NLL in k
    at a deviance of 2nc. ``log k − ψ(k)`` falls from ∞ to 0, so brentq brackets it."""
    def h(u):
        k = math.exp(u)
        return u - float(digamma(k)) - c
    return math.exp(optimize.brentq(h, math.log(1e-8), math.log(1e12), xtol=1e-15,
                                    rtol=4 * np.finfo(float).eps, maxiter=200))


_SHAPE_NOTE = "; shape by scipy brentq on log k − ψ(k) = D/(2n)"


@route("gamma-glm", "statsmodels GLM(Gamma(link=Log())) IRLS (tol=1e-14)", _SHAPE_NOTE)
def _solve_gamma_glm(pb: _Problem) -> _Solution:
    """Gamma MLE: the coefficients do not depend on the shape (statsmodels IRLS); a learned
    shape solves its first-order condition at their deviance."""
    import statsmodels.api as sm

    sol = _irls(pb, sm.families.Gamma(link=sm.families.links.Log()))
    if pb.spec.learns_scale:
        sol.scale = _gamma_shape(_gamma_deviance(pb.t, np.exp(pb.eta(sol.theta))) / (2 * pb.n))
    else:
        sol.scale = pb.fixed_scale
    return sol


def _gamma_ridge_at(pb: _Problem, shape: float) -> _Solution:
    from sklearn.linear_model import GammaRegressor

    model = GammaRegressor(alpha=1.0 / (pb.n * shape * pb.spec.prior_scale**2),
                           solver="newton-cholesky", tol=SKLEARN_NEWTON_TOL, max_iter=1000,
                           fit_intercept=pb.free_intercept)
    model, msgs = _catch(model.fit, _sklearn_design(pb), pb.t)
    theta = _from_sklearn(pb, model.coef_, model.intercept_ if pb.free_intercept else None)
    return _Solution(theta, shape, _converged(msgs), int(model.n_iter_),
                     info={"warnings": msgs})


@route("gamma-ridge", "scikit-learn GammaRegressor(solver='newton-cholesky', tol=1e-12, "
       "α = 1/(n·k·τ²))", "; shape by scipy brentq on the envelope condition "
       "D(w*(k))/(2n) = log k − ψ(k)")
def _solve_gamma_ridge(pb: _Problem) -> _Solution:
    r"""Gamma MAP, normal prior: ``GammaRegressor`` minimises ``Σ devianceᵢ/(2n) + α‖w‖²/2``,
    which times n·k is ``k·D/2 + ‖w‖²/(2τ²)`` (the −log joint up to terms in k alone) for
    ``α = 1/(n k τ²)``. A learned k: the profile ``φ(k) = min_w F(w, k)`` has
    ``φ'(k) = D(w*(k))/2 − n(log k − ψ(k))`` (envelope theorem), negative at the shape of the
    prior mode (w = 0, deviance D₀ ≥ D(w*)) and positive at the MLE's (D_MLE ≤ D(w*));
    brentq finds the sign change between them, a local minimum of the profile.
    """
    if not pb.spec.learns_scale:
        return _gamma_ridge_at(pb, pb.fixed_scale)
    mle = _solve_gamma_glm(pb)
    d_mle = _gamma_deviance(pb.t, np.exp(pb.eta(mle.theta)))
    lo = _gamma_shape(_gamma_deviance(pb.t, np.full(pb.n, pb.t.mean())) / (2 * pb.n))
    hi = _gamma_shape(d_mle / (2 * pb.n))
    solves = {}

    def h(u):
        sol = solves.setdefault(u, _gamma_ridge_at(pb, math.exp(u)))
        dev = _gamma_deviance(pb.t, np.exp(pb.eta(sol.theta)))
        return dev / (2 * pb.n) - (u - float(digamma(math.exp(u))))

    a, b = math.log(lo), math.log(hi)
    if hi <= lo or h(a) >= 0:  # the prior does not move the deviance: the MLE shape
        root, rr = a, None
    elif h(b) <= 0:
        root, rr = b, None
    else:
        root, rr = optimize.brentq(h, a, b, xtol=1e-15, rtol=4 * np.finfo(float).eps,
                                   maxiter=200, full_output=True, disp=False)
    sol = solves.get(root) or _gamma_ridge_at(pb, math.exp(root))
    sol.converged = sol.converged and (rr is None or rr.converged)
    sol.info.update(profile_solves=len(solves), shape_bracket=(lo, hi))
    return sol


@route("nb-mle", lambda spec: (
    "statsmodels NegativeBinomial(loglike_method='nb2') Newton (tol=1e-14)" if spec.learns_scale
    else "statsmodels GLM(NegativeBinomial(alpha)) IRLS (tol=1e-14)"))
def _solve_nb(pb: _Problem) -> _Solution:
    """NB2 MLE: α learned with the coefficients by statsmodels ``NegativeBinomial`` (Newton
    with its analytic Hessian, from its Poisson start); α fixed by ``GLM(NegativeBinomial
    (alpha=α))`` IRLS."""
    import statsmodels.api as sm

    if not pb.spec.learns_scale:
        sol = _irls(pb, sm.families.NegativeBinomial(alpha=pb.fixed_scale))
        sol.scale = pb.fixed_scale
        return sol
    model = sm.NegativeBinomial(pb.t, pb.Z, loglike_method="nb2")
    res, msgs = _catch(model.fit, method="newton", tol=1e-14, maxiter=200, disp=False)
    params = np.asarray(res.params)
    return _Solution(params[:-1], float(params[-1]), _converged(msgs),
                     int(res.mle_retvals.get("iterations", 0)), info={"warnings": msgs})


@route("beta-mle", lambda spec: (
    "statsmodels BetaModel (constant precision) Newton (tol=1e-14)" if spec.learns_scale else
    "statsmodels BetaModel start, then verified trust-exact + MINPACK lm at the fixed φ"))
def _solve_beta(pb: _Problem) -> _Solution:
    """Beta regression MLE: statsmodels ``BetaModel`` (logit mean, log precision with a
    constant), Newton with its analytic Hessian from a BFGS start. A fixed φ: from that answer,
    :func:`~bayesloss.references.verified._minimise` on the fixed-φ objective, kept only on
    its first-order certificate (labelled verified)."""
    from statsmodels.othermod.betareg import BetaModel

    model = BetaModel(pb.t, pb.Z)
    start, _ = _catch(model.fit, method="bfgs", maxiter=2000, disp=False)
    res, msgs = _catch(model.fit, start_params=start.params, method="newton", tol=1e-14,
                       maxiter=200, disp=False)
    params = np.asarray(res.params)
    theta, phi = params[:-1], math.exp(params[-1])
    if pb.spec.learns_scale:
        return _Solution(theta, phi, _converged(msgs), int(res.mle_retvals.get("iterations", 0)),
                         info={"warnings": msgs})
    fixed = _minimise(lambda x: _smooth_objective(pb, x), theta)
    return _Solution(fixed.x, pb.fixed_scale, bool(fixed.success), int(fixed.nit),
                     grad_norm=float(np.abs(fixed.jac).max()),
                     info={"kind": "verified", "message": fixed.message})
