"""Building, storing and rating cry sessions: the walk of one request through the rooms."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import orjson
from sqlalchemy import Text, bindparam, cast, delete, insert, select, update
from sqlalchemy.orm import Session, selectinload

from recommender import learning, tastes
from recommender.care import care_document, screen_memory, screen_request
from recommender.errors import InvalidInput, NotFound
from recommender.features import (
    CONTENT_FEATURES,
    PAIR_FEATURES,
    ItemMatrix,
    ItemRecord,
    ItemRecords,
    RequestVector,
    SessionRequest,
    attribute_keys,
    pair_features,
)
from recommender.matrix_cache import cached_matrix, default_cache_dir
from recommender.prompts import MemoryCard, PromptSlot, pair_prompts
from recommender.ranker import CryRanker
from recommender.retrieval import narrow_to_candidates, ranking_vector
from recommender.session import assemble
from recommender.shown import note_session, shown_to
from recommender.store.catalog import catalog_revision, count_items
from recommender.store.db import one_writer
from recommender.store.models import (
    Ban,
    CatalogItem,
    CrySession,
    Feedback,
    ItemTag,
    Memory,
    Reaction,
    SessionItem,
    User,
    iso,
    new_id,
    utcnow,
)
from recommender.store.prepared import Prepared
from recommender.vocabulary import Vocabulary, default_vocabulary

log = logging.getLogger(__name__)

# The session request's reads and writes, built once and run on the driver's cursor
# (recommender/store/prepared.py): SQLAlchemy's own run of each costs more than SQLite takes.
_SESSIONS, _ITEMS = CrySession.__table__, SessionItem.__table__
_BANS_OF = Prepared(select(Ban.__table__.c.item_id)
                    .where(Ban.__table__.c.user_id == bindparam("user")))
_JOURNAL_SINCE = Prepared(select(Feedback.__table__.c.note)
                          .where(Feedback.__table__.c.user_id == bindparam("user"),
                                 Feedback.__table__.c.updated_at >= bindparam("since"),
                                 Feedback.__table__.c.note.is_not(None)))
# A person's memories, their lists (tags, people, places) as the JSON text stored: read by
# _listed, not by the JSON type's standard-library decoder.
_MEMORIES_OF = Prepared(
    select(Memory.__table__.c.id, Memory.__table__.c.title, Memory.__table__.c.text,
           cast(Memory.__table__.c.tags, Text), cast(Memory.__table__.c.people, Text),
           cast(Memory.__table__.c.places, Text), Memory.__table__.c.when_text)
    .where(Memory.__table__.c.user_id == bindparam("user"))
    .order_by(Memory.__table__.c.created_at))
_INSERT_SESSION = Prepared(insert(_SESSIONS), columns=(
    "id", "user_id", "created_at", "model_version", "request", "moods", "themes",
    "total_duration_s", "care"))
_INSERT_ITEMS = Prepared(insert(_ITEMS), columns=(
    "session_id", "user_id", "position", "item_id", "phase", "technique", "prompt_text",
    "memory_id", "why", "score"))

REACTIONS = ("cried", "moved", "neutral", "skipped", "never_again")
# A small tie-breaking jitter per exploration mode (the real exploration is the Thompson
# draw over the person's taste in recommender/tastes.py), and a bonus for never-shown items.
EXPLORATION_NOISE = {"familiar": 0.0, "balanced": 0.05, "discover": 0.15}
DISCOVER_UNSEEN_BONUS = 0.5


class Recommender:
    """Per-process caches of the item matrix and the served model, refreshed from the store.

    Nothing about a person is kept here: per-person state is read from the database on every
    request, so any worker serves a person the same way.
    """

    def __init__(self, vocabulary: Vocabulary | None = None, model_check_s: float = 2.0,
                 matrix_cache: Path | None = None, unservable_retry_s: float = 300.0):
        self.vocabulary = vocabulary or default_vocabulary()
        self.matrix_cache = matrix_cache or default_cache_dir()
        self.model_check_s = model_check_s
        # An active version that failed to load is not read again (artefacts and a logged
        # warning every few seconds) until this long has passed or a new version is active.
        self.unservable_retry_s = unservable_retry_s
        self._unservable: tuple[str, float] | None = None
        self._lock = threading.Lock()
        self._matrix: ItemMatrix | None = None
        self._count: tuple[int, int] | None = None
        self._model: tuple[str, CryRanker] | None = None
        self._model_checked_at = 0.0

    def matrix(self, db: Session) -> ItemMatrix:
        """The catalogue's matrix, rebuilt (or mapped from its artefact) when it changes."""
        revision = catalog_revision(db)
        if self._matrix is None or self._matrix.revision != revision:
            with self._lock:
                if self._matrix is None or self._matrix.revision != revision:
                    # While another process builds the new catalogue's artefact (an import
                    # of a large file), keep serving the previous matrix rather than wait.
                    fresh = cached_matrix(db, self.vocabulary, self.matrix_cache,
                                          wait=self._matrix is None)
                    if fresh is not None:
                        self._matrix = fresh
        return self._matrix

    def catalog_items(self, db: Session) -> int:
        """How many items the shared catalogue holds, counted once per catalogue revision."""
        revision = catalog_revision(db)
        if self._count is None or self._count[0] != revision:
            self._count = (revision, count_items(db))
        return self._count[1]

    def model(self, db: Session) -> tuple[str, CryRanker]:
        now = time.monotonic()
        if self._model is not None and now - self._model_checked_at < self.model_check_s:
            return self._model
        active = learning.active_version_name(db)
        if (self._model is None or self._model[0] != active) and not self._known_unservable(
                active, now):
            loaded = learning.load_servable(db)
            if loaded is None:
                loaded = self._train_content_model(db)
            self._model = loaded
            self._unservable = (active, now) if active and loaded[0] != active else None
        self._model_checked_at = now
        return self._model

    def _known_unservable(self, active: str | None, now: float) -> bool:
        """Whether `active` already failed to load here, recently enough not to try again."""
        return (self._model is not None and self._unservable is not None
                and self._unservable[0] == active
                and now - self._unservable[1] < self.unservable_retry_s)

    def _train_content_model(self, db: Session) -> tuple[str, CryRanker]:
        ranker, sidecar = learning.fit_ranker(None, self.matrix(db), self.vocabulary)
        version = learning.save_version(db, ranker, sidecar)
        log.info("trained the content model %s", version)
        return version, ranker

    def forget_model(self) -> None:
        self._model = None
        self._unservable = None


