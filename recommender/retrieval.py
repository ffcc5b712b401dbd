"""Candidate retrieval: from a large catalogue, the few thousand items worth ranking.

Ranking every item of a million-item catalogue per request is wasted work: nearly all of
them share none of the asked-for moods or themes. Above :data:`RETRIEVE_ABOVE` items a cheap
prior (mood and theme overlap read from the tag matrices, words matched through the text
matrix's term index, closeness in intensity) picks the best of each pool the arc draws
from: sad songs, films that fit the time, aftercare songs that fit the time. The person's
own taste picks more: the best songs and films carrying a theme or maker they cried at or
were moved by (read from the same inverted indexes), so on a catalogue where thousands of
items match the asked-for mood, what they love is among the candidates, not left to chance.
The items the person loved most before always stay in, so their history still counts. The best
rows of each pool are found in one compiled pass (recommender/retrieval_kernel.py).
Everything after this step (features, the ranker, the arc) runs on the candidates only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from recommender.features import (
    ItemIndex,
    ItemMatrix,
    RequestMatch,
    RequestVector,
    SessionRequest,
    request_vector,
)
from recommender.kept import KeptByBytes
from recommender.retrieval_kernel import top_in_pool, top_of_rows, top_scored
from recommender.session import FILM_MARGIN_S
from recommender.tastes import Stats, liked_attributes, remembered
from recommender.vocabulary import Vocabulary

# Catalogues up to this size are ranked in full (the bundled one has under a thousand items).
RETRIEVE_ABOVE = 5_000
# Pool sizes. Half the earlier pools (300 + 200 songs, 30 + 15 films) gave sessions as good
# in benchmarks/retrieval_quality.py (100k items, seeds 7-12: a cried-rate of 0.433 in later
# sessions against 0.435, sessions as full) for 2-4% less CPU a session served; a third of
# them lost on some seeds (seed 8: 0.383 against 0.429). See BENCHMARKS.md, fourteenth round.
SONG_CANDIDATES = 150
FILM_CANDIDATES = 20
AFTERCARE_CANDIDATES = 20
# On top of those: songs and films picked for the person's taste (themes and makers).
PERSONAL_SONG_CANDIDATES = 100
PERSONAL_FILM_CANDIDATES = 10
LOVED_THEMES = 3
LOVED_THEME_ROWS = 8_000
LOVED_MAKERS = 20
# The rows carrying a person's loved themes and makers are worked out once per catalogue and
# taste (see :class:`Carried`) and kept per worker up to this many bytes, least recently
# used first out: about 140 KB a person at 100,000 items (three loved themes of ~3,700 rows).
CARRIED_CACHE_BYTES = 32 * 1024 * 1024
# Requests' mood and theme columns (one float32 per row each) kept per worker and catalogue up
# to this many bytes: every combination asked of 11 moods at 100,000 items, the 12 latest at
# 1,000,000.
MATCH_CACHE_BYTES = 48 * 1024 * 1024
# Of the items a person reacted to, those that join every request's candidates: the ones they
# cried at or were moved by more than an unrated item promises, the strongest first. Bounded,
# so that a long history does not grow every request: in-process at 100k items, a person
# with 300 more rated sessions (about 3,000 reactions) had 1,314 candidates a request and
# 0.9 ms more CPU a session than one with five (327 candidates).
REACTED_CANDIDATES = 100
# A small random spread among equal priors, so ties do not always resolve the same way.
TIE_SPREAD = 0.05
# What the songs' pool is given as its blocked rows outside a crisis: none.
_NOTHING_BLOCKED = np.zeros(0, dtype=bool)


def _sorted_distinct(rows: np.ndarray) -> np.ndarray:
    """``rows`` sorted, each once (``np.unique`` without its hashing, slower here)."""
    rows = np.sort(rows)
    return rows[np.concatenate(([True], rows[1:] != rows[:-1]))] if len(rows) else rows


@dataclass(frozen=True)
class Carried:
    """The rows carrying any of a person's loved themes and makers, each once and in row
    order, with the deviations of the loved attributes each carries added up (float32, in
    the order :func:`_carried` lists them) and each row's pool code (see ``pool_code``)."""

    rows: np.ndarray
    devs: np.ndarray
    codes: np.ndarray

    @property
    def nbytes(self) -> int:
        return self.rows.nbytes + self.devs.nbytes + self.codes.nbytes


