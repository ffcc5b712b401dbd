"""A person's own story across sessions: mood before and after, catharsis, what moves them.

Plain numbers for the history page's charts and tables; only ever computed for the owner.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from recommender import cry_sessions
from recommender.store.models import CatalogItem, Reaction
from recommender.vocabulary import Vocabulary, default_vocabulary


@dataclass(frozen=True)
class SessionPoint:
    """One rated session on the timeline."""

    session_id: str
    created_at: datetime
    mood_before: int | None
    mood_after: int | None
    catharsis: int | None

    @property
    def mood_change(self) -> int | None:
        if self.mood_before is None or self.mood_after is None:
            return None
        return self.mood_after - self.mood_before


@dataclass(frozen=True)
class TagEffect:
    """How strongly items carrying one mood or theme moved the person."""

    tag: str
    label: str
    kind: str  # "mood" or "theme"
    reactions: int
    cried: int
    moved: int

    @property
    def score(self) -> float:
        """0 to 1: the share of reactions (skips aside) that were tears or being moved."""
        return (self.cried + self.moved) / (self.reactions or 1)


@dataclass(frozen=True)
class PersonHistory:
    sessions: int
    rated: int
    timeline: list[SessionPoint]  # rated sessions, oldest first
    effects: list[TagEffect]  # strongest first

    @property
    def mean_mood_change(self) -> float | None:
        changes = [p.mood_change for p in self.timeline if p.mood_change is not None]
        return sum(changes) / len(changes) if changes else None


def person_history(
    db: Session, user_id: str, vocabulary: Vocabulary | None = None, *, top: int = 8
) -> PersonHistory:
    """The owner's rated sessions over time and the moods and themes that move them most."""
    vocabulary = vocabulary or default_vocabulary()
    sessions = cry_sessions.list_sessions(db, user_id)
    timeline = [
        SessionPoint(s.id, s.created_at, s.feedback.mood_before, s.feedback.mood_after,
                     s.feedback.catharsis)
        for s in reversed(sessions) if s.feedback is not None
    ]
    counts: dict[str, list[int]] = {}
    rows = db.execute(
        select(Reaction.reaction, CatalogItem)
        .join(CatalogItem, CatalogItem.id == Reaction.item_id)
        .where(Reaction.user_id == user_id, Reaction.reaction != "skipped")
        .options(selectinload(CatalogItem.tags))
    ).all()
    for reaction, item in rows:
        for tag in item.tag_list:
            if not (vocabulary.is_mood(tag) or vocabulary.is_theme(tag)):
                continue
            total = counts.setdefault(tag, [0, 0, 0])
            total[0] += 1
            total[1] += reaction == "cried"
            total[2] += reaction == "moved"
    effects = [
        TagEffect(tag, vocabulary.label(tag), "mood" if vocabulary.is_mood(tag) else "theme",
                  n, cried, moved)
        for tag, (n, cried, moved) in counts.items()
    ]
    effects.sort(key=lambda e: (-e.score, -e.cried, -e.reactions, e.label))
    return PersonHistory(len(sessions), len(timeline), timeline, effects[:top])
