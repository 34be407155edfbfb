r"""Reference fits: each model's MLE / MAP computed by a solver independent of our Pyro code.

These are the ground truth that our Pyro fits are checked against, so nothing here uses Pyro
or torch, except :mod:`.torch_nll`: a likelihood that exists only as a torch distribution (your
own :class:`~bayesloss.Likelihood`, von_mises) is evaluated there from that distribution. Every reference has a *kind*, shown in the check's table (``Fit.info["kind"]``):

* **trusted** — one call of an established solver produces it: a closed form (LAPACK),
  scikit-learn, statsmodels, HiGHS or Clarabel, at tight tolerances, reporting its own status
  (a learned Gaussian / Laplace scale adds ``scipy.optimize.brentq`` on the envelope condition
  over such calls). No trusted reference runs an optimisation loop of ours.
* **verified (KKT-checked)** — our own loop (:mod:`.verified`), accepted only after its
  optimality conditions hold: a positive definite Hessian with a negligible gradient or Newton
  correction, or, with kinks, the KKT conditions with subgradient multipliers in range.

The objective is always the model's −log joint density (constants dropped)

.. math::

    F(w, b, s) = -\sum_i \log p(y_i \mid \eta_i = x_i^\top w + b,\ s)
                 + [\text{MAP}]\ \sum_j -\log p_{\text{prior}}(w_j \mid \tau),

with a flat prior on the intercept ``b`` (unless ``penalize_intercept``: then a column of ones
is appended and fitted with the weights) and on a learned scale ``s`` (σ or b).

Modules, by method: :mod:`.problem` (standardised coordinates), :mod:`.closed_form`
(LAPACK; a learned scale by the envelope condition), :mod:`.lp` (HiGHS), :mod:`.conic`
(Clarabel), :mod:`.libraries` (scikit-learn, statsmodels), :mod:`.glm` (the GLM families'
statsmodels and scikit-learn fits), :mod:`.mm` (EM / MM over
LAPACK steps) and :mod:`.verified` (our other loops),
:mod:`.torch_nll` (torch-only likelihoods), :mod:`.mixture` (EM for mixtures of regressions),
:mod:`.dispatch` (routes and the public
functions). Each family names its routes
(``Family.references``); the rest go to the verified solvers.

=====================  =====================================================  ========
(likelihood, prior)    solver (see ``reference_method`` for the settings)     kind
=====================  =====================================================  ========
gaussian, MLE          LAPACK least squares (``scipy.linalg.lstsq``, SVD)     trusted
gaussian, normal       closed-form ridge: augmented least squares (SVD)       trusted
gaussian, laplace      scikit-learn ``Lasso`` (coordinate descent)            trusted
gaussian, per-row σᵢ   weighted least squares / weighted ridge: LAPACK on     trusted
  (MLE, normal)        rows scaled by 1/σᵢ
hetero_gaussian        trust-exact + MINPACK lm (exact derivatives) from the  verified
  (MLE, smooth priors) intercept-only start (:mod:`.hetero`)
laplace, MLE           HiGHS dual simplex LP (``scipy.optimize.linprog``)     trusted
laplace, laplace       HiGHS dual simplex LP (L1-penalised LAD)               trusted
laplace, normal        Clarabel QP (cvxpy)                                    trusted
bernoulli/categorical  scikit-learn ``LogisticRegression`` (newton-cholesky;  trusted
  MLE / normal         the MLE checked for separation by a HiGHS LP)
poisson, MLE           statsmodels ``GLM(Poisson)`` IRLS                      trusted
poisson, normal        scikit-learn ``PoissonRegressor`` (newton-cholesky)    trusted
binomial, MLE          statsmodels ``GLM(Binomial)`` IRLS on (succ., failures)  trusted
binomial, normal       scikit-learn ``LogisticRegression``, rows weighted       trusted
gamma, MLE / normal    statsmodels ``GLM(Gamma(Log))`` / scikit-learn          trusted
                       ``GammaRegressor``; a learned shape by brentq
negative_binomial MLE  statsmodels ``NegativeBinomial(nb2)`` Newton (α fixed:  trusted
                       ``GLM(NegativeBinomial(α))``)
beta, MLE              statsmodels ``BetaModel`` Newton (φ fixed: finished by  trusted
                       the verified smooth solver)                             (verified)
bern./cat./poisson,    Clarabel exponential-cone program (cvxpy); polished    trusted
  laplace              where Clarabel reports optimal_inaccurate              (verified)
studentt (MLE, normal,  EM / majorise-minimise, every step a LAPACK weighted   verified
  studentt, cauchy);    ridge (:mod:`.mm`), certified by the smooth
gaussian + studentt /   first-order conditions
  cauchy prior
gaussian_mixture       EM for a mixture of linear regressions (ECM, an MM     verified
  (MLE, normal,        step for a heavy-tailed prior), best of 10 random-line
  studentt, cauchy)    starts, certified by the first-order conditions
other smooth, no        trust-exact + MINPACK lm from several starts           verified
  classical solver      (GLMs with studentt / cauchy priors)
kinked and non-convex  smoothing continuation + active-set polish, from       verified
                       several starts (laplace + studentt / cauchy prior,
                       studentt + laplace prior)
von_mises, your own    trust-exact + MINPACK lm on the NLL of the family's    verified
  Likelihood (all      torch distribution, exact autograd derivatives,
  priors)              several starts (:mod:`.torch_nll`)
=====================  =====================================================  ========

Non-convex objectives (Student-t / Cauchy priors, the Student-t likelihood) can have several
local optima; the verified reference returns the best verified one over its starts (listed in
``Fit.info["starts"]``), which need not be the one another optimiser reaches. statsmodels'
``TLinearModel`` (Student-t MLE) was tried as a trusted route: its Newton fit agrees with the
verified reference to 6e-10 but takes minutes at n = 2,000 (numerical Hessians), and its BFGS
stops at 4e-8 without reporting convergence, so it serves as a test, not as the check's route.
"""

from __future__ import annotations

# importing dispatch imports every solver module, which registers its routes in ROUTES
from .dispatch import reference_fit, reference_kind, reference_method
from .libraries import SKLEARN_NEWTON_TOL
from .problem import ROUTES, route_of
from .verified import GRAD_TOL, STEP_TOL

__all__ = [
    "reference_fit", "reference_method", "reference_kind", "route_of", "ROUTES",
    # stopping rules, which tests derive their tolerances from
    "GRAD_TOL", "STEP_TOL", "SKLEARN_NEWTON_TOL",
]