@dataclass(frozen=True)
class FeedbackInput:
    reactions: Sequence[tuple[str, str]]
    catharsis: int | None = None
    mood_before: int | None = None
    mood_after: int | None = None
    note: str | None = None


def _history(db: Session, user_id: str, *, with_shown: bool
             ) -> tuple[tastes.Stats, set[str], set[str] | None]:
    """A person's learned taste (from the database), their bans, and the items they were
    shown (only read when ``with_shown``: a ``discover`` request lifts the never-shown)."""
    stats = tastes.load_stats(db, user_id)
    bans = set(_BANS_OF.scalars(db, {"user": user_id}))
    shown = shown_to(db, user_id).all() if with_shown else None
    return stats, bans, shown


@dataclass
class ScoredCatalogue:
    """Every catalogue row scored for one person and request, with what drove each score."""

    scores: np.ndarray
    contributions: np.ndarray   # per row, per PAIR_FEATURES column
    explored: np.ndarray        # per row: how much exploration (not the mean taste) added
    vec: object
    stats: tastes.Stats
    bans: set[str]
    shown: set[str] | None   # read only for ``discover``


def score_catalogue(
    db: Session, matrix: ItemMatrix, ranker: CryRanker, vocabulary: Vocabulary, user_id: str,
    request: SessionRequest, rng: np.random.Generator, vec: RequestVector | None = None,
    history: tuple[tastes.Stats, set[str], set[str] | None] | None = None,
) -> ScoredCatalogue:
    """The shared model's score for every item, given this request and this person's taste.

    The person's taste enters as features (their posterior taste for the item's themes,
    moods, maker, era, kind and the item itself), Thompson-sampled unless the request asks
    for ``familiar``; ``discover`` also lifts items the person was never shown.
    """
    vec = vec if vec is not None else ranking_vector(request, matrix, vocabulary)
    stats, bans, shown = history or _history(db, user_id,
                                             with_shown=request.exploration == "discover")
    draws = not (request.exploration == "familiar"
                 or (not stats and request.exploration == "balanced"))
    if not stats and not draws:
        # Someone new: every taste feature is 0 (the posterior mean is the prior).
        X = X_drawn = pair_features(matrix, vec)
    else:
        mean, drawn = tastes.deviations(matrix, stats, exploration=request.exploration,
                                        rng=rng if draws else None)
        X = pair_features(matrix, vec, taste=tastes.taste_features(matrix, mean))
        X_drawn = X
        if draws:
            # The same request features; only the taste columns are the drawn ones.
            X_drawn = X.copy(order="F")
            X_drawn[:, len(CONTENT_FEATURES):] = tastes.taste_features(matrix, drawn)
    scores = ranker.score_items(X_drawn).astype(np.float64)
    explored = scores - ranker.score_items(X)
    noise = EXPLORATION_NOISE.get(request.exploration, 0.05)
    if noise:
        scores += rng.gumbel(0.0, noise, size=len(scores))
    if request.exploration == "discover" and shown:
        unseen = np.fromiter((item_id not in shown for item_id in _ids_of(matrix)),
                             dtype=bool, count=len(matrix))
        scores += DISCOVER_UNSEEN_BONUS * unseen
        explored += DISCOVER_UNSEEN_BONUS * unseen
    return ScoredCatalogue(scores, ranker.contributions(X), explored, vec, stats, bans, shown)


