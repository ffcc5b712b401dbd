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
    assert ranker.get_params() == {"C": 0.5, "max_iter": 50, "prior_coef": None,
                                   "prior_precision": None}
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


def test_graded_fit_equals_the_doubled_rows_fit_and_held_coefficients_stay():
    rng = np.random.default_rng(1)
    X = rng.random((300, 3))
    target = np.clip(X[:, 0] + 0.2 * rng.standard_normal(300), 0, 1)
    w = rng.random(300) + 0.5
    graded = CryRanker(C=2.0).fit_graded(X, target, sample_weight=w)
    doubled = CryRanker(C=2.0).fit(np.vstack([X, X]), np.r_[np.ones(300), np.zeros(300)],
                                   sample_weight=np.r_[w * target, w * (1 - target)])
    np.testing.assert_allclose(graded.coef_, doubled.coef_, atol=1e-3)
    np.testing.assert_allclose(graded.intercept_, doubled.intercept_, atol=1e-3)
    # A warm start from the answer takes (almost) no steps and lands in the same place.
    again = CryRanker(C=2.0).fit_graded(X, target, sample_weight=w, warm_start=graded)
    assert again.n_iter_[0] <= 2
    np.testing.assert_allclose(again.coef_, graded.coef_, atol=1e-3)
    # An infinite prior precision holds that coefficient at its prior.
    held = CryRanker(prior_coef=[0.0, 0.0, 1.5], prior_precision=[1.0, 1.0, np.inf])
    held.fit_graded(X, target)
    assert held.coef_[0, 2] == 1.5 and held.coef_[0, 0] > 0.5
    with pytest.raises(ValueError, match="target"):
        CryRanker().fit_graded(X, target + 1.0)


def test_serving_scores_need_a_fitted_ranker_and_equal_the_linear_score():
    from sklearn.exceptions import NotFittedError

    X = np.random.default_rng(2).random((50, 3)).astype(np.float32)
    for call in (CryRanker().score_items, CryRanker().contributions):
        with pytest.raises(NotFittedError, match="CryRanker"):
            call(X)
    ranker = CryRanker().fit(X, (X[:, 0] > 0.5).astype(int))
    expected = X.astype(np.float64) @ ranker.coef_[0] + ranker.intercept_[0]
    np.testing.assert_allclose(ranker.score_items(X), expected, rtol=1e-5)
    np.testing.assert_allclose(ranker.contributions(X).sum(axis=1),
                               expected - ranker.intercept_[0], rtol=1e-4)
