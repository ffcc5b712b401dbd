"""Catalogue queries: items, their tags, and the revision that tells caches to refresh."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, selectinload

from recommender.store.models import CatalogItem, ItemTag, Meta, new_id
from recommender.store.prepared import Prepared

REVISION_KEY = "catalog_revision"


# Read on every session request (prepared: recommender/store/prepared.py).
_REVISION = Prepared(select(Meta.__table__.c.value).where(Meta.__table__.c.key == REVISION_KEY))


def catalog_revision(db: Session) -> int:
    value = _REVISION.scalar(db)
    return int(value) if value else 0


def bump_catalog_revision(db: Session) -> int:
    meta = db.get(Meta, REVISION_KEY)
    if meta is None:
        meta = Meta(key=REVISION_KEY, value="0")
        db.add(meta)
    meta.value = str(int(meta.value) + 1)
    generation = db.get(Meta, GENERATION_KEY)
    if generation is None:
        generation = Meta(key=GENERATION_KEY, value="")
        db.add(generation)
    generation.value = new_id()
    db.flush()
    return int(meta.value)


def count_items(db: Session) -> int:
    """Items in the shared catalogue (tracks known only from someone's library excluded)."""
    return db.scalar(
        select(func.count()).select_from(CatalogItem).where(CatalogItem.shared.is_(True))
    ) or 0


def search_items(
    db: Session,
    *,
    kind: str | None = None,
    mood: str | None = None,
    q: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[CatalogItem], int]:
    """A page of catalogue items matching the filters, and how many match in all."""
    stmt = select(CatalogItem).where(CatalogItem.shared.is_(True))
    if kind:
        stmt = stmt.where(CatalogItem.kind == kind)
    if mood:
        stmt = stmt.where(
            CatalogItem.id.in_(select(ItemTag.item_id).where(ItemTag.tag == mood))
        )
    if q:
        like = f"%{q.lower()}%"
        stmt = stmt.where(
            or_(
                func.lower(CatalogItem.title).like(like),
                func.lower(CatalogItem.artist).like(like),
                func.lower(CatalogItem.director).like(like),
            )
        )
    total = db.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    if offset >= total:
        # Past the end: an empty page (and no offset beyond what the database's integers
        # hold ever reaches SQL).
        return [], total
    page = db.scalars(
        stmt.options(selectinload(CatalogItem.tags))
        .order_by(CatalogItem.kind, CatalogItem.title, CatalogItem.id)
        .limit(limit)
        .offset(offset)
    ).all()
    return list(page), total


def all_items(db: Session) -> list[CatalogItem]:
    return list(
        db.scalars(select(CatalogItem).where(CatalogItem.shared.is_(True))
                   .options(selectinload(CatalogItem.tags)).order_by(CatalogItem.id))
    )


GENERATION_KEY = "catalog_generation"


def catalog_generation(db: Session) -> str | None:
    """A random token renewed with every revision: names one catalogue's on-disk artefacts."""
    value = db.get(Meta, GENERATION_KEY)
    return value.value if value else None


def _frame(db: Session, stmt) -> pd.DataFrame:
    """The rows of ``stmt`` as a frame, fetched with the driver's own cursor: SQLAlchemy's
    row objects cost more than the query itself at a million rows."""
    conn = db.connection()
    sql = stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
    cursor = conn.connection.cursor()
    try:
        cursor.execute(str(sql))
        columns = [c[0] for c in cursor.description]
        rows = cursor.fetchall()
    finally:
        cursor.close()
    return pd.DataFrame.from_records(rows, columns=columns, coerce_float=False)


def item_frames(db: Session) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The shared catalogue as two column frames (items; their tags in order), in bulk.

    One query each, no ORM objects or SQLAlchemy rows: fit for a million items.
    """
    items = CatalogItem.__table__
    tags = ItemTag.__table__
    item_frame = _frame(db, select(
        items.c.id, items.c.identity_key, items.c.kind, items.c.title, items.c.artist,
        items.c.director, items.c.year, items.c.duration_s, items.c.intensity,
        items.c.aftercare, items.c.spotify_uri).where(items.c.shared.is_(True)))
    # SQLite hands booleans back as 0/1.
    item_frame["aftercare"] = item_frame["aftercare"].astype(bool)
    tag_frame = _frame(db, select(tags.c.item_id, tags.c.tag, tags.c.position))
    return item_frame, tag_frame


def scheduled_resume(db: Session, key: str) -> datetime | None:
    """When a paused outside-service run over the catalogue may go on (None: any time)."""
    meta = db.get(Meta, key)
    return datetime.fromisoformat(meta.value) if meta and meta.value else None


def schedule_resume(db: Session, key: str, when: datetime | None) -> None:
    """Record when the run named ``key`` may go on; None clears it."""
    meta = db.get(Meta, key)
    if meta is None:
        meta = Meta(key=key, value="")
        db.add(meta)
    meta.value = when.isoformat() if when else ""