JOURNAL_SCREEN_WINDOW = timedelta(hours=24)


def _recent_journal_notes(db: Session, user_id: str) -> list[str]:
    """Journal notes written in the last day: what a person wrote then still counts now."""
    since = utcnow() - JOURNAL_SCREEN_WINDOW
    return [note for note in _JOURNAL_SINCE.scalars(db, {"user": user_id, "since": since})
            if note]


_NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def _times(n: int) -> str:
    return _NUMBER_WORDS[n] if n < len(_NUMBER_WORDS) else str(n)


def _taste_reason(
    group: str, rec: ItemRecord, stats: tastes.Stats, vocabulary: Vocabulary,
    item_keys: list[str] | None = None,
) -> str | None:
    """A person's own history behind a taste feature, in their words (None if too thin)."""
    kinds = "films" if rec.kind == "film" else "songs"
    if group == "item":
        cried, moved = tastes.counts(stats, f"item:{rec.id}")
        if cried:
            return "it made you cry before"
        return "it moved you before" if moved else None
    if item_keys is None:
        item_keys = attribute_keys(rec.id, rec.kind, rec.tags, rec.artist, rec.director,
                                   rec.year, vocabulary)
    keys = [k for k in item_keys if k.startswith(group + ":")]
    own_cried, own_moved = tastes.counts(stats, f"item:{rec.id}")
    best: tuple[int, int, str] | None = None
    for key in keys:
        cried, moved = tastes.counts(stats, key)
        cried, moved = cried - own_cried, moved - own_moved
        if cried > 0 or moved > 0:
            candidate = (cried, moved, key)
            if best is None or candidate[:2] > best[:2]:
                best = candidate
    if best is None:
        return None
    cried, moved, key = best
    value = key.split(":", 1)[1]
    if group == "theme":
        what = f"about {vocabulary.label(value).lower()}"
    elif group == "mood":
        what = f"of {vocabulary.label(value).lower()}"
    elif group == "maker":
        what = f"by {rec.artist or rec.director}"
    elif group == "era":
        what = f"from the {value}"
    else:
        what = ""
        kinds = "films" if value == "film" else "songs"
    if cried:
        return f"you cried at {_times(cried)} other {kinds} {what}".rstrip()
    return f"{_times(moved)} other {kinds} {what} moved you".replace("  ", " ")


