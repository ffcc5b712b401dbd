"""Catalogue queries: items, their tags, and the revision that tells caches to refresh."""

from __future__ import annotations

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, selectinload

from recommender.store.models import CatalogItem, ItemTag, Meta

REVISION_KEY = "catalog_revision"


def catalog_revision(db: Session) -> int:
    value = db.get(Meta, REVISION_KEY)
    return int(value.value) if value else 0


def bump_catalog_revision(db: Session) -> int:
    meta = db.get(Meta, REVISION_KEY)
    if meta is None:
        meta = Meta(key=REVISION_KEY, value="0")
        db.add(meta)
    meta.value = str(int(meta.value) + 1)
    db.flush()
    return int(meta.value)


def count_items(db: Session) -> int:
    return db.scalar(select(func.count()).select_from(CatalogItem)) or 0


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
    stmt = select(CatalogItem)
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
    page = db.scalars(
        stmt.options(selectinload(CatalogItem.tags))
        .order_by(CatalogItem.kind, CatalogItem.title, CatalogItem.id)
        .limit(limit)
        .offset(offset)
    ).all()
    return list(page), total


def all_items(db: Session) -> list[CatalogItem]:
    return list(
        db.scalars(select(CatalogItem).options(selectinload(CatalogItem.tags))
                   .order_by(CatalogItem.id))
    )
