r"""scikit-learn estimators over :func:`bayesloss.fit`: ``clone``, ``Pipeline``,
``cross_val_score`` and ``GridSearchCV`` work as with any scikit-learn model.

A thin door: each estimator validates its input the scikit-learn way (``validate_data``:
``n_features_in_``, ``feature_names_in_``, the same errors), encodes class labels, calls
:func:`bayesloss.fit` and keeps the :class:`~bayesloss.Fit` at ``fit_``. Nothing here fits a
model of its own.

==========================================================  ===================================
``LikelihoodRegressor(likelihood=…)``                       equals (scikit-learn)
==========================================================  ===================================
``"gaussian"``, ``estimator="mle"``                         ``LinearRegression()``
``"gaussian"``, ``"map"``, normal prior τ, ``noise_scale``  ``Ridge(alpha=σ²/τ²)``
``"laplace"``, ``"mle"``                                    ``QuantileRegressor(alpha=0)``
``"poisson"``, ``"mle"``                                    ``PoissonRegressor(alpha=0)``
``LikelihoodClassifier()`` (MAP, normal prior τ = 1)        ``LogisticRegression(C=τ²)``
==========================================================  ===================================
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from .engine.policy import entry_point
from .families import get_family
from .inference import fit as bayesloss_fit
from .results import Fit

REGRESSION_LIKELIHOODS = ("gaussian", "laplace", "studentt", "poisson")
CLASSIFICATION_LIKELIHOODS = ("auto", "bernoulli", "categorical")

class _LikelihoodModel(BaseEstimator):
    """What both estimators share: the keywords of :func:`bayesloss.fit`, and the call."""

    def _fit_kwargs(self) -> dict:
        kw = dict(
            estimator=self.estimator, prior=self.prior, prior_scale=self.prior_scale,
            prior_df=self.prior_df, fit_intercept=self.fit_intercept,
            penalize_intercept=self.penalize_intercept, optimizer=self.optimizer,
            batch_size=self.batch_size, seed=self.seed, tol=self.tol, max_iter=self.max_iter,
            progress=self.progress,
        )
        if isinstance(self, RegressorMixin):  # classes have no noise scale nor t-likelihood
            kw.update(noise_scale=self.noise_scale, df=self.df)
        return kw

    def _fit_likelihood(self, X: np.ndarray, y: np.ndarray, likelihood: str) -> Fit:
        names = getattr(self, "feature_names_in_", None)
        if names is not None:  # the Fit labels its weights by the DataFrame's columns
            X = pd.DataFrame(X, columns=names, copy=False)
        self.fit_ = bayesloss_fit(X, y, likelihood, **self._fit_kwargs())
        self.n_iter_ = self.fit_.n_iter
        return self.fit_

    def _validated(self, X) -> np.ndarray:
        check_is_fitted(self)
        # reset=False: the same number of columns, and the same names in the same order
        return validate_data(self, X, dtype=np.float64, reset=False)

    def summary(self):
        """The fitted model's :meth:`bayesloss.Fit.summary`."""
        check_is_fitted(self)
        return self.fit_.summary()