def _why(
    rec: ItemRecord, phase: str, contributions: np.ndarray, vec, vocabulary: Vocabulary,
    stats: tastes.Stats, explored: float, is_new: bool, exploration: str,
    order: Sequence[int],
) -> str:
    """Name what actually drove an item's place, in a person's words.

    The reasons follow the item's largest positive feature contributions to its score (the
    person's taste for its theme, maker, era..., the request's moods, themes and words), then
    its phase, then whether exploration rather than the known taste brought it in. ``order``
    is ``np.argsort(-contributions)`` (the caller sorts every chosen item's at once).
    """
    reasons: list[str] = []
    item_keys: list[str] | None = None
    for j in order[:3]:
        if contributions[j] <= 0.05:
            continue
        name = PAIR_FEATURES[j]
        if name.startswith("taste_"):
            if item_keys is None:
                item_keys = attribute_keys(rec.id, rec.kind, rec.tags, rec.artist,
                                           rec.director, rec.year, vocabulary)
            reason = _taste_reason(name.removeprefix("taste_"), rec, stats, vocabulary,
                                   item_keys)
            if reason:
                reasons.append(reason)
        elif name == "mood_match" and (matched := [
                vocabulary.label(t) for t in rec.tags if t in vec.mood_ids]):
            reasons.append("matches " + " and ".join(f"'{m.lower()}'" for m in matched[:2]))
        elif name == "theme_match" and (matched := [
                vocabulary.label(t) for t in rec.tags if t in vec.theme_ids]):
            reasons.append("about " + " and ".join(t.lower() for t in matched[:2]))
        elif name == "text_match" and contributions[j] > 0.1:
            reasons.append("close to the words you wrote")
        elif name == "intensity_fit" and not reasons:
            reasons.append("at the intensity you asked for")
    if phase == "aftercare":
        reasons = ["a gentle lift to close the session", *reasons[:1]]
    elif phase == "settle":
        reasons.append("a soft way in")
    elif rec.kind == "film":
        reasons.append("a film that fits your time as the centrepiece")
    if (is_new and phase != "aftercare"
            and (explored > 0.25 or (exploration == "discover" and explored > 0))):
        reasons.append("something new to try")
    text = "; ".join(dict.fromkeys(reasons)) or "a well-loved tear-jerker"
    return text[0].upper() + text[1:] + "."


def _ids_of(matrix: ItemMatrix) -> list[str]:
    """The item ids of ``matrix``'s rows, in row order."""
    if isinstance(matrix.records, ItemRecords):
        return [item_id.decode("utf-8") for item_id in matrix.records.ids.tolist()]
    return [record.id for record in matrix.records]


def _listed(stored: str | None) -> tuple[str, ...]:
    """A memory's list (tags, people or places) from its stored JSON text. orjson reads such
    a short list of strings in a fifth of the standard library's time, to the same strings;
    what it refuses (text with a lone surrogate), the standard library reads."""
    if not stored:
        return ()
    try:
        values = orjson.loads(stored)
    except orjson.JSONDecodeError:
        values = json.loads(stored)
    return tuple(values or ())


_generators = threading.local()


def _thread_generator() -> np.random.Generator:
    """This thread's random generator, seeded from the system's entropy once per thread and
    process (a forked worker makes its own: a copy of its parent's would draw the same).
    ``np.random.default_rng()`` gathers fresh entropy and hashes it at every call, 9 us, which
    a session paid twice."""
    held = getattr(_generators, "held", None)
    if held is None or held[0] != os.getpid():
        held = _generators.held = (os.getpid(), np.random.default_rng())
    return held[1]