class CarriedCache(KeptByBytes):
    """:class:`Carried` by taste, least recently used first out past ``max_bytes``; one per
    :class:`RetrievalIndex`, so a new catalogue starts with none. Safe across threads."""

    def __init__(self, max_bytes: int = CARRIED_CACHE_BYTES):
        super().__init__(max_bytes)


@dataclass(frozen=True)
class RetrievalIndex:
    """What retrieval reads from the catalogue, arranged once per matrix: the tag and word
    matrices by column (inverted indexes: the rows carrying each mood, theme and word), each
    row's pool code (which tells a sad song and its intensity), the rows of the pools a
    request also cuts by length, per intensity cap (``films[c]``: the films of intensity at
    most c), the intensity term of the prior for each requested intensity, and a random
    tie-breaking spread per row. Row numbers are kept in numpy's own index type
    (``np.intp``): an array indexed by 32-bit row numbers converts them on every read."""

    moods_by_tag: sp.csc_matrix
    # The mood table again, dense and by mood (moods x rows, float32): a request adds its
    # moods' rows whole (see :meth:`RequestMatch.of`). 4 MB at 100,000 items, 44 MB at 1M.
    mood_columns: np.ndarray
    themes_by_tag: sp.csc_matrix
    text_by_term: sp.csc_matrix
    # Per row, the pool and intensity in one byte: a sad song's intensity (1-5), a film's
    # (not aftercare) plus FILM_CODE, 0 for the rest (one read tells whether a row fits;
    # the sad songs, most of a catalogue, are told by it alone).
    pool_code: np.ndarray
    # The pools a request also cuts by length, shortest first (see :class:`ByLength`).
    aftercare_songs: dict[int, ByLength]
    films: dict[int, ByLength]
    all_aftercare_songs: ByLength
    closeness: dict[int, np.ndarray]
    tie_spread: np.ndarray
    # The rows of each maker (artist or director): ``maker_rows[maker_starts[c]:
    # maker_starts[c + 1]]`` are the rows of maker code c; ``maker_code`` maps a normalised
    # name to its code.
    maker_rows: np.ndarray
    maker_starts: np.ndarray
    maker_code: dict[str, int]
    carried: CarriedCache = field(default_factory=CarriedCache, compare=False, repr=False)
    # Requests' mood and theme columns, kept by what they ask (see RequestMatch.of).
    matches: KeptByBytes = field(default_factory=lambda: KeptByBytes(MATCH_CACHE_BYTES),
                                 compare=False, repr=False)

    def rows_of_maker(self, name: str) -> np.ndarray:
        code = self.maker_code.get(name)
        if not code:
            return self.maker_rows[:0]
        return self.maker_rows[self.maker_starts[code]:self.maker_starts[code + 1]]


INTENSITIES = (1, 2, 3, 4, 5)
FILM_CODE = 10


@dataclass(frozen=True)
class ByLength:
    """A pool's rows ordered by length, shortest first, so the rows that fit a time budget
    are a prefix (a view found by binary search, not a pass over the pool per request)."""

    rows: np.ndarray
    lengths: np.ndarray

    @classmethod
    def of(cls, rows: np.ndarray, duration_s: np.ndarray) -> ByLength:
        order = np.argsort(duration_s[rows], kind="stable")
        rows = rows[order]
        return cls(rows, duration_s[rows])

    def up_to(self, limit: int) -> np.ndarray:
        """The rows at most ``limit`` seconds long."""
        return self.rows[:np.searchsorted(self.lengths, limit, side="right")]


@dataclass(frozen=True)
class LovedAttributes:
    """The themes (by tag-matrix column) and makers (normalised names) a person's reactions
    lifted above the prior, each with its posterior-mean deviation."""

    themes: dict[int, float]
    makers: dict[str, float]

    def __bool__(self) -> bool:
        return bool(self.themes or self.makers)

    @classmethod
    def of(cls, stats: Stats, vocabulary: Vocabulary) -> LovedAttributes:
        """The person's strongest: a theme covers a good share of the catalogue, so only
        the few best-loved ones pick candidates (the ranker weighs every one). Kept in the
        stats' memo while the same stored stats are in use."""
        return remembered(stats, "loved", vocabulary, lambda: cls._of(stats, vocabulary))

    @classmethod
    def _of(cls, stats: Stats, vocabulary: Vocabulary) -> LovedAttributes:
        liked = liked_attributes(stats, ("theme", "maker"))
        column = {t: j for j, t in enumerate(vocabulary.theme_ids)}
        themes = sorted(liked["theme"].items(), key=lambda kv: -kv[1])[:LOVED_THEMES]
        makers = sorted(liked["maker"].items(), key=lambda kv: -kv[1])[:LOVED_MAKERS]
        return cls(themes={column[t]: d for t, d in themes if t in column},
                   makers=dict(makers))


