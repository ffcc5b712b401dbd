"""A person's taste, learned online from their graded reactions and kept in the database.

Each person has their own Bayesian logistic regression over the taste attributes of what they
rated (each theme and mood an item carries, its maker, its era, its kind, and the item itself;
see :func:`recommender.features.attribute_keys`): the log-odds that an item reaches them is
their base rate plus one weight per attribute the item has. It is fitted to

* graded outcomes: ``cried`` (1.0) > ``moved`` (0.7) > ``neutral`` (0.2) > ``skipped`` (0.0);
  ``never_again`` counts as a strong 0 (and bans the item elsewhere);
* the session's weight: a cathartic session (high ``catharsis``, mood lifted from before to
  after) counts more than a flat one;

with a Gaussian prior on every weight (an attribute nobody has rated stays at 0). Unlike adding
up reactions per attribute, a joint fit explains away what merely co-occurs: when someone cries
at songs about losing a parent that are also grieving, and skips other grieving songs, the
credit goes to the theme, not to the mood. The MAP fit (Newton's method, a few milliseconds for
hundreds of reactions) and a diagonal Laplace posterior (each weight's marginal variance) are
stored in the person's row (``person_tastes.model``); sessions draw each weight from it
(Thompson sampling, tempered by the request's exploration mode).

The row also keeps per-attribute reaction counts (``stats``: how often they cried at and were
moved by each attribute), which explanations quote. On every feedback :func:`apply_feedback`
updates the counts (taking back what earlier feedback for that session added) and refits the
model from the person's stored reactions, so feedback sent again replaces, never adds. Any
worker reads the same row, so a person's next session reflects their last feedback at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.special import expit
from sqlalchemy import select
from sqlalchemy.orm import Session

from recommender.features import (
    TASTE_GROUPS,
    ItemMatrix,
    attribute_keys,
    item_eras,
    item_title_keys,
    taste_attribute_table,
)
from recommender.store.models import (
    CatalogItem,
    Feedback,
    ItemTag,
    PersonTaste,
    Reaction,
    utcnow,
)
from recommender.vocabulary import Vocabulary, default_vocabulary

REWARD = {"cried": 1.0, "moved": 0.7, "neutral": 0.2, "skipped": 0.0, "never_again": 0.0}
WEIGHT = {"cried": 1.0, "moved": 1.0, "neutral": 0.5, "skipped": 1.0, "never_again": 2.0}
PRIOR_MEAN = 0.35       # what an item is expected to give someone new (their base rate)
PRIOR_STRENGTH = 2.0    # how many reactions' worth of evidence the counts' prior is
# The per-person model's Gaussian prior: an attribute's weight (log-odds) starts at 0 with
# this variance; the base rate starts at logit(PRIOR_MEAN) with a looser one.
WEIGHT_PRIOR_VAR = 1.0
BIAS_PRIOR_VAR = 4.0
# What one item does to a person beyond its themes, moods, maker, era and kind is a smaller,
# idiosyncratic effect: its own weight is held closer to 0, so a single reaction's credit
# goes to what the item shares with others (what can carry over to new items).
ITEM_PRIOR_VAR = 0.25
# How far a Thompson draw may stray from the posterior mean (in posterior standard
# deviations), per exploration mode.
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


@dataclass(frozen=True)
class Taste:
    """A person's stored taste: the reaction counts and the fitted model (see the module)."""

    stats: Stats
    model: dict | None = None   # {"bias": [mean, var], "weights": {key: [mean, var]}}

    def __bool__(self) -> bool:
        return bool(self.stats)


def load_stats(db: Session, user_id: str) -> Stats:
    row = db.get(PersonTaste, user_id)
    return dict(row.stats) if row is not None else {}


def load_taste(db: Session, user_id: str) -> Taste:
    row = db.get(PersonTaste, user_id)
    if row is None:
        return Taste({})
    return Taste(dict(row.stats or {}), row.model)