def create_session_document(
    db: Session, rec: Recommender, user_id: str, request: SessionRequest, *, seed: int | None = None
) -> dict:
    """Build a cry session for ``user_id`` from ``request``, store it, and return its document
    (the contract's session document, the same a later read gives)."""
    vocabulary = rec.vocabulary
    # What the session reads is read first, one statement after another: a statement run
    # after the work on the catalogue finds SQLite's code and pages no longer in the CPU's
    # caches and takes several times as long (BENCHMARKS.md, fourteenth round).
    notes = _recent_journal_notes(db, user_id)
    matrix = rec.matrix(db)
    if not len(matrix):
        raise InvalidInput("the catalogue is empty: import one first", code="catalog_empty")
    version, ranker = rec.model(db)
    stats, bans, _ = _history(db, user_id, with_shown=False)
    # What the person was shown before (recommender/shown.py): for ``discover``, which of
    # the candidates (asked once they are known), else only whether each chosen item is new.
    seen = shown_to(db, user_id)
    memories = _MEMORIES_OF.all(db, {"user": user_id})
    verdict = screen_request(request.prompt, notes)
    # A large catalogue is narrowed to the candidates worth ranking (recommender/retrieval.py).
    vec = ranking_vector(request, matrix, vocabulary)
    # Without a seed, retrieval and scoring draw from this thread's generator; with one,
    # each makes its own from it (the same session for the same seed, as before).
    drawn = _thread_generator() if seed is None else None
    matrix = narrow_to_candidates(matrix, request, vocabulary, stats=stats,
                                  crisis=verdict.crisis, seed=seed if drawn is None else drawn,
                                  vec=vec)
    rng = np.random.default_rng(seed) if drawn is None else drawn
    # ``discover`` lifts the candidates never shown: those shown are asked among the
    # candidates alone (a long history holds thousands of items more, each of which was
    # copied, encoded and searched for on every such session).
    history = (stats, bans, seen.among(_ids_of(matrix)) if request.exploration == "discover"
               else None)
    scored = score_catalogue(db, matrix, ranker, vocabulary, user_id, request, rng, vec=vec,
                             history=history)
    scores, vec = scored.scores, scored.vec
    banned_rows = {matrix.index[i] for i in scored.bans if i in matrix.index}

    plan = assemble(
        matrix, scores, minutes=request.minutes, intensity=request.intensity,
        include_films=request.include_films, crisis=verdict.crisis, banned_rows=banned_rows,
    )
    # A memory whose words speak of self-harm is kept as written but never reopened by a prompt.
    cards = [
        card for card in (
            MemoryCard(id=memory_id, title=title, text=text or "", tags=_listed(tags),
                       people=_listed(people), places=_listed(places), when=when)
            for memory_id, title, text, tags, people, places, when in memories)
        if not screen_memory(card.title, card.text, digest=card.digest).crisis
    ]
    chosen = (matrix.records.at([p.row for p in plan.placements])
              if isinstance(matrix.records, ItemRecords)
              else [matrix.records[p.row] for p in plan.placements])
    slots = [
        PromptSlot(position=pos, item_id=r.id, kind=r.kind, phase=p.phase, title=r.title,
                   artist=r.artist, director=r.director, tags=r.tags)
        for pos, (p, r) in enumerate(zip(plan.placements, chosen, strict=True), start=1)
    ]
    prompts = pair_prompts(slots, cards, request_text=request.prompt,
                           seed=int(rng.integers(0, 2**31)), crisis=verdict.crisis)

    # Whether each chosen item is new to the person (read before this session is stored).
    shown = scored.shown if scored.shown is not None else seen.among([r.id for r in chosen])
    session_id, created_at = new_id(), utcnow()
    stored_request = {
        "moods": list(request.moods), "prompt": request.prompt, "minutes": request.minutes,
        "intensity": request.intensity, "include_films": request.include_films,
        "exploration": request.exploration,
    }
    care = care_document(verdict)
    # Each chosen item's features by contribution, largest first: one sort for all of them.
    orders = np.argsort(-scored.contributions[[p.row for p in plan.placements]],
                        axis=1).tolist()
    rows = []
    for slot, placement, prompt, record, order in zip(slots, plan.placements, prompts, chosen,
                                                      orders, strict=True):
        rows.append({
            "session_id": session_id, "user_id": user_id, "position": slot.position,
            "item_id": record.id,
            "phase": placement.phase, "technique": prompt.technique,
            "prompt_text": prompt.text, "memory_id": prompt.memory_id,
            "why": _why(record, placement.phase, scored.contributions[placement.row], vec,
                        vocabulary, scored.stats, float(scored.explored[placement.row]),
                        record.id not in shown, request.exploration, order),
            "score": float(placement.score),
        })
    # Stored with two prepared inserts (the session, then its items in one executemany); the
    # answer is built from these rows and the chosen items' facts.
    with one_writer(db):
        _INSERT_SESSION.insert(db, [{
            "id": session_id, "user_id": user_id, "created_at": created_at,
            "model_version": version, "request": stored_request, "moods": list(vec.mood_ids),
            "themes": list(vec.theme_ids), "total_duration_s": plan.total_duration_s,
            "care": care}])
        _INSERT_ITEMS.insert(db, rows)
        db.commit()
    note_session(user_id, session_id, [record.id for record in chosen])
    # The chosen items' facts come from the matrix this session was ranked on: it holds the
    # stored catalogue at the revision read above, so they equal a later read's.
    facts = {record.id: _record_facts(record) for record in chosen}
    return _document(
        session_id=session_id, created_at=created_at, model_version=version,
        moods=list(vec.mood_ids), themes=list(vec.theme_ids), request=stored_request,
        total_duration_s=plan.total_duration_s, care=care,
        items=[_item_entry(facts[row["item_id"]], row["position"], row["phase"],
                           row["technique"], row["prompt_text"], row["memory_id"], row["why"])
               for row in rows])


