"""Import catalogue items from the contract's CSV format into the store.

Header (required): ``kind,title,artist,director,year,duration_s,tags,spotify_id``.
Optional extra columns: ``intensity``, ``aftercare``, ``duration_estimated``, ``sources``.
A bad row is reported with its line number (the header is line 1) and skipped; the good rows
land. Re-importing the same file changes nothing.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session
from tqdm import tqdm

from recommender.catalog.identity import normalise_name, normalise_title
from recommender.store.catalog import bump_catalog_revision
from recommender.store.models import CatalogItem, ItemTag, new_id, utcnow
from recommender.vocabulary import Vocabulary, default_vocabulary

REQUIRED_COLUMNS = (
    "kind", "title", "artist", "director", "year", "duration_s", "tags", "spotify_id",
)
TYPICAL_DURATION_S = {"song": 240, "film": 6600}
SPOTIFY_ID = re.compile(r"^(?:spotify:track:)?([0-9A-Za-z]{22})$")
TRUE_WORDS = {"true", "1", "yes", "y"}
FALSE_WORDS = {"false", "0", "no", "n", ""}


class CatalogFileError(ValueError):
    """The file as a whole cannot be imported (for example a wrong header)."""


@dataclass(frozen=True)
class RowProblem:
    line: int
    message: str


@dataclass
class ImportReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[RowProblem] = field(default_factory=list)
    warnings: list[RowProblem] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated)


@dataclass(frozen=True)
class ItemRow:
    """One validated CSV row."""

    line: int
    kind: str
    title: str
    artist: str | None
    director: str | None
    year: int | None
    duration_s: int
    duration_estimated: bool
    tags: tuple[str, ...]
    spotify_uri: str | None
    intensity: int
    aftercare: bool
    sources: str | None

    @property
    def key(self) -> str:
        return _cached_identity_key(self.kind, self.title, self.artist or self.director or "")


@lru_cache(maxsize=262_144)
def _maker_key(name: str) -> str:
    return normalise_name(name)


def _cached_identity_key(kind: str, title: str, name: str) -> str:
    """:func:`identity_key`, with the maker's normalised name remembered (makers repeat)."""
    return f"{kind.strip().lower()}|{normalise_title(title)}|{_maker_key(name)}"


def _int_cell(value: str, name: str, low: int, high: int) -> int | None:
    value = value.strip()
    if not value:
        return None
    try:
        number = int(float(value)) if re.fullmatch(r"\d+(\.0+)?", value) else int(value)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {value!r}") from None
    if not low <= number <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {number}")
    return number


def _bool_cell(value: str | None, name: str, default: bool) -> bool:
    if value is None:
        return default
    folded = value.strip().lower()
    if folded in TRUE_WORDS:
        return True
    if folded in FALSE_WORDS:
        return default if folded == "" else False
    raise ValueError(f"{name} must be true or false, got {value!r}")


def parse_row(
    line: int, raw: dict[str, str | None], vocabulary: Vocabulary,
    tag_cache: dict | None = None,
) -> tuple[ItemRow, tuple[str, ...]]:
    """Validate one row; returns the row and any free-form tags it kept."""
    if None in raw:
        raise ValueError("row has more cells than the header")
    cells = {k: (v or "").strip() for k, v in raw.items()}
    kind = cells["kind"].lower()
    if kind not in ("song", "film"):
        raise ValueError(f"kind must be 'song' or 'film', got {cells['kind']!r}")
    title = cells["title"]
    if not title:
        raise ValueError("title is empty")
    artist = cells["artist"] or None
    director = cells["director"] or None
    if kind == "song" and not artist:
        raise ValueError("a song needs an artist")
    if kind == "song":
        director = None
    else:
        artist = None
    year = _int_cell(cells["year"], "year", 1500, 2100)
    duration = _int_cell(cells["duration_s"], "duration_s", 10, 6 * 3600)
    estimated = _bool_cell(raw.get("duration_estimated"), "duration_estimated", duration is None)
    if duration is None:
        duration, estimated = TYPICAL_DURATION_S[kind], True
    intensity = _int_cell(cells.get("intensity", ""), "intensity", 1, 5) or 3
    aftercare = _bool_cell(raw.get("aftercare"), "aftercare", False)
    spotify_uri = None
    if cells["spotify_id"]:
        if kind != "song":
            raise ValueError("spotify_id applies to songs only")
        match = SPOTIFY_ID.match(cells["spotify_id"])
        if not match:
            raise ValueError(f"spotify_id is not a Spotify track id: {cells['spotify_id']!r}")
        spotify_uri = f"spotify:track:{match.group(1)}"
    # Catalogues repeat the same tag lists; each distinct one is mapped once per import.
    mapping = tag_cache.get(cells["tags"]) if tag_cache is not None else None
    if mapping is None:
        mapping = vocabulary.map_tags([t for t in cells["tags"].split(";") if t.strip()])
        if tag_cache is not None and len(tag_cache) < 100_000:
            tag_cache[cells["tags"]] = mapping
    row = ItemRow(
        line=line,
        kind=kind,
        title=title,
        artist=artist,
        director=director,
        year=year,
        duration_s=duration,
        duration_estimated=estimated,
        tags=mapping.tags,
        spotify_uri=spotify_uri,
        intensity=intensity,
        aftercare=aftercare,
        sources=cells.get("sources") or None,
    )
    return row, mapping.unknown


