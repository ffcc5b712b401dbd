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

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from recommender.catalog.identity import identity_key
from recommender.store.catalog import bump_catalog_revision
from recommender.store.models import CatalogItem, ItemTag, new_id, utcnow
from recommender.vocabulary import Vocabulary, default_vocabulary

TYPICAL_DURATION_S = {"song": 240, "film": 6600}
LOOKUP_CHUNK = 900  # identity keys per query, under every database's parameter limit


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


def changes_for(stored: dict, candidate: Candidate,
                vocabulary: Vocabulary) -> tuple[dict, list[str] | None]:
    """What ``candidate`` adds to a stored item (a dict of its columns and ``tags``).

    Returns the column values to set and the new tag list (None when the tags stay).
    """
    values: dict = {}
    current = list(stored["tags"])
    new_tags = None
    if any(t not in current for t in candidate.tags):
        new_tags = order_tags([*current, *candidate.tags], vocabulary)
    sources = _joined_sources(stored["sources"], candidate.source)
    if sources != stored["sources"]:
        values["sources"] = sources
    for name in ("spotify_uri", "isrc", "year"):
        value = getattr(candidate, name)
        if value and not stored[name]:
            values[name] = value
    if candidate.duration_s and stored["duration_estimated"]:
        values["duration_s"] = candidate.duration_s
        values["duration_estimated"] = False
    if candidate.shared and not stored["shared"]:
        values["shared"] = True
    return values, new_tags


_STORED_COLUMNS = ("id", "identity_key", "sources", "spotify_uri", "isrc", "year",
                   "duration_estimated", "shared")


def merge_into(item: CatalogItem, candidate: Candidate, vocabulary: Vocabulary) -> bool:
    """Add what ``candidate`` knows to an existing (ORM) item; True when anything changed."""
    stored = {name: getattr(item, name) for name in _STORED_COLUMNS}
    stored["tags"] = item.tag_list
    values, new_tags = changes_for(stored, candidate, vocabulary)
    for name, value in values.items():
        setattr(item, name, value)
    if new_tags is not None:
        item.tags.clear()
        item.tags.extend(ItemTag(tag=t, position=i) for i, t in enumerate(new_tags))
    if values or new_tags is not None:
        item.updated_at = utcnow()
        return True
    return False


def _stored(db: Session, column, values: list[str]) -> dict[str, dict]:
    """Stored items whose ``column`` is among ``values``, as dicts with their ordered tags."""
    items = CatalogItem.__table__
    tags = ItemTag.__table__
    found: dict[str, dict] = {}
    for start in range(0, len(values), LOOKUP_CHUNK):
        chunk = values[start:start + LOOKUP_CHUNK]
        by_id: dict[str, dict] = {}
        for row in db.execute(select(*(items.c[n] for n in _STORED_COLUMNS))
                              .where(column.in_(chunk))).mappings():
            entry = {**row, "tags": []}
            by_id[entry["id"]] = entry
        if by_id:
            for item_id, tag in db.execute(
                select(tags.c.item_id, tags.c.tag).where(tags.c.item_id.in_(list(by_id)))
                .order_by(tags.c.item_id, tags.c.position)
            ):
                by_id[item_id]["tags"].append(tag)
        for entry in by_id.values():
            found[entry["identity_key"] if column is items.c.identity_key
                  else entry["spotify_uri"]] = entry
    return found


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
    batch_size: int = 5000,
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
        items, tags = CatalogItem.__table__, ItemTag.__table__
        existing = _stored(db, items.c.identity_key, list(batch))
        wanted_uris = [c.spotify_uri for k, c in batch.items()
                       if k not in existing and c.spotify_uri]
        by_uri = _stored(db, items.c.spotify_uri, wanted_uris) if wanted_uris else {}
        new_items: list[dict] = []
        new_tags: list[dict] = []
        for key, candidate in batch.items():
            stored = existing.get(key) or by_uri.get(candidate.spotify_uri or "")
            if stored is not None:
                report.item_ids[key] = stored["id"]
                values, new_tag_list = changes_for(stored, candidate, vocabulary)
                if not values and new_tag_list is None:
                    report.unchanged += 1
                    continue
                values["updated_at"] = utcnow()
                db.execute(update(items).where(items.c.id == stored["id"]).values(**values))
                if new_tag_list is not None:
                    db.execute(delete(tags).where(tags.c.item_id == stored["id"]))
                    new_tags.extend({"item_id": stored["id"], "tag": t, "position": i}
                                    for i, t in enumerate(new_tag_list))
                report.updated += 1
                any_change = True
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
            db.execute(insert(items), new_items)
            any_change = True
        if new_tags:
            db.execute(insert(tags), new_tags)
    if any_change:
        # Core writes bypass the identity map: drop any stale catalogue objects it holds.
        db.expire_all()
        bump_catalog_revision(db)
    return report