def create_session(
    db: Session, rec: Recommender, user_id: str, request: SessionRequest, *, seed: int | None = None
) -> CrySession:
    """Build a cry session for ``user_id`` from ``request``, store it and read it back."""
    document = create_session_document(db, rec, user_id, request, seed=seed)
    return get_session(db, user_id, document["id"])


def _record_facts(record: ItemRecord) -> dict:
    return {"id": record.id, "kind": record.kind, "title": record.title,
            "artist": record.artist, "director": record.director, "year": record.year,
            "duration_s": record.duration_s, "tags": list(record.tags),
            "spotify_uri": record.spotify_uri}


def _with_documents_loaded():
    """What a session's document reads, loaded with the sessions in a query each (its items,
    their catalogue entries and tags, its feedback) rather than lazily item by item."""
    return (selectinload(CrySession.items).selectinload(SessionItem.item)
            .selectinload(CatalogItem.tags),
            selectinload(CrySession.feedback))


def get_session(db: Session, user_id: str, session_id: str) -> CrySession:
    """The caller's own session; someone else's is as good as missing."""
    session = db.scalar(
        select(CrySession)
        .where(CrySession.id == session_id, CrySession.user_id == user_id)
        .options(*_with_documents_loaded())
    )
    if session is None:
        raise NotFound(f"no session {session_id!r}")
    return session


def list_sessions(db: Session, user_id: str, *, documents: bool = False) -> list[CrySession]:
    """The person's sessions, newest first, with their feedback; with ``documents``, with
    all their documents read as well (:func:`session_document`)."""
    return list(db.scalars(
        select(CrySession).where(CrySession.user_id == user_id)
        .order_by(CrySession.created_at.desc(), CrySession.id.desc())
        .options(*(_with_documents_loaded() if documents
                   else (selectinload(CrySession.feedback),)))
    ))


def sessions_with_feedback(db: Session, user_id: str) -> list[dict]:
    """The person's sessions, newest first, each its document with its feedback (the
    contract's); their reactions read in one query, not one per session."""
    reactions: dict[str, list[Reaction]] = {}
    for reaction in db.scalars(select(Reaction).where(Reaction.user_id == user_id)
                               .order_by(Reaction.id)):
        reactions.setdefault(reaction.session_id, []).append(reaction)
    documents = []
    for session in list_sessions(db, user_id, documents=True):
        document = session_document(session)
        document["feedback"] = feedback_document(session.feedback,
                                                 reactions.get(session.id, []))
        documents.append(document)
    return documents