class LikelihoodRegressor(RegressorMixin, _LikelihoodModel):
    r"""Regression by maximum likelihood (``estimator="mle"``) or MAP (``"map"``).

    .. math::

        \hat\theta = \arg\min_\theta\; -\log p(y\mid X,\theta)\;[-\log p(\theta)]

    with :math:`y_i \sim \text{Likelihood}(x_i^\top w + b, \sigma)`: gaussian (squared error),
    laplace (absolute error), studentt (robust t-loss) or poisson (log link, deviance).

    Parameters
    ----------
    likelihood : {"gaussian", "laplace", "studentt", "poisson"}
    estimator : {"mle", "map"}
        ``"mle"`` (default) is the classical unpenalised estimator (``LinearRegression`` for
        gaussian); ``"map"`` adds the prior on the weights (a penalty: ridge, lasso, …).
    prior, prior_scale, prior_df :
        Prior on the weights for ``"map"``: ``normal``, ``laplace``, ``studentt``,
        ``cauchy``, centred at 0 with scale τ; None (default) is :func:`bayesloss.fit`'s
        default (normal, τ = 1, 3 degrees of freedom). Given to ``"mle"``, which has no
        prior, they warn (:class:`~bayesloss.PriorWarning`), as ``fit`` does.
    noise_scale :
        Fixed σ / b; None learns it.
    df :
        Degrees of freedom of the studentt likelihood.
    fit_intercept, penalize_intercept, optimizer, batch_size, tol, max_iter, seed, progress :
        As in :func:`bayesloss.fit`.

    Attributes
    ----------
    fit_ : bayesloss.Fit
        The fitted model (``summary()``, ``params()``, ``converged``, NLL and loss).
    coef_, intercept_, scale_, n_iter_, n_features_in_, feature_names_in_ :
        As in scikit-learn; ``scale_`` is σ / b (None for poisson).

    ``predict`` returns E[y | x]: the mean, which for laplace and studentt is the location
    (and the median), for poisson ``exp(η)``.
    """

    def __init__(self, likelihood: str = "gaussian", estimator: str = "mle",
                 prior: Optional[str] = None, prior_scale: Optional[float] = None,
                 noise_scale: Optional[float] = None, df: float = 4.0,
                 prior_df: Optional[float] = None, fit_intercept: bool = True,
                 penalize_intercept: bool = False, optimizer: str = "lbfgs",
                 batch_size: Optional[int] = None, tol: Optional[float] = None,
                 max_iter: int = 1000, seed: int = 0, progress: bool = False):
        self.likelihood = likelihood
        self.estimator = estimator
        self.prior = prior
        self.prior_scale = prior_scale
        self.noise_scale = noise_scale
        self.df = df
        self.prior_df = prior_df
        self.fit_intercept = fit_intercept
        self.penalize_intercept = penalize_intercept
        self.optimizer = optimizer
        self.batch_size = batch_size
        self.tol = tol
        self.max_iter = max_iter
        self.seed = seed
        self.progress = progress

    @entry_point
    def fit(self, X, y):
        """Fit on ``X`` (array or DataFrame, whose column names are kept) and ``y``."""
        if self.likelihood not in REGRESSION_LIKELIHOODS:
            raise ValueError(f"LikelihoodRegressor fits {list(REGRESSION_LIKELIHOODS)}; got "
                             f"{self.likelihood!r} (classes: use LikelihoodClassifier)")
        # two rows at least: with one, a learned noise scale has no maximum
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=True, ensure_min_samples=2)
        fit = self._fit_likelihood(X, y, self.likelihood)
        self.coef_, self.intercept_, self.scale_ = fit.coef_, fit.intercept_, fit.scale_
        return self

    def predict(self, X) -> np.ndarray:
        """E[y | x] for each row of ``X``."""
        X = self._validated(X)
        return self.fit_.predict_mean(X)