def _carried(index: RetrievalIndex, taste: LovedAttributes,
             rng: np.random.Generator) -> Carried | None:
    """The rows carrying ``taste``'s loved themes and makers (read from the inverted
    indexes: only those rows are touched), None when there are none. A theme carried by
    more than :data:`LOVED_THEME_ROWS` rows offers a random run of that many (rows are in
    id order, which says nothing of their content): a big catalogue's theme holds tens of
    thousands, and the pool needs a few hundred. Without such a run the answer depends on
    the catalogue and the taste alone, and is kept in ``index.carried``."""
    by_theme = index.themes_by_tag
    drawn = any(by_theme.indptr[j + 1] - by_theme.indptr[j] > LOVED_THEME_ROWS
                for j in taste.themes)
    key = (tuple(taste.themes.items()), tuple(taste.makers.items()))
    if not drawn:
        known = index.carried.get(key)
        if known is not None:
            return known
    carrying = []
    for j, dev in taste.themes.items():
        carriers = by_theme.indices[by_theme.indptr[j]:by_theme.indptr[j + 1]]
        if len(carriers) > LOVED_THEME_ROWS:
            start = int(rng.integers(0, len(carriers)))
            carriers = np.take(carriers, np.arange(start, start + LOVED_THEME_ROWS),
                               mode="wrap")
        carrying.append((carriers.astype(np.intp), dev))
    if taste.makers:  # a row has one maker: the makers' rows are distinct, added at once
        made = [(index.rows_of_maker(name), dev) for name, dev in taste.makers.items()]
        carrying.append((np.concatenate([r for r, _ in made]),
                         np.repeat(np.array([d for _, d in made], dtype=np.float32),
                                   [len(r) for r, _ in made])))
    carried = np.concatenate([carriers for carriers, _ in carrying]) if carrying else []
    if not len(carried):
        return None
    # Each carrying row once, in order, with the deviations of what it carries added up
    # (as float32, in the order above: a stable sort keeps a row's entries in that order),
    # without a catalogue-sized array: a row carries at most a few loved attributes.
    devs = np.concatenate([np.full(len(carriers), dev, dtype=np.float32)
                           if np.ndim(dev) == 0 else dev for carriers, dev in carrying])
    order = np.argsort(carried, kind="stable")
    carried, devs = carried[order], devs[order]
    repeat = np.empty(len(carried), dtype=bool)
    repeat[0] = False
    np.equal(carried[1:], carried[:-1], out=repeat[1:])
    starts = np.flatnonzero(~repeat)
    rows = carried[starts]
    # Most rows carry one loved attribute: a row's first deviation, then each further one
    # added in turn (np.add.at adds in index order: the same sums as np.add.reduceat, in
    # about half its time when nearly every run is a single entry).
    sums = devs[starts]
    again = np.flatnonzero(repeat)
    np.add.at(sums, np.searchsorted(starts, again, side="right") - 1, devs[again])
    found = Carried(rows, sums, index.pool_code[rows])
    for array in (found.rows, found.devs, found.codes):
        array.setflags(write=False)  # shared by the requests of the same taste
    if not drawn:
        index.carried.put(key, found)
    return found


def _personal_pools(index: RetrievalIndex, prior: np.ndarray, taste: LovedAttributes,
                    song_ok, film_ok, rng: np.random.Generator) -> list[np.ndarray]:
    """The best allowed songs (and films, with ``film_ok``) among the rows carrying a loved
    theme or maker (:func:`_carried`), by the request's prior plus the deviation of every
    loved attribute a row carries. ``song_ok`` and ``film_ok`` say which of some rows are
    allowed, given the rows and their pool codes."""
    carried = _carried(index, taste, rng)
    if carried is None:
        return []
    rows = carried.rows
    pools = []
    for ok, k in ((song_ok, PERSONAL_SONG_CANDIDATES), (film_ok, PERSONAL_FILM_CANDIDATES)):
        if ok is not None:
            pools.append(rows[top_scored(prior, rows, carried.devs, ok(rows, carried.codes), k)])
    return pools


