"""The ranker follows scikit-learn's estimator conventions and learns from its data."""

import numpy as np
import pytest
from sklearn.utils.estimator_checks import estimator_checks_generator

from recommender.ranker import CryRanker

# CryRanker makes no claim to array-API support, so that one check does not apply to it.
CHECKS = [
    (estimator, check)
    for estimator, check in estimator_checks_generator(CryRanker(), mark=None)
    if getattr(check, "func", check).__name__ != "check_array_api_input"
]


@pytest.mark.parametrize(
    "estimator, check", CHECKS,
    ids=[getattr(c, "func", c).__name__ for _, c in CHECKS],
)
def test_sklearn_conventions(estimator, check):
    check(estimator)


def test_init_stores_hyperparameters_only():
    ranker = CryRanker(C=0.5, max_iter=50)
    assert ranker.get_params() == {"C": 0.5, "max_iter": 50, "prior_coef": None}
    assert not [k for k in vars(ranker) if k.endswith("_")]


def test_learns_which_feature_matters():
    rng = np.random.default_rng(0)
    X = rng.random((400, 3))
    y = (X[:, 1] > 0.5).astype(int)
    ranker = CryRanker().fit(X, y)
    assert ranker.fit(X, y) is ranker
    contributions = ranker.contributions(np.ones((1, 3)))[0]
    assert contributions[1] > abs(contributions[0]) and contributions[1] > abs(contributions[2])
    assert ranker.score(X, y) > 0.9
