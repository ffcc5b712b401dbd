"""Baselines the ranker is measured against, all scoring the same catalogue matrix.

Each baseline turns (person, request) into a score per catalogue row; the session is then
assembled by the real :func:`recommender.session.assemble`, so every method gets the same arc,
time budget, diversity rules and bans. The library bandit is river's ``LinUCBDisjoint``.
"""

from __future__ import annotations

import warnings

import numpy as np

from recommender.features import ItemMatrix, RequestVector, pair_features
from recommender.ranker import CryRanker
from recommender.tastes import REWARD


class Policy:
    """A way of scoring the catalogue for a person, that may learn from their reactions."""

    name = "policy"

    def scores(self, person: str, vec: RequestVector, matrix: ItemMatrix,
               rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def learn(self, person: str, vec: RequestVector, rows: list[int],
              reactions: list[str]) -> None:
        """Take in a person's reactions to a session (``""``: no reaction given)."""


class RandomPolicy(Policy):
    name = "random"

    def scores(self, person, vec, matrix, rng):
        return rng.random(len(matrix))


class PopularityPolicy(Policy):
    """Items that moved the most people so far, across everyone (ties broken at random)."""

    name = "popularity"

    def __init__(self, n_items: int):
        self.moved = np.zeros(n_items)

    def scores(self, person, vec, matrix, rng):
        return self.moved + 0.01 * rng.random(len(matrix))

    def learn(self, person, vec, rows, reactions):
        for row, reaction in zip(rows, reactions, strict=True):
            if reaction:
                self.moved[row] += REWARD[reaction]


ORACLE = "oracle (hidden taste)"
ORACLE_WITHIN_ASK = "oracle within the ask"
# Larger than any spread of hidden utilities: an item in the asked-for mood always wins.
ASK_FIRST = 100.0


class HiddenTasteOracle(Policy):
    """Not a baseline but the ceiling: it reads each simulated person's hidden taste (the
    true log-odds of crying per item) and ranks by it from the first session on, through
    the same arc. What any learner can reach on these people; it learns nothing.

    With ``within_ask``, items carrying an asked-for mood always rank first: the ceiling
    for a recommender that answers what was asked (the plain oracle fills most of a session
    from other moods, which these simulated people hardly mind and real people would)."""

    def __init__(self, utilities: dict[str, np.ndarray], *, within_ask: bool = False,
                 jitter: float = 0.01):
        self.utilities = utilities
        self.within_ask = within_ask
        self.jitter = jitter
        self.name = ORACLE_WITHIN_ASK if within_ask else ORACLE

    def scores(self, person, vec, matrix, rng):
        scores = self.utilities[person] + rng.normal(0.0, self.jitter, len(matrix))
        if self.within_ask:
            asked = np.asarray(vec.moods, dtype=np.float64)
            carries = np.asarray(matrix.moods @ asked).ravel() > 0
            scores += ASK_FIRST * carries
        return scores


class ContentPolicy(Policy):
    """The content model only: the request's moods, themes, words and intensity; no history."""

    name = "content match"

    def __init__(self, ranker: CryRanker, jitter: float = 0.05):
        self.ranker = ranker
        self.jitter = jitter

    def content_scores(self, vec, matrix):
        return self.ranker.score_items(pair_features(matrix, vec)).astype(np.float64)

    def scores(self, person, vec, matrix, rng):
        return self.content_scores(vec, matrix) + rng.gumbel(0.0, self.jitter, len(matrix))


class RiverLinUCBPolicy(Policy):
    """river's ``bandit.LinUCBDisjoint``: one Bayesian linear model per item (arm) per person.

    Context: the request's moods, themes and intensity. Arms: the ``candidates`` items the
    content model ranks highest for the request (the bandit picks among them, pull by pull,
    as many as a session can hold); reward: the graded reaction (cried 1.0 ... skipped 0).
    """

    name = "river LinUCB"

    def __init__(self, content: ContentPolicy, candidates: int = 150, pulls: int = 16,
                 alpha: float = 1.0, seed: int = 0):
        from river import bandit

        self._make = lambda: bandit.LinUCBDisjoint(alpha=alpha, seed=seed)
        self.content = content
        self.candidates = candidates
        self.pulls = pulls
        self.policies: dict[str, object] = {}

    @staticmethod
    def context(vec: RequestVector) -> dict[str, float]:
        ctx = {"bias": 1.0, "intensity": vec.intensity / 5.0}
        ctx.update({f"mood:{m}": 1.0 for m in vec.mood_ids})
        ctx.update({f"theme:{t}": 1.0 for t in vec.theme_ids})
        return ctx

    def scores(self, person, vec, matrix, rng):
        policy = self.policies.setdefault(person, self._make())
        content = self.content.content_scores(vec, matrix)
        sad = np.flatnonzero(~matrix.aftercare)
        arms = [int(r) for r in sad[np.argsort(-content[sad])[:self.candidates]]]
        out = content - 100.0
        ctx = self.context(vec)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for k in range(min(self.pulls, len(arms))):
                arm = policy.pull(arms, context=ctx)
                arms.remove(arm)
                out[arm] = 100.0 - k
        return out

    def learn(self, person, vec, rows, reactions):
        policy = self.policies.setdefault(person, self._make())
        ctx = self.context(vec)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for row, reaction in zip(rows, reactions, strict=True):
                if reaction:
                    policy.update(int(row), ctx, REWARD[reaction])