def read_rows(
    text_lines: Iterable[str], vocabulary: Vocabulary, report: ImportReport
) -> Iterator[ItemRow]:
    """Parse CSV text; bad rows go to ``report.errors`` with their line numbers."""
    reader = csv.DictReader(text_lines)
    header = reader.fieldnames or []
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise CatalogFileError(
            f"line 1: the header lacks {', '.join(missing)}; expected {','.join(REQUIRED_COLUMNS)}"
        )
    tag_cache: dict = {}
    for raw in reader:
        line = reader.line_num
        try:
            row, unknown = parse_row(line, raw, vocabulary, tag_cache)
        except ValueError as exc:
            report.errors.append(RowProblem(line, str(exc)))
            continue
        if unknown:
            report.warnings.append(
                RowProblem(line, f"tags kept as free-form (not in the vocabulary): "
                                 f"{', '.join(unknown)}")
            )
        yield row


ITEM_FIELDS = ("kind", "title", "artist", "director", "year", "duration_s",
               "duration_estimated", "intensity", "aftercare", "sources")
# Identity keys looked up per query (well under every database's bound-parameter limit).
LOOKUP_CHUNK = 900


def _existing(db: Session, keys: list[str]) -> dict[str, dict]:
    """Stored items for ``keys`` as plain dicts (with their ordered tags), by identity key."""
    items = CatalogItem.__table__
    tags = ItemTag.__table__
    found: dict[str, dict] = {}
    for start in range(0, len(keys), LOOKUP_CHUNK):
        chunk = keys[start:start + LOOKUP_CHUNK]
        rows = db.execute(select(items).where(items.c.identity_key.in_(chunk))).mappings()
        by_id = {}
        for row in rows:
            entry = dict(row)
            entry["tags"] = []
            found[entry["identity_key"]] = entry
            by_id[entry["id"]] = entry
        if by_id:
            for item_id, tag in db.execute(
                select(tags.c.item_id, tags.c.tag).where(tags.c.item_id.in_(list(by_id)))
                .order_by(tags.c.item_id, tags.c.position)
            ):
                by_id[item_id]["tags"].append(tag)
    return found


def _changes(stored: dict, row: ItemRow) -> dict:
    """The item columns ``row`` would change on ``stored``."""
    values = {name: getattr(row, name) for name in ITEM_FIELDS
              if stored[name] != getattr(row, name)}
    # A duration learnt from Spotify is never replaced by a file's estimate, nor a year erased.
    if row.duration_estimated and stored["duration_estimated"] is False:
        values.pop("duration_s", None)
        values.pop("duration_estimated", None)
    if row.year is None:
        values.pop("year", None)
    if stored.get("shared") is False:  # a track known from someone's library joins the catalogue
        values["shared"] = True
    # A linked Spotify URI is never erased by a file that lacks one.
    if row.spotify_uri and stored["spotify_uri"] != row.spotify_uri:
        values["spotify_uri"] = row.spotify_uri
    return values


def import_rows(
    db: Session, rows: Iterable[ItemRow], report: ImportReport, *, batch_size: int = 5000
) -> ImportReport:
    """Upsert rows by identity key; later rows with the same identity update earlier ones.

    Works in batches with SQLAlchemy Core: one look-up of the batch's identity keys, then
    bulk inserts of new items and their tags, and an update only for items that changed.
    """
    items = CatalogItem.__table__
    tags = ItemTag.__table__
    batch: dict[str, ItemRow] = {}

    def flush() -> None:
        existing = _existing(db, list(batch))
        now = utcnow()
        new_items: list[dict] = []
        new_tags: list[dict] = []
        for key, row in batch.items():
            stored = existing.get(key)
            if stored is None:
                item_id = new_id()
                new_items.append({
                    "id": item_id, "identity_key": key,
                    **{name: getattr(row, name) for name in ITEM_FIELDS},
                    "spotify_uri": row.spotify_uri, "created_at": now, "updated_at": now,
                })
                new_tags.extend({"item_id": item_id, "tag": t, "position": i}
                                for i, t in enumerate(row.tags))
                report.added += 1
                continue
            values = _changes(stored, row)
            tags_changed = stored["tags"] != list(row.tags)
            if not values and not tags_changed:
                report.unchanged += 1
                continue
            values["updated_at"] = now
            db.execute(update(items).where(items.c.id == stored["id"]).values(**values))
            if tags_changed:
                db.execute(delete(tags).where(tags.c.item_id == stored["id"]))
                new_tags.extend({"item_id": stored["id"], "tag": t, "position": i}
                                for i, t in enumerate(row.tags))
            report.updated += 1
        if new_items:
            db.execute(insert(items), new_items)
        if new_tags:
            db.execute(insert(tags), new_tags)
        batch.clear()

    for row in rows:
        key = row.key
        if key in batch:
            report.warnings.append(
                RowProblem(row.line, "same song or film as an earlier row; the later row wins")
            )
            report.unchanged += 1
        batch[key] = row
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    if report.changed:
        # Core writes bypass the identity map: drop any stale catalogue objects it holds.
        db.expire_all()
        bump_catalog_revision(db)
    return report


def import_csv(
    db: Session,
    source: Path | str | io.TextIOBase,
    *,
    vocabulary: Vocabulary | None = None,
    progress: bool = False,
) -> ImportReport:
    """Import a catalogue CSV file (a path or an open text stream) and commit."""
    vocabulary = vocabulary or default_vocabulary()
    report = ImportReport()
    if isinstance(source, (str, Path)):
        path = Path(source)
        total = None
        if progress:
            with path.open("rb") as fh:
                total = max(sum(1 for _ in fh) - 1, 0)
        with path.open(newline="", encoding="utf-8-sig") as fh:
            rows = read_rows(fh, vocabulary, report)
            if progress:
                rows = tqdm(rows, total=total, unit="rows", desc=f"importing {path.name}")
            import_rows(db, rows, report)
    else:
        import_rows(db, read_rows(source, vocabulary, report), report)
    db.commit()
    return report
