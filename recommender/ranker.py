"""The ranking model: a scikit-learn estimator over request-item pair features."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data


class CryRanker(ClassifierMixin, BaseEstimator):
    """Scores how likely an item is to move a person, from pair features.

    A regularised logistic model over the features in
    :data:`recommender.features.PAIR_FEATURES` (mood, theme and text match, intensity fit,
    kind). Labels are 1 for an item that moved or made the person cry and 0 otherwise.

    Parameters
    ----------
    C : float, default=1.0
        Inverse regularisation strength.
    max_iter : int, default=500
        Iterations for the solver.

    Attributes
    ----------
    model_ : LogisticRegression
        The fitted inner model.
    classes_ : ndarray of shape (n_classes,)
        The labels seen in ``fit``.
    n_features_in_ : int
        Number of features seen in ``fit``.
    n_iter_ : ndarray
        Solver iterations used.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.8]])
    >>> ranker = CryRanker().fit(X, [1, 1, 0, 0])
    >>> bool(ranker.score_items(X)[0] > ranker.score_items(X)[2])
    True
    """

    def __init__(self, C: float = 1.0, max_iter: int = 500):
        self.C = C
        self.max_iter = max_iter

    def fit(self, X, y, sample_weight=None):
        X, y = validate_data(self, X, y)
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        self.model_ = LogisticRegression(C=self.C, max_iter=self.max_iter)
        if len(self.classes_) == 1:
            # Nothing to separate: remember the single answer.
            self.constant_ = self.classes_[0]
            self.n_iter_ = np.array([1])
        else:
            self.constant_ = None
            self.model_.fit(X, y, sample_weight=sample_weight)
            self.n_iter_ = self.model_.n_iter_
        return self

    def decision_function(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        if self.constant_ is not None:
            return np.zeros(X.shape[0])
        return self.model_.decision_function(X)

    def predict_proba(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        if self.constant_ is not None:
            return np.ones((X.shape[0], 1))
        return self.model_.predict_proba(X)

    def predict(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        if self.constant_ is not None:
            return np.full(X.shape[0], self.constant_)
        return self.model_.predict(X)

    def score_items(self, X) -> np.ndarray:
        """The ranking score for each row: higher means more likely to move the person."""
        return self.decision_function(X)

    def contributions(self, X) -> np.ndarray:
        """Each feature's share of each row's score (coefficient times value)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        if self.constant_ is not None:
            return np.zeros_like(X, dtype=float)
        coef = self.model_.coef_[0] if self.model_.coef_.shape[0] == 1 else self.model_.coef_[-1]
        return X * coef
