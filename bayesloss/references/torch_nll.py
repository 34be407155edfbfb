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
from .verified import _continuation, _Kinked, _minimise, _polish

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


def _objective(pb: _Problem, *, prior: bool):
    """``x ↦ (F/n, ∇, ∇²)`` in numpy, F the NLL from the family's distribution (+ the smooth
    prior when ``prior``), the derivatives by autograd; ``x`` = (θ, log s if learned)."""
    spec, family = pb.spec, pb.spec.family
    Z, t = torch.as_tensor(pb.Z), torch.as_tensor(np.asarray(pb.t, dtype=np.float64))
    d, k, n = pb.X.shape[1], pb.p, pb.n
    link = family.inner_link
    tau = torch.as_tensor(pb.tau)
    on = torch.isfinite(tau)
    nu = spec.effective_prior_df

    def F(x):
        theta = x[:k]
        if link is None:
            eta = Z @ theta
        else:
            eta = link(Z[:, :d] @ theta[:d]) + (theta[d] if pb.free_intercept else 0.0)
        if spec.learns_scale:
            s = x[k].exp()
        else:
            _, beta = _split(pb, np.zeros(k))
            s = torch.tensor(math.exp(beta), dtype=x.dtype) if family.has_scale else None
        f = -family.distribution(eta, s, spec.df, 0.0).log_prob(t).sum()
        if prior and spec.is_map:
            w, s2 = theta[on], tau[on] ** 2
            if spec.prior == "normal":
                f = f + (w * w / (2 * s2)).sum()
            else:  # studentt, cauchy (ν = 1)
                f = f + 0.5 * (nu + 1) * torch.log1p(w * w / (nu * s2)).sum()
        return f / n

    def fun(x_np):
        x = torch.tensor(x_np, dtype=torch.float64, requires_grad=True)
        with torch.enable_grad():
            f = F(x)
            (g,) = torch.autograd.grad(f, x, create_graph=True)
            H = torch.stack([torch.autograd.grad(g[i], x, retain_graph=True)[0]
                             for i in range(x.numel())])
        return float(f), g.detach().numpy(), H.numpy()

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