def session_document(session: CrySession) -> dict:
    """The contract's session document."""
    return _document(
        session_id=session.id, created_at=session.created_at,
        model_version=session.model_version, moods=session.moods, themes=session.themes or [],
        request=session.request, total_duration_s=session.total_duration_s, care=session.care,
        items=[_item_entry({"id": si.item.id, "kind": si.item.kind, "title": si.item.title,
                            "artist": si.item.artist, "director": si.item.director,
                            "year": si.item.year, "duration_s": si.item.duration_s,
                            "tags": si.item.tag_list, "spotify_uri": si.item.spotify_uri},
                           si.position, si.phase, si.technique, si.prompt_text, si.memory_id,
                           si.why)
               for si in session.items])


def _item_entry(item: dict, position: int, phase: str, technique: str, prompt_text: str,
                memory_id: str | None, why: str) -> dict:
    return {
        "position": position,
        "item_id": item["id"],
        "kind": item["kind"],
        "title": item["title"],
        "artist": item["artist"] if item["kind"] == "song" else None,
        "director": item["director"] if item["kind"] == "film" else None,
        "year": item["year"],
        "duration_s": item["duration_s"],
        "tags": list(item["tags"]),
        "phase": phase,
        "prompt": {"technique": technique, "text": prompt_text, "memory_id": memory_id},
        "why": why,
        "spotify_uri": item["spotify_uri"],
    }


def _document(*, session_id: str, created_at, model_version: str, moods: list, themes: list,
              request: dict, total_duration_s: int, care: dict, items: list[dict]) -> dict:
    return {
        "id": session_id,
        "created_at": iso(created_at),
        "model_version": model_version,
        "moods": list(moods),
        "themes": list(themes or []),
        "request": dict(request),
        "total_duration_s": total_duration_s,
        "care": dict(care),
        "items": items,
    }


def feedback_document(feedback: Feedback | None, reactions: list[Reaction]) -> dict | None:
    if feedback is None:
        return None
    return {
        "reactions": [{"item_id": r.item_id, "reaction": r.reaction} for r in reactions],
        "catharsis": feedback.catharsis,
        "mood_before": feedback.mood_before,
        "mood_after": feedback.mood_after,
        "note": feedback.note,
        "updated_at": iso(feedback.updated_at),
    }


def session_reactions(db: Session, session_id: str) -> list[Reaction]:
    return list(db.scalars(select(Reaction).where(Reaction.session_id == session_id)
                           .order_by(Reaction.id)))


@dataclass(frozen=True)
class StoredFeedback:
    """What :func:`store_feedback` wrote, and what the online taste update needs from it."""

    user_id: str
    previous: list[tuple[str, str]]
    previous_weight: float
    current: list[tuple[str, str]]
    current_weight: float
    keys: dict[str, list[str]]      # item id -> its taste attribute keys


