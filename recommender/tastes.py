"""A person's taste, learned online from their graded reactions and kept in the database.

Every attribute of an item (each theme and mood it carries, its maker, its era, its kind, and
the item itself; see :func:`recommender.features.attribute_keys`) has a Beta posterior over
"how much this reaches the person", fed by their reactions:

* graded outcomes: ``cried`` (1.0) > ``moved`` (0.7) > ``neutral`` (0.2) > ``skipped`` (0.0);
  ``never_again`` counts as a strong 0 (and bans the item elsewhere);
* the session's weight: a cathartic session (high ``catharsis``, mood lifted from before to
  after) counts more than a flat one.

The state is one row per person (``person_tastes``), updated in place by
:func:`apply_feedback` when feedback is recorded; feedback sent again first takes back what the
earlier feedback for that session added, so nothing is counted twice. Any worker reads the same
row, so a person's next session reflects their last feedback at once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TypeVar

import numpy as np
import scipy.sparse as sp
from sqlalchemy import Text, bindparam, cast, select
from sqlalchemy.orm import Session

from recommender.features import (
    TASTE_GROUPS,
    ItemMatrix,
    item_era_codes,
    item_eras,
    item_title_keys,
    taste_attribute_table,
    title_codes,
)
from recommender.store.models import PersonTaste, utcnow
from recommender.store.prepared import Prepared
from recommender.taste_kernel import cut_rows
from recommender.vocabulary import Vocabulary, default_vocabulary

REWARD = {"cried": 1.0, "moved": 0.7, "neutral": 0.2, "skipped": 0.0, "never_again": 0.0}
WEIGHT = {"cried": 1.0, "moved": 1.0, "neutral": 0.5, "skipped": 1.0, "never_again": 2.0}
PRIOR_MEAN = 0.35       # what an unrated attribute is expected to give
PRIOR_STRENGTH = 2.0    # how many reactions' worth of evidence the prior is
# How far a Thompson draw may stray from the posterior mean, per exploration mode.
EXPLORATION_TEMPERATURE = {"familiar": 0.0, "balanced": 0.25, "discover": 0.7}

# A stats entry: [weighted reward sum, weighted count, times cried, times moved].
Stats = dict[str, list[float]]


def session_weight(catharsis: int | None, mood_before: int | None,
                   mood_after: int | None) -> float:
    """How much a session's reactions count: more when it was cathartic and lifted the mood."""
    w = 1.0
    if catharsis is not None:
        w += 0.15 * (catharsis - 3)
    if mood_before is not None and mood_after is not None:
        w += 0.05 * float(np.clip(mood_after - mood_before, -4, 4))
    return float(np.clip(w, 0.5, 1.5))


@dataclass(frozen=True)
class RatedItem:
    """One reaction with the attribute keys of the item it was about."""

    keys: Sequence[str]
    reaction: str


def _add(stats: Stats, rated: Iterable[RatedItem], weight: float, sign: float) -> None:
    for r in rated:
        w = WEIGHT[r.reaction] * weight * sign
        s = REWARD[r.reaction] * w
        cried = sign if r.reaction == "cried" else 0.0
        moved = sign if r.reaction == "moved" else 0.0
        for key in r.keys:
            entry = stats.setdefault(key, [0.0, 0.0, 0.0, 0.0])
            entry[0] += s
            entry[1] += w
            entry[2] += cried
            entry[3] += moved
            if abs(entry[1]) < 1e-9 and abs(entry[2]) < 1e-9 and abs(entry[3]) < 1e-9:
                del stats[key]


# The stored row as its JSON text: a request compares it with the last one it decoded.
_STATS_TEXT_OF = Prepared(select(cast(PersonTaste.__table__.c.stats, Text))
                          .where(PersonTaste.__table__.c.user_id == bindparam("user")))


class StoredStats(dict):
    """A person's stats as stored, with what requests work out from them (``memo``: their
    columns in the catalogue's taste table, their loved attributes). Shared between the
    requests that read the same stored text, so never changed in place."""

    __slots__ = ("memo", "text")

    def __init__(self, data: dict, text: str):
        super().__init__(data)
        self.text = text
        self.memo: dict = {}