def apply_feedback(
    db: Session, user_id: str, *,
    previous: Sequence[RatedItem], previous_weight: float,
    current: Sequence[RatedItem], current_weight: float,
) -> None:
    """Replace a session's earlier contribution to the person's counts with its new one, and
    refit their model from every reaction they have stored (this one's included).

    Runs inside the caller's transaction (the caller commits; the reactions must be stored
    first).
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
    row.model = model_from_reactions(stored_reactions(db, user_id))
    row.updated_at = utcnow()


@dataclass(frozen=True)
class WeightedReaction:
    """One stored reaction with its item's attribute keys and its session's weight."""

    keys: Sequence[str]
    reaction: str
    weight: float


def stored_reactions(db: Session, user_id: str) -> list[WeightedReaction]:
    """Every reaction the person has stored, in a stable order, ready for :func:`fit_taste`.

    Three reads: the reactions with their session's feedback, then the kind, maker, year and
    tags of the items they were about.
    """
    got = db.execute(
        select(Reaction.item_id, Reaction.reaction, Feedback.catharsis, Feedback.mood_before,
               Feedback.mood_after)
        .join(Feedback, Feedback.session_id == Reaction.session_id, isouter=True)
        .where(Reaction.user_id == user_id)
        .order_by(Reaction.session_id, Reaction.id)).all()
    if not got:
        return []
    ids = {r.item_id for r in got}
    tags: dict[str, list[str]] = {}
    for item_id, tag in db.execute(
        select(ItemTag.item_id, ItemTag.tag).where(ItemTag.item_id.in_(ids))
        .order_by(ItemTag.item_id, ItemTag.position)
    ):
        tags.setdefault(item_id, []).append(tag)
    vocabulary = default_vocabulary()
    keys = {
        item_id: attribute_keys(item_id, kind, tags.get(item_id, ()), artist, director, year,
                                vocabulary)
        for item_id, kind, artist, director, year in db.execute(
            select(CatalogItem.id, CatalogItem.kind, CatalogItem.artist,
                   CatalogItem.director, CatalogItem.year).where(CatalogItem.id.in_(ids)))
    }
    weights: dict[tuple, float] = {}
    out = []
    for r in got:
        if r.item_id in keys and r.reaction in REWARD:
            how = (r.catharsis, r.mood_before, r.mood_after)
            if how not in weights:
                weights[how] = session_weight(*how)
            out.append(WeightedReaction(keys[r.item_id], r.reaction, weights[how]))
    return out


@dataclass(frozen=True)
class TasteFit:
    """The MAP weights of a person's model and their marginal posterior variances."""

    bias: float
    bias_var: float
    mean: np.ndarray
    var: np.ndarray


def fit_taste(design, reward_sum: np.ndarray, weight_sum: np.ndarray,
              start: np.ndarray | None = None,
              prior_var: np.ndarray | None = None) -> TasteFit:
    """The person's Bayesian logistic regression over attributes, fitted by Newton's method.

    ``design`` (reactions x attributes, 0/1, sparse or dense) says which attributes each
    reacted-to item has; ``reward_sum`` and ``weight_sum`` are each reaction's weighted graded
    target and weight (a graded target t with weight w counts as w*t cries in w tries).
    Returns the MAP and the diagonal Laplace posterior's variances (one over the Hessian's
    diagonal at the MAP, as in Chapelle and Li's Thompson sampling for logistic models).
    ``start`` (bias first, then weights) only speeds convergence; ``prior_var`` is each
    weight's prior variance (default :data:`WEIGHT_PRIOR_VAR`; see :func:`prior_variances`).
    The Hessian is sparse (an item has a handful of attributes), so each Newton step is a
    sparse solve: milliseconds for hundreds of reactions and attributes.
    """
    X = sp.csr_matrix(design, dtype=np.float64)
    X.sort_indices()
    n, d = X.shape
    # [1 | X]: a leading column of ones for the base rate, built straight into CSR arrays.
    lengths = np.diff(X.indptr)
    starts = X.indptr[:-1] + np.arange(n)
    indices = np.empty(X.nnz + n, dtype=np.int64)
    data = np.empty(X.nnz + n)
    indices[starts], data[starts] = 0, 1.0
    rest = np.ones(X.nnz + n, dtype=bool)
    rest[starts] = False
    indices[rest], data[rest] = X.indices + 1, X.data
    A = sp.csr_matrix((data, indices, np.r_[0, np.cumsum(lengths + 1)]), shape=(n, d + 1))
    At = A.T.tocsr()
    At_squared = At.multiply(At).tocsr()
    T = np.asarray(reward_sum, dtype=np.float64)
    N = np.asarray(weight_sum, dtype=np.float64)
    prior = np.zeros(d + 1)
    prior[0] = _logit(PRIOR_MEAN)
    precision = np.empty(d + 1)
    precision[1:] = 1.0 / (WEIGHT_PRIOR_VAR if prior_var is None else prior_var)
    precision[0] = 1.0 / BIAS_PRIOR_VAR
    w = prior.copy() if start is None else np.asarray(start, dtype=np.float64).copy()

    def objective(v):
        z = A @ v
        # -log-likelihood of graded targets (N*log(1+e^z) - T*z), plus the prior's
        return float(N @ np.logaddexp(0.0, z) - T @ z
                     + 0.5 * (precision * (v - prior) ** 2).sum())

    current = objective(w)
    for _ in range(100):
        p = expit(A @ w)
        curvature = N * p * (1.0 - p)
        gradient = At @ (N * p - T) + precision * (w - prior)
        if np.max(np.abs(gradient)) < 1e-10:
            break
        # The Newton step by conjugate gradients on Hessian-vector products (the Hessian,
        # A' diag(curvature) A + diag(precision), is never formed), preconditioned by its
        # diagonal ((A*A)' curvature + precision).
        step = _conjugate_gradients(
            lambda v, c=curvature: At @ (c * (A @ v)) + precision * v,
            At_squared @ curvature + precision, gradient)
        t = 1.0
        while True:  # the objective is strictly convex: halve the step until it does not rise
            candidate = w - t * step
            value = objective(candidate)
            if value <= current + 1e-9 * max(1.0, abs(current)) or t < 1e-4:
                break
            t *= 0.5
        w, current = candidate, value
        if np.max(np.abs(t * step)) < 1e-9:
            break
    p = expit(A @ w)
    var = 1.0 / (At_squared @ (N * p * (1.0 - p)) + precision)
    return TasteFit(bias=float(w[0]), bias_var=float(var[0]), mean=w[1:], var=var[1:])


def prior_variances(keys: Iterable[str]) -> np.ndarray:
    """Each attribute's prior variance: :data:`ITEM_PRIOR_VAR` for an item's own key."""
    return np.array([ITEM_PRIOR_VAR if k.startswith("item:") else WEIGHT_PRIOR_VAR
                     for k in keys])


def _conjugate_gradients(product, diagonal: np.ndarray, b: np.ndarray,
                         rtol: float = 1e-11) -> np.ndarray:
    """Solve ``H x = b`` for a positive definite ``H`` given as ``product(v) = H v``
    (conjugate gradients, preconditioned by ``H``'s ``diagonal``)."""
    inverse_diagonal = 1.0 / diagonal
    x = np.zeros_like(b)
    r = b.copy()
    z = r * inverse_diagonal
    p = z.copy()
    rz = r @ z
    stop = rtol * np.linalg.norm(b)
    for _ in range(10 * len(b)):
        Hp = product(p)
        alpha = rz / (p @ Hp)
        x += alpha * p
        r -= alpha * Hp
        if np.linalg.norm(r) <= stop:
            break
        z = r * inverse_diagonal
        rz, previous = r @ z, rz
        p = z + (rz / previous) * p
    return x


def model_from_reactions(reactions: Sequence[WeightedReaction]) -> dict | None:
    """A person's fitted model, as stored (None when they have rated nothing)."""
    if not reactions:
        return None
    keys = sorted({k for r in reactions for k in r.keys})
    column = {k: j for j, k in enumerate(keys)}
    rows = np.repeat(np.arange(len(reactions)), [len(r.keys) for r in reactions])
    cols = np.fromiter((column[k] for r in reactions for k in r.keys), dtype=np.int64,
                       count=len(rows))
    design = sp.csr_matrix((np.ones(len(rows)), (rows, cols)),
                           shape=(len(reactions), len(keys)))
    design.sum_duplicates()
    design.data[:] = 1.0
    weight = np.array([WEIGHT[r.reaction] * r.weight for r in reactions])
    reward = np.array([REWARD[r.reaction] for r in reactions]) * weight
    fit = fit_taste(design, reward, weight, prior_var=prior_variances(keys))
    return {"bias": [fit.bias, fit.bias_var],
            "weights": {k: [float(m), float(v)]
                        for k, m, v in zip(keys, fit.mean, fit.var, strict=True)}}


# Up to this many catalogue items, a request's candidates have their taste attributes cut
# from the whole catalogue's table (kept per worker, built once per catalogue revision:
# ~3 ms less per request, ~35-95 MiB more per worker at 100k items). Above it the table is
# built for the candidates alone on every request, so a worker's memory stays bounded at 1M.
CUT_FROM_CATALOGUE_UP_TO = 300_000


