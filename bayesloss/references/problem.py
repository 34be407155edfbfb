"""The problem in standardised coordinates, shared by every reference solver.

Columns are centred (when the intercept is free) and scaled, and so is a continuous target: a
linear change of variables, exact for the model. A weight ``w_j`` becomes
``θ_j = w_j·sx_j/sy``, its prior scale ``τ_j' = τ·sx_j/sy`` and the noise scale ``s' = s/sy``.
Solvers that take per-column penalties (LAPACK, HiGHS, Clarabel, scipy) work there;
scikit-learn's uniform penalties keep the user's column scales (centred only).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Callable, Optional, Union

import numpy as np

from ..spec import ModelSpec


@dataclass(frozen=True)
class _Problem:
    """One fit in standardised coordinates, and the maps back to the user's scale.

    ``Z`` holds the standardised columns, then a column of ones when the intercept is free;
    ``theta`` (shape (p,) or (p, K)) are the coefficients of ``Z``. ``tau`` are the prior scales
    of the rows of ``theta`` (``inf`` for the free intercept). Scales ``s`` are in units of
    ``y_scale``.
    """

    spec: ModelSpec
    X: np.ndarray
    y: np.ndarray
    Z: np.ndarray
    t: np.ndarray
    n_out: int
    tau: np.ndarray
    x_shift: np.ndarray
    x_scale: np.ndarray
    y_shift: float
    y_scale: float

    @property
    def n(self) -> int:
        return self.Z.shape[0]

    @property
    def p(self) -> int:
        return self.Z.shape[1]

    @property
    def free_intercept(self) -> bool:
        return self.spec.fit_intercept

    @property
    def penalised(self) -> np.ndarray:
        return np.isfinite(self.tau)

    @property
    def shape(self) -> tuple:
        wide = self.spec.family.multiclass or self.spec.family.components
        return (self.p, self.n_out) if wide else (self.p,)

    @property
    def fixed_scale(self):
        """The fixed scale in units of ``y_scale``: a float, or (n,) for per-row σᵢ."""
        s = self.spec.noise_scale
        if s is None:
            return None
        return np.asarray(s) / self.y_scale if self.spec.row_scales else s / self.y_scale

    def to_user(self, theta):
        """``theta`` → ``(coef, intercept)`` on the user's scale."""
        theta = np.asarray(theta, dtype=np.float64).reshape(self.shape)
        d = self.X.shape[1]
        scale = self.y_scale / self.x_scale
        coef = theta[:d] * (scale[:, None] if theta.ndim == 2 else scale)
        if not self.free_intercept:
            return coef, None
        intercept = self.y_shift + self.y_scale * theta[d] - self.x_shift @ coef
        return coef, intercept

    def from_user(self, coef, intercept):
        """``(coef, intercept)`` on the user's scale → ``theta``."""
        coef = np.asarray(coef, dtype=np.float64)
        factor = self.x_scale / self.y_scale
        v = coef * (factor[:, None] if coef.ndim == 2 else factor)
        if not self.free_intercept:
            return v
        c = (np.asarray(intercept, dtype=np.float64) - self.y_shift + self.x_shift @ coef)
        return np.concatenate([v, (c / self.y_scale)[None]], axis=0)

    def head_to_user(self, head):
        """A linear log-scale head ``(α, γ)`` in standardised units (log σ' = zᵀα + γ, σ' in
        units of ``y_scale``) → ``(a, c)`` with log σ = xᵀa + c on the user's scale."""
        alpha, gamma = head
        a = np.asarray(alpha, dtype=np.float64) / self.x_scale
        return a, float(gamma) + math.log(self.y_scale) - float(self.x_shift @ a)

    def eta(self, theta):
        return self.Z @ np.asarray(theta).reshape(self.shape)

    def onehot(self) -> np.ndarray:
        return np.eye(self.n_out)[self.t]


def _standardise(spec: ModelSpec, X: np.ndarray, y: np.ndarray) -> _Problem:
    """Centre (free intercept only) and scale the columns and a continuous target."""
    family = spec.family
    if spec.fit_intercept:
        x_shift, x_scale = X.mean(axis=0), X.std(axis=0)
    else:
        x_shift, x_scale = np.zeros(X.shape[1]), np.sqrt((X**2).mean(axis=0))
    x_scale = np.where(x_scale > 0, x_scale, 1.0)
    Z = (X - x_shift) / x_scale
    if family.continuous:
        y_shift = float(y.mean()) if spec.fit_intercept else 0.0
        y_scale = float(np.sqrt(((y - y_shift) ** 2).mean()))
        y_scale = y_scale if y_scale > 0 else 1.0
        t = (y - y_shift) / y_scale
    else:
        y_shift, y_scale, t = 0.0, 1.0, y
    tau = spec.prior_scale * x_scale / y_scale
    if spec.fit_intercept:
        Z = np.column_stack([Z, np.ones(X.shape[0])])
        tau = np.append(tau, np.inf)
    n_out = int(y.max()) + 1 if family.multiclass else (spec.components or 1)
    if family.multiclass:
        t = y.astype(np.int64)
    return _Problem(spec, X, y, Z, t, n_out, tau, x_shift, x_scale, y_shift, y_scale)


