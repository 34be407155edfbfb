"""Typed results: a point estimate with its NLL, classical loss, objective and convergence facts.

Our Pyro fits and the reference fits return the same :class:`Fit`, so every comparison and
report reads one shape. NLL, loss and objective are computed here from the parameters, on the
user's scale and the training data, by the family's own functions and the exact Pyro model.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import pandas as pd
import pyro
import torch
from pyro import poutine

from .families.mixture import append_mixing
from .labels import Report, Table, feature_labels, parameter_label
from .models import build_model, predictor
from .potential import point_covariance
from .priors import penalty_mapping
from .spec import ModelSpec, check_X, feature_names, make_spec

@dataclass(frozen=True)
class Evaluation:
    """NLL, classical loss and −log joint (NLL + −log prior for MAP) at one estimate."""

    nll: float
    loss: float
    objective: float


def as_tensor(a):
    """``a`` as a float64 tensor sharing its memory (None stays None). Torch warns about
    read-only arrays (a pandas column under copy-on-write, statsmodels data sets), which
    only those need copying."""
    if a is None:
        return None
    a = np.asarray(a, dtype=np.float64)
    return torch.as_tensor(a if a.flags.writeable else a.copy())


def linear_predictor(spec: ModelSpec, X, coef, intercept) -> torch.Tensor:
    """``η = X coef + intercept`` as a float64 tensor (``intercept + g(X coef)`` for a family
    with an inner link ``g``: von_mises)."""
    return predictor(spec.family)(as_tensor(X), as_tensor(coef),
                                  as_tensor(intercept) if spec.fit_intercept else None)


def _predictive_mode(d) -> np.ndarray:
    """The mode of a torch distribution, its mean where it has no mode."""
    try:
        return d.mode.numpy()
    except NotImplementedError:
        return d.mean.numpy()


def log_scale(X, scale_head) -> torch.Tensor:
    """``log σ(x) = X a + c`` for a linear scale head ``(a, c)``, as a float64 tensor."""
    a, c = scale_head
    return as_tensor(X) @ as_tensor(a) + float(c)


def evaluate(spec: ModelSpec, X, y, coef, intercept, scale, scale_head=None,
             mixing=None) -> Evaluation:
    """Exact NLL, classical loss and objective of ``spec`` at the given parameters
    (``scale_head = (a, c)`` for a family whose σ(x) is a second head; ``mixing`` the K − 1
    mixing logits of a mixture)."""
    family = spec.family
    X_t, y_t = as_tensor(X), as_tensor(y)
    eta = linear_predictor(spec, X_t, coef, intercept)
    full = eta if mixing is None else append_mixing(eta, as_tensor(mixing))
    if family.scale_head:
        s = log_scale(X_t, scale_head).exp()
    else:
        s = as_tensor(scale if scale is not None else spec.noise_scale)
    # the data were validated on the way in: skip Pyro's per-value support checks
    with torch.no_grad(), pyro.validation_enabled(False):
        loss = family.loss(y_t, full, s, spec.df)
        k = np.asarray(coef).shape[1] if np.ndim(coef) == 2 else 1
        w_t = as_tensor(coef)

        def mean_fn(X_, weight, bias):  # η at these weights is computed already (loss)
            return eta if weight is w_t else predictor(family)(X_, weight, bias)

        model = build_model(spec, X_t.shape[1], k, noise_scale=s, mean_fn=mean_fn)
        values = {"weight": w_t}
        if spec.fit_intercept:
            values["bias"] = as_tensor(intercept)
        if spec.learns_scale:
            values["scale"] = s
        if mixing is not None:
            values["mixing"] = as_tensor(mixing)
        if family.scale_head:
            values["scale_weight"] = as_tensor(scale_head[0])
            values["scale_bias"] = torch.tensor(float(scale_head[1]), dtype=torch.float64)
        trace = poutine.trace(poutine.condition(model, data=values)).get_trace(X_t, y_t)
        objective = -trace.log_prob_sum()  # also leaves each site's sum in the trace
        nll = -trace.nodes["obs"]["log_prob_sum"]  # = family.nll(y, η): the full batch's scale is 1
    return Evaluation(float(nll), float(loss), float(objective))


def _laplace_covariance(spec: ModelSpec, X, y, coef, intercept, scale, scale_head=None,
                        mixing=None):
    """(covariance, note) at a point estimate: see :func:`bayesloss.potential.point_covariance`."""
    values = {"weight": coef, "bias": intercept, "scale": scale, "mixing": mixing}
    if scale_head is not None:
        values.update(scale_weight=scale_head[0], scale_bias=scale_head[1])
    k = np.asarray(coef).shape[1] if np.ndim(coef) == 2 else 1
    try:
        return point_covariance(spec, X, y, values, k)
    except (ValueError, RuntimeError, np.linalg.LinAlgError) as err:  # reported, not raised:
        return None, f"no Laplace covariance: {err}"  # the point estimate stands on its own


@dataclass(frozen=True)
class Fit:
    """A point estimate (MLE or MAP) of one model, by our Pyro code or by a reference solver.

    Attributes
    ----------
    spec:
        The model (likelihood, estimator, prior, constants).
    params_:
        The estimate by model site name, as numpy arrays on the user's scale: ``weight``
        ((d,) or (d, K)), ``bias`` (() or (K,); absent without an intercept) and ``scale``
        (only where it is learned) for a linear mean; a network's layers
        (``layers.0.weight``, …) for a neural one. Summary, compare, posterior and plots read
        this one shape whatever the mean function.
    coef_, intercept_:
        Views of ``params_`` for a linear mean: weights ((d,) or (d, K); the very array
        ``params_["weight"]``) and intercept (float or (K,); 0 without one).
        Categorical MLE coefficients are not identifiable; they are reported centred over the
        K classes (each row sums to zero), the convention under which they are unique; so is a
        categorical intercept with a flat prior (MLE or MAP).
    scale_:
        The noise scale (fixed or learned); None where the family has none, where σ is a
        function of x (hetero_gaussian: see ``scale_coef_``, :meth:`predict_scale`) or where
        the σᵢ were known per row (they are ``spec.noise_scale``).
    scale_coef_, scale_intercept_:
        Views of ``params_["scale_weight"]`` and ``params_["scale_bias"]``: the linear scale
        head ``log σ(x) = x·scale_coef_ + scale_intercept_`` of hetero_gaussian.
    converged, n_iter, grad_norm:
        Whether the stated stopping criterion held, iterations used, final gradient norm
        (∞-norm, on the optimiser's scale; NaN where the solver does not report one).
    nll, loss, objective:
        Training NLL, classical loss, and −log joint density (NLL + −log prior for MAP).
    method:
        Who computed it ("pyro AutoDelta + L-BFGS", "scikit-learn Ridge", …).
    feature_names:
        The columns of a DataFrame ``X`` (None for arrays): they label the weights in
        :meth:`params` and :meth:`summary`, and a DataFrame passed to :meth:`predict` must
        have the same columns in the same order.
    cov_, cov_note:
        The Laplace approximation's covariance at the estimate, over the rows of
        :meth:`params` that are free (coef, intercept, learned scale), from the exact Hessian
        of −log p(y, θ) in the constrained space; for the MLE the classical observed-information
        covariance (statsmodels' ``cov_params``). None where it does not exist (kinks, a
        singular Hessian), with the reason in ``cov_note``. Computed on first use from the
        training data the fit keeps a reference to.
    formula:
        The :class:`~bayesloss.formula.Formula` a formula fit came from (None otherwise): the
        prediction methods take a DataFrame of the formula's variables and build its design
        through it.
    """

    spec: ModelSpec
    params_: dict
    scale_: Optional[float]
    converged: bool
    n_iter: int
    grad_norm: float
    n_samples: int
    method: str
    seed: Optional[int] = None
    info: dict = field(default_factory=dict)
    feature_names: Optional[tuple] = None
    formula: Optional[object] = None
    # the training data and estimate behind cov_ and the NLL / loss / objective: the Hessian
    # costs more than many fits, the evaluation another trace of the model, and most fits (a
    # sweep's, a benchmark's) are never asked for them, so both are computed on first use
    _cov_inputs: Optional[tuple] = field(default=None, repr=False, compare=False)
    _evaluation: Optional[Evaluation] = field(default=None, repr=False, compare=False)

    @functools.cached_property
    def _evaluated(self) -> Evaluation:
        if self._evaluation is not None:
            return self._evaluation
        return evaluate(self.spec, *self._cov_inputs)

    @property
    def nll(self) -> float:
        """−log p(y | X, θ̂) on the training data."""
        return self._evaluated.nll

    @property
    def loss(self) -> float:
        """The classical loss at θ̂ on the training data (the family's ``loss_name``)."""
        return self._evaluated.loss

    @property
    def objective(self) -> float:
        """The −log joint at θ̂: the NLL, plus the −log prior for a MAP."""
        return self._evaluated.objective

    @functools.cached_property
    def _covariance(self) -> tuple:
        if self._cov_inputs is None:
            return None, "no Laplace covariance: the fit kept no training data"
        return _laplace_covariance(self.spec, *self._cov_inputs)

    @property
    def cov_(self) -> Optional[np.ndarray]:
        """Laplace covariance of the estimate (computed on first use); None where it does not
        exist, with the reason in :attr:`cov_note`."""
        return self._covariance[0]

    @property
    def cov_note(self) -> str:
        return self._covariance[1]

    @classmethod
    def build(cls, spec: ModelSpec, X, y, coef, intercept, scale, scale_head=None,
              mixing=None, **facts) -> "Fit":
        """Normalise conventions and attach NLL, loss and objective on the training data
        (``scale_head = (a, c)``: the linear log σ(x) head of a hetero_gaussian fit; a
        mixture's ``scale`` is its K σₖ and ``mixing`` its K − 1 mixing logits)."""
        coef = np.asarray(coef, dtype=np.float64) + 0.0  # + 0.0 turns exact −0 into 0
        wide = spec.family.multiclass or spec.family.components
        if spec.family.multiclass:
            # softmax is unchanged by a shift common to the K classes: without a prior that
            # shift is free for the weights (MLE), and for a flat intercept always
            if not spec.is_map:
                coef = coef - coef.mean(axis=1, keepdims=True)
            if spec.fit_intercept and not spec.penalize_intercept:
                intercept = np.asarray(intercept) - np.mean(intercept)
        if spec.fit_intercept:
            intercept = (
                np.asarray(intercept, dtype=np.float64)
                if wide
                else float(np.asarray(intercept).reshape(()))
            )
        else:
            intercept = np.zeros(coef.shape[1]) if wide else 0.0
        if spec.family.components:
            scale = np.asarray(scale, dtype=np.float64)
            mixing = np.asarray(mixing, dtype=np.float64) + 0.0
        elif spec.family.has_scale and not spec.row_scales:
            scale = float(spec.noise_scale if spec.noise_scale is not None else scale)
        else:  # per-row σᵢ stay in the spec (evaluate reads them there)
            scale = None
        facts.setdefault("feature_names", feature_names(X))
        if spec.family.scale_head:
            scale_head = (np.asarray(scale_head[0], dtype=np.float64) + 0.0,
                          float(scale_head[1]))
        params = {"weight": coef}
        if spec.fit_intercept:
            params["bias"] = np.asarray(intercept, dtype=np.float64)
        if spec.learns_scale:
            params["scale"] = np.asarray(scale, dtype=np.float64)
        if spec.family.scale_head:
            params["scale_weight"] = scale_head[0]
            params["scale_bias"] = np.asarray(scale_head[1])
        if spec.family.components:
            params["mixing"] = mixing
        return cls(
            spec=spec,
            params_=params,
            scale_=scale,
            n_samples=int(np.asarray(X).shape[0]),
            _cov_inputs=(X, y, coef, intercept, scale, scale_head, mixing),
            **facts,
        )

    # --- views of params_ for a linear mean ---------------------------------------------

    @property
    def coef_(self) -> np.ndarray:
        """The linear weights: ``params_["weight"]`` itself ((d,) or (d, K))."""
        try:
            return self.params_["weight"]
        except KeyError:
            raise AttributeError(
                "coef_ is for a linear mean; this fit's parameters are in params_: "
                f"{list(self.params_)}"
            ) from None

    @property
    def intercept_(self):
        """The intercept: ``params_["bias"]`` (a float for one output), 0 without one."""
        bias = self.params_.get("bias")
        if bias is None:
            k = self.coef_.shape[1] if self.coef_.ndim == 2 else None
            return 0.0 if k is None else np.zeros(k)
        return float(bias) if bias.ndim == 0 else bias

    @property
    def scale_coef_(self) -> np.ndarray:
        """``a`` of the linear scale head log σ(x) = x·a + c: ``params_["scale_weight"]``."""
        return self._scale_head_site("scale_weight", "scale_coef_")

    @property
    def scale_intercept_(self) -> float:
        """``c`` of the linear scale head log σ(x) = x·a + c: ``params_["scale_bias"]``."""
        return float(self._scale_head_site("scale_bias", "scale_intercept_"))

    def _scale_head_site(self, site: str, name: str):
        if site in self.params_:
            return self.params_[site]
        if self.spec.family.scale_head:
            raise AttributeError(f"{name} is for a linear scale head; this fit's σ(x) is a "
                                 f"network whose sites are in params_: {list(self.params_)}")
        raise AttributeError(f"{name} is for hetero_gaussian (σ(x) a second head); the "
                             f"{self.spec.likelihood} fit has no scale head")

    # --- predictions --------------------------------------------------------------------

    def _design(self, X):
        """``X`` as the fit's design: through its formula first when it came from one."""
        return X if self.formula is None else self.formula.design(X)

    def _checked(self, X) -> np.ndarray:
        """``X`` (through the formula) validated against the fit: columns, names, values."""
        X = self._design(X)
        names = feature_names(X)
        if self.feature_names is not None and names is not None and names != self.feature_names:
            raise ValueError(
                "the feature names should match those that were passed during fit, in the "
                f"same order: fitted on {list(self.feature_names)}, got {list(names)}"
            )
        X = check_X(X)
        if X.shape[1] != self.coef_.shape[0]:
            raise ValueError(f"X has {X.shape[1]} columns; the fit has {self.coef_.shape[0]}")
        return X

    def linear_predictor(self, X) -> np.ndarray:
        """``η = X coef_ + intercept_`` (a mixture's: those K means, then its K − 1 mixing
        logits on every row)."""
        eta = linear_predictor(self.spec, self._checked(X), self.coef_, self.intercept_)
        if "mixing" in self.params_:
            eta = append_mixing(eta, as_tensor(self.params_["mixing"]))
        return eta.numpy()

    def predict(self, X, trials=None) -> np.ndarray:
        """A point prediction from the predictive distribution at the estimate: its mode.

        gaussian and hetero_gaussian: the mean (= median = mode); laplace: the location, which
        is the median (and mode) — the minimiser of absolute error; studentt: the location
        (median and mode; also the mean for ν > 1); bernoulli / categorical: the most probable
        class; poisson: the mode ⌊μ⌋ of Poisson(μ), an integer count, not the mean μ (use
        :meth:`predict_mean` for μ = exp(η)); gamma, negative_binomial, beta: the mode at the
        fitted shape, α or φ; binomial: the most probable number of successes out of
        ``trials`` (the rows' nᵢ; needed where the fit's trials were per row); a
        :class:`~bayesloss.Likelihood`: the mode of its distribution at the estimate (its mean
        where the distribution has no mode)."""
        family = self.spec.family
        if family.scale_in_prediction:
            return _predictive_mode(self._predictive(X))
        eta = torch.as_tensor(self.linear_predictor(X))
        out = family.predict(eta, self._second_parameter(eta.shape[0], trials)).numpy()
        # class labels as integers; Poisson modes stay float, where an overflow shows as inf
        return out.astype(np.int64) if self.spec.family.classifier else out

    def _second_parameter(self, n: int, trials):
        """The family's second parameter for ``n`` new rows: its row input (``trials``, or the
        fit's one number), else the fitted or fixed scale (None where there is none)."""
        spec, name = self.spec, self.spec.family.row_input
        if name is None:
            if trials is not None:
                raise ValueError(f"trials= is for binomial fits; this is {spec.likelihood}")
            # one number, or a mixture's σₖ
            return None if self.scale_ is None else torch.as_tensor(np.asarray(self.scale_, float))
        if trials is None:
            if spec.row_scales:
                raise ValueError(f"this fit's {name} were per row: pass {name}= with those of "
                                 "the rows of X")
            return torch.tensor(float(spec.noise_scale))
        values = np.asarray(make_spec(spec.likelihood, trials=trials).noise_scale)
        if values.ndim and values.shape[0] != n:
            raise ValueError(f"{name} must give one value per row of X ({n}); got {values.shape}")
        return torch.as_tensor(values)

    def predict_mean(self, X) -> np.ndarray:
        """The predictive mean E[y | x]: η for gaussian, hetero_gaussian, laplace and studentt
        (ν > 1; the same numbers as :meth:`predict`), μ = exp(η) for poisson, and the
        probabilities of class 1 (bernoulli) or of each class (categorical); a
        :class:`~bayesloss.Likelihood`: its distribution's mean at the estimate."""
        if self.spec.family.scale_in_prediction:
            return self._predictive(X).mean.numpy()
        return self.spec.family.mean(torch.as_tensor(self.linear_predictor(X))).numpy()

    def _predictive(self, X):
        """The fitted distribution of each row of X (families whose predictions need it)."""
        scale = self.scale_ if self.scale_ is not None else self.spec.noise_scale
        scale = None if scale is None else torch.as_tensor(float(scale), dtype=torch.float64)
        eta = torch.as_tensor(self.linear_predictor(X))
        return self.spec.family.distribution(eta, scale, self.spec.df, 0.0)

    def _log_scale(self, X) -> np.ndarray:
        """log σ(x) of the linear scale head, with the checks of :meth:`linear_predictor`."""
        return log_scale(self._checked(X), (self.scale_coef_, self.scale_intercept_)).numpy()

    def predict_scale(self, X, noise_scale=None) -> np.ndarray:
        """The predictive scale at each row of X, shape (n,): σ(x) = exp(x·a + c) for
        hetero_gaussian, else the fitted or fixed σ / b (``scale_``) broadcast. A fit whose
        σᵢ were known per row cannot know those of new rows: pass them as ``noise_scale``
        (one per row of X); other fits take none."""
        spec, family = self.spec, self.spec.family
        if family.scale_head:
            scale = np.exp(self._log_scale(X))
        elif not family.has_scale:
            raise AttributeError(f"predict_scale is for families with a noise scale; the "
                                 f"{spec.likelihood} predictive has none (its spread "
                                 "follows from its mean)")
        elif family.components:
            raise AttributeError(f"the {spec.likelihood} predictive has one σₖ per component "
                                 "(scale_), not one scale per row")
        elif spec.row_scales:
            if noise_scale is None:
                raise ValueError("this fit's σᵢ were known per row: pass noise_scale= with "
                                 "the σᵢ of the rows of X")
            n = self._checked(X).shape[0]
            scale = np.asarray(make_spec(spec.likelihood, noise_scale=noise_scale).noise_scale)
            if scale.ndim != 1 or scale.shape[0] != n:
                raise ValueError(f"noise_scale must give one σᵢ per row of X ({n}); got "
                                 f"shape {scale.shape}")
            return scale
        else:
            scale = np.full(self._checked(X).shape[0], float(self.scale_))
        if noise_scale is not None:
            raise ValueError("noise_scale= is for fits with per-row known scales; this fit's "
                             "scale is " + ("σ(x)" if family.scale_head else f"{self.scale_:g}"))
        return scale

    def predict_interval(self, X, level: float = 0.95, noise_scale=None,
                         trials=None) -> tuple[np.ndarray, np.ndarray]:
        """Central ``level`` interval of the plug-in predictive distribution at the estimate:
        ``(lower, upper)``, each (n,), its (1 ∓ level)/2 quantiles (the family's
        :attr:`~bayesloss.families.base.Family.quantile`).

        gaussian, hetero_gaussian: Normal(η, σ(x)), σ(x) from :meth:`predict_scale`
        (``noise_scale``: the new rows' σᵢ for a fit with per-row known scales); laplace,
        studentt: Laplace(η, b), StudentT(ν, η, σ); gamma, beta: scipy's ``gamma`` and ``beta``
        at the fitted shape or φ; poisson, negative_binomial, binomial (``trials``: the new
        rows' nᵢ, as in :meth:`predict`): integer intervals, the smallest counts whose CDF
        reaches each level (scipy's ``poisson``, ``nbinom``, ``binom``), so they cover at least
        ``level``; von_mises: the mean direction ± the VonMises(0, κ) quantile, wrapped into
        (−π, π] (an interval that crosses ±π has ``lower > upper``); a
        :class:`~bayesloss.Likelihood`: its distribution's ``icdf`` (AttributeError where
        torch has none). The parameters' own uncertainty is not included (a plug-in interval,
        not a posterior predictive)."""
        family = self.spec.family
        if family.quantile is None:
            raise AttributeError(
                f"the {self.spec.likelihood} predictive has no quantile function: "
                + ("its y are classes (use predict_proba)" if family.classifier else
                   "a mixture's quantiles have no closed form (use predict_mean)"))
        try:
            level = float(level)
        except (TypeError, ValueError):
            raise ValueError(f"level must be a number in (0, 1); got {level!r}") from None
        if not 0.0 < level < 1.0:
            raise ValueError(f"level must be in (0, 1) (e.g. 0.95); got {level!r}")
        loc = self.linear_predictor(X)
        if noise_scale is not None or family.scale_head or (self.spec.row_scales
                                                            and family.row_input is None):
            second = self.predict_scale(X, noise_scale)  # σ(x), or σᵢ known per row
        else:
            second = self._second_parameter(loc.shape[0], trials)
            second = None if second is None else second.numpy()
        tail = 0.5 * (1.0 - level)
        return (family.quantile(tail, loc, second, self.spec.df),
                family.quantile(1.0 - tail, loc, second, self.spec.df))

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities: (n, 2) for bernoulli (as scikit-learn), (n, K) for categorical."""
        family = self.spec.family
        if family.classifier:
            logits = family.class_logits(torch.as_tensor(self.linear_predictor(X)))
            return torch.softmax(logits, -1).numpy()
        raise AttributeError(f"predict_proba is for classifiers; this is {self.spec.likelihood}")

    # --- reporting ----------------------------------------------------------------------

    @property
    def penalty(self) -> dict[str, float]:
        """The classical knobs this MAP fit equals (empty for MLE or when none corresponds)."""
        if not self.spec.is_map:
            return {}
        return penalty_mapping(
            self.spec.likelihood, self.spec.prior, self.spec.prior_scale,
            self.spec.noise_scale if self.spec.row_scales else self.scale_,
            self.n_samples, self.coef_.shape[1] if self.coef_.ndim == 2 else None,
        )

    def params(self) -> Table:
        """Tidy table of the estimate: one row per parameter (name, value), named by
        :func:`parameter_label`: weights by their column (``age``, ``age[2]`` for class 2)
        when fitted on a DataFrame, ``x0``, ``x0[2]`` otherwise; ``intercept``; the
        family's extra parameter by its name (``scale``, ``shape``, ``alpha``, ``phi``, …); a
        network's sites by site name and index (``layers.0.weight[3,1]``)."""
        scale_name = self.spec.family.scale_name
        if "weight" not in self.params_:  # a network: one row per element of each site
            rows = [(parameter_label(site, idx, scale_name=scale_name), value[idx])
                    for site, value in self.params_.items() for idx in np.ndindex(value.shape)]
            if self.scale_ is not None and "scale" not in self.params_:
                rows.append((parameter_label("scale", scale_name=scale_name), self.scale_))
            return Table(rows, columns=["parameter", "value"])
        features = feature_labels(self.feature_names, self.coef_.shape[0])
        values = {"weight": self.coef_}
        if self.spec.fit_intercept:
            values["bias"] = np.asarray(self.intercept_)
        if self.scale_ is not None:
            values["scale"] = np.asarray(self.scale_)
        if "scale_weight" in self.params_:
            values["scale_weight"] = self.scale_coef_
            values["scale_bias"] = np.asarray(self.scale_intercept_)
        if "mixing" in self.params_:
            values["mixing"] = self.params_["mixing"]
        rows = [(parameter_label(site, idx, features, scale_name), float(value[idx]))
                for site, value in values.items() for idx in np.ndindex(value.shape)]
        return Table(rows, columns=["parameter", "value"])

    def standard_errors(self) -> np.ndarray:
        """Laplace standard errors aligned with :meth:`params` (NaN for a fixed scale, or all
        NaN where :attr:`cov_` does not exist)."""
        n_rows = len(self.params())
        if self.cov_ is None:
            return np.full(n_rows, np.nan)
        se = np.sqrt(np.clip(np.diag(self.cov_), 0.0, None))
        # a fixed noise scale is a row of params() but no parameter
        return np.r_[se, np.full(n_rows - se.size, np.nan)]

    def contrasts(self, reference: int = 0) -> Table:
        """Each class's weights and intercept minus those of class ``reference``, with Laplace
        standard errors and 95 % Wald intervals (categorical fits).

        Softmax probabilities are unchanged by a shift common to the K classes, so the
        per-class weights are identified only relative to one another: the MLE's are reported
        centred (each row summing to 0), a MAP's are pinned by the prior alone (hence their
        wide standard errors under a weak one). The contrasts ``w[j, k] − w[j, reference]``
        are what the data determine; for the MLE they are statsmodels' ``MNLogit`` parameters
        (class 0 its reference) and their SEs its ``bse``.

        Returns
        -------
        Table
            One row per feature (then ``intercept``) and class k ≠ ``reference``:
            ``parameter``, ``class``, ``value``, ``se``, ``ci95_lower``, ``ci95_upper``.
        """
        if not self.spec.family.multiclass:
            raise AttributeError(f"contrasts are for categorical (softmax) fits, whose class "
                                 f"weights are identified only relative to one another; "
                                 f"this is {self.spec.likelihood}")
        coef = self.coef_
        d, k = coef.shape
        if not (isinstance(reference, (int, np.integer)) and 0 <= reference < k):
            raise ValueError(f"reference must be a class 0..{k - 1}; got {reference!r}")
        names = list(self.feature_names or (f"coef[{j}]" for j in range(d)))
        values = coef
        if self.spec.fit_intercept:
            names.append("intercept")
            values = np.vstack([coef, self.intercept_])
        others = [c for c in range(k) if c != reference]
        # rows of C pick w[j, c] − w[j, reference] out of params()' order (coef row-major,
        # then the intercepts): the contrasts' covariance is C Σ Cᵀ
        C = np.zeros((len(names) * len(others), self.cov_.shape[0] if self.cov_ is not None
                      else values.size))
        rows = []
        for j, name in enumerate(names):
            for c in others:
                C[len(rows), j * k + c] += 1.0
                C[len(rows), j * k + reference] -= 1.0
                rows.append((name, c, values[j, c] - values[j, reference]))
        table = Table(rows, columns=["parameter", "class", "value"])
        se = (np.sqrt(np.clip(np.einsum("ij,jk,ik->i", C, self.cov_, C), 0.0, None))
              if self.cov_ is not None else np.full(len(rows), np.nan))
        table["se"] = se
        table["ci95_lower"] = table["value"] - 1.959963984540054 * se
        table["ci95_upper"] = table["value"] + 1.959963984540054 * se
        return table

    def summary(self) -> Report:
        """A readable report: model, estimate, NLL vs loss, convergence, penalty mapping, and
        Laplace standard errors with 95 % Wald intervals (estimate ± 1.96 SE); for a
        categorical fit also the contrasts to class 0 (:meth:`contrasts`), which the data
        identify where the per-class weights are not."""
        s = self.spec
        fam = s.family
        space = ("   (MAP = mode of the density of θ: constrained space)" if s.is_map else "")
        lines = [
            f"bayesloss fit: {s.label()}   [{self.method}]{space}",
            f"  likelihood {s.likelihood} (link {fam.link}); loss = {fam.loss_name}",
        ]
        if s.is_map:
            lines.append(
                f"  prior {s.prior}(0, {s.prior_scale:g}) on the weights"
                + (" and intercept" if s.penalize_intercept else "; intercept flat")
                + f" → penalty {s.prior_spec.penalty_name}"
            )
            for name, value in self.penalty.items():
                lines.append(f"    equals {name}: {value:.6g}")
            if self.penalty and s.learns_scale:
                lines.append("    (scale learned jointly: this equality holds at the fitted "
                             "scale only)")
        elif fam.mle_equivalent:
            lines.append(f"  no prior (MLE) = {fam.mle_equivalent}"
                         + ("" if s.fit_intercept else " with fit_intercept=False"))
        lines += [
            f"  n = {self.n_samples}   NLL = {self.nll:.10g}   loss = {self.loss:.10g}"
            f"   objective (−log joint) = {self.objective:.10g}",
            f"  converged = {self.converged}   iterations = {self.n_iter}"
            f"   |grad|∞ = {self.grad_norm:.2e}   seed = {self.seed}",
        ]
        table = self.params()
        se = self.standard_errors()
        table["se"] = se
        table["ci95_lower"] = table["value"] - 1.959963984540054 * se
        table["ci95_upper"] = table["value"] + 1.959963984540054 * se
        lines += ["  " + line for line in table.to_string(
            index=False, float_format=lambda v: f"{v: .10g}", na_rep="—").splitlines()]
        lines.append("  se: Laplace approximation at the estimate (exact Hessian of −log p(y, θ))"
                     if self.cov_ is not None else f"  no standard errors: {self.cov_note}")
        if s.family.multiclass and "weight" in self.params_:
            lines += [
                "  softmax: a shift common to the K classes leaves every probability unchanged, "
                "so the",
                "  per-class weights are identified only relative to one another "
                + ("(shown centred: rows sum to 0)." if not s.is_map else
                   "(here pinned by the prior alone: wide se)."),
                "  What the data determine are the contrasts to class 0 (fit.contrasts()):",
            ]
            lines += ["  " + line for line in self.contrasts().to_string(
                index=False, float_format=lambda v: f"{v: .10g}", na_rep="—").splitlines()]
        return Report("\n".join(lines))

    def __repr__(self) -> str:  # dataclass repr would dump arrays and the spec
        return f"Fit({self.spec.label()}, method={self.method!r}, converged={self.converged})"

    def _repr_html_(self) -> str:
        return self.summary()._repr_html_()
