r"""The verified reference of a family that exists only as a torch distribution.

A :class:`~bayesloss.Likelihood` of your own has no classical solver and no numpy form of its
NLL, and von_mises's mean direction ``b + 2·atan(x·w)`` is not linear in the weights; both
are fitted here by scipy on the NLL evaluated from the family's own distribution, with the
exact gradient and Hessian by torch's autograd (the one place in :mod:`bayesloss.references`
that runs torch: there is no other definition of such a likelihood to use). Nothing of the
Pyro model, the guide or the fitting engine is involved, and the answer is *verified*:

* smooth priors (none, normal, Student-t, Cauchy, written out here): :func:`~.verified.
  _minimise` (``trust-exact`` then MINPACK ``lm`` on ∇F = 0), accepted on a positive definite
  Hessian with a negligible gradient or Newton correction;
* a Laplace prior: the smoothing continuation and the active-set polish of
  :mod:`~bayesloss.references.verified`, accepted on the KKT conditions.

Starts: the intercept-only fit (and the MLE for a MAP); a family with an inner link (a
non-convex likelihood in w) also from :data:`RANDOM_STARTS` seeded random weights. The best
verified answer is kept (``Fit.info["starts"]``).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import torch

from ..spec import with_changes
from .problem import _Problem, _Solution, _split, route
from .verified import _continuation, _Kinked, _minimise, _polish, _prior_terms

RANDOM_STARTS = 4
SEED = 0


def _uncentred(pb: _Problem) -> _Problem:
    """The problem with scaled, uncentred columns: an intercept outside the link
    (``b + g(x·w)``) cannot absorb the columns' means."""
    x_scale = np.sqrt((pb.X ** 2).mean(axis=0))
    x_scale = np.where(x_scale > 0, x_scale, 1.0)
    Z = pb.X / x_scale
    tau = pb.spec.prior_scale * x_scale / pb.y_scale
    if pb.free_intercept:
        Z, tau = np.column_stack([Z, np.ones(pb.n)]), np.append(tau, np.inf)
    return replace(pb, Z=Z, tau=tau, x_shift=np.zeros(pb.X.shape[1]), x_scale=x_scale)


def _grad(f, x, **kw):
    """``∂f/∂x`` (zeros where ``f`` does not depend on ``x``)."""
    (g,) = torch.autograd.grad(f, x, allow_unused=True, **kw)
    return torch.zeros_like(x) if g is None else g


def _row_terms(pb: _Problem):
    """``(η, β) ↦ (f, ∂f/∂η, ∂²f/∂η², ∂f/∂β, ∂²f/∂β², ∂²f/∂η∂β)`` for f = −Σ log p(t_i | η_i,
    e^β) from the family's distribution, by autograd (the rows are independent, so the
    η-Hessian is diagonal and one backward pass gives it): the form of ``numpy_terms``."""
    spec, family = pb.spec, pb.spec.family
    t = torch.as_tensor(np.asarray(pb.t, dtype=np.float64))

    def terms(eta_np, beta):
        eta = torch.tensor(eta_np, dtype=torch.float64, requires_grad=True)
        b = torch.tensor(beta, dtype=torch.float64, requires_grad=True)
        s = b.exp() if family.has_scale else None
        with torch.enable_grad():
            f = -family.distribution(eta, s, spec.df, 0.0).log_prob(t).sum()
            g_eta = _grad(f, eta, create_graph=True)
            g_b = _grad(f, b, create_graph=True)
            h_eta = _grad(g_eta.sum(), eta, retain_graph=True) if g_eta.requires_grad else \
                torch.zeros_like(eta)
            h_eb = (_grad(g_b, eta, retain_graph=True) if g_b.requires_grad
                    else torch.zeros_like(eta))
            h_bb = _grad(g_b, b) if g_b.requires_grad else torch.zeros(())
        return (float(f.detach()), g_eta.detach().numpy(), h_eta.detach().numpy(),
                float(g_b.detach()), float(h_bb.detach()), h_eb.detach().numpy())

    return terms


def _link_terms(link, u_np):
    """``(g(u), g'(u), g''(u))`` elementwise, by autograd."""
    u = torch.tensor(u_np, dtype=torch.float64, requires_grad=True)
    with torch.enable_grad():
        gu = link(u)
        g1 = _grad(gu.sum(), u, create_graph=True)
        g2 = _grad(g1.sum(), u) if g1.requires_grad else torch.zeros_like(u)
    return gu.detach().numpy(), g1.detach().numpy(), g2.numpy()