T = TypeVar("T")


def remembered(stats: Stats, name: str, owner: object, work: Callable[[], T]) -> T:
    """``work()``, kept in the stats' memo under ``name`` while it is asked for with the
    same ``owner`` (the catalogue table or vocabulary it was worked out against). Stats
    without a memo (a plain dict) have it worked out every time."""
    memo = getattr(stats, "memo", None)
    known = memo.get(name) if memo is not None else None
    if known is not None and known[0] is owner:
        return known[1]
    value = work()
    if memo is not None:
        memo[name] = (owner, value)
    return value


# The last stats decoded per person in this process. Only a cache: every request reads the
# stored row, and an entry is used only when the row's text is exactly the same.
_DECODED: dict[str, StoredStats] = {}
DECODED_PEOPLE = 4096


def load_stats(db: Session, user_id: str) -> Stats:
    """The person's stats as stored now (empty for someone new)."""
    text = _STATS_TEXT_OF.scalar(db, {"user": user_id})
    if not text:
        return {}
    known = _DECODED.get(user_id)
    if known is not None and known.text == text:
        return known
    stats = StoredStats(json.loads(text) or {}, text)
    if len(_DECODED) >= DECODED_PEOPLE:
        _DECODED.clear()
    _DECODED[user_id] = stats
    return stats


def apply_feedback(
    db: Session, user_id: str, *,
    previous: Sequence[RatedItem], previous_weight: float,
    current: Sequence[RatedItem], current_weight: float,
) -> None:
    """Replace a session's earlier contribution to the person's taste with its new one.

    Runs inside the caller's transaction (the caller commits).
    """
    row = db.scalar(select(PersonTaste).where(PersonTaste.user_id == user_id)
                    .with_for_update())
    if row is None:
        row = PersonTaste(user_id=user_id, stats={}, n_reactions=0)
        db.add(row)
    stats = {k: list(v) for k, v in (row.stats or {}).items()}
    _add(stats, previous, previous_weight, -1.0)
    _add(stats, current, current_weight, +1.0)
    row.stats = {k: [round(x, 6) for x in v] for k, v in stats.items()}
    row.n_reactions = max(0, (row.n_reactions or 0) - len(previous)) + len(current)
    row.updated_at = utcnow()


# Up to this many catalogue items, a request's candidates have their taste attributes cut
# from the whole catalogue's table (kept per worker, built once per catalogue revision:
# ~3 ms less per request, ~35-95 MiB more per worker at 100k items). Above it the table is
# built for the candidates alone on every request, so a worker's memory stays bounded at 1M.
CUT_FROM_CATALOGUE_UP_TO = 300_000


