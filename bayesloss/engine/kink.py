"""The exact finish of a Laplace-likelihood fit and its optimality certificate.

Moved here from ``inference.py`` with its body unchanged (its nested functions are methods of
:class:`_Kinks`, the face's data); the vertex / face solve is being rebuilt separately.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.optimize import lsq_linear

from .newton import exact_scale, prior_terms

ACTIVE_TOL = 1e-9  # |residual| or |weight| (standardised units) counted as sitting on its kink
CERTIFICATE_TOL = 1e-9  # stationarity (per row) a certificate needs, whatever a looser tol says


class _Kinks:
    """The objective ``F`` of :func:`kink_finish` on the preconditioned design: its kinks
    (rows, and coordinates under a Laplace prior), residuals, certificate, and the vertex
    (simplex pivots) and face (active-set Newton) solves; ``pivots`` counts against
    ``budget``."""

    def __init__(self, problem, budget: int):
        spec, pre = problem.spec, problem.pre
        Xn, y = problem.design.numpy(), problem.y.numpy()
        n, d = Xn.shape
        A = pre.matrix if pre.matrix.ndim == 2 else np.diag(pre.matrix)
        has_b = spec.fit_intercept
        p = d + int(has_b)
        kinked_prior = spec.is_map and spec.prior_spec.kinked
        tau = np.broadcast_to(problem.model_kwargs["prior_scale"].numpy(), (d,))
        if has_b:
            tau = np.r_[tau, problem.model_kwargs["intercept_prior_scale"]]
        coords = np.arange(d + int(has_b and spec.penalize_intercept)) if kinked_prior else \
            np.arange(0, dtype=int)
        prior = prior_terms(problem)
        self.spec, self.Xn, self.y, self.n, self.d, self.A = spec, Xn, y, n, d, A
        self.has_b, self.p, self.kinked_prior, self.tau = has_b, p, kinked_prior, tau
        self.coords, self.prior, self.budget, self.pivots = coords, prior, budget, 0

    def design(self, idx):  # rows of the preconditioned design [(x − m)ᵀA, 1]
        R = self.Xn[idx] @ self.A
        return np.c_[R, np.ones(len(idx))] if self.has_b else R

    def constraints(self, kinks):  # a kink k < n is row k; k ≥ n is coordinate coords[k − n]
        kinks = np.asarray(kinks, dtype=int)
        C = np.zeros((len(kinks), self.p))
        rows = kinks < self.n
        C[rows] = self.design(kinks[rows])
        C[np.flatnonzero(~rows), self.coords[kinks[~rows] - self.n]] = 1.0
        return C, np.where(rows, self.y[np.minimum(kinks, self.n - 1)], 0.0)

    def resid(self, theta):
        v = self.A @ theta[:self.d]
        return self.y - (self.Xn @ v + (theta[self.d] if self.has_b else 0.0))

    def design_t(self, s):  # X̃ᵀ s without forming X̃
        g = self.A.T @ (s @ self.Xn)
        return np.r_[g, s.sum()] if self.has_b else g

    def omega(self, b):
        return np.r_[np.full(self.n, 1.0 / b), 1.0 / self.tau[self.coords]]

    def objective(self, theta, b):
        value = np.abs(self.resid(theta)).sum() / b + self.prior(theta)[0]
        return value + (self.n * math.log(b) if self.spec.learns_scale else 0.0)

    def smooth_gradient(self, theta, b, active):
        """∇ of F with the active kinks taken out (their subgradients are the multipliers)."""
        theta = theta.copy()
        on_coords = active[active >= self.n] - self.n
        theta[self.coords[on_coords]] = 0.0
        s = np.sign(self.resid(theta))
        s[active[active < self.n]] = 0.0
        return -self.design_t(s) / b + self.prior(theta)[1], theta

    def certify(self, theta, b):
        values = np.r_[self.resid(theta), theta[self.coords]]
        active = np.flatnonzero(np.abs(values) <= ACTIVE_TOL)
        grad, theta = self.smooth_gradient(theta, b, active)
        lam = np.zeros(0)
        if len(active):
            C, _ = self.constraints(active)
            om = self.omega(b)[active]
            lam = lsq_linear(C.T, -grad, bounds=(-om, om), method="bvls", tol=1e-14).x
            grad = grad + C.T @ lam
        return theta, {
            "stationarity": float(np.abs(grad).max()) / self.n,
            "max_multiplier": (float((np.abs(lam) / self.omega(b)[active]).max())
                               if len(active) else 0.0),
            "active_rows": int((active < self.n).sum()),
            "zero_weights": int((active >= self.n).sum()),
        }

    def vertex(self, theta, b):
        """Simplex pivots from the vertex of the p kinks nearest zero (Bland's rule on ties)."""
        values = np.r_[np.abs(self.resid(theta)), np.abs(theta[self.coords])]
        basis = np.sort(np.argsort(values, kind="stable")[:self.p])
        while True:
            C, c = self.constraints(basis)
            try:
                theta = np.linalg.solve(C, c)
            except np.linalg.LinAlgError:
                return theta
            grad, _ = self.smooth_gradient(theta, b, basis)
            lam = np.linalg.solve(C.T, -grad)
            om = self.omega(b)[basis]
            violated = np.flatnonzero(np.abs(lam) > om * (1 + 1e-9))
            if not len(violated) or self.pivots >= self.budget:
                return theta
            k = int(violated[0])  # Bland: the lowest-numbered violated kink leaves
            e = np.zeros(self.p)
            e[k] = np.sign(lam[k])
            delta = np.linalg.solve(C, e)  # along the edge its kink value moves off zero
            v = self.A @ delta[:self.d]
            a = self.Xn @ v + (delta[self.d] if self.has_b else 0.0)  # residuals move by −t·a
            moving = np.r_[a, -delta[self.coords]]  # kink values move by −t·moving
            values = np.r_[self.resid(theta), theta[self.coords]]
            cand = np.setdiff1d(np.flatnonzero(moving != 0), basis)
            t = values[cand] / moving[cand]
            keep = t >= 0
            cand, t = cand[keep], t[keep]
            order = np.lexsort((cand, t))
            slope = om[k] - abs(lam[k]) + np.cumsum(2 * np.abs(moving[cand[order]])
                                                     * self.omega(b)[cand[order]])
            if not len(cand) or not (slope >= 0).any():
                return theta  # unbounded edge: impossible for a bounded LP; stop honestly
            self.pivots += 1
            basis = np.sort(np.r_[np.delete(basis, k), cand[order[int(np.argmax(slope >= 0))]]])

    def face(self, theta, b, width):
        """Primal–dual active set for a smooth P, from the rows with |r| ≤ width: Newton on
        the KKT system of the face {rows of Z at exactly zero} (one step when P is
        quadratic), then rows whose multiplier exceeds its bound leave Z (their residual takes
        the multiplier's sign) and rows whose residual changed sign join it, until neither
        happens. A wrong face fails the certificate and the smoothing goes on."""
        r = self.resid(theta)
        in_face = np.abs(r) <= width
        sign = np.sign(r)
        for _ in range(2 * self.p + 5):
            active = np.flatnonzero(in_face)
            C, c = self.constraints(active)
            s_off = np.where(in_face, 0.0, sign)
            previous, lam = math.inf, np.zeros(len(c))
            for _ in range(50):  # quadratic convergence for a Student-t / Cauchy prior
                _, g_prior, h_prior = self.prior(theta)
                grad = -self.design_t(s_off) / b + g_prior
                K = np.block([[h_prior, C.T], [C, np.zeros((len(c), len(c)))]])
                try:
                    sol = np.linalg.solve(K, -np.r_[grad, C @ theta - c])
                except np.linalg.LinAlgError:
                    return theta
                step, lam = sol[:self.p], sol[self.p:]
                size = np.abs(step).max()
                if size >= previous:  # rounding level: no further progress
                    break
                theta, previous = theta + step, size
                if size <= 1e-13 * max(1.0, np.abs(theta).max()):
                    break
            u = -b * lam
            r = self.resid(theta)
            leave = active[np.abs(u) > 1.0 + 1e-9]
            join = np.flatnonzero(~in_face & (sign * r < 0))
            if not len(leave) and not len(join) or self.pivots >= self.budget:
                return theta
            self.pivots += 1
            sign[leave] = np.sign(u[np.abs(u) > 1.0 + 1e-9])
            in_face[leave] = False
            in_face[join] = True
        return theta


def kink_finish(problem, guide, eps: float, tol: float, budget: int) -> dict:
    r"""Finish a Laplace-likelihood fit exactly and certify it: 0 ∈ ∂F.

    .. math:: F(θ) = Σ_i |y_i − \tilde x_iᵀθ| / b \;(+\, n \log b) + P(θ)

    is smooth on the face where the kinks the smoothed fit left near zero (rows with residual
    ~0; weights ~0 under a Laplace prior) sit exactly on their kink. For the MLE and a Laplace
    prior, F is an LP: the face is a vertex (a square linear solve), and simplex pivots move
    to the optimal one (a pivot frees the kink whose multiplier exceeds its bound and stops
    where F's slope along the edge turns: a weighted median of the breakpoints). With a
    normal / Student-t / Cauchy prior, Newton on the face's KKT system. A learned scale
    alternates with its exact optimum (mean |r|).

    The certificate: with s = sign(r) off the active kinks 𝒜, multipliers λ with
    :math:`|λ_k| ≤ ω_k` (1/b for a row, 1/τ_j for a weight) such that

    .. math:: −\tilde X_{N}ᵀ s_N / b + ∇P + C_𝒜ᵀ λ = 0,

    found by bounded least squares (``scipy.optimize.lsq_linear``), which also covers
    degenerate vertices. The fit counts as converged when the residual of that equation is
    ≤ min(``tol``, 1e-9) per row (a looser ``tol`` loosens the smoothing stages, never what
    "converged" means): optimal for a convex P, stationary for a Student-t / Cauchy prior. The
    guide keeps the finished point when it is certified or better. Each pivot counts as an
    iteration of ``budget``.
    """
    kinks = _Kinks(problem, budget)
    spec, d, has_b, kinked_prior = kinks.spec, kinks.d, kinks.has_b, kinks.kinked_prior
    objective, resid, certify = kinks.objective, kinks.resid, kinks.certify
    vertex, face = kinks.vertex, kinks.face
    named = dict(guide.named_parameters())
    with torch.no_grad():
        point = guide.median()
    w0 = point["weight"].detach().numpy()
    theta0 = np.r_[w0, float(point["bias"])] if has_b else w0.copy()
    b0 = b = (float(point["scale"]) if spec.learns_scale
              else float(problem.model_kwargs["noise_scale"]))
    lp = not spec.is_map or kinked_prior
    start = objective(theta0, b0)
    for width in ([None] if lp else [10 * eps]):
        theta, b, last_change = theta0, b0, math.inf
        for rounds in range(1, 31):  # a learned scale alternates with its exact optimum
            theta = vertex(theta, b) if lp else face(theta, b, width)
            if not spec.learns_scale:
                break
            b_new = exact_scale(spec, resid(theta), b)
            change = abs(b_new - b)
            settled = change <= 1e-13 * b or change >= last_change  # converged, or rounding
            b, last_change = b_new, change
            if settled or not spec.is_map:  # the MLE's θ does not depend on b
                break
        theta, cert = certify(theta, b)
        end = objective(theta, b)
        if cert["stationarity"] <= min(tol, CERTIFICATE_TOL) and end <= start + 1e-12 * abs(start):
            break
    certified = (cert["stationarity"] <= min(tol, CERTIFICATE_TOL)
                 and end <= start + 1e-12 * abs(start))
    out = {"certified": bool(certified), "certificate": "0 ∈ ∂F (multipliers in their bounds)",
           "optimality": ("global (convex)" if not spec.is_map or spec.prior_spec.log_concave
                          else "stationary (non-convex prior)"),
           **cert, "scale_rounds": rounds, "pivots": kinks.pivots}
    if certified or (lp and end < start):  # a vertex that is better helps the next stage
        with torch.no_grad():
            named["weight_unconstrained"].copy_(torch.as_tensor(theta[:d]))
            if has_b:
                named["bias_unconstrained"].copy_(torch.as_tensor(theta[d]))
            if spec.learns_scale:
                named["scale_unconstrained"].copy_(torch.as_tensor(math.log(b)))
    return out