"""Merge items that outside sources describe (datasets, Spotify libraries) into the catalogue.

The catalogue CSV import replaces an item with its row (the file is the truth). Outside sources
only *add* knowledge: an item they name that the catalogue already has (same identity key, see
:mod:`recommender.catalog.identity`) gains their tags and source name, a Spotify URI, ISRC or
year it lacked, and a known duration over an estimated one; its title, intensity and aftercare
flag stay as the catalogue set them. New items are created, in bulk, so a dataset of 90,000
rows imports in seconds. Merging the same source twice changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

from sqlalchemy import insert, select
from sqlalchemy.orm import Session, selectinload

from recommender.catalog.identity import identity_key
from recommender.store.catalog import bump_catalog_revision
from recommender.store.models import CatalogItem, ItemTag, new_id, utcnow
from recommender.vocabulary import Vocabulary, default_vocabulary

TYPICAL_DURATION_S = {"song": 240, "film": 6600}


@dataclass(frozen=True)
class Problem:
    """Something wrong (or worth knowing) about one line of one input file."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


@dataclass
class MergeReport:
    """What a merge did; ``errors`` are rows skipped, ``warnings`` rows imported with a caveat."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0  # rows read fine but not wanted (for example not sad enough)
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    item_ids: dict[str, str] = field(default_factory=dict)  # identity key -> item id

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated)

    def summary(self) -> str:
        return (f"added {self.added}, updated {self.updated}, unchanged {self.unchanged}, "
                f"skipped {self.skipped}, bad rows {len(self.errors)}")


@dataclass(frozen=True)
class Candidate:
    """A song or film as an outside source describes it; ``tags`` are vocabulary ids."""

    kind: str
    title: str
    artist: str | None = None
    director: str | None = None
    year: int | None = None
    duration_s: int | None = None  # None: unknown
    tags: tuple[str, ...] = ()
    spotify_uri: str | None = None
    isrc: str | None = None
    intensity: int | None = None
    aftercare: bool = False
    source: str | None = None
    shared: bool = True

    @property
    def key(self) -> str:
        return identity_key(self.kind, self.title, self.artist or self.director or "")


def order_tags(tags: Iterable[str], vocabulary: Vocabulary) -> list[str]:
    """Tags without repeats, moods first, then themes, then free-form (each in given order)."""
    unique = list(dict.fromkeys(tags))

    def group(tag: str) -> int:
        return 0 if vocabulary.is_mood(tag) else 1 if vocabulary.is_theme(tag) else 2

    return sorted(unique, key=group)  # sorted() is stable


def _joined_sources(existing: str | None, source: str | None) -> str | None:
    names = [s for s in (existing or "").split(";") if s]
    if source and source not in names:
        names.append(source)
    return ";".join(names) or None


def combine(first: Candidate, second: Candidate, vocabulary: Vocabulary) -> Candidate:
    """Two descriptions of the same item from one source, as one."""
    return replace(
        first,
        tags=tuple(order_tags([*first.tags, *second.tags], vocabulary)),
        year=first.year or second.year,
        duration_s=first.duration_s or second.duration_s,
        spotify_uri=first.spotify_uri or second.spotify_uri,
        isrc=first.isrc or second.isrc,
        intensity=max(first.intensity or 0, second.intensity or 0) or None,
        aftercare=first.aftercare and second.aftercare,
        shared=first.shared or second.shared,
    )


def merge_into(item: CatalogItem, candidate: Candidate, vocabulary: Vocabulary) -> bool:
    """Add what ``candidate`` knows to an existing item; True when anything changed."""
    changed = False
    current = item.tag_list
    merged = order_tags([*current, *candidate.tags], vocabulary)
    if merged != current and set(merged) != set(current):
        item.tags.clear()
        item.tags.extend(ItemTag(tag=t, position=i) for i, t in enumerate(merged))
        changed = True
    sources = _joined_sources(item.sources, candidate.source)
    if sources != item.sources:
        item.sources = sources
        changed = True
    for name in ("spotify_uri", "isrc", "year"):
        value = getattr(candidate, name)
        if value and not getattr(item, name):
            setattr(item, name, value)
            changed = True
    if candidate.duration_s and item.duration_estimated:
        item.duration_s = candidate.duration_s
        item.duration_estimated = False
        changed = True
    if candidate.shared and not item.shared:
        item.shared = True
        changed = True
    if changed:
        item.updated_at = utcnow()
    return changed


def _new_item_row(candidate: Candidate, key: str) -> dict:
    now = utcnow()
    known = candidate.duration_s is not None
    return {
        "id": new_id(),
        "identity_key": key,
        "kind": candidate.kind,
        "title": candidate.title[:300],
        "artist": candidate.artist[:300] if candidate.artist else None,
        "director": candidate.director[:300] if candidate.director else None,
        "year": candidate.year,
        "duration_s": candidate.duration_s if known else TYPICAL_DURATION_S[candidate.kind],
        "duration_estimated": not known,
        "intensity": candidate.intensity or 3,
        "aftercare": candidate.aftercare,
        "spotify_uri": candidate.spotify_uri,
        "isrc": candidate.isrc,
        "shared": candidate.shared,
        "sources": candidate.source,
        "created_at": now,
        "updated_at": now,
    }


def _chunks(candidates: Iterable[Candidate], size: int) -> Iterator[list[Candidate]]:
    chunk: list[Candidate] = []
    for candidate in candidates:
        chunk.append(candidate)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def merge_candidates(
    db: Session,
    candidates: Iterable[Candidate],
    report: MergeReport | None = None,
    *,
    vocabulary: Vocabulary | None = None,
    batch_size: int = 2000,
) -> MergeReport:
    """Create or enrich items by identity key (or, failing that, by Spotify URI); flushes.

    The caller commits (so a caller can commit batch by batch and lose nothing on a fault).
    """
    vocabulary = vocabulary or default_vocabulary()
    report = report if report is not None else MergeReport()
    any_change = False
    for chunk in _chunks(candidates, batch_size):
        batch: dict[str, Candidate] = {}
        for candidate in chunk:
            key = candidate.key
            batch[key] = combine(batch[key], candidate, vocabulary) if key in batch else candidate
        existing = {
            item.identity_key: item
            for item in db.scalars(
                select(CatalogItem)
                .where(CatalogItem.identity_key.in_(list(batch)))
                .options(selectinload(CatalogItem.tags))
            )
        }
        by_uri = {}
        wanted_uris = [c.spotify_uri for k, c in batch.items()
                       if k not in existing and c.spotify_uri]
        if wanted_uris:
            by_uri = {
                item.spotify_uri: item
                for item in db.scalars(
                    select(CatalogItem)
                    .where(CatalogItem.spotify_uri.in_(wanted_uris))
                    .options(selectinload(CatalogItem.tags))
                )
            }
        new_items: list[dict] = []
        new_tags: list[dict] = []
        for key, candidate in batch.items():
            item = existing.get(key) or by_uri.get(candidate.spotify_uri or "")
            if item is not None:
                if merge_into(item, candidate, vocabulary):
                    report.updated += 1
                    any_change = True
                else:
                    report.unchanged += 1
                report.item_ids[key] = item.id
                continue
            row = _new_item_row(candidate, key)
            new_items.append(row)
            new_tags.extend(
                {"item_id": row["id"], "tag": tag, "position": i}
                for i, tag in enumerate(order_tags(candidate.tags, vocabulary))
            )
            report.item_ids[key] = row["id"]
            report.added += 1
        if new_items:
            db.execute(insert(CatalogItem), new_items)
            any_change = True
        if new_tags:
            db.execute(insert(ItemTag), new_tags)
        db.flush()
    if any_change:
        bump_catalog_revision(db)
    return report