class TasteAttributes:
    """The catalogue's items over taste attributes, built once per matrix.

    ``weights[i, a]`` is 1 when item i has attribute a, so ``weights @ D`` adds up a
    per-attribute value within each group (taste is additive: two loved themes count twice).

    The table of a request's candidates is cut from the whole catalogue's (``parent``):
    its attributes are the parent's columns ``parent_cols`` (sorted), and their keys
    (``ids``, ``index``) are only spelled out when asked for: a request maps a person's
    taste onto the candidates through the parent's index, with no string work per request.
    """

    def __init__(self, ids: tuple[str, ...] | None, group: np.ndarray,
                 weights: sp.csr_matrix | None, era_code: np.ndarray, title_code: np.ndarray, *,
                 entries: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
                 shape: tuple[int, int] | None = None,
                 era: np.ndarray | None = None, title_key: np.ndarray | None = None,
                 parent: TasteAttributes | None = None, parent_cols: np.ndarray | None = None,
                 parent_rows: np.ndarray | None = None):
        self._ids = ids
        self.group = group
        # The table's stored entries, as a request reads them: each entry's value, its
        # column (numpy's index type) and where each item's entries start. A cut gives
        # them as arrays and its ``weights`` matrix is only built when asked for.
        if weights is not None:
            self.weights = weights
            self.entry_data, self.indptr, self.shape = weights.data, weights.indptr, weights.shape
        elif entries is not None and shape is not None:
            self.entry_data, self.entry_columns, self.indptr = entries
            self.shape = shape
        else:
            raise ValueError("a taste table needs its weights or its entries and shape")
        # Per item, its decade and its normalised title as numbers (equal numbers, equal
        # labels): what the arc compares to keep a session diverse. A cut reads them from
        # its parent's (integers: no string objects touched per request).
        self.era_code = era_code
        self.title_code = title_code
        self._era = era
        self._title_key = title_key
        self.parent = parent
        self.parent_cols = parent_cols
        self.parent_rows = parent_rows

    @cached_property
    def era(self) -> np.ndarray:
        """Decade label per item ("" when unknown)."""
        return self._era if self._era is not None else self.parent.era[self.parent_rows]

    @cached_property
    def title_key(self) -> np.ndarray:
        """Normalised title per item, to spot near-duplicates."""
        return (self._title_key if self._title_key is not None
                else self.parent.title_key[self.parent_rows])

    @cached_property
    def ids(self) -> tuple[str, ...]:
        if self._ids is not None:
            return self._ids
        return tuple(self.parent.ids[j] for j in self.parent_cols)

    @cached_property
    def weights(self) -> sp.csr_matrix:
        """Items x attributes, 1 where an item has an attribute (of a cut: built here)."""
        return sp.csr_matrix((self.entry_data, self.entry_columns, self.indptr),
                             shape=self.shape)

    @cached_property
    def unit_entries(self) -> bool:
        """Whether every stored entry is 1 (an item has an attribute or not): a cut then
        needs no read of the parent's values, scattered over its table."""
        return bool(np.all(self.entry_data == 1.0))

    @cached_property
    def entry_columns(self) -> np.ndarray:
        """Each stored entry's attribute column, in numpy's index type."""
        return self.weights.indices.astype(np.intp)

    @cached_property
    def entry_cells(self) -> np.ndarray:
        """For each stored entry of ``weights``: its cell ``row * groups + group`` in an
        items x ``TASTE_GROUPS`` table (what :func:`taste_features` adds up into)."""
        rows = np.repeat(np.arange(self.shape[0], dtype=np.int64), np.diff(self.indptr))
        return rows * len(TASTE_GROUPS) + self.group[self.entry_columns]

    @cached_property
    def index(self) -> dict[str, int]:
        return {k: j for j, k in enumerate(self.ids)}

    def columns_of(self, keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """For attribute ``keys``: which of them these items have (positions into ``keys``)
        and their columns here."""
        if self.parent is None:
            found = [(i, self.index.get(k)) for i, k in enumerate(keys)]
            found = [(i, j) for i, j in found if j is not None]
            return (np.array([i for i, _ in found], dtype=np.int64),
                    np.array([j for _, j in found], dtype=np.int64))
        at, parent_cols = self.parent.columns_of(keys)
        hit, cols = self.from_parent_columns(parent_cols)
        return at[hit], cols

    def from_parent_columns(self, parent_cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Which of the parent's columns ``parent_cols`` these items use (a mask over them)
        and those columns' numbers here."""
        pos = np.searchsorted(self.parent_cols, parent_cols)
        pos = np.minimum(pos, max(len(self.parent_cols) - 1, 0))
        hit = (self.parent_cols[pos] == parent_cols) if len(self.parent_cols) else (
            np.zeros(len(parent_cols), dtype=bool))
        return hit, pos[hit]


def taste_attributes(matrix: ItemMatrix, vocabulary: Vocabulary | None = None) -> TasteAttributes:
    """The matrix's :class:`TasteAttributes` (cached on the matrix)."""
    cached = matrix.extra.get("taste_attributes")
    if cached is not None:
        return cached
    vocabulary = vocabulary or default_vocabulary()
    parent = matrix.extra.get("parent")
    if parent is not None and len(parent) <= CUT_FROM_CATALOGUE_UP_TO:
        built = _subset_attributes(taste_attributes(parent, vocabulary),
                                   matrix.extra["parent_rows"])
        matrix.extra["taste_attributes"] = built
        return built
    ids, groups, weights = taste_attribute_table(matrix, vocabulary)
    titles = item_title_keys(matrix)
    built = TasteAttributes(ids, groups, weights, item_era_codes(matrix), title_codes(titles),
                            era=item_eras(matrix), title_key=titles)
    matrix.extra["taste_attributes"] = built
    return built


def _subset_attributes(full: TasteAttributes, rows: np.ndarray) -> TasteAttributes:
    """The attributes of the items at ``rows``, cut from the whole catalogue's table.

    The same table :func:`taste_attribute_table` builds for those items alone (the keys
    they use, in sorted order), without building it again for every request's candidates:
    the whole catalogue's table is built once per catalogue revision.
    """
    # The rows' entries and the attributes they use, renumbered in sorted order, in one
    # compiled pass (recommender/taste_kernel.py). Kept as arrays: scipy's constructor
    # checks cost more than the cut (its matrix is built only if someone asks for it).
    parent = full.weights
    indptr, columns, used, at = cut_rows(parent.indptr, parent.indices, parent.shape[1], rows)
    data = np.ones(len(at)) if full.unit_entries else parent.data[at]
    return TasteAttributes(None, full.group[used], None, full.era_code[rows],
                           full.title_code[rows], entries=(data, columns, indptr),
                           shape=(len(rows), len(used)), parent=full, parent_cols=used,
                           parent_rows=rows)


def taste_features(matrix: ItemMatrix, deviation: np.ndarray) -> np.ndarray:
    """One row of ``TASTE_FEATURES`` per item from a per-attribute deviation vector."""
    attrs = taste_attributes(matrix)
    n, n_groups = attrs.shape[0], len(TASTE_GROUPS)
    # out[i, g] = sum of weights[i, a] * deviation[a] over the attributes a of group g.
    cell = attrs.entry_cells
    values = attrs.entry_data * np.asarray(deviation, dtype=np.float64)[attrs.entry_columns]
    out = np.bincount(cell, weights=values, minlength=n * n_groups)
    return out.reshape(n, n_groups).astype(np.float32)


def posterior(matrix: ItemMatrix, stats: Stats) -> tuple[np.ndarray, np.ndarray]:
    """Per-attribute weighted reward sums and counts, aligned with ``matrix.attribute_ids``."""
    attrs = taste_attributes(matrix)
    n_attr = attrs.shape[1]
    s = np.zeros(n_attr)
    n = np.zeros(n_attr)
    if stats:
        cols, entries = _columns_and_entries(attrs, stats)
        s[cols] = np.maximum(entries[:, 0], 0.0)
        n[cols] = np.maximum(entries[:, 1], 0.0)
    return s, n


def _columns_and_entries(attrs: TasteAttributes, stats: Stats
                         ) -> tuple[np.ndarray, np.ndarray]:
    """The columns of ``attrs`` the person's keys name, and those keys' [reward sum, count].

    Worked out on the catalogue's table (the candidates' table is cut from it) and kept in
    the stats' memo while the same stored stats and the same table are in use."""
    root = attrs.parent if attrs.parent is not None else attrs

    def work() -> tuple[np.ndarray, np.ndarray]:
        keys = list(stats)
        at, root_cols = root.columns_of(keys)
        entries = np.array([stats[k][:2] for k in keys], dtype=np.float64).reshape(-1, 2)
        return root_cols, entries[at]

    root_cols, entries = remembered(stats, "columns", root, work)
    if attrs is root:
        return root_cols, entries
    hit, cols = attrs.from_parent_columns(root_cols)
    return cols, entries[hit]


def deviation(
    matrix: ItemMatrix, stats: Stats, *, exploration: str = "familiar",
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """The person's taste per attribute as log-odds above the prior, Thompson-sampled.

    ``familiar`` uses the posterior mean; ``balanced`` and ``discover`` draw from each
    attribute's Beta posterior, tempered towards the mean (wider for ``discover``), so rarely
    tried themes, eras and makers get their chance while well-known favourites stay likely.
    """
    return deviations(matrix, stats, exploration=exploration, rng=rng)[1]


def deviations(
    matrix: ItemMatrix, stats: Stats, *, exploration: str = "familiar",
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The posterior-mean :func:`deviation` and the Thompson-sampled one for
    ``exploration`` (the same array when it draws nothing), from one read of the posterior."""
    s, n = posterior(matrix, stats)
    alpha = PRIOR_STRENGTH * PRIOR_MEAN + s
    beta = PRIOR_STRENGTH * (1.0 - PRIOR_MEAN) + np.maximum(n - s, 0.0)
    mean = alpha / (alpha + beta)
    mean_deviation = _logit(mean) - _logit(PRIOR_MEAN)
    temperature = EXPLORATION_TEMPERATURE.get(exploration, 0.3)
    if not temperature or rng is None:
        return mean_deviation, mean_deviation
    # Attributes the person never met are all at the prior: their draws come from a pool of
    # prior draws (a window at a random offset); only those with evidence are drawn afresh.
    draws = _prior_draws(rng, len(mean))
    met = np.flatnonzero(n > 0)
    draws[met] = rng.beta(alpha[met], beta[met])
    drawn = mean + temperature * (draws - mean)
    return mean_deviation, _logit(drawn) - _logit(PRIOR_MEAN)


PRIOR_DRAW_POOL = 1 << 18
_prior_pool: np.ndarray | None = None


def _prior_draws(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` independent draws from the prior Beta, as a fresh array: a window of a pool
    drawn once per process, at an offset ``rng`` picks (a Beta draw costs about a
    microsecond, and a request's candidates have thousands of attributes)."""
    global _prior_pool
    if _prior_pool is None:
        _prior_pool = np.random.default_rng(PRIOR_DRAW_POOL).beta(
            PRIOR_STRENGTH * PRIOR_MEAN, PRIOR_STRENGTH * (1.0 - PRIOR_MEAN), PRIOR_DRAW_POOL)
    if n > PRIOR_DRAW_POOL:
        return rng.beta(PRIOR_STRENGTH * PRIOR_MEAN, PRIOR_STRENGTH * (1.0 - PRIOR_MEAN), n)
    start = int(rng.integers(0, PRIOR_DRAW_POOL))
    return np.take(_prior_pool, np.arange(start, start + n), mode="wrap")


def _logit(p):
    p = np.clip(p, 0.02, 0.98)
    return np.log(p / (1.0 - p))


def deviation_from_sums(reward_sum: np.ndarray, weight_sum: np.ndarray) -> np.ndarray:
    """Posterior-mean log-odds above the prior from weighted reward sums and counts."""
    alpha = PRIOR_STRENGTH * PRIOR_MEAN + np.maximum(reward_sum, 0.0)
    return _logit(alpha / (PRIOR_STRENGTH + np.maximum(weight_sum, 0.0))) - _logit(PRIOR_MEAN)


def liked_attributes(stats: Stats, groups: Sequence[str]) -> dict[str, dict[str, float]]:
    """Per group (``theme``, ``maker``...), the attributes the person's reactions lifted
    above the prior, with their posterior-mean deviation (log-odds above the prior): the
    themes and makers they cried at or were moved by more than an unrated one promises."""
    prefixes = tuple(g + ":" for g in groups)
    keys = [k for k, entry in stats.items() if entry[0] > 0 and k.startswith(prefixes)]
    liked: dict[str, dict[str, float]] = {g: {} for g in groups}
    if not keys:
        return liked
    sums = np.array([stats[k][:2] for k in keys], dtype=np.float64).reshape(-1, 2)
    for key, dev in zip(keys, deviation_from_sums(sums[:, 0], sums[:, 1]), strict=True):
        if dev > 0:
            group, _, value = key.partition(":")
            liked[group][value] = float(dev)
    return liked


def counts(stats: Stats, key: str) -> tuple[int, int]:
    """How many times the person cried at, and was moved by, items with ``key``."""
    entry = stats.get(key)
    if not entry:
        return 0, 0
    return round(entry[2]), round(entry[3])
