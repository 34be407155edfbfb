r"""The exact finish of a kinked objective, with its certificate (pure numpy / LAPACK).

.. math:: F(θ) = Σ_i ω_i |c_i − C_i θ| + Σ_{j∈J} ν_j |θ_j| + P(θ)

Least absolute deviations (the Laplace likelihood: ``C`` the design rows, ``c = y``,
``ω = 1/b``), its L1-penalised form (a Laplace prior: the kinks ``θ_j``, ``ν_j = 1/τ_j``), and
either with a smooth term ``P``: none (a linear programme), a quadratic ``½ θᵀMθ`` (a normal
prior: a QP), or any smooth function with a Hessian (Student-t / Cauchy priors, non-convex).

:func:`finish` follows the smoothing path
:math:`F_ε(θ) = Σ ω (\sqrt{r² + ε²} − ε) + P` with exact Newton steps (a p × p Cholesky with a
Levenberg safeguard, backtracking), ε decreasing geometrically. After each stage the face shows:
the kinks within a few ε of zero; pivoted QR on them (LAPACK ``geqp3``, preferring the smallest)
picks a linearly independent set, and the point is moved onto it exactly (a square solve: a
vertex with p interpolated rows and exact zeros; when the optimum is not unique, the nearest
point of the larger face, then along its flat null directions to one of its vertices; Newton on
the face's KKT system when ``P`` is there). Ties, repeated rows and degenerate vertices are the
normal case: dependent kinks are dropped by the rank test, and nothing pivots on reduced costs.
The finish is kept when its objective is not worse than the path's point.

The certificate is a dual point. The smoothed optimum's multipliers
:math:`u_ε = ω r/\sqrt{r² + ε²}` lie inside the box ``|u| ≤ ω``; projected exactly onto the
dual's equality constraints, the Lagrangian's stationarity at the finished point ``Dᵀu =
−∇P(θ)`` (a p × p solve weighted by the smoothing's curvature, so that the kinks at zero
absorb the correction) and scaled back into the box, they give a lower bound on
min F by weak duality: ``uᵀc`` for the LP, ``uᵀc − P*(−Dᵀu)`` for the QP. ``primal − bound ≤
gap_tol · |primal|`` certifies global optimality. For a non-convex ``P`` the same multipliers
certify stationarity (0 ∈ ∂F up to the complementarity gap), and the result says so.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import scipy.linalg

EPS_FACTOR = 0.1  # ε shrinks tenfold per stage: two or three Newton steps each
EPS_FLOOR = 1e-13  # the smallest ε, relative to the residuals' scale (float64 resolves no less)
STAGE_ACCURACY = 1e-2  # a stage ends when the Newton decrement is below this fraction of ε·ω̄
STAGE_STEPS = 30  # Newton steps per stage at most
FACE_FROM = 1e-3  # the face is tried from this ε (relative): above it most rows are candidates
CANDIDATE_WIDTH = 10.0  # kinks within this many ε of zero may form the face (|u| ≲ 0.995 ω)
RANK_TOL = 1e-10  # pivoted QR: a kink whose pivot is below this fraction of the first is dependent
GAP_TOL = 1e-9  # relative duality (or complementarity) gap that certifies


@dataclass(frozen=True)
class Kinks:
    r"""The objective :math:`F(θ) = Σ_k w_k |r_k(θ)| + P(θ)`, the kinks ``r = c_full + Dθ``
    being the data rows (``c − Cθ``, weights ``omega``) then the coordinates ``θ_J``
    (weights ``nu``): ``D = [−C; E_J]``.

    Parameters
    ----------
    C : ndarray, shape (n, p)
        The kinked rows.
    c : ndarray, shape (n,)
        Their targets.
    omega : ndarray, shape (n,)
        Their weights (> 0).
    l1 : ndarray of int, optional
        Coordinates with an absolute-value penalty.
    nu : ndarray, optional
        Their weights (> 0).
    quadratic : ndarray, shape (p, p), optional
        ``M`` of ``P(θ) = ½ θᵀMθ`` (positive semi-definite; its zero rows are the unpenalised
        coordinates).
    smooth : callable, optional
        ``θ ↦ (P, ∇P, ∇²P)`` of a smooth, possibly non-convex ``P`` (only stationarity is then
        certified). At most one of ``quadratic`` and ``smooth``.
    """

    C: np.ndarray
    c: np.ndarray
    omega: np.ndarray
    l1: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    nu: np.ndarray = field(default_factory=lambda: np.zeros(0))
    quadratic: Optional[np.ndarray] = None
    smooth: Optional[Callable] = None

    def __post_init__(self):
        if self.quadratic is not None and self.smooth is not None:
            raise ValueError("give P either as a quadratic or as a smooth function, not both")

    @property
    def p(self) -> int:
        return self.C.shape[1]

    @property
    def n(self) -> int:
        return self.C.shape[0]

    @property
    def weights(self) -> np.ndarray:
        return np.r_[self.omega, self.nu]

    @property
    def offsets(self) -> np.ndarray:
        """``c_full``, the kinks' values at θ = 0."""
        return np.r_[self.c, np.zeros(len(self.l1))]

    def apply(self, x: np.ndarray) -> np.ndarray:
        """``D x``."""
        return np.r_[-(self.C @ x), x[self.l1]]

    def values(self, theta: np.ndarray) -> np.ndarray:
        """The kinks ``r(θ)`` (residuals, then the penalised coordinates)."""
        return np.r_[self.c - self.C @ theta, theta[self.l1]]

    def adjoint(self, u: np.ndarray) -> np.ndarray:
        """``Dᵀu``."""
        g = -(u[: self.n] @ self.C)
        np.add.at(g, self.l1, u[self.n:])
        return g

    def gram(self, weight: np.ndarray) -> np.ndarray:
        """``Dᵀ diag(weight) D``."""
        H = (self.C.T * weight[: self.n]) @ self.C
        H[self.l1, self.l1] += weight[self.n:]
        return H

    def rows(self, idx: np.ndarray) -> np.ndarray:
        """Rows ``idx`` of ``D``, dense."""
        idx = np.asarray(idx, dtype=int)
        R = np.zeros((len(idx), self.p))
        data = idx < self.n
        R[data] = -self.C[idx[data]]
        R[np.flatnonzero(~data), self.l1[idx[~data] - self.n]] = 1.0
        return R

    def smooth_terms(self, theta: np.ndarray):
        """``(P, ∇P, ∇²P)`` at θ (zeros without P)."""
        if self.smooth is not None:
            value, grad, hess = self.smooth(theta)
            return float(value), np.asarray(grad), np.asarray(hess)
        if self.quadratic is not None:
            g = self.quadratic @ theta
            return 0.5 * float(theta @ g), g, self.quadratic
        return 0.0, np.zeros(self.p), np.zeros((self.p, self.p))

    def objective(self, theta: np.ndarray) -> float:
        """``F(θ)``, exactly."""
        return float(self.weights @ np.abs(self.values(theta))) + self.smooth_terms(theta)[0]

    def smoothed(self, theta: np.ndarray, eps: float, derivatives: bool = True,
                 r: Optional[np.ndarray] = None):
        """``F_ε(θ)``, and with ``derivatives`` its gradient and Hessian (``r``: the kinks at
        θ, when known)."""
        r = self.values(theta) if r is None else r
        q = np.sqrt(r * r + eps * eps)  # (np.hypot costs ten times as much)
        w = self.weights
        value = float(w @ (q - eps))
        if not derivatives:
            return value + self.smooth_terms(theta)[0]
        pv, pg, ph = self.smooth_terms(theta)
        grad = self.adjoint(w * r / q) + pg
        hess = self.gram(w * eps**2 / q**3) + (np.diag(ph) if ph.ndim == 1 else ph)
        return value + pv, grad, hess