def store_feedback(db: Session, user_id: str, session_id: str,
                   fb: FeedbackInput) -> StoredFeedback:
    """Validate and store how a session went (not committed): the reactions, bans and the
    session's feedback row; sent again, it replaces what was there.

    Reads with SQL Core, only the columns needed: the session's items, their kind, maker,
    year and tags, the earlier reactions and feedback.
    """
    owner = db.scalar(select(CrySession.user_id).where(CrySession.id == session_id))
    if owner is None or owner != user_id:
        raise NotFound(f"no session {session_id!r}")
    # One person's feedback is written one send at a time: the first write of the
    # transaction takes their user row (a row lock on PostgreSQL, the write lock on SQLite),
    # so two sends for the same session, or two updates of the same taste row, wait for each
    # other instead of colliding; what follows reads what the earlier send committed.
    db.execute(update(User).where(User.id == user_id).values(id=User.id)
               .execution_options(synchronize_session=False))
    in_session = set(db.scalars(select(SessionItem.item_id)
                                .where(SessionItem.session_id == session_id)))
    seen: set[str] = set()
    for item_id, reaction in fb.reactions:
        if reaction not in REACTIONS:
            raise InvalidInput(f"reaction for {item_id!r} must be one of {', '.join(REACTIONS)}")
        if item_id not in in_session:
            raise InvalidInput(f"item {item_id!r} is not part of session {session_id!r}")
        if item_id in seen:
            raise InvalidInput(f"item {item_id!r} has more than one reaction")
        seen.add(item_id)

    # What this session's earlier feedback taught the person's taste, to take back first.
    previous = [tuple(r) for r in db.execute(
        select(Reaction.item_id, Reaction.reaction).where(Reaction.session_id == session_id)
        .order_by(Reaction.id))]
    feedback = db.get(Feedback, session_id)
    previous_weight = (tastes.session_weight(feedback.catharsis, feedback.mood_before,
                                             feedback.mood_after)
                       if feedback is not None else 1.0)

    db.execute(delete(Reaction).where(Reaction.session_id == session_id))
    db.execute(delete(Ban).where(Ban.session_id == session_id, Ban.user_id == user_id))
    now = utcnow()
    banned = set(db.scalars(select(Ban.item_id).where(Ban.user_id == user_id)))
    for item_id, reaction in fb.reactions:
        db.add(Reaction(session_id=session_id, user_id=user_id, item_id=item_id,
                        reaction=reaction, created_at=now))
        if reaction == "never_again" and item_id not in banned:
            db.add(Ban(user_id=user_id, item_id=item_id, session_id=session_id))
            banned.add(item_id)
    if feedback is None:
        feedback = Feedback(session_id=session_id, user_id=user_id, created_at=now)
        db.add(feedback)
    feedback.catharsis = fb.catharsis
    feedback.mood_before = fb.mood_before
    feedback.mood_after = fb.mood_after
    feedback.note = fb.note
    feedback.updated_at = now

    rated_ids = {i for i, _ in previous} | {i for i, _ in fb.reactions}
    tags: dict[str, list[str]] = {}
    for item_id, tag in db.execute(
        select(ItemTag.item_id, ItemTag.tag).where(ItemTag.item_id.in_(rated_ids))
        .order_by(ItemTag.item_id, ItemTag.position)
    ):
        tags.setdefault(item_id, []).append(tag)
    vocabulary = default_vocabulary()
    keys = {
        item_id: attribute_keys(item_id, kind, tags.get(item_id, ()), artist, director, year,
                                vocabulary)
        for item_id, kind, artist, director, year in db.execute(
            select(CatalogItem.id, CatalogItem.kind, CatalogItem.artist,
                   CatalogItem.director, CatalogItem.year)
            .where(CatalogItem.id.in_(rated_ids)))
    }
    return StoredFeedback(
        user_id=user_id, previous=previous, previous_weight=previous_weight,
        current=[tuple(r) for r in fb.reactions],
        current_weight=tastes.session_weight(fb.catharsis, fb.mood_before, fb.mood_after),
        keys=keys)


def update_taste(db: Session, stored: StoredFeedback) -> None:
    """The online update: the person's taste takes in the stored feedback (and lets go of
    what that session's earlier feedback added), then everything is committed, so their
    next session reflects it at once."""
    def rated(pairs) -> list[tastes.RatedItem]:
        return [tastes.RatedItem(stored.keys[item_id], reaction)
                for item_id, reaction in pairs if item_id in stored.keys]

    tastes.apply_feedback(
        db, stored.user_id, previous=rated(stored.previous),
        previous_weight=stored.previous_weight, current=rated(stored.current),
        current_weight=stored.current_weight)
    db.commit()


def record_feedback(db: Session, user_id: str, session_id: str, fb: FeedbackInput) -> int:
    """Store how a session went; sent again, it replaces what was there (no double counting).

    ``never_again`` bans the item for this person in every later session. Nothing is changed
    when any part of the feedback is invalid. The person's taste is updated in the same
    transaction (:func:`update_taste`).
    """
    with one_writer(db):
        update_taste(db, store_feedback(db, user_id, session_id, fb))
    return len(fb.reactions)