class LikelihoodClassifier(ClassifierMixin, _LikelihoodModel):
    r"""Classification by MAP (default) or maximum likelihood: bernoulli (logistic) for two
    classes, categorical (softmax) for more; any labels (strings, booleans, categories).

    .. math::

        \hat\theta = \arg\min_\theta\; \sum_i -\log \mathrm{softmax}(x_i^\top W + b)_{y_i}
        \;+\; \sum_{jk} \frac{W_{jk}^2}{2\tau^2}

    (cross-entropy plus the normal prior's penalty) is scikit-learn's
    ``LogisticRegression(C=τ²)``; the defaults (MAP, normal prior, τ = 1) are its defaults
    (C = 1). ``estimator="mle"`` drops the prior (``C=np.inf``), and does not exist when the
    classes are separable.

    Parameters
    ----------
    likelihood : {"auto", "bernoulli", "categorical"}
        ``"auto"``: bernoulli for two classes, categorical for more.
    estimator, prior, prior_scale, prior_df, fit_intercept, penalize_intercept, optimizer,
    batch_size, tol, max_iter, seed, progress :
        As in :class:`LikelihoodRegressor` (here ``estimator="map"`` by default).

    Attributes
    ----------
    classes_ : ndarray
        The labels, sorted; ``fit_`` models their positions 0..K-1.
    fit_ : bayesloss.Fit
    coef_, intercept_ :
        scikit-learn's shapes: (1, d) and (1,) for two classes, (K, d) and (K,) for more
        (``fit_.coef_`` holds bayesloss's (d,) / (d, K)).
    n_iter_, n_features_in_, feature_names_in_ :
        As in scikit-learn.
    """

    def __init__(self, likelihood: str = "auto", estimator: str = "map",
                 prior: Optional[str] = None, prior_scale: Optional[float] = None,
                 prior_df: Optional[float] = None, fit_intercept: bool = True,
                 penalize_intercept: bool = False, optimizer: str = "lbfgs",
                 batch_size: Optional[int] = None, tol: Optional[float] = None,
                 max_iter: int = 1000, seed: int = 0, progress: bool = False):
        self.likelihood = likelihood
        self.estimator = estimator
        self.prior = prior
        self.prior_scale = prior_scale
        self.prior_df = prior_df
        self.fit_intercept = fit_intercept
        self.penalize_intercept = penalize_intercept
        self.optimizer = optimizer
        self.batch_size = batch_size
        self.tol = tol
        self.max_iter = max_iter
        self.seed = seed
        self.progress = progress

    @entry_point
    def fit(self, X, y):
        """Fit on ``X`` (array or DataFrame, whose column names are kept) and labels ``y``."""
        if self.likelihood not in CLASSIFICATION_LIKELIHOODS:
            raise ValueError(f"LikelihoodClassifier fits {list(CLASSIFICATION_LIKELIHOODS)}; "
                             f"got {self.likelihood!r} (numbers: use LikelihoodRegressor)")
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        if self.classes_.size < 2:
            raise ValueError(f"a classifier needs at least 2 classes in y; got 1 class "
                             f"({self.classes_[0]!r})")
        likelihood = self.likelihood
        if likelihood == "auto":
            likelihood = "bernoulli" if self.classes_.size == 2 else "categorical"
        elif not get_family(likelihood).multiclass and self.classes_.size > 2:
            raise ValueError(f"the bernoulli likelihood has 2 classes; y has "
                             f"{self.classes_.size}: use likelihood='categorical' or 'auto'")
        fit = self._fit_likelihood(X, codes, likelihood)
        if not fit.spec.family.multiclass:  # one logit: scikit-learn's (1, d) coef_
            self.coef_ = fit.coef_[None, :]
            self.intercept_ = np.atleast_1d(fit.intercept_)
        else:
            self.coef_, self.intercept_ = fit.coef_.T, np.asarray(fit.intercept_)
        return self

    def decision_function(self, X) -> np.ndarray:
        """The linear predictor: log-odds of ``classes_[1]`` (n,) for two classes, the
        softmax logits (n, K) for more."""
        X = self._validated(X)
        return self.fit_.linear_predictor(X)

    def predict_proba(self, X) -> np.ndarray:
        """Probability of each class in ``classes_``, shape (n, K)."""
        X = self._validated(X)
        return self.fit_.predict_proba(X)

    def predict_log_proba(self, X) -> np.ndarray:
        """Log of :meth:`predict_proba`."""
        return np.log(self.predict_proba(X))

    def predict(self, X) -> np.ndarray:
        """The most probable class of each row, as a label from ``classes_``."""
        X = self._validated(X)
        return self.classes_[self.fit_.predict(X)]


__all__ = ["LikelihoodRegressor", "LikelihoodClassifier"]
