"""The ranking model: a scikit-learn estimator over request-item-person pair features."""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data


def _fit_logistic(X, t, sw, prior, C, max_iter, start=None, precision=None):
    """Weighted logistic regression with a Gaussian prior on the coefficients (MAP).

    Minimises ``sum(sw * logloss(t, z)) + sum(precision * (coef - prior)^2) / (2 C)``; the
    intercept is free. ``t`` may be soft (any value in [0, 1]): a graded outcome is one row,
    not a positive and a negative row. ``precision`` scales the pull per coefficient (1 when
    None); an infinite one holds that coefficient at its prior (it is not fitted at all).
    ``start`` (coefficients then intercept) warm-starts L-BFGS.
    Returns (coef, intercept, iterations).
    """
    n_features = X.shape[1]
    precision = np.ones(n_features) if precision is None else np.asarray(precision, float)
    free = np.isfinite(precision)
    lam = precision[free] / C
    # Held coefficients enter as a fixed offset; the solver sees the free ones only.
    offset = X[:, ~free] @ prior[~free] if not free.all() else 0.0
    Xf = X[:, free] if not free.all() else X
    prior_f = prior[free]
    Xt = Xf.T

    def objective(theta):
        coef, b = theta[:-1], theta[-1]
        z = Xf @ coef + (b + offset)
        loss = float(np.sum(sw * (np.logaddexp(0.0, z) - t * z)))
        diff = coef - prior_f
        loss += 0.5 * float(diff @ (lam * diff))
        r = sw * (expit(z) - t)
        grad = np.empty_like(theta)
        grad[:-1] = Xt @ r + lam * diff
        grad[-1] = r.sum()
        return loss, grad

    theta0 = (np.concatenate([prior_f, [0.0]]) if start is None
              else np.concatenate([np.asarray(start, float)[:-1][free], [start[-1]]]))
    # Tolerances relative to the data's total weight, so they mean the same for a hundred
    # rows or a million.
    scale = float(sw.sum()) or 1.0
    result = minimize(objective, theta0, jac=True, method="L-BFGS-B",
                      options={"maxiter": max_iter, "gtol": 1e-6 * scale, "ftol": 1e-10})
    coef = prior.astype(np.float64).copy()
    coef[free] = result.x[:-1]
    return coef, float(result.x[-1]), int(result.nit)


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
    prior_precision : array-like of shape (n_features,) or None, default=None
        How firmly each coefficient is held to ``prior_coef``, relative to the others (the
        pull on coefficient j is ``prior_precision[j] / C``); None means 1 for all. Ignored
        when its length differs from the number of features.

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

    def __init__(self, C: float = 1.0, max_iter: int = 500, prior_coef=None,
                 prior_precision=None):
        self.C = C
        self.max_iter = max_iter
        self.prior_coef = prior_coef
        self.prior_precision = prior_precision

    def _per_feature(self, value, n_features: int, default: float) -> np.ndarray:
        if value is not None:
            given = np.asarray(value, dtype=np.float64).ravel()
            if given.shape == (n_features,):
                return given
        return np.full(n_features, default)

    def fit(self, X, y, sample_weight=None):
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        sw = _check_sample_weight(sample_weight, X, dtype=np.float64)
        self.classes_ = np.unique(y)
        n_features = X.shape[1]
        prior = self._per_feature(self.prior_coef, n_features, 0.0)
        precision = self._per_feature(self.prior_precision, n_features, 1.0)
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
                                         int(self.max_iter), precision=precision)
            coefs.append(coef)
            intercepts.append(b)
            iters.append(nit)
        self.coef_ = np.array(coefs)
        self.intercept_ = np.array(intercepts)
        self.n_iter_ = np.array(iters)
        return self

    def fit_graded(self, X, target, sample_weight=None, warm_start=None):
        """Fit on graded outcomes: ``target`` in [0, 1] per row (how far it moved the
        person), one row per reaction. The same optimum as fitting each row twice, as a
        positive weighted by ``target`` and a negative weighted by ``1 - target``.

        ``warm_start`` is a fitted CryRanker (say the version being replaced) whose
        coefficients start the solver, so a refit on much the same data takes few steps.
        """
        X = validate_data(self, X, dtype=np.float64)
        t = np.asarray(target, dtype=np.float64).ravel()
        if t.shape != (X.shape[0],) or not np.all((t >= 0) & (t <= 1)):
            raise ValueError("target must hold one value in [0, 1] per row of X")
        sw = _check_sample_weight(sample_weight, X, dtype=np.float64)
        n_features = X.shape[1]
        prior = self._per_feature(self.prior_coef, n_features, 0.0)
        precision = self._per_feature(self.prior_precision, n_features, 1.0)
        start = None
        if (warm_start is not None and getattr(warm_start, "coef_", None) is not None
                and warm_start.coef_.shape == (1, n_features)):
            start = np.concatenate([warm_start.coef_[0], warm_start.intercept_[:1]])
        coef, b, nit = _fit_logistic(X, t, sw, prior, float(self.C), int(self.max_iter),
                                     start=start, precision=precision)
        self.classes_ = np.array([0, 1])
        self.coef_ = coef[None, :]
        self.intercept_ = np.array([b])
        self.n_iter_ = np.array([nit])
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

    def _features(self, X) -> np.ndarray:
        """``X`` checked for scoring: a finite float array of the fitted width is taken as
        it is (the serving path scores a few thousand rows per request, where the general
        validation costs more than the arithmetic); anything else is fully validated.
        Fitted is read from the coefficients' presence (scikit-learn's own check looks up
        the estimator's tags first: 5 us a call, against 12 us for the scoring itself)."""
        if "coef_" not in vars(self):
            check_is_fitted(self)  # raises NotFittedError, naming the estimator
        if (isinstance(X, np.ndarray) and X.ndim == 2 and X.dtype.kind == "f"
                and X.shape[1] == self.n_features_in_ and X.shape[0] > 0
                and bool(np.isfinite(X).all())):
            return X
        return validate_data(self, X, reset=False, dtype=np.float64)

    def score_items(self, X) -> np.ndarray:
        """The ranking score for each row: higher means more likely to move the person."""
        X = self._features(X)
        # In the features' own precision (float32 from the serving path: no float64 copy).
        return X @ self.coef_[-1].astype(X.dtype) + X.dtype.type(self.intercept_[-1])

    def contributions(self, X) -> np.ndarray:
        """Each feature's share of each row's score (coefficient times value)."""
        X = self._features(X)
        return X * self.coef_[-1].astype(X.dtype)
