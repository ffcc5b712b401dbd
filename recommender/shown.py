"""The items each person's sessions have shown them, kept per worker.

A session tells which of its items are new to the person (their "why" may say "something new
to try"), and a ``discover`` request lifts the items never shown. Both used to ask the
database, through an index of every session item by person and item: its entries for one
person lie in item order, so each stored session wrote about a dozen of the index's pages
(one per item, 12 of the 23 pages a session's commit wrote, measured at 100,000 items), and
each session asked it again about its own items.

Here each worker keeps, per person, the sessions it knows of and the items they showed. A
person's sessions are only ever added (they go only with the whole account), and a session's
items are stored with it in one transaction; so the kept items are exactly what the person
was shown whenever the kept sessions are as many as the database holds, which one count on
the (person, created) index of sessions says. When the count has grown (another worker made
sessions since), the newest sessions are read until the unknown ones are found, and only
their items are read; anything else (a worker's first request for someone, sessions
committed late and out of order past ``LATE_SLACK`` others, a deleted account) reads the
person's sessions and items afresh. (Should a worker's other thread have stored a session
of the person between that statement and the check, a late session could be missed; the next
request's count finds it.)

What is kept says which items a person was shown: like the decoded tastes of
recommender/tastes.py, it stays in the worker's memory, bounded in bytes, and is read only
for that person's own requests.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from recommender.kept import KeptByBytes
from recommender.store.models import CrySession, SessionItem
from recommender.store.prepared import Prepared

# Kept per worker up to this many bytes, least recently used person first out (a person
# shown 4,000 items over 300 sessions takes about 450 KB).
SHOWN_CACHE_BYTES = 32 * 1024 * 1024
# Beyond the sessions the count says are new, how many more of the newest are read to find
# them: sessions committed out of the order they were stamped in (two workers storing the
# same person's sessions at once) are found among these.
LATE_SLACK = 16

_SESSIONS, _ITEMS = CrySession.__table__, SessionItem.__table__
# Run on every session request: how many sessions the person has (read from the (user_id,
# created_at) index alone).
_SESSION_COUNT = Prepared(select(func.count()).select_from(_SESSIONS)
                          .where(_SESSIONS.c.user_id == bindparam("user")))
# Run when another worker stored sessions of the person since (with two workers, about every
# other request): the newest sessions, each with how many there are (one statement, one
# snapshot on PostgreSQL too), then each unknown one's items.
_NEWEST = Prepared(
    select(_SESSIONS.c.id,
           select(func.count()).select_from(_SESSIONS)
           .where(_SESSIONS.c.user_id == bindparam("user")).scalar_subquery())
    .where(_SESSIONS.c.user_id == bindparam("user"))
    .order_by(_SESSIONS.c.created_at.desc(), _SESSIONS.c.id.desc())
    .limit(bindparam("newest")))
_ITEMS_OF_SESSION = Prepared(select(_ITEMS.c.item_id)
                             .where(_ITEMS.c.session_id == bindparam("session")))


@dataclass
class _Shown:
    """One person's known sessions and every item they showed (changed in place, under the
    cache's lock)."""

    sessions: set[str] = field(default_factory=set)
    items: set[str] = field(default_factory=set)

    @property
    def nbytes(self) -> int:
        return 256 + 110 * (len(self.sessions) + len(self.items))


_kept = KeptByBytes(SHOWN_CACHE_BYTES)
_lock = threading.Lock()


def _items_of(db: Session, session_ids: list[str]) -> list[str]:
    return [item_id for session_id in session_ids
            for item_id in _ITEMS_OF_SESSION.scalars(db, {"session": session_id})]


def _read_all(db: Session, user_id: str) -> _Shown:
    rows = db.execute(select(_SESSIONS.c.id, _ITEMS.c.item_id)
                      .select_from(_SESSIONS.outerjoin(_ITEMS,
                                                       _ITEMS.c.session_id == _SESSIONS.c.id))
                      .where(_SESSIONS.c.user_id == user_id)).all()
    return _Shown({session_id for session_id, _ in rows},
                  {item_id for _, item_id in rows if item_id is not None})


def session_count(db: Session, user_id: str) -> int:
    """How many sessions the person has (read from the (user_id, created_at) index alone)."""
    return _SESSION_COUNT.scalar(db, {"user": user_id}) or 0


def _current(db: Session, user_id: str) -> _Shown:
    """The person's entry, brought up to date with the database."""
    count = session_count(db, user_id)
    known = _kept.get(user_id)
    if known is not None:
        with _lock:
            known_count = len(known.sessions)
        if known_count == count:
            return known
        if known_count < count:
            # When the known and the unknown among the newest make as many as there are,
            # every session is known.
            newest = _NEWEST.all(db, {"user": user_id,
                                      "newest": count - known_count + LATE_SLACK})
            with _lock:
                unseen = [s for s, _ in newest if s not in known.sessions]
                complete = bool(newest) and len(known.sessions) + len(unseen) >= newest[0][1]
            if complete:
                items = _items_of(db, unseen) if unseen else []
                with _lock:
                    known.sessions.update(unseen)
                    known.items.update(items)
                _kept.put(user_id, known)  # its size is counted again
                return known
    fresh = _read_all(db, user_id)
    _kept.put(user_id, fresh)
    return fresh


class Shown:
    """What a person was shown, as known when it was read (see :func:`shown_to`)."""

    __slots__ = ("_entry",)

    def __init__(self, entry: _Shown):
        self._entry = entry

    def among(self, item_ids: Iterable[str]) -> set[str]:
        """The items of ``item_ids`` that the person's sessions showed them."""
        items = self._entry.items
        with _lock:
            return {item_id for item_id in item_ids if item_id in items}

    def all(self) -> set[str]:
        """Every item the person's sessions showed them (a copy)."""
        with _lock:
            return set(self._entry.items)


def shown_to(db: Session, user_id: str) -> Shown:
    """What the person's sessions have shown them, brought up to date with the database (one
    count when this worker is up to date)."""
    return Shown(_current(db, user_id))


def note_session(user_id: str, session_id: str, item_ids: Iterable[str]) -> None:
    """After a session is committed: it and its items join what this worker keeps of the
    person (if anything: a person this worker has not read yet is read when next asked)."""
    known = _kept.get(user_id)
    if known is None:
        return
    with _lock:
        known.sessions.add(session_id)
        known.items.update(item_ids)
    _kept.put(user_id, known)
