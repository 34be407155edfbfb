"""The one preconditioner: the affine change of variables every adapter with a design matrix
fits in (linear means, the heteroscedastic model's two heads, each linear head of several
outputs). It lives in the parameterisation, never in a copy of X."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import scipy.linalg
import torch

from ..models import linear_mean, predictor
from ..results import as_tensor
from ..spec import DesignStats, ModelSpec
from .driver import DTYPE

WHITEN_MIN_PIVOT = 1e-7  # whiten only designs with cond(Gram) below ~1e14
# centre X in the intercept (no copy of X) while every column's |mean| ≤ this × its spread:
# η' = X v + (b' − m·v) then rounds at most ~(1 + 10)·eps, one digit of sixteen
MAX_FOLDED_OFFSET = 10.0


@dataclass(frozen=True)
class Preconditioner:
    """The affine change of variables ``x' = (x − m)/s · U``, ``y' = (y − m_y)/s_y``.

    Weights map as ``w = U w'·s_y/s``; the intercept absorbs the offsets. When the intercept is
    penalised the offsets stay at zero, so its prior maps by scaling alone. For MAP, ``s`` also
    carries the prior's curvature (Jacobi scaling): a tight prior on one column would otherwise
    make that direction far stiffer than the others, and ``U`` is the identity, which keeps
    each weight's prior its own. Where no separable prior needs keeping (MLE) or the prior is
    normal, whose image under any linear map is again normal (a ``MultivariateNormal``),
    ``U = L⁻ᵀ`` with ``L Lᵀ`` the standardised Gram matrix / n plus the prior's curvature:
    the Hessian becomes about the identity, and ill-conditioned designs (Longley, collinear
    real data) are as easy as any.

    The scaling and whitening live in the parameterisation, not in the data: the model's mean
    is ``η' = (X − m)(A w') + b'`` with ``A = diag(1/s) U`` (:meth:`mean_fn`), so an
    evaluation costs n·d and no whitened copy of X (n·d² to make) exists. The centring goes
    into the intercept, ``η' = X v + (b' − m·v)``, unless a column's mean dwarfs its spread
    (more than :data:`MAX_FOLDED_OFFSET` times: Longley's year, wine's proline), where that
    difference would cancel digits away and the data are centred instead (``centred_data``).
    """

    x_mean: np.ndarray
    x_scale: np.ndarray
    y_mean: float
    y_scale: float
    whiten: Optional[np.ndarray] = None
    data_curvature: float = 1.0
    centred_data: bool = False

    @classmethod
    def from_data(cls, X: np.ndarray, y: np.ndarray, spec: ModelSpec,
                  stats: Optional[DesignStats] = None, sigma_unit: bool = True
                  ) -> "Preconditioner":
        """``stats`` (column means and Gram matrix from :func:`~bayesloss.spec.check_data`)
        saves the passes over X that they would otherwise cost. ``sigma_unit``: a smooth
        likelihood's fixed σ is the target's unit (L-BFGS); else its standard deviation is
        (Adam, whose steps have an absolute size, lr: there the weights must be O(1), and in
        units of σ ≪ sd(y) they are ~sd/σ)."""
        stats = DesignStats.of(X) if stats is None else stats
        # a link on x·w alone (b + g(x·w)) cannot take the centring into the intercept
        centre = (spec.fit_intercept and not spec.penalize_intercept
                  and spec.family.inner_link is None)
        x_mean = stats.mean if centre else np.zeros(X.shape[1])
        x_scale = np.sqrt(stats.centred_gram().diagonal() if centre else stats.mean_square())
        x_scale = np.where(x_scale > 0, x_scale, 1.0)
        centred_data = bool(np.any(np.abs(x_mean) > MAX_FOLDED_OFFSET * x_scale))
        y_mean, y_scale = 0.0, 1.0
        if spec.family.continuous:
            y_mean = float(y.mean()) if centre else 0.0
            if sigma_unit and spec.noise_scale is not None and not spec.family.kinked:
                # a fixed σ is the unit: the data term's curvature is then ~1 per row whatever
                # σ, and so is what ``tol`` means. (In units of sd(y) it would be (sd/σ)², and
                # the gradient's rounding floor, ~eps·(sd/σ)², reaches 1e-9 near σ = sd/1000.)
                y_scale = float(np.mean(np.asarray(spec.noise_scale) ** -2.0) ** -0.5)
            else:
                y_scale = float(np.sqrt(((y - y_mean) ** 2).mean())) or 1.0
        # per-row curvature of the data term and of the prior, in standardised units
        # (a σ only for the location-scale families: a GLM's fixed shape or trials is not one)
        data_curv = (float(np.mean((y_scale / np.asarray(spec.noise_scale)) ** 2))
                     if spec.noise_scale is not None and spec.family.continuous
                     else 1.0)  # per-row σᵢ: the mean
        prior_curv = np.zeros(X.shape[1])
        if spec.is_map:
            tau = spec.prior_scale * x_scale / y_scale
            prior_curv = spec.prior_spec.curvature(tau, spec.effective_prior_df) / X.shape[0]
        whitenable = not spec.is_map or (
            spec.prior == "normal" and not spec.family.multiclass and not spec.penalize_intercept
        )
        if whitenable:
            # the standardised Gram matrix; it need not be exact (any invertible U gives the
            # same model), only close enough to condition it
            gram = (stats.centred_gram() if centre else stats.gram / X.shape[0])
            hessian = gram / np.outer(x_scale, x_scale) + np.diag(prior_curv / data_curv)
            try:
                L = np.linalg.cholesky(hessian)
            except np.linalg.LinAlgError:  # singular design (warned about): scaling only
                L = None
            if L is not None and np.diag(L).min() >= WHITEN_MIN_PIVOT * np.diag(L).max():
                U = scipy.linalg.solve_triangular(L, np.eye(X.shape[1]), lower=True).T
                return cls(x_mean, x_scale, y_mean, y_scale, U, data_curv, centred_data)
        # Jacobi: scale each column by the square root of its Hessian diagonal
        x_scale = x_scale * np.sqrt(1.0 + prior_curv / data_curv)
        return cls(x_mean, x_scale, y_mean, y_scale, None, data_curv, centred_data)

    @classmethod
    def scaling(cls, X: np.ndarray, y: np.ndarray, spec: ModelSpec,
                stats: Optional[DesignStats] = None) -> "Preconditioner":
        """Centring (with a free intercept) and unit spread of the columns and the target only:
        no whitening and no prior curvature, for a model whose curvature is not the Gram
        matrix's (a heteroscedastic model weights each row by 1/σ(xᵢ)², unknown before the
        fit). Its :meth:`mean_fn` serves both of that model's heads."""
        stats = DesignStats.of(X) if stats is None else stats
        centre = spec.fit_intercept and not spec.penalize_intercept
        x_mean = stats.mean if centre else np.zeros(X.shape[1])
        x_scale = np.sqrt(stats.centred_gram().diagonal() if centre else stats.mean_square())
        x_scale = np.where(x_scale > 0, x_scale, 1.0)
        y_mean = float(y.mean()) if centre else 0.0
        y_scale = float(np.sqrt(((y - y_mean) ** 2).mean())) or 1.0
        centred_data = bool(np.any(np.abs(x_mean) > MAX_FOLDED_OFFSET * x_scale))
        return cls(x_mean, x_scale, y_mean, y_scale, None, 1.0, centred_data)

    @property
    def matrix(self) -> np.ndarray:
        """``A`` with ``w_user = s_y · A w'`` (d × d, or the diagonal (d,) when not whitened)."""
        return 1.0 / self.x_scale if self.whiten is None else self.whiten / self.x_scale[:, None]

    def mean_fn(self) -> Callable:
        """The linear mean in the preconditioned parameters, ``η' = (X − m)(A w') + b'``, on
        the design of :meth:`data` (the centring in the intercept unless it is in the data)."""
        A = torch.as_tensor(self.matrix, dtype=DTYPE)
        shift = None if self.centred_data or not self.x_mean.any() else torch.as_tensor(
            self.x_mean)

        def mean(X, weight, bias):
            w = A @ weight if A.dim() == 2 else (A[:, None] if weight.dim() == 2 else A) * weight
            if shift is not None:  # centring needs an intercept: bias is there
                bias = bias - shift @ w
            return linear_mean(X, w, bias)

        return mean

    def data(self, X: np.ndarray, y: np.ndarray, spec: ModelSpec):
        """The design (centred, ``X − m``, only where :attr:`centred_data`: a copy of X that
        otherwise costs as much as an evaluation; the scaling and whitening, n·d² if applied to
        X, live in :meth:`mean_fn`) and the standardised target."""
        yp = (y - self.y_mean) / self.y_scale if spec.family.continuous else y
        Xt = as_tensor(X)
        return self.centre(Xt) if self.centred_data else Xt, as_tensor(yp)

    def centre(self, X: torch.Tensor) -> torch.Tensor:
        """``X − m`` (``X`` itself where there is no centring)."""
        if not self.x_mean.any():
            return X
        return X - torch.as_tensor(self.x_mean)  # torch's broadcast: ~2× numpy's for a short row

    def model_kwargs(self, spec: ModelSpec) -> dict:
        """The prior (per-column scales, or a precision matrix when whitened), the fixed
        noise scale and the mean function in the preconditioned variables."""
        tau = spec.prior_scale * self.x_scale / self.y_scale
        kw = {
            "prior_scale": torch.as_tensor(tau),
            "intercept_prior_scale": spec.prior_scale / self.y_scale,
            "mean_fn": predictor(spec.family, self.mean_fn()),
        }
        if self.whiten is not None and spec.is_map:  # w_std = U w' with w_std ~ N(0, diag τ²)
            kw["prior_precision"] = torch.as_tensor(self.whiten.T @ (self.whiten / tau[:, None]**2))
        if spec.noise_scale is not None:
            kw["noise_scale"] = torch.as_tensor(np.asarray(spec.noise_scale) / self.y_scale)
        return kw

    def to_user(self, weight: np.ndarray, bias, scale):
        """``(coef, intercept, scale)`` on the user's scale from the preconditioned ones."""
        A = self.matrix
        coef = self.y_scale * (A @ weight if A.ndim == 2 else
                               (A[:, None] if weight.ndim == 2 else A) * weight)
        intercept = None
        if bias is not None:
            intercept = self.y_mean + self.y_scale * np.asarray(bias) - self.x_mean @ coef
        return coef, intercept, None if scale is None else float(scale) * self.y_scale

    def head_to_user(self, weight: np.ndarray, bias) -> tuple:
        """A log-σ head ``log σ'(x) = (x − m)(A a') + c'`` (σ' in units of the target's
        scale) as ``(a, c)`` with ``log σ(x) = x·a + c`` on the user's scale."""
        A = self.matrix
        a = A @ weight if A.ndim == 2 else A * weight
        return a, float(bias) + math.log(self.y_scale) - self.x_mean @ a