def _objective(pb: _Problem, *, prior: bool):
    """``x ↦ (F/n, ∇, ∇²)``, F the NLL from the family's distribution (+ the smooth prior of
    :func:`~.verified._prior_terms` when ``prior``), ``x`` = (θ, log s if learned). The
    per-row derivatives come from :func:`_row_terms`; with an inner link, ``η = b + g(u)``,
    ``u = Z_w θ_w``, the chain rule adds ``Σ_i ∂f/∂η_i g''(u_i) z_i z_iᵀ`` to the Hessian."""
    spec, family = pb.spec, pb.spec.family
    Z, d, k, n = pb.Z, pb.X.shape[1], pb.p, pb.n
    link, terms = family.inner_link, _row_terms(pb)

    def fun(x):
        theta, beta = _split(pb, x)
        if link is None:
            eta, J = Z @ theta, Z
        else:
            gu, g1, g2 = _link_terms(link, Z[:, :d] @ theta[:d])
            eta = gu + (theta[d] if pb.free_intercept else 0.0)
            J = Z.copy()
            J[:, :d] *= g1[:, None]
        f, g_eta, h_eta, g_b, h_bb, h_eb = terms(eta, beta)
        grad = J.T @ g_eta
        H = J.T @ (J * h_eta[:, None])
        if link is not None:
            H[:d, :d] += Z[:, :d].T @ (Z[:, :d] * (g_eta * g2)[:, None])
        if prior and spec.is_map:
            fp, gp, hp = _prior_terms(pb, theta)
            f, grad = f + fp, grad + gp
            H[np.diag_indices_from(H)] += hp
        if spec.learns_scale:
            cross = J.T @ h_eb
            grad = np.append(grad, g_b)
            H = np.block([[H, cross[:, None]], [cross[None, :], np.array([[h_bb]])]])
        return f / n, grad / n, H / n

    return fun


def _starts(pb: _Problem) -> list:
    """``(label, x)`` starting points: intercept-only, the MLE (MAP), random weights."""
    family, spec = pb.spec.family, pb.spec
    d, k = pb.X.shape[1], pb.p
    base = np.zeros(k + int(spec.learns_scale))
    if pb.free_intercept:
        base[d] = family.initial_bias(pb.y)
    starts = [("intercept only", base)]
    if spec.is_map:
        mle = _solve(replace(pb, spec=with_changes(spec, estimator="mle")))
        if mle.converged:
            starts.append(("MLE", np.r_[mle.theta, [math.log(mle.scale)] if
                                        spec.learns_scale else []]))
    if family.inner_link is not None:
        rng = np.random.default_rng(SEED)
        for j in range(RANDOM_STARTS):
            x = base.copy()
            x[:d] = rng.normal(0.0, 1.0 / math.sqrt(d), d)
            starts.append((f"random {j}", x))
    return starts


def _solve(pb: _Problem) -> _Solution:
    spec = pb.spec
    kinked_prior = spec.is_map and spec.prior_spec.kinked
    if kinked_prior and spec.prior != "laplace":
        raise ValueError(f"no verified reference for the {spec.prior} prior here")
    fun = _objective(pb, prior=not kinked_prior)
    kp = None
    if kinked_prior:  # Σ |θ_j| / τ_j on the penalised entries, divided by n like F
        k, q = pb.p, pb.p + int(spec.learns_scale)
        idx = np.flatnonzero(np.isfinite(pb.tau))
        A = np.zeros((idx.size, q))
        A[np.arange(idx.size), idx] = 1.0
        kp = _Kinked(fun, A, np.zeros(idx.size), 1.0 / (pb.n * pb.tau[idx]),
                     np.zeros(idx.size, bool))
    best, tried = None, []
    for label, x0 in _starts(pb):
        if kp is None:
            res = _minimise(fun, x0)
            x, value, ok, nit = res.x, float(res.fun), bool(res.success), int(res.nit)
            gnorm = float(np.abs(res.jac).max())
        else:
            x, nit = _continuation(kp, x0)
            polished, gnorm, _ = _polish(kp, x)
            ok = polished is not None
            x = polished if ok else x
            value = kp.value(x)
        tried.append({"start": label, "objective": value, "verified": ok})
        if best is None or (ok, -value) > (best[0], -best[1]):
            best = (ok, value, x, nit, gnorm, label)
    ok, _, x, nit, gnorm, label = best
    theta, beta = _split(pb, x)
    scale = math.exp(beta) if spec.family.has_scale else None
    return _Solution(theta.copy(), scale, ok, nit, grad_norm=gnorm,
                     info={"start": label, "starts": tried})


@route("torch-nll", "verified (first-order conditions): scipy.optimize.minimize trust-exact "
       "+ MINPACK lm on the NLL of the family's torch distribution, exact autograd gradient "
       "and Hessian (a Laplace prior: smoothing continuation + active-set polish, KKT-checked), "
       "several starts", kind="verified")
def _solve_torch(pb: _Problem) -> _Solution:
    """:func:`_solve` in the coordinates the family allows, mapped to ``pb``'s."""
    if pb.spec.family.inner_link is None:
        return _solve(pb)
    inner = _uncentred(pb)
    sol = _solve(inner)
    coef, intercept = inner.to_user(sol.theta)
    return replace(sol, theta=pb.from_user(coef, intercept))