def retrieval_index(matrix: ItemMatrix) -> RetrievalIndex:
    """The matrix's :class:`RetrievalIndex` (built on first use, kept on the matrix)."""
    cached = matrix.extra.get("retrieval_index")
    if cached is None:
        songs = ~matrix.is_film
        intensity = matrix.intensity

        def by_cap(mask: np.ndarray) -> dict[int, np.ndarray]:
            return {c: np.flatnonzero(mask & (intensity <= c))
                    for c in INTENSITIES}

        def by_cap_and_length(mask: np.ndarray) -> dict[int, ByLength]:
            return {c: ByLength.of(rows, matrix.duration_s) for c, rows in by_cap(mask).items()}

        care = songs & matrix.aftercare
        by_maker = np.argsort(matrix.maker, kind="stable")
        n_codes = len(matrix.maker_names)
        cached = RetrievalIndex(
            moods_by_tag=sp.csc_matrix(matrix.moods),
            mood_columns=np.ascontiguousarray(matrix.moods.T.toarray(), dtype=np.float32),
            themes_by_tag=sp.csc_matrix(matrix.themes),
            text_by_term=(matrix.text_by_term if matrix.text_by_term is not None
                          else sp.csc_matrix(matrix.text)),
            aftercare_songs=by_cap_and_length(care),
            pool_code=np.where(matrix.aftercare, 0, np.clip(intensity, 1, 5)
                               + np.where(matrix.is_film, FILM_CODE, 0)).astype(np.uint8),
            films=by_cap_and_length(matrix.is_film & ~matrix.aftercare),
            all_aftercare_songs=ByLength.of(np.flatnonzero(care),
                                            matrix.duration_s),
            closeness={r: (np.float32(-0.25) * np.abs(intensity - np.float32(r)))
                       .astype(np.float32) for r in INTENSITIES},
            tie_spread=(np.random.default_rng(matrix.revision).random(len(matrix), np.float32)
                        * np.float32(TIE_SPREAD)),
            maker_rows=by_maker,
            maker_starts=np.searchsorted(matrix.maker[by_maker], np.arange(n_codes + 1)),
            maker_code={name: code for code, name in enumerate(matrix.maker_names) if code})
        matrix.extra["retrieval_index"] = cached
    return cached


def request_match(matrix: ItemMatrix, vec: RequestVector) -> RequestMatch:
    """Every row's match to the request's moods, themes and words (the inverted indexes)."""
    index = retrieval_index(matrix)
    return RequestMatch.of(vec, len(matrix), index.moods_by_tag, index.themes_by_tag,
                           index.text_by_term, mood_columns=index.mood_columns,
                           kept=index.matches)


def candidate_rows(
    matrix: ItemMatrix, vec: RequestVector, request: SessionRequest, *, crisis: bool,
    keep_rows: np.ndarray | None = None, rng: np.random.Generator | None = None,
    taste: LovedAttributes | None = None, match: RequestMatch | None = None,
) -> np.ndarray | None:
    """Rows worth ranking for ``request``, sorted; None when the catalogue is small enough
    to rank whole. With the person's ``taste``, the best songs and films carrying the
    themes and makers they loved join the request's best. ``match`` is the request's
    :func:`request_match` when the caller has it already."""
    n = len(matrix)
    if n <= RETRIEVE_ABOVE:
        return None
    index = retrieval_index(matrix)
    rng = rng or np.random.default_rng()
    # The tie-breaking spread, drawn once per catalogue and turned by a random offset per
    # request (as random per request as a fresh draw, for a copy's cost).
    turn = int(rng.integers(0, n))
    # The turned spread plus each row's closeness in intensity, written in one pass.
    closeness, spread = index.closeness[request.intensity], index.tie_spread
    prior = np.empty(n, dtype=np.float32)
    np.add(spread[turn:], closeness[:n - turn], out=prior[:n - turn])
    np.add(spread[:turn], closeness[n - turn:], out=prior[n - turn:])
    match = match if match is not None else request_match(matrix, vec)
    for column in (match.mood, match.theme, match.text):
        if column is not None:
            prior += column

    # The same hard limits the arc applies (recommender.session.assemble).
    cap = 2 if crisis else request.intensity
    deepen_cap = cap if crisis or request.intensity < 3 else min(5, request.intensity + 1)
    budget = request.minutes * 60

    def allowed(rows: np.ndarray) -> np.ndarray:
        return rows[~matrix.has_suicide_theme[rows]] if crisis else rows

    def song_ok(rows: np.ndarray, code: np.ndarray | None = None) -> np.ndarray:
        """Which of ``rows`` are in ``songs`` (the pool code holds a sad song's intensity;
        ``code`` is theirs when the caller has it)."""
        code = index.pool_code[rows] if code is None else code
        ok = (code >= 1) & (code <= deepen_cap)
        return ok & ~matrix.has_suicide_theme[rows] if crisis else ok

    # The sad songs are most of a catalogue: told by their pool code, not listed.
    pools = [top_in_pool(prior, index.pool_code, 1, deepen_cap,
                         matrix.has_suicide_theme if crisis else _NOTHING_BLOCKED,
                         SONG_CANDIDATES)]
    care = allowed(index.aftercare_songs[deepen_cap].up_to(budget))
    if not len(care):  # the arc falls back to any aftercare song that fits
        care = index.all_aftercare_songs.up_to(budget)
    pools.append(top_of_rows(prior, care, AFTERCARE_CANDIDATES))
    films = (allowed(index.films[deepen_cap].up_to(budget - FILM_MARGIN_S))
             if request.include_films and not crisis else None)
    if films is not None:
        pools.append(top_of_rows(prior, films, FILM_CANDIDATES))
    if taste:
        # The best by the request and the person's taste together: on a big catalogue many
        # more items match the asked-for mood than the pools hold.
        def film_ok(rows: np.ndarray, code: np.ndarray) -> np.ndarray:
            ok = (code > FILM_CODE) & (code <= FILM_CODE + deepen_cap)
            at = np.flatnonzero(ok)  # only the films' lengths are read
            ok[at] = matrix.duration_s[rows[at]] <= budget - FILM_MARGIN_S
            return ok

        pools += _personal_pools(index, prior, taste, song_ok,
                                 film_ok if films is not None else None, rng)
    if keep_rows is not None and len(keep_rows):
        pools.append(np.asarray(keep_rows, dtype=np.int64))
    return _sorted_distinct(np.concatenate(pools).astype(np.int64))


