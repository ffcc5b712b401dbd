"""Features for items, requests and the pairs the ranker scores.

The id <-> row mapping lives here, so the estimator only ever sees arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from recommender.catalog.identity import normalise_name
from recommender.vocabulary import Vocabulary

EXPLORATION_MODES = ("familiar", "balanced", "discover")

PAIR_FEATURES = (
    "mood_match",      # share of the requested moods the item carries
    "theme_match",     # share of the requested themes the item carries
    "text_match",      # cosine between the request words and the item's description
    "intensity_fit",   # 1 when the item's intensity equals the requested one, 0 when 4 apart
    "is_film",
    "aftercare",
)


@dataclass(frozen=True)
class SessionRequest:
    """What a person asked for, validated."""

    moods: tuple[str, ...] = ()
    prompt: str | None = None
    minutes: int = 45
    intensity: int = 3
    include_films: bool = True
    exploration: str = "balanced"


@dataclass(frozen=True)
class ItemRecord:
    """The plain facts about one catalogue item that features are built from."""

    id: str
    kind: str
    title: str
    artist: str | None
    director: str | None
    year: int | None
    duration_s: int
    intensity: int
    aftercare: bool
    tags: tuple[str, ...]
    spotify_uri: str | None = None


def item_document(item: ItemRecord, vocabulary: Vocabulary) -> str:
    """The words that describe an item: its title, maker and what its tags mean."""
    words = [item.title, item.artist or "", item.director or ""]
    for tag in item.tags:
        words.append(vocabulary.label(tag))
        for theme in vocabulary.themes:
            if theme.id == tag:
                words.extend(theme.keywords)
    return " ".join(words)


@dataclass
class ItemMatrix:
    """Every catalogue item as rows of arrays, built once per catalogue revision."""

    records: list[ItemRecord]
    index: dict[str, int]
    moods: sp.csr_matrix
    themes: sp.csr_matrix
    text: sp.csr_matrix
    vectorizer: TfidfVectorizer
    intensity: np.ndarray
    duration_s: np.ndarray
    is_film: np.ndarray
    aftercare: np.ndarray
    maker: np.ndarray
    has_suicide_theme: np.ndarray
    revision: int = 0
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.records)


def _tag_matrix(records: Sequence[ItemRecord], ids: Sequence[str]) -> sp.csr_matrix:
    col = {t: j for j, t in enumerate(ids)}
    rows, cols = [], []
    for i, rec in enumerate(records):
        for tag in rec.tags:
            j = col.get(tag)
            if j is not None:
                rows.append(i)
                cols.append(j)
    data = np.ones(len(rows), dtype=np.float32)
    return sp.csr_matrix((data, (rows, cols)), shape=(len(records), len(ids)), dtype=np.float32)


def build_item_matrix(
    records: Sequence[ItemRecord], vocabulary: Vocabulary, revision: int = 0
) -> ItemMatrix:
    records = list(records)
    vectorizer = TfidfVectorizer(
        strip_accents="unicode", lowercase=True, stop_words="english", sublinear_tf=True,
        min_df=1, dtype=np.float32,
    )
    docs = [item_document(r, vocabulary) for r in records]
    text = vectorizer.fit_transform(docs) if records else sp.csr_matrix((0, 0), dtype=np.float32)
    return ItemMatrix(
        records=records,
        index={r.id: i for i, r in enumerate(records)},
        moods=_tag_matrix(records, vocabulary.mood_ids),
        themes=_tag_matrix(records, vocabulary.theme_ids),
        text=sp.csr_matrix(text),
        vectorizer=vectorizer,
        intensity=np.array([r.intensity for r in records], dtype=np.float32),
        duration_s=np.array([r.duration_s for r in records], dtype=np.int64),
        is_film=np.array([r.kind == "film" for r in records], dtype=bool),
        aftercare=np.array([r.aftercare for r in records], dtype=bool),
        maker=np.array([normalise_name(r.artist or r.director or "") for r in records],
                       dtype=object),
        has_suicide_theme=np.array(["suicide" in r.tags for r in records], dtype=bool),
        revision=revision,
    )


@dataclass(frozen=True)
class RequestVector:
    moods: np.ndarray
    themes: np.ndarray
    text: sp.csr_matrix
    intensity: int
    mood_ids: tuple[str, ...]
    theme_ids: tuple[str, ...]


def request_vector(
    request: SessionRequest, matrix: ItemMatrix, vocabulary: Vocabulary
) -> RequestVector:
    """The request in the item space: chosen and inferred moods, themes and words."""
    inferred_moods, themes = vocabulary.infer_tags(request.prompt)
    moods = tuple(dict.fromkeys(request.moods + inferred_moods))
    m = np.array([1.0 if mid in moods else 0.0 for mid in vocabulary.mood_ids], dtype=np.float32)
    t = np.array([1.0 if tid in themes else 0.0 for tid in vocabulary.theme_ids],
                 dtype=np.float32)
    if request.prompt and len(matrix):
        q = matrix.vectorizer.transform([request.prompt])
    else:
        q = sp.csr_matrix((1, matrix.text.shape[1]), dtype=np.float32)
    return RequestVector(m, t, sp.csr_matrix(q), request.intensity, moods, themes)


def pair_features(
    matrix: ItemMatrix, req: RequestVector, rows: np.ndarray | None = None
) -> np.ndarray:
    """One row of ``PAIR_FEATURES`` per candidate item (all items when ``rows`` is None)."""
    if rows is None:
        rows = np.arange(len(matrix))
    n = len(rows)
    out = np.zeros((n, len(PAIR_FEATURES)), dtype=np.float32)
    if n == 0:
        return out
    moods = matrix.moods[rows]
    themes = matrix.themes[rows]
    n_moods = float(req.moods.sum())
    n_themes = float(req.themes.sum())
    if n_moods:
        out[:, 0] = moods @ req.moods / n_moods
    if n_themes:
        out[:, 1] = themes @ req.themes / n_themes
    if req.text.nnz:
        out[:, 2] = (matrix.text[rows] @ req.text.T).toarray().ravel()
    out[:, 3] = 1.0 - np.abs(matrix.intensity[rows] - req.intensity) / 4.0
    out[:, 4] = matrix.is_film[rows]
    out[:, 5] = matrix.aftercare[rows]
    return out
