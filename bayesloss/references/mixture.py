r"""Mixture of K linear regressions by the EM algorithm (numpy), from several seeds: verified.

.. math::

    F(θ, σ, π) = -\sum_i \log \sum_k π_k\,\mathcal N(t_i;\ z_i^\top θ_k,\ σ_k^2)
                 + [\text{MAP}]\ \sum_{k,j} ρ(θ_{jk})

in standardised coordinates (:mod:`.problem`), with ρ(θ) = θ²/(2τ²) for a normal prior and
(ν + 1)/2 · log(1 + θ²/(ντ²)) for a Student-t (Cauchy: ν = 1). E-step: the responsibilities
``R_ik ∝ π_k N(t_i; z_iᵀθ_k, σ_k²)``; M-step (an ECM step): each line by weighted least
squares given its σₖ, with the prior as a ridge of precision ``ω = ρ'(θ)/θ`` at the current θ
(1/τ² for the normal prior; for a Student-t the quadratic that majorises ρ there, an MM step),
then ``σ_k² = Σ_i R_ik r_ik² / Σ_i R_ik`` and ``π_k = mean_i R_ik``. Each step cannot increase
F (Dempster, Laird & Rubin 1977; Hunter & Lange 2004). The starts are independent of our fit's k-means ones: each
seed draws, for each component, the line through p random rows (p coefficients), with σₖ the
target's standard deviation and equal πₖ. Every start runs :data:`SHORT_EM` steps ("small EM",
Biernacki, Celeux & Govaert 2003), and the one with the lowest F then runs to EM's fixed point;
its components are reported in the family's order
(:func:`~bayesloss.families.mixture.component_order`).
(Starts from random responsibilities, a flat Dirichlet per row, were tried first: with K = 3
every seed fell into the same poor optimum, all components starting as one least-squares
line.)

Kind *verified*: EM stops at its fixed point (no parameter moves by more than
``STEP_TOL·(1 + |x|)`` in a step) and the answer is accepted on the first-order conditions,
the exact gradient of F/n over (θ, log σ, the logits against component 0)

.. math::

    ∂_{θ_k} = -\tfrac1n \textstyle\sum_i R_{ik} r_{ik} z_i / σ_k^2 + ω(θ_k)\,θ_k/n,\quad
    ∂_{\log σ_k} = \tfrac1n \sum_i R_{ik}(1 - r_{ik}^2/σ_k^2),\quad
    ∂_{\ell_k} = \tfrac1n \sum_i (π_k - R_{ik}),

below ``GRAD_TOL_EM`` in ∞-norm (EM's fixed point, reached at its linear rate, leaves the
gradient near 1e-10 rather than the Newton-finished solvers' 1e-12).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import logsumexp

from ..families.mixture import component_order
from .problem import _Problem, _Solution, route
from .verified import STEP_TOL

EM_SEEDS = 10  # random-line starts
SHORT_EM = 50  # steps of every start before the best one is run to the end
EM_MAX_ITER = 20000
GRAD_TOL_EM = 1e-9


def _responsibilities(pb: _Problem, theta, sigma, pi):
    """``(R (n, K), F/n without the prior, residuals (n, K))`` at the parameters."""
    r = pb.t[:, None] - pb.Z @ theta
    logp = (np.log(pi) - np.log(sigma) - 0.5 * math.log(2 * math.pi)
            - 0.5 * (r / sigma) ** 2)
    lse = logsumexp(logp, axis=1)
    return np.exp(logp - lse[:, None]), -lse.mean(), r


def _precision(pb: _Problem, theta) -> np.ndarray:
    """ω = ρ'(θ)/θ per coefficient (p, K): the prior's ridge at θ (0 for the free intercept
    and under MLE)."""
    if not pb.spec.is_map:
        return np.zeros_like(theta)
    tau2 = (pb.tau ** 2)[:, None]  # inf for the free intercept: ω = 0
    if pb.spec.prior == "normal":
        return np.broadcast_to(1.0 / tau2, theta.shape)
    nu = pb.spec.effective_prior_df
    return (nu + 1) / (nu * tau2 + theta**2)


def _m_step(pb: _Problem, R, theta, sigma):
    """The lines (weighted ridge with the prior's precision at θ, given σₖ), then σₖ and
    πₖ."""
    p, k = pb.p, R.shape[1]
    omega = _precision(pb, theta)
    theta, new_sigma = np.empty((p, k)), np.empty(k)
    for j in range(k):
        w = R[:, j]
        A = pb.Z.T @ (pb.Z * w[:, None]) + np.diag(sigma[j] ** 2 * omega[:, j])
        theta[:, j] = np.linalg.solve(A, pb.Z.T @ (w * pb.t))
        r = pb.t - pb.Z @ theta[:, j]
        new_sigma[j] = math.sqrt((w * r * r).sum() / w.sum())
    return theta, new_sigma, R.mean(axis=0)


def _prior(pb: _Problem, theta) -> float:
    """Σ ρ(θ) over the penalised coefficients (constants dropped)."""
    if not pb.spec.is_map:
        return 0.0
    t, tau2 = theta[pb.penalised], pb.tau[pb.penalised, None] ** 2
    if pb.spec.prior == "normal":
        return float(0.5 * (t * t / tau2).sum())
    nu = pb.spec.effective_prior_df
    return float(0.5 * (nu + 1) * np.log1p(t * t / (nu * tau2)).sum())


def _gradient(pb: _Problem, theta, sigma, pi) -> np.ndarray:
    """∇(F/n) over (θ, log σ, logits ℓ₂…ℓ_K) (see the module docstring)."""
    R, _, r = _responsibilities(pb, theta, sigma, pi)
    n = pb.n
    g_theta = (-pb.Z.T @ (R * r / sigma**2) + _precision(pb, theta) * theta) / n
    g_sigma = (R * (1.0 - (r / sigma) ** 2)).sum(axis=0) / n
    g_logit = (pi - R.mean(axis=0))[1:]
    return np.concatenate([g_theta.ravel(), g_sigma, g_logit])


def _start(pb: _Problem, seed: int) -> tuple:
    """A random-line start ``(θ, σ, π)``."""
    k, rng = pb.spec.components, np.random.default_rng(seed)
    theta = np.empty((pb.p, k))
    for j in range(k):
        rows = rng.choice(pb.n, size=pb.p, replace=False)
        theta[:, j] = np.linalg.lstsq(pb.Z[rows], pb.t[rows], rcond=None)[0]
    return theta, np.ones(k), np.full(k, 1.0 / k)  # σ: the standardised target's spread


def _em(pb: _Problem, theta, sigma, pi, max_iter: int) -> tuple:
    """EM from ``(θ, σ, π)`` to its fixed point or ``max_iter`` steps: ``(F/n, θ, σ, π,
    steps)``."""
    for it in range(1, max_iter + 1):
        R, _, _ = _responsibilities(pb, theta, sigma, pi)
        new = _m_step(pb, R, theta, sigma)
        old = np.concatenate([theta.ravel(), np.log(sigma), np.log(pi)])
        x = np.concatenate([new[0].ravel(), np.log(new[1]), np.log(new[2])])
        theta, sigma, pi = new
        if np.abs(x - old).max() <= STEP_TOL * (1.0 + np.abs(x).max()):
            break
    f = _responsibilities(pb, theta, sigma, pi)[1] + _prior(pb, theta) / pb.n
    return f, theta, sigma, pi, it


@route("em-mixture", lambda spec: f"EM for a mixture of {spec.components} linear regressions "
                                  f"(numpy; ECM with an MM step for the prior), best of "
                                  f"{EM_SEEDS} "
                                  "random-line starts, accepted on the first-order conditions",
       kind="verified")
def _solve_em_mixture(pb: _Problem) -> _Solution:
    """gaussian_mixture MLE / MAP (normal, Student-t or Cauchy prior)."""
    # a start whose component collapses onto a few rows (σₖ → 0) ends in NaN: not kept
    with np.errstate(divide="ignore", over="ignore", under="ignore", invalid="ignore"):
        runs = [_em(pb, *_start(pb, seed), SHORT_EM) for seed in range(EM_SEEDS)]
        best = min(runs, key=lambda r: r[0] if np.isfinite(r[0]) else np.inf)
        f, theta, sigma, pi, n_iter = _em(pb, *best[1:4], EM_MAX_ITER)
    n_iter += sum(r[4] for r in runs)
    order = component_order(pb.Z.mean(axis=0), theta, 0.0)
    theta, sigma, pi = theta[:, order], sigma[order], pi[order]
    gnorm = float(np.abs(_gradient(pb, theta, sigma, pi)).max())
    return _Solution(theta, sigma, gnorm <= GRAD_TOL_EM, int(n_iter),
                     grad_norm=gnorm,
                     info={"objective_per_row": float(f),
                           "starts": [float(r[0]) for r in runs]},
                     mixing=np.log(pi[1:]) - math.log(pi[0]))