@dataclass
class _Solution:
    """A solver's answer in standardised coordinates."""

    theta: np.ndarray
    scale: Optional[float]  # standardised units; None where the family has no scale
    converged: bool
    n_iter: int
    grad_norm: float = float("nan")
    info: dict = field(default_factory=dict)
    head: Optional[tuple] = None  # (α, γ) of a log-scale head (hetero_gaussian), standardised
    mixing: Optional[np.ndarray] = None  # a mixture's K − 1 mixing logits (gaussian_mixture)


def _catch(fn, *args, **kwargs):
    """Run ``fn`` and return ``(result, [warning messages])``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn(*args, **kwargs)
    return out, [f"{w.category.__name__}: {w.message}" for w in caught]


def _split(pb: _Problem, x: np.ndarray):
    """``x`` → ``(theta, β)``; β = log of the learned or fixed scale (0 without a scale)."""
    k = int(np.prod(pb.shape))
    theta = x[:k].reshape(pb.shape)
    if pb.spec.learns_scale:
        return theta, float(x[k])
    s = pb.fixed_scale
    # (an (n,) array of logs for a known per-row input: binomial's trials)
    return theta, (np.log(s) if s is not None else 0.0)


def _pack(pb: _Problem, theta, scale) -> np.ndarray:
    x = np.asarray(theta, dtype=np.float64).ravel()
    return np.append(x, math.log(scale)) if pb.spec.learns_scale else x


def _free_coords(pb: _Problem) -> np.ndarray:
    """Mask of the coordinates of ``x`` that the general optimisers move.

    With a free (flat-prior) intercept, the categorical likelihood is unchanged when one
    constant is added to all K intercepts: that direction is pinned by fixing the last class's
    intercept at 0 (after shifting the start there), so that Hessians are positive definite.
    """
    free = np.ones(int(np.prod(pb.shape)) + int(pb.spec.learns_scale), bool)
    if pb.spec.family.multiclass and pb.free_intercept:
        free[int(np.prod(pb.shape)) - 1] = False
    return free


def _start_x(pb: _Problem, theta, scale) -> np.ndarray:
    """``x`` for a start, with the categorical intercepts shifted so the pinned one is 0."""
    theta = np.array(theta, dtype=np.float64).reshape(pb.shape)
    if pb.spec.family.multiclass and pb.free_intercept:
        theta[-1] -= theta[-1, -1]
    return _pack(pb, theta, scale)


def _restricted(fun, x_full: np.ndarray, free: np.ndarray):
    """``fun`` of the free coordinates only (the others held at ``x_full``)."""
    if free.all():
        return fun, (lambda z: z)

    def embed(z):
        x = x_full.copy()
        x[free] = z
        return x

    def reduced(z):
        f, g, H = fun(embed(z))
        return f, g[free], H[np.ix_(free, free)]

    return reduced, embed


@dataclass(frozen=True)
class _Solver:
    """A reference route: its solver, its description (or ``spec → description``), the note
    added when the scale is learned, and its kind."""

    solve: Callable[[_Problem], _Solution]
    method: Union[str, Callable[[ModelSpec], str]]
    scale_note: str = ""
    kind: str = "trusted"  # or "verified": our own loop, accepted on its optimality conditions


#: Every reference route by name (``Family.references`` names them); filled by :func:`route`.
ROUTES: dict[str, _Solver] = {}

#: The note of a scale learned by :func:`.closed_form._profile_scale`.
PROFILE_NOTE = "; scale learned by scipy brentq on the envelope condition (σ² = RSS/n, b = SAE/n)"


def route_of(spec: ModelSpec) -> str:
    """The name of the :data:`ROUTES` entry that fits ``spec``."""
    routes = spec.family.row_scale_references if spec.row_scales else spec.family.references
    named = routes.get(spec.prior if spec.is_map else None)
    if named is not None:
        return named
    if spec.row_scales and not spec.family.row_input:  # (per-row σᵢ: WLS routes only)
        raise ValueError(
            f"no reference fit for per-row noise scales with a {spec.prior} prior: "
            f"{spec.likelihood} with per-row σᵢ has references for the MLE and "
            f"{[p for p in routes if p is not None]} priors")
    return "kinked" if spec.kinked else "smooth"


def solver_of(spec: ModelSpec) -> _Solver:
    """The :data:`ROUTES` entry that fits ``spec``."""
    return ROUTES[route_of(spec)]


def route(name: str, method, scale_note: str = "", kind: str = "trusted"):
    """Register the decorated solver as the reference route ``name`` (one place per route)."""

    def register(solve):
        ROUTES[name] = _Solver(solve, method, scale_note, kind)
        return solve

    return register
