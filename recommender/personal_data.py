"""Everything stored about one person, as one document they can take away."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from recommender import cry_sessions, memories
from recommender.store.models import (
    Ban,
    Export,
    LibraryItem,
    PersonTaste,
    SpotifyConnection,
    User,
    iso,
)


def export_person(db: Session, user_id: str) -> dict:
    """The caller's whole record; nothing about anyone else, tokens never included."""
    user = db.get(User, user_id)
    sessions = cry_sessions.sessions_with_feedback(db, user_id)
    exports = [
        {"export_id": e.id, "session_id": e.session_id, "target": e.target,
         "status": e.status, "playlist_url": e.playlist_url, "added": e.added,
         "unmatched": list(e.unmatched or []), "created_at": iso(e.created_at)}
        for e in db.scalars(select(Export).where(Export.user_id == user_id)
                            .order_by(Export.created_at))
    ]
    bans = [{"item_id": b.item_id, "created_at": iso(b.created_at)}
            for b in db.scalars(select(Ban).where(Ban.user_id == user_id))]
    library = [
        {"item_id": row.item_id, "title": row.item.title, "artist": row.item.artist,
         "source": row.source, "added_at": iso(row.added_at)}
        for row in db.scalars(select(LibraryItem).where(LibraryItem.user_id == user_id)
                              .order_by(LibraryItem.added_at))
    ]
    taste = db.get(PersonTaste, user_id)
    return {
        "user": {"user_id": user.id, "username": user.username,
                 "created_at": iso(user.created_at)},
        "spotify_connected": db.get(SpotifyConnection, user_id) is not None,
        "sessions": sessions,
        "memories": [memories.memory_document(m) for m in memories.list_memories(db, user_id)],
        "exports": exports,
        "bans": bans,
        "library": library,
        "learned_taste": ({"n_reactions": taste.n_reactions, "stats": taste.stats,
                           "updated_at": iso(taste.updated_at)} if taste else None),
    }
