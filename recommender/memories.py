"""A person's memories: private, only ever read by their owner, never sent anywhere."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from recommender.errors import InvalidInput, NotFound
from recommender.store.models import Memory, SessionItem, iso, utcnow

FIELDS = ("title", "text", "tags", "people", "places", "when")
LIST_FIELDS = ("tags", "people", "places")


def _clean(fields: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in fields.items():
        if name not in FIELDS:
            raise InvalidInput(f"unknown field {name!r}")
        if name in LIST_FIELDS:
            out[name] = [str(v).strip() for v in (value or []) if str(v).strip()]
        elif name == "title":
            title = (value or "").strip()
            if not title:
                raise InvalidInput("title must not be empty")
            out[name] = title[:200]
        else:
            out[name] = (value or "").strip() or (None if name == "when" else "")
    return out


def add_memory(db: Session, user_id: str, fields: Mapping[str, Any]) -> Memory:
    data = _clean(fields)
    if "title" not in data:
        raise InvalidInput("title is required")
    memory = Memory(user_id=user_id, **{"text": "", "tags": [], "people": [], "places": [],
                                        **data})
    db.add(memory)
    db.commit()
    return memory


def get_memory(db: Session, user_id: str, memory_id: str) -> Memory:
    memory = db.scalar(select(Memory).where(Memory.id == memory_id, Memory.user_id == user_id))
    if memory is None:
        raise NotFound(f"no memory {memory_id!r}")
    return memory


def list_memories(db: Session, user_id: str) -> list[Memory]:
    return list(db.scalars(select(Memory).where(Memory.user_id == user_id)
                           .order_by(Memory.created_at.desc(), Memory.id)))


def update_memory(db: Session, user_id: str, memory_id: str, fields: Mapping[str, Any]) -> Memory:
    memory = get_memory(db, user_id, memory_id)
    for name, value in _clean(fields).items():
        setattr(memory, name, value)
    memory.updated_at = utcnow()
    db.commit()
    return memory


def delete_memory(db: Session, user_id: str, memory_id: str) -> None:
    memory = get_memory(db, user_id, memory_id)
    db.execute(update(SessionItem).where(SessionItem.memory_id == memory.id)
               .values(memory_id=None))
    db.delete(memory)
    db.commit()


def memory_document(memory: Memory) -> dict:
    return {
        "id": memory.id,
        "title": memory.title,
        "text": memory.text,
        "tags": list(memory.tags or []),
        "people": list(memory.people or []),
        "places": list(memory.places or []),
        "when": memory.when,
        "created_at": iso(memory.created_at),
        "updated_at": iso(memory.updated_at),
    }