def ranking_vector(
    request: SessionRequest, matrix: ItemMatrix, vocabulary: Vocabulary
) -> RequestVector:
    """The request in the item space, as retrieval and ranking both use it: words that map
    to nothing known still deserve a session, so they start from ``release``."""
    vec = request_vector(request, matrix, vocabulary)
    if not vec.mood_ids and not vec.theme_ids and not vec.text.nnz:
        vec = request_vector(SessionRequest(moods=("release",), prompt=request.prompt,
                                            intensity=request.intensity), matrix, vocabulary)
    return vec


def reacted_rows(matrix: ItemMatrix, stats: Stats) -> np.ndarray:
    """The rows of the items the person loved most: those their reactions lifted above the
    prior (their taste's ``item:`` entries), at most :data:`REACTED_CANDIDATES`, the largest
    posterior-mean deviation first (ties by id). Kept in the stats' memo while the same
    stored stats and catalogue are in use."""
    index = matrix.index

    def work() -> np.ndarray:
        loved = liked_attributes(stats, ("item",))["item"]
        # Items gone from this catalogue take no place among the strongest.
        strongest = sorted((item_id for item_id in loved if item_id in index),
                           key=lambda item_id: (-loved[item_id], item_id))
        reacted = sorted(strongest[:REACTED_CANDIDATES])
        rows = (index.rows_of(reacted) if isinstance(index, ItemIndex)
                else np.array([index[i] for i in reacted], dtype=np.int64))
        rows.setflags(write=False)  # shared by the requests that read the same stats
        return rows

    return remembered(stats, "reacted_rows", index, work)


def narrow_to_candidates(
    matrix: ItemMatrix, request: SessionRequest, vocabulary: Vocabulary, *,
    stats: Stats, crisis: bool, seed: int | np.random.Generator | None = None,
    vec: RequestVector | None = None,
) -> ItemMatrix:
    """``matrix`` itself when small; else a matrix of the candidates for this request and
    person (``stats``: their taste), always including the items this person loved most
    before (:func:`reacted_rows`). ``vec`` is the request's :func:`ranking_vector` when the
    caller has it already; ``seed`` seeds the draws, or is the generator to draw from."""
    if len(matrix) <= RETRIEVE_ABOVE:
        return matrix
    vec = vec if vec is not None else ranking_vector(request, matrix, vocabulary)
    match = request_match(matrix, vec)
    rows = candidate_rows(matrix, vec, request, crisis=crisis,
                          keep_rows=reacted_rows(matrix, stats), rng=np.random.default_rng(seed),
                          taste=LovedAttributes.of(stats, vocabulary) if stats else None,
                          match=match)
    if rows is None:
        return matrix
    candidates = matrix.subset(rows)
    # Their match to this request is known: their features need no cut of the tag tables.
    candidates.extra["request_match"] = match.take(rows)
    return candidates
