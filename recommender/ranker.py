"""The ranking model: a scikit-learn estimator over request-item-person pair features."""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data


def _fit_logistic(X, t, sw, prior, C, max_iter):
    """Weighted logistic regression with a Gaussian prior on the coefficients (MAP).

    Minimises ``sum(sw * logloss) + ||coef - prior||^2 / (2 C)``; the intercept is free.
    Returns (coef, intercept, iterations).
    """
    n_features = X.shape[1]

    def objective(theta):
        coef, b = theta[:-1], theta[-1]
        z = X @ coef + b
        loss = np.sum(sw * (np.logaddexp(0.0, z) - t * z))
        diff = coef - prior
        loss += 0.5 * diff @ diff / C
        r = sw * (expit(z) - t)
        grad = np.empty_like(theta)
        grad[:-1] = X.T @ r + diff / C
        grad[-1] = r.sum()
        return loss, grad

    theta0 = np.concatenate([prior, [0.0]])
    result = minimize(objective, theta0, jac=True, method="L-BFGS-B",
                      options={"maxiter": max_iter, "gtol": 1e-8, "ftol": 1e-12})
    return result.x[:n_features], float(result.x[-1]), int(result.nit)


class CryRanker(ClassifierMixin, BaseEstimator):
    """Scores how likely an item is to move a person, from pair features.

    A regularised logistic model over the features in
    :data:`recommender.features.PAIR_FEATURES` (mood, theme and text match, intensity fit,
    kind, and the person's learned taste for the item's themes, moods, maker, era, kind and
    the item itself). Labels are 1 for an item that moved or made the person cry and 0
    otherwise; sample weights carry how strongly (cried over moved, a cathartic session over
    a flat one).

    The coefficients are shrunk towards ``prior_coef`` rather than towards zero, so what is
    known before any feedback (a person's taste for what they cried at should count) holds
    until the data says otherwise: cold start blends the prior with what was learned.

    Parameters
    ----------
    C : float, default=1.0
        Inverse strength of the pull towards ``prior_coef``.
    max_iter : int, default=500
        Iterations for the L-BFGS solver.
    prior_coef : array-like of shape (n_features,) or None, default=None
        Where the coefficients are shrunk to; None means zeros. Ignored when its length
        differs from the number of features seen in ``fit``.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The labels seen in ``fit``.
    coef_ : ndarray of shape (n_models, n_features)
        One row for two classes; one row per class (one-vs-rest) for more.
    intercept_ : ndarray of shape (n_models,)
    n_features_in_ : int
        Number of features seen in ``fit``.
    n_iter_ : ndarray
        Solver iterations used, per model.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.8]])
    >>> ranker = CryRanker().fit(X, [1, 1, 0, 0])
    >>> bool(ranker.score_items(X)[0] > ranker.score_items(X)[2])
    True
    """

    def __init__(self, C: float = 1.0, max_iter: int = 500, prior_coef=None):
        self.C = C
        self.max_iter = max_iter
        self.prior_coef = prior_coef

    def fit(self, X, y, sample_weight=None):
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        sw = _check_sample_weight(sample_weight, X, dtype=np.float64)
        self.classes_ = np.unique(y)
        n_features = X.shape[1]
        prior = np.zeros(n_features)
        if self.prior_coef is not None:
            given = np.asarray(self.prior_coef, dtype=np.float64).ravel()
            if given.shape == (n_features,):
                prior = given
        if len(self.classes_) == 1:
            # Nothing to separate: remember the single answer.
            self.coef_ = np.zeros((1, n_features))
            self.intercept_ = np.zeros(1)
            self.n_iter_ = np.array([0])
            return self
        targets = ([y == self.classes_[1]] if len(self.classes_) == 2
                   else [y == c for c in self.classes_])
        coefs, intercepts, iters = [], [], []
        for t in targets:
            coef, b, nit = _fit_logistic(X, t.astype(np.float64), sw, prior, float(self.C),
                                         int(self.max_iter))
            coefs.append(coef)
            intercepts.append(b)
            iters.append(nit)
        self.coef_ = np.array(coefs)
        self.intercept_ = np.array(intercepts)
        self.n_iter_ = np.array(iters)
        return self

    def decision_function(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        scores = X @ self.coef_.T + self.intercept_
        return scores.ravel() if scores.shape[1] == 1 else scores

    def predict_proba(self, X):
        scores = self.decision_function(X)
        if len(self.classes_) == 1:
            return np.ones((scores.shape[0], 1))
        if scores.ndim == 1:
            p = expit(scores)
            return np.column_stack([1.0 - p, p])
        p = expit(scores)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, X):
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def score_items(self, X) -> np.ndarray:
        """The ranking score for each row: higher means more likely to move the person."""
        scores = self.decision_function(X)
        return scores if scores.ndim == 1 else scores[:, -1]

    def contributions(self, X) -> np.ndarray:
        """Each feature's share of each row's score (coefficient times value)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return X * self.coef_[-1]
