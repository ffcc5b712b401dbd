"""Candidate retrieval: from a large catalogue, the few thousand items worth ranking.

Ranking every item of a million-item catalogue per request is wasted work: nearly all of
them share none of the asked-for moods or themes. Above :data:`RETRIEVE_ABOVE` items a cheap
prior (mood and theme overlap read from the tag matrices, words matched through the text
matrix's term index, closeness in intensity) picks the best of each pool the arc draws
from: sad songs, films that fit the time, aftercare songs that fit the time. Items the
person reacted to before always stay in, so their history still counts. Everything after
this step (features, the ranker, the arc) runs on the candidates only.
"""

from __future__ import annotations

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from recommender.features import ItemMatrix, RequestVector, SessionRequest, request_vector
from recommender.session import FILM_MARGIN_S
from recommender.store.models import Reaction
from recommender.vocabulary import Vocabulary

# Catalogues up to this size are ranked in full (the bundled one has under a thousand items).
RETRIEVE_ABOVE = 5_000
SONG_CANDIDATES = 1_000
FILM_CANDIDATES = 100
AFTERCARE_CANDIDATES = 100
# A small random spread among equal priors, so ties do not always resolve the same way.
TIE_SPREAD = 0.05


def _top(prior: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    if len(rows) <= k:
        return rows
    part = np.argpartition(-prior[rows], k - 1)[:k]
    return rows[part]


def candidate_rows(
    matrix: ItemMatrix, vec: RequestVector, request: SessionRequest, *, crisis: bool,
    keep_rows: np.ndarray | None = None, rng: np.random.Generator | None = None,
) -> np.ndarray | None:
    """Rows worth ranking for ``request``, sorted; None when the catalogue is small enough
    to rank whole."""
    n = len(matrix)
    if n <= RETRIEVE_ABOVE:
        return None
    rng = rng or np.random.default_rng()
    prior = rng.random(n, dtype=np.float32) * TIE_SPREAD
    n_moods = float(vec.moods.sum())
    if n_moods:
        prior += matrix.moods @ (vec.moods / n_moods)
    n_themes = float(vec.themes.sum())
    if n_themes:
        prior += matrix.themes @ (vec.themes / n_themes)
    if vec.text.nnz and matrix.text_by_term is not None:
        terms = vec.text.indices
        prior += matrix.text_by_term[:, terms] @ vec.text.data.astype(np.float32)
    prior -= 0.25 * np.abs(matrix.intensity - np.float32(request.intensity))

    # The same hard limits the arc applies (recommender.session.assemble).
    cap = 2 if crisis else request.intensity
    deepen_cap = cap if crisis or request.intensity < 3 else min(5, request.intensity + 1)
    allowed = matrix.intensity <= deepen_cap
    if crisis:
        allowed &= ~matrix.has_suicide_theme
    budget = request.minutes * 60
    fits = matrix.duration_s <= budget
    songs = ~matrix.is_film
    pools = [_top(prior, np.flatnonzero(allowed & songs & ~matrix.aftercare), SONG_CANDIDATES)]
    care = np.flatnonzero(allowed & songs & matrix.aftercare & fits)
    if not len(care):  # the arc falls back to any aftercare song that fits
        care = np.flatnonzero(songs & matrix.aftercare & fits)
    pools.append(_top(prior, care, AFTERCARE_CANDIDATES))
    if request.include_films and not crisis:
        films = np.flatnonzero(allowed & matrix.is_film & ~matrix.aftercare
                               & (matrix.duration_s <= budget - FILM_MARGIN_S))
        pools.append(_top(prior, films, FILM_CANDIDATES))
    if keep_rows is not None and len(keep_rows):
        pools.append(np.asarray(keep_rows, dtype=np.int64))
    return np.unique(np.concatenate(pools))


def narrow_to_candidates(
    db: Session, matrix: ItemMatrix, request: SessionRequest, vocabulary: Vocabulary, *,
    user_id: str, crisis: bool, seed: int | None = None,
) -> ItemMatrix:
    """``matrix`` itself when small; else a matrix of the candidates for this request,
    always including the items this person reacted to before."""
    if len(matrix) <= RETRIEVE_ABOVE:
        return matrix
    vec = request_vector(request, matrix, vocabulary)
    if not vec.mood_ids and not vec.theme_ids and not vec.text.nnz:
        # As the ranking does: words that map to nothing known start from release.
        vec = request_vector(SessionRequest(moods=("release",), prompt=request.prompt,
                                            intensity=request.intensity), matrix, vocabulary)
    reacted = db.scalars(select(Reaction.item_id).where(Reaction.user_id == user_id)).all()
    keep = np.array([r for r in (matrix.index.get(i) for i in set(reacted)) if r is not None],
                    dtype=np.int64)
    rows = candidate_rows(matrix, vec, request, crisis=crisis, keep_rows=keep,
                          rng=np.random.default_rng(seed))
    return matrix if rows is None else matrix.subset(rows)