@dataclass(frozen=True)
class Finish:
    """The result of :func:`finish`.

    Attributes
    ----------
    theta : ndarray
        The finished point.
    certified : bool
        Whether the certificate holds (``gap ≤ gap_tol``).
    optimality : str
        What it certifies: ``"global (convex)"`` or ``"stationary (non-convex)"``.
    primal, bound : float
        ``F(θ)`` and the dual lower bound on min F (``nan`` for a non-convex ``P``).
    gap : float
        ``(primal − bound)/|primal|``, or for a non-convex ``P`` the complementarity gap of the
        multipliers, relative to ``|primal|``, plus their excess over their bounds.
    on_face : bool
        Whether the finish moved the path's point exactly onto its face.
    active : int
        Kinks at exactly zero (interpolated rows, zero coordinates) at ``theta``.
    face_rank : int
        The number of linearly independent kinks the finished point rests on (p: a vertex;
        0 when the path's point was kept).
    smoothing : float
        The last smoothing level of the path.
    newton_steps : int
        Newton steps along the path.
    """

    theta: np.ndarray
    certified: bool
    optimality: str
    primal: float
    bound: float
    gap: float
    on_face: bool
    active: int
    face_rank: int
    smoothing: float
    newton_steps: int


def _direction(hess: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """The Newton direction, with a Levenberg shift where the Hessian is not (numerically)
    positive definite: flat directions of a non-unique optimum, a non-convex ``P``."""
    ref = max(float(np.abs(np.diag(hess)).max()), np.finfo(float).tiny)
    shift = 0.0
    eye = np.eye(len(grad))
    for _ in range(16):
        try:
            factor = scipy.linalg.cho_factor(hess + shift * ref * eye, check_finite=False)
            return scipy.linalg.cho_solve(factor, -grad, check_finite=False)
        except np.linalg.LinAlgError:
            shift = 1e-14 if shift == 0.0 else 100.0 * shift
    return -grad / ref


def _stage(kinks: Kinks, theta: np.ndarray, eps: float, limit: int) -> tuple[np.ndarray, int]:
    """Minimise ``F_ε`` from θ by damped Newton, at most ``limit`` steps; return the point and
    the steps taken. The kinks move linearly along a step (``r + t·Dd``): one product with
    the design per step."""
    target = STAGE_ACCURACY * eps * float(np.mean(kinks.weights))
    r = kinks.values(theta)
    for step in range(min(STAGE_STEPS, limit)):
        value, grad, hess = kinks.smoothed(theta, eps, r=r)
        d = _direction(hess, grad)
        decrement = -float(grad @ d)
        if not decrement > 0:  # the shifted Hessian failed (rounding): steepest descent
            d, decrement = -grad, float(grad @ grad)
        if decrement <= 2 * target:
            return theta, step
        move = kinks.apply(d)
        # below this the objective's rounding hides any decrease: stop rather than wander
        floor = 1e-15 * (abs(value) + 1.0)
        t = 1.0
        while t > 1e-10:
            trial = kinks.smoothed(theta + t * d, eps, derivatives=False, r=r + t * move)
            if trial <= value - 1e-4 * t * decrement + floor:
                break
            t *= 0.5
        else:
            return theta, step
        theta, r = theta + t * d, r + t * move
    return theta, min(STAGE_STEPS, limit)


def _face_basis(kinks: Kinks, r: np.ndarray, eps: float) -> np.ndarray:
    """Linearly independent kinks among those within ``CANDIDATE_WIDTH·ε`` of zero, the
    nearest first: pivoted QR (``geqp3``) of their rows scaled by ``1/(|r| + ε)``."""
    cand = np.flatnonzero(np.abs(r) <= CANDIDATE_WIDTH * eps)
    if not len(cand):
        return cand
    scaled = kinks.rows(cand) / (np.abs(r[cand]) + eps)[:, None]
    R, piv = scipy.linalg.qr(scaled.T, mode="r", pivoting=True, check_finite=False)
    pivots = np.abs(np.diag(R))
    rank = int((pivots > RANK_TOL * pivots[0]).sum()) if pivots[0] > 0 else 0
    return cand[piv[:rank]]


def _onto_face(kinks: Kinks, theta: np.ndarray, basis: np.ndarray, near: np.ndarray):
    """The point of the face ``{r_B(θ) = 0}`` that finishes the fit, and the kinks it rests
    on: for the LP a vertex (a square solve; when fewer than p kinks are independent, the
    nearest point of the face, then one of its vertices, :func:`_to_vertex`); with ``P``,
    Newton on the face's KKT system, the kinks in ``near`` (at ~0, dependent or not) counted
    as on it."""
    K = kinks.rows(basis)
    k = -kinks.offsets[basis]
    p = kinks.p
    if kinks.quadratic is None and kinks.smooth is None:
        if len(basis) < p:
            if len(basis):
                theta = theta + scipy.linalg.lstsq(K, k - K @ theta, check_finite=False)[0]
            basis = _to_vertex(kinks, theta, basis)
            K, k = kinks.rows(basis), -kinks.offsets[basis]
        if len(basis) == p:
            theta = scipy.linalg.solve(K, k, check_finite=False)
    else:
        sign = np.sign(kinks.values(theta))
        sign[near] = 0.0
        linear = kinks.adjoint(kinks.weights * sign)
        previous = np.inf
        for _ in range(STAGE_STEPS):
            _, pg, ph = kinks.smooth_terms(theta)
            ph = np.diag(ph) if ph.ndim == 1 else ph
            kkt = np.block([[ph, K.T], [K, np.zeros((len(basis), len(basis)))]])
            rhs = -np.r_[linear + pg, K @ theta - k]
            step = scipy.linalg.lstsq(kkt, rhs, check_finite=False)[0][:p]
            size = float(np.abs(step).max())
            if not size < previous:  # rounding level: no further progress
                break
            theta, previous = theta + step, size
            if size <= 1e-15 * max(1.0, float(np.abs(theta).max())):
                break
    theta = np.array(theta, dtype=float)
    on_coords = basis[basis >= kinks.n] - kinks.n
    theta[kinks.l1[on_coords]] = 0.0  # exact zeros, not rounding's 1e-17
    return theta, basis


def _to_vertex(kinks: Kinks, theta: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """From a point of a face of the LP with fewer than p independent kinks (a non-unique
    optimum: the objective is flat along the face), the kinks of one of the face's vertices:
    along a null direction of the face's rows (an SVD), the way the objective does not rise,
    to the nearest kink that reaches zero, which joins, until p are independent or the face is
    unbounded (a rank-deficient design). The objective does not change on an optimal face and
    falls elsewhere; the caller checks that it did not rise."""
    on = np.zeros(kinks.n + len(kinks.l1), dtype=bool)
    on[basis] = True
    while len(basis) < kinks.p:
        null = (scipy.linalg.null_space(kinks.rows(basis), check_finite=False) if len(basis)
                else np.eye(kinks.p))
        if not null.shape[1]:
            break
        move, r = kinks.apply(null[:, 0]), kinks.values(theta)
        d = null[:, 0] * (-1.0 if kinks.weights @ (np.sign(r) * move) > 0 else 1.0)
        move = kinks.apply(d)  # not uphill (flat on an optimal face, but rounding picks a side)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = -r / move  # where each kink reaches zero along d
        t[on | (np.abs(move) <= 1e-12 * np.abs(move).max()) | ~(t >= 0)] = np.nan
        reach = np.where(np.isnan(t), np.inf, t)
        k = int(np.argmin(reach))
        if not np.isfinite(reach[k]):
            break
        theta = theta + t[k] * d
        basis, on[k] = np.r_[basis, k], True
    return basis


def _multipliers(kinks: Kinks, theta: np.ndarray, r_eps: np.ndarray, eps: float):
    """Dual multipliers from the path's point (``r_eps`` its kinks), projected exactly onto
    the dual's equality constraints, unscaled (see :func:`_certificate`)."""
    w = kinks.weights
    q = np.sqrt(r_eps * r_eps + eps * eps)
    u = w * r_eps / q
    curvature = w * eps**2 / q**3
    # stationarity of the Lagrangian at θ: Dᵀu = −∇P(θ) (for the QP, −Dᵀu = Mθ lies in M's
    # range, where P* is finite; for the LP, Dᵀu = 0)
    miss = -kinks.smooth_terms(theta)[1] - kinks.adjoint(u)
    G = kinks.gram(curvature)
    lam = scipy.linalg.solve(G + 1e-15 * np.trace(G) * np.eye(kinks.p), miss, assume_a="pos",
                             check_finite=False)
    u = u + curvature * kinks.apply(lam)
    return u


def _certificate(kinks: Kinks, theta: np.ndarray, r_eps: np.ndarray, eps: float):
    """``(primal, bound, gap)`` at θ with multipliers from the path (see the module's
    docstring). The bound, for any u with |u| ≤ w: F(θ) ≥ Σ u r(θ) + P(θ) = uᵀc_full +
    (Dᵀu)ᵀθ + P(θ) ≥ uᵀc_full − P*(−Dᵀu)."""
    w = kinks.weights
    u = _multipliers(kinks, theta, r_eps, eps)
    excess = max(1.0, float(np.max(np.abs(u) / w, initial=0.0)))
    r = kinks.values(theta)
    primal = kinks.objective(theta)
    size = max(abs(primal), np.finfo(float).tiny)
    if kinks.smooth is not None:
        complementarity = float(w @ np.abs(r) - u @ r) / size
        return primal, float("nan"), abs(complementarity) + (excess - 1.0)
    u = u / excess  # into the box |u| ≤ w: still on the equality constraints (they are linear)
    bound = float(u @ kinks.offsets)
    if kinks.quadratic is not None:
        z = -kinks.adjoint(u)
        pen = np.flatnonzero(np.abs(kinks.quadratic).any(axis=1))
        if len(pen):
            factor = scipy.linalg.cho_factor(kinks.quadratic[np.ix_(pen, pen)],
                                             check_finite=False)
            bound -= 0.5 * float(z[pen] @ scipy.linalg.cho_solve(factor, z[pen]))
    return primal, bound, (primal - bound) / size


def finish(kinks: Kinks, theta: np.ndarray, eps: Optional[float] = None, *,
           gap_tol: float = GAP_TOL, max_newton: int = 300) -> Finish:
    """Minimise a kinked objective exactly from a nearby point, and certify the result.

    Parameters
    ----------
    kinks : Kinks
        The objective.
    theta : ndarray, shape (p,)
        The start (the Pyro fit's point: its smoothing stages leave it near the path).
    eps : float, optional
        The first smoothing level; default a tenth of the start's mean |kink|.
    gap_tol : float
        The relative gap that certifies.
    max_newton : int
        The budget of Newton steps along the path (0: only the face from ``theta``).

    Returns
    -------
    Finish
        The finished point with its certificate. Uncertified only when the path reached its
        floor (``EPS_FLOOR`` of the residuals' scale) or the budget first; the point is then the
        best one met.
    """
    theta = np.asarray(theta, dtype=float).copy()
    scale = float(np.mean(np.abs(kinks.values(theta)))) or 1.0
    eps = 0.1 * scale if eps is None else float(eps)
    floor = EPS_FLOOR * scale
    convex = kinks.smooth is None
    newton, best = 0, None
    while True:
        theta, steps = _stage(kinks, theta, eps, max_newton - newton)
        newton += steps
        if eps > FACE_FROM * scale and newton < max_newton:
            eps = EPS_FACTOR * eps
            continue
        r = kinks.values(theta)
        basis = _face_basis(kinks, r, eps)
        near = np.flatnonzero(np.abs(r) <= CANDIDATE_WIDTH * eps)
        point, on_face = theta, False
        if len(basis) or (kinks.quadratic is None and kinks.smooth is None):
            moved, basis = _onto_face(kinks, theta, basis, near)
            here = kinks.objective(theta)
            if kinks.objective(moved) <= here + 1e-12 * abs(here):
                point, on_face = moved, True
        primal, bound, gap = _certificate(kinks, point, r, eps)
        zero = np.abs(kinks.values(point)) <= 1e-12 * scale
        result = Finish(point, bool(gap <= gap_tol),
                        "global (convex)" if convex else "stationary (non-convex)",
                        primal, bound, gap, on_face, int(zero.sum()),
                        len(basis) if on_face else 0, eps, newton)
        if best is None or (result.certified, -result.gap) > (best.certified, -best.gap):
            best = result
        if best.certified or eps <= floor or newton >= max_newton:
            return best
        eps = max(EPS_FACTOR * eps, floor)
