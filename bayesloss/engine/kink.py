"""The exact finish of a Laplace-likelihood fit and its optimality certificate: the adapter
from a linear problem (its preconditioned design, prior and scale) to :mod:`.face`, which
follows the smoothing path by Newton steps, solves the face the fit identifies by LAPACK, and
certifies the result by a duality gap.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from . import face
from .newton import exact_scale, prior_terms

ACTIVE_TOL = 1e-12  # |residual| (standardised units) counted as interpolated
CERTIFICATE_TOL = 1e-9  # relative duality gap a certificate needs, whatever a looser tol says


def kink_finish(problem, guide, eps: float, tol: float, budget: int) -> dict:
    r"""Finish a Laplace-likelihood fit exactly and certify it (:func:`bayesloss.engine.face.finish`).

    .. math:: F(θ) = Σ_i |y_i − \tilde x_iᵀθ| / b \;(+\, n \log b) + P(θ)

    in the preconditioned variables: the kinks are the rows of the design
    ``[(x − m)ᵀA, 1]`` (weights 1/b) and, under a Laplace prior, the penalised coordinates
    (weights 1/τ_j); ``P`` is a normal prior's quadratic form, a Student-t / Cauchy prior's
    −log density, or nothing. The path starts at the Pyro fit's point and smoothing level
    ``eps``. A learned scale alternates with its exact optimum (mean |r|); the MLE's θ does not
    depend on it. Converged means the relative duality gap is ≤ min(``tol``, 1e-9) (global for
    a convex ``P``; for a non-convex one the complementarity gap: stationary). The guide keeps
    the finished point when it is certified or better; each Newton step counts against
    ``budget``.
    """
    spec, kw = problem.spec, problem.model_kwargs
    Xn, y = problem.design.numpy(), problem.y.numpy()
    (n, d), has_b = Xn.shape, spec.fit_intercept
    A = problem.pre.matrix
    C = np.empty((n, d + int(has_b)))
    if A.ndim == 2:
        np.matmul(Xn, A, out=C[:, :d])
    else:
        np.multiply(Xn, A, out=C[:, :d])
    C[:, d:] = 1.0
    tau = np.broadcast_to(kw["prior_scale"].numpy(), (d,))
    tau = np.r_[tau, kw["intercept_prior_scale"]] if has_b else tau
    penalised = np.arange(d + int(has_b and spec.penalize_intercept))
    terms = {}
    if spec.is_map and spec.prior_spec.kinked:
        terms = {"l1": penalised, "nu": 1.0 / tau[penalised]}
    elif spec.is_map and spec.prior == "normal":
        M = np.zeros((C.shape[1], C.shape[1]))
        if "prior_precision" in kw:  # whitened: the intercept is flat
            M[:d, :d] = kw["prior_precision"].numpy()
        else:
            M[penalised, penalised] = tau[penalised] ** -2.0
        terms = {"quadratic": M}
    elif spec.is_map:
        terms = {"smooth": prior_terms(problem)}
    named = dict(guide.named_parameters())
    with torch.no_grad():
        point = guide.median()
    theta = point["weight"].numpy().copy()
    theta = np.r_[theta, float(point["bias"])] if has_b else theta
    b = float(point["scale"]) if spec.learns_scale else kw["noise_scale"].numpy()
    first = face.Kinks(C, y, np.broadcast_to(1.0 / b, (n,)), **terms)
    start = first.objective(theta)
    steps = 0
    for rounds in range(1, 31):  # a learned scale alternates with its exact optimum
        kinks = face.Kinks(C, y, np.broadcast_to(1.0 / b, (n,)), **terms)
        result = face.finish(kinks, theta, eps, gap_tol=min(tol, CERTIFICATE_TOL),
                             max_newton=max(budget - steps, 0))
        theta, steps, eps = result.theta, steps + result.newton_steps, result.smoothing
        if not spec.learns_scale or not result.certified:
            break
        b_new = exact_scale(spec, kinks.values(theta)[:n], b)
        settled = abs(b_new - b) <= 1e-13 * b or not spec.is_map  # the MLE's θ is b's
        b = b_new
        if settled:
            break
    out = {"certified": result.certified,
           "certificate": ("duality gap (a dual point from the smoothing path)"
                           if result.optimality.startswith("global") else
                           "complementarity gap of multipliers in their bounds (0 ∈ ∂F)"),
           "optimality": result.optimality, "objective": result.primal,
           "dual_bound": result.bound, "gap": result.gap, "on_face": result.on_face,
           "face_rank": result.face_rank,
           "active_rows": int((np.abs(kinks.values(theta)[:n]) <= ACTIVE_TOL).sum()),
           "zero_weights": int((theta[terms["l1"]] == 0.0).sum()) if "l1" in terms else 0,
           "scale_rounds": rounds, "newton_steps": steps}
    if result.certified or first.objective(theta) < start:  # a better point helps the next stage
        with torch.no_grad():
            named["weight_unconstrained"].copy_(torch.as_tensor(theta[:d]))
            if has_b:
                named["bias_unconstrained"].copy_(torch.as_tensor(theta[d]))
            if spec.learns_scale:
                named["scale_unconstrained"].copy_(torch.as_tensor(math.log(b)))
    return out