@dataclass(frozen=True)
class TasteAttributes:
    """The catalogue's items over taste attributes, built once per matrix.

    ``weights[i, a]`` is 1 when item i has attribute a, so ``weights @ D`` adds up a
    per-attribute value within each group (taste is additive: two loved themes count twice).
    """

    ids: tuple[str, ...]
    index: dict[str, int]
    group: np.ndarray
    weights: sp.csr_matrix
    era: np.ndarray        # decade label per item ("" when unknown)
    title_key: np.ndarray  # normalised title per item, to spot near-duplicates
    prior_var: np.ndarray | None = None  # per attribute, the taste model's prior variance


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
    built = TasteAttributes(
        ids=ids, index={k: j for j, k in enumerate(ids)}, group=groups, weights=weights,
        era=item_eras(matrix), title_key=item_title_keys(matrix),
    )
    matrix.extra["taste_attributes"] = built
    return built


def _subset_attributes(full: TasteAttributes, rows: np.ndarray) -> TasteAttributes:
    """The attributes of the items at ``rows``, cut from the whole catalogue's table.

    The same table :func:`taste_attribute_table` builds for those items alone (the keys
    they use, in sorted order), without building it again for every request's candidates:
    the whole catalogue's table is built once per catalogue revision.
    """
    cut = full.weights[rows]
    used = np.unique(cut.indices)
    weights = sp.csr_matrix((cut.data, np.searchsorted(used, cut.indices), cut.indptr),
                            shape=(len(rows), len(used)))
    ids = tuple(full.ids[j] for j in used)
    return TasteAttributes(ids=ids, index={k: j for j, k in enumerate(ids)},
                           group=full.group[used], weights=weights, era=full.era[rows],
                           title_key=full.title_key[rows])


def taste_features(matrix: ItemMatrix, deviation: np.ndarray) -> np.ndarray:
    """One row of ``TASTE_FEATURES`` per item from a per-attribute deviation vector."""
    attrs = taste_attributes(matrix)
    n_attr = len(attrs.ids)
    D = sp.csr_matrix((deviation, (np.arange(n_attr), attrs.group)),
                      shape=(n_attr, len(TASTE_GROUPS)))
    return np.asarray((attrs.weights @ D).todense(), dtype=np.float32)


def attribute_prior_variances(attrs: TasteAttributes) -> np.ndarray:
    """:func:`prior_variances` for every attribute of the table (kept with it)."""
    if attrs.prior_var is None:
        object.__setattr__(attrs, "prior_var", np.where(
            attrs.group == TASTE_GROUPS.index("item"), ITEM_PRIOR_VAR, WEIGHT_PRIOR_VAR))
    return attrs.prior_var.copy()


def model_posterior(matrix: ItemMatrix, model: dict | None) -> tuple[np.ndarray, np.ndarray]:
    """Per-attribute posterior means and variances, aligned with the matrix's attributes
    (attributes the person never rated: mean 0 and the prior's variance)."""
    attrs = taste_attributes(matrix)
    mean = np.zeros(len(attrs.ids))
    var = attribute_prior_variances(attrs)
    for key, (m, v) in ((model or {}).get("weights") or {}).items():
        j = attrs.index.get(key)
        if j is not None:
            mean[j], var[j] = m, v
    return mean, var


def deviation(
    matrix: ItemMatrix, taste: Taste | Stats, *, exploration: str = "familiar",
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """The person's taste per attribute: their model's weight (log-odds), Thompson-sampled.

    ``familiar`` uses the posterior mean; ``balanced`` and ``discover`` draw each weight from
    its Laplace posterior, tempered towards the mean (wider for ``discover``), so rarely
    tried themes, eras and makers get their chance while well-known favourites stay likely.
    """
    model = taste.model if isinstance(taste, Taste) else None
    mean, var = model_posterior(matrix, model)
    temperature = EXPLORATION_TEMPERATURE.get(exploration, 0.3)
    if temperature and rng is not None:
        mean = mean + temperature * np.sqrt(var) * rng.standard_normal(len(mean))
    return mean


def _logit(p):
    p = np.clip(p, 0.02, 0.98)
    return np.log(p / (1.0 - p))


def counts(taste: Taste | Stats, key: str) -> tuple[int, int]:
    """How many times the person cried at, and was moved by, items with ``key``."""
    stats = taste.stats if isinstance(taste, Taste) else taste
    entry = stats.get(key)
    if not entry:
        return 0, 0
    return round(entry[2]), round(entry[3])
