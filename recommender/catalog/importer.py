"""Import catalogue items from the contract's CSV format into the store.

Header (required): ``kind,title,artist,director,year,duration_s,tags,spotify_id``.
Optional extra columns: ``intensity``, ``aftercare``, ``duration_estimated``, ``sources``.
A bad row is reported with its line number (the header is line 1) and skipped; the good rows
land, all in one transaction (a file that cannot be imported as a whole changes nothing).
Re-importing the same file changes nothing.

Built for catalogues of a million rows: the file is read in blocks of records and checked
column by column (pandas) instead of row by row. A row those checks cannot vouch for (a bad
cell, an unusual way of writing a number, too few or too many cells) goes through
:func:`parse_row`, the row-by-row validator, so it is accepted or reported exactly as
:func:`read_rows` would. Each block's new items and tags are stored with one bulk insert
each; items already stored are compared and updated as before.
"""

from __future__ import annotations

import csv
import io
import queue
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session
from tqdm import tqdm

from recommender.bulk_work import collector_paused
from recommender.catalog.identity import normalise_name, normalise_title
from recommender.store.catalog import bump_catalog_revision
from recommender.store.models import CatalogItem, ItemTag, new_ids, utcnow
from recommender.vocabulary import TagMapping, Vocabulary, default_vocabulary

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


def identity_keys(kinds: list[str], titles: list[str], makers: list[str]) -> list[str]:
    """:func:`~recommender.catalog.identity.identity_key` of many rows (kinds already folded)."""
    return [_cached_identity_key(kind, title, maker)
            for kind, title, maker in zip(kinds, titles, makers, strict=True)]


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



# Records read and checked together; also how many rows one bulk insert stores.
BLOCK_ROWS = 50_000
# A tag list's mapping is remembered for the rest of the import (catalogues repeat them).
TAG_CACHE_MAX = 100_000
_ONE_TAG = ("one tag",)  # the key, in the tag-list cache, of the cache of single tags
_WHOLE_NUMBER = r"[0-9]{1,9}"
_ROW_FIELDS = ("kind", "title", "artist", "director", "year", "duration_s",
               "duration_estimated", "tags", "spotify_uri", "intensity", "aftercare", "sources")


@dataclass
class RowBlock:
    """The valid rows of one block of the file, column by column, in file order."""

    line: list[int]
    kind: list[str]
    title: list[str]
    artist: list[str | None]
    director: list[str | None]
    year: list[int | None]
    duration_s: list[int]
    duration_estimated: list[bool]
    tags: list[tuple[str, ...]]
    spotify_uri: list[str | None]
    intensity: list[int]
    aftercare: list[bool]
    sources: list[str | None]
    records: int = 0  # records read for this block, good and bad (for the progress bar)
    key: list[str] = field(default_factory=list)
    # Problems found reading the block, until they are handed to an ImportReport.
    errors: list[RowProblem] = field(default_factory=list)
    warnings: list[RowProblem] = field(default_factory=list)

    def hand_problems_to(self, report: ImportReport) -> None:
        report.errors.extend(self.errors)
        report.warnings.extend(self.warnings)
        self.errors, self.warnings = [], []

    def __len__(self) -> int:
        return len(self.line)

    def row(self, i: int) -> ItemRow:
        return ItemRow(line=self.line[i], **{name: getattr(self, name)[i] for name in _ROW_FIELDS})

    def rows(self) -> list[ItemRow]:
        return [self.row(i) for i in range(len(self))]

    @classmethod
    def from_rows(cls, rows: list[ItemRow], records: int | None = None) -> RowBlock:
        block = cls(line=[r.line for r in rows],
                    **{name: [getattr(r, name) for r in rows] for name in _ROW_FIELDS},
                    records=len(rows) if records is None else records)
        block.key = [r.key for r in rows]
        return block


def _whole_numbers(cells: pd.Series, low: int, high: int):
    """Cells that are plain digits, as numbers: (values, empty, fine) arrays. A cell that is
    neither empty nor plain digits in [low, high] is not fine (the row is checked alone)."""
    empty = cells.eq("").to_numpy(dtype=bool)
    plain = cells.str.fullmatch(_WHOLE_NUMBER).to_numpy(dtype=bool)
    values = np.zeros(len(cells), dtype=np.int64)
    if plain.any():
        values[plain] = pd.to_numeric(cells[plain]).to_numpy(np.int64)
    return values, empty, empty | (plain & (values >= low) & (values <= high))


def _flags(raw: pd.Series | None, default: np.ndarray):
    """A true/false column as :func:`_bool_cell` reads it: (values, fine) arrays."""
    if raw is None:
        return default.copy(), np.ones(len(default), dtype=bool)
    folded = raw.str.strip().str.lower()
    true = folded.isin(TRUE_WORDS).to_numpy(dtype=bool)
    false = folded.isin(FALSE_WORDS - {""}).to_numpy(dtype=bool)
    empty = folded.eq("").to_numpy(dtype=bool)
    return np.where(true, True, np.where(false, False, default)), true | false | empty


def _dict_row(header: list[str], record: list[str]) -> dict[str | None, str | None]:
    """``record`` as :class:`csv.DictReader` gives it (extra cells under None, missing ones
    None)."""
    raw: dict[str | None, str | None] = dict(zip(header, record, strict=False))
    if len(record) > len(header):
        raw[None] = record[len(header):]  # type: ignore[assignment]
    else:
        for name in header[len(record):]:
            raw[name] = None
    return raw


def _check_block(
    header: list[str], records: list[list[str]], lines: list[int], vocabulary: Vocabulary,
    tag_cache: dict,
) -> RowBlock:
    """Validate one block of records column by column; rows the column checks cannot vouch
    for go through :func:`parse_row`. Problems are kept on the block, in line order."""
    index = {name: i for i, name in enumerate(header)}  # a repeated name: the last one, as
    regular = [i for i, r in enumerate(records) if len(r) == len(header)]  # DictReader does
    columns = list(zip(*(records[i] for i in regular), strict=True)) if regular else []

    def cells(name: str) -> pd.Series | None:
        if name not in index:
            return None
        return pd.Series(columns[index[name]] if regular else [], dtype=object)

    def stripped(name: str) -> pd.Series | None:
        raw = cells(name)
        return None if raw is None else raw.str.strip()

    n = len(regular)
    kind = stripped("kind").str.lower()
    title, artist, director = stripped("title"), stripped("artist"), stripped("director")
    is_song = kind.eq("song").to_numpy(dtype=bool)
    fine = (is_song | kind.eq("film").to_numpy(dtype=bool)) & title.ne("").to_numpy(dtype=bool)
    fine &= ~(is_song & artist.eq("").to_numpy(dtype=bool))
    year, no_year, year_fine = _whole_numbers(stripped("year"), 1500, 2100)
    duration, no_duration, duration_fine = _whole_numbers(stripped("duration_s"), 10, 6 * 3600)
    fine &= year_fine & duration_fine
    estimated, estimated_fine = _flags(cells("duration_estimated"), no_duration)
    duration = np.where(no_duration, np.where(is_song, TYPICAL_DURATION_S["song"],
                                              TYPICAL_DURATION_S["film"]), duration)
    estimated = estimated | no_duration
    intensity_cells = stripped("intensity")
    if intensity_cells is None:
        intensity, intensity_fine = np.full(n, 3, dtype=np.int64), np.ones(n, dtype=bool)
    else:
        intensity, no_intensity, intensity_fine = _whole_numbers(intensity_cells, 1, 5)
        intensity = np.where(no_intensity, 3, intensity)
    aftercare, aftercare_fine = _flags(cells("aftercare"), np.zeros(n, dtype=bool))
    fine &= estimated_fine & intensity_fine & aftercare_fine
    spotify = stripped("spotify_id")
    has_spotify = spotify.ne("").to_numpy(dtype=bool)
    spotify_uri = np.full(n, None, dtype=object)
    if has_spotify.any():
        found = spotify[has_spotify].str.extract(SPOTIFY_ID.pattern, expand=False)
        matched = found.notna().to_numpy(dtype=bool)
        where = np.flatnonzero(has_spotify)
        fine[where] &= is_song[where] & matched
        spotify_uri[where[matched]] = ("spotify:track:" + found[matched]).to_numpy()
    tag_cells = stripped("tags")
    codes, distinct = pd.factorize(tag_cells) if n else (np.zeros(0, dtype=np.int64), [])
    mappings = np.empty(len(distinct), dtype=object)
    for j, cell in enumerate(distinct):
        mappings[j] = _map_tag_cell(cell, vocabulary, tag_cache.setdefault(_ONE_TAG, {}))
    sources = stripped("sources")

    def objects(values) -> np.ndarray:
        out = np.empty(n, dtype=object)
        out[:] = values
        return out

    positions = np.asarray(regular, dtype=np.int64)
    empty_artist = artist.eq("").to_numpy(dtype=bool)
    empty_director = director.eq("").to_numpy(dtype=bool)
    fields = {
        "line": objects(np.asarray(lines, dtype=object)[positions] if n else []),
        "kind": objects(kind.to_numpy()),
        "title": objects(title.to_numpy()),
        "artist": np.where(is_song & ~empty_artist, artist.to_numpy(), None),
        "director": np.where(~is_song & ~empty_director, director.to_numpy(), None),
        "year": np.where(no_year, None, year.astype(object)),
        "duration_s": duration.astype(object),
        "duration_estimated": estimated.astype(object),
        "tags": mappings[codes] if n else objects([]),
        "spotify_uri": spotify_uri,
        "intensity": intensity.astype(object),
        "aftercare": aftercare.astype(object),
        "sources": (np.where(sources.eq("").to_numpy(dtype=bool), None, sources.to_numpy())
                    if sources is not None else objects(None)),
    }
    fields = {name: values[fine] for name, values in fields.items()}
    kept = positions[fine]

    # Rows the column checks did not vouch for: one at a time, as read_rows does.
    slow = sorted(set(range(len(records))) - set(kept.tolist()))
    problems: list[tuple[int, RowProblem]] = []
    slow_rows: list[tuple[int, ItemRow, tuple[str, ...]]] = []
    for position in slow:
        line = lines[position]
        try:
            row, unknown = parse_row(line, _dict_row(header, records[position]), vocabulary,
                                     tag_cache)
        except ValueError as exc:
            problems.append((position, RowProblem(line, str(exc))))
            continue
        slow_rows.append((position, row, unknown))
    mapped = fields["tags"]
    unknown = [m.unknown for m in mapped]
    fields["tags"] = np.array([m.tags for m in mapped] + [None], dtype=object)[:-1]
    if slow_rows:
        kept = np.concatenate([kept, [p for p, _, _ in slow_rows]])
        for name in fields:
            extra = np.empty(len(slow_rows), dtype=object)
            extra[:] = [getattr(row, name) for _, row, _ in slow_rows]
            fields[name] = np.concatenate([fields[name], extra])
        unknown += [u for _, _, u in slow_rows]
        order = np.argsort(kept, kind="stable")
        kept = kept[order]
        fields = {name: values[order] for name, values in fields.items()}
        unknown = [unknown[i] for i in order.tolist()]
    block = RowBlock(**{name: values.tolist() for name, values in fields.items()},
                     records=len(records))
    block.key = identity_keys(block.kind, block.title, [
        artist or director or "" for artist, director in zip(block.artist, block.director,
                                                             strict=True)])
    block.errors = [p for _, p in problems]
    block.warnings = [_unknown_tags(line, u)
                      for line, u in zip(block.line, unknown, strict=True) if u]
    return block


def _map_tag_cell(cell: str, vocabulary: Vocabulary, cache: dict) -> TagMapping:
    """``vocabulary.map_tags`` of a ``tags`` cell, from each tag's own mapping (remembered:
    catalogues repeat their tags)."""
    out: list[str] = []
    unknown: list[str] = []
    for raw in cell.split(";"):
        if not raw.strip():
            continue
        mapping = cache.get(raw)
        if mapping is None:
            mapping = vocabulary.map_tags([raw])
            if len(cache) < TAG_CACHE_MAX:
                cache[raw] = mapping
        for tag in mapping.tags:
            if tag not in out:
                out.append(tag)
        unknown.extend(mapping.unknown)
    return TagMapping(tuple(out), tuple(unknown))


def _unknown_tags(line: int, unknown: tuple[str, ...]) -> RowProblem:
    return RowProblem(line, f"tags kept as free-form (not in the vocabulary): "
                            f"{', '.join(unknown)}")


def read_blocks(
    text_lines: Iterable[str], vocabulary: Vocabulary, report: ImportReport | None,
    *, block_rows: int = BLOCK_ROWS,
) -> Iterator[RowBlock]:
    """Parse CSV text in blocks of ``block_rows`` records; the same rows, errors and warnings
    as :func:`read_rows`, checked column by column. Each block's problems go to ``report``
    as it is yielded (with no report, they stay on the block)."""
    for block in _read_blocks(text_lines, vocabulary, block_rows):
        if report is not None:
            block.hand_problems_to(report)
        yield block


def _read_blocks(text_lines: Iterable[str], vocabulary: Vocabulary,
                 block_rows: int) -> Iterator[RowBlock]:
    reader = csv.reader(text_lines)
    header = next(reader, [])
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise CatalogFileError(
            f"line 1: the header lacks {', '.join(missing)}; expected {','.join(REQUIRED_COLUMNS)}"
        )
    tag_cache: dict = {}
    records: list[list[str]] = []
    lines: list[int] = []
    for record in reader:
        if not record:  # a blank line, skipped as csv.DictReader skips it
            continue
        records.append(record)
        lines.append(reader.line_num)
        if len(records) >= block_rows:
            yield _check_block(header, records, lines, vocabulary, tag_cache)
            records, lines = [], []
    if records:
        yield _check_block(header, records, lines, vocabulary, tag_cache)


ITEM_FIELDS = ("kind", "title", "artist", "director", "year", "duration_s",
               "duration_estimated", "intensity", "aftercare", "sources")
# Identity keys looked up per query (well under every database's bound-parameter limit).
LOOKUP_CHUNK = 900
# Every stored identity key is read once (instead of looking each block's keys up) when the
# store holds at most this many items per row the file is expected to have.
KNOWN_KEYS_PER_ROW = 4
# SQLite page cache for the import's connection while it loads (KiB): the unique indexes are
# written in random order, and a cache that holds them saves most of the reads.
SQLITE_IMPORT_CACHE_KIB = 512 * 1024
_INSERT_COLUMNS = ("id", "identity_key", *ITEM_FIELDS, "spotify_uri", "created_at",
                   "updated_at", "shared")


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


class _BulkWriter:
    """Bulk inserts of new items and tags on the session's connection.

    On SQLite the rows go to the driver's ``executemany`` as plain tuples (SQLAlchemy's
    per-row parameter handling costs as much as SQLite's own work), with a large page cache
    while the import runs (restored afterwards). Elsewhere, SQLAlchemy Core's executemany
    (which batches rows into multi-row INSERTs on PostgreSQL).
    """

    def __init__(self, db: Session):
        self.db = db
        self.conn = db.connection()
        self.sqlite = self.conn.dialect.name == "sqlite"
        self.saved_cache: int | None = None
        if self.sqlite:
            self.saved_cache = self.conn.exec_driver_sql("PRAGMA cache_size").scalar()
            self.conn.exec_driver_sql(f"PRAGMA cache_size=-{SQLITE_IMPORT_CACHE_KIB}")

    def close(self) -> None:
        if self.sqlite and self.saved_cache is not None:
            self.conn.exec_driver_sql(f"PRAGMA cache_size={int(self.saved_cache)}")

    def timestamp(self, value):
        """``value`` as the driver stores a timestamp column."""
        if not self.sqlite:
            return value
        column_type = CatalogItem.__table__.c.created_at.type
        process = column_type.dialect_impl(self.conn.dialect).bind_processor(self.conn.dialect)
        return process(value) if process else value

    def insert(self, table, columns: tuple[str, ...], rows: list[tuple]) -> None:
        if not rows:
            return
        if self.sqlite:
            marks = ", ".join("?" for _ in columns)
            self.conn.exec_driver_sql(
                f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({marks})", rows)
        else:
            self.db.execute(insert(table), [dict(zip(columns, row, strict=True)) for row in rows])


def _store_block(
    db: Session, writer: _BulkWriter, block: RowBlock, report: ImportReport,
    known: set[str] | None,
) -> None:
    """Add the block's new items, update the stored ones it changes. ``known``, when given,
    holds every stored identity key (and is kept up to date)."""
    items = CatalogItem.__table__
    tags = ItemTag.__table__
    block.hand_problems_to(report)
    last: dict[str, int] = {}
    for i, key in enumerate(block.key):
        if key in last:
            report.warnings.append(RowProblem(
                block.line[i], "same song or film as an earlier row; the later row wins"))
            report.unchanged += 1
        last[key] = i
    wanted = [k for k in last if k in known] if known is not None else list(last)
    existing = _existing(db, wanted) if wanted else {}
    now = utcnow()
    stamp = writer.timestamp(now)
    new_items: list[tuple] = []
    new_tags: list[tuple] = []
    # Sorted, so the primary-key index is written in one sweep per block.
    fresh_ids = iter(sorted(new_ids(len(last) - len(existing))))
    for key, i in last.items():
        stored = existing.get(key)
        if stored is None:
            item_id = next(fresh_ids)
            new_items.append((
                item_id, key, block.kind[i], block.title[i], block.artist[i], block.director[i],
                block.year[i], block.duration_s[i], block.duration_estimated[i],
                block.intensity[i], block.aftercare[i], block.sources[i], block.spotify_uri[i],
                stamp, stamp, True))
            new_tags.extend((item_id, t, p) for p, t in enumerate(block.tags[i]))
            continue
        row = block.row(i)
        values = _changes(stored, row)
        tags_changed = stored["tags"] != list(row.tags)
        if not values and not tags_changed:
            report.unchanged += 1
            continue
        values["updated_at"] = now
        db.execute(update(items).where(items.c.id == stored["id"]).values(**values))
        if tags_changed:
            db.execute(delete(tags).where(tags.c.item_id == stored["id"]))
            new_tags.extend((stored["id"], t, p) for p, t in enumerate(row.tags))
        report.updated += 1
    writer.insert(items, _INSERT_COLUMNS, new_items)
    writer.insert(tags, ("item_id", "tag", "position"), new_tags)
    report.added += len(new_items)
    if known is not None:
        known.update(last)


def import_blocks(
    db: Session, blocks: Iterable[RowBlock], report: ImportReport, *,
    expected_rows: int | None = None, progress: tqdm | None = None,
    read_all_keys: bool | None = None,
) -> ImportReport:
    """Upsert blocks of rows by identity key; later rows with the same identity update
    earlier ones (within a block the later row wins outright).

    New items and their tags are stored with one bulk insert per block; an item already
    stored is updated only when the row changes it. When the file is large next to the
    store, every stored identity key is read once up front instead of looking up each
    block's keys (``read_all_keys`` forces either way).
    """
    writer = _BulkWriter(db)
    try:
        known: set[str] | None = None
        for number, block in enumerate(blocks):
            if number == 0:
                if read_all_keys is None:
                    stored = db.scalar(select(func.count()).select_from(CatalogItem)) or 0
                    rows = max(expected_rows or 0, len(block))
                    read_all_keys = stored <= KNOWN_KEYS_PER_ROW * rows
                if read_all_keys:
                    known = set(db.scalars(select(CatalogItem.identity_key)))
            _store_block(db, writer, block, report, known)
            if progress is not None:
                progress.update(block.records)
    finally:
        writer.close()
    if report.changed:
        # Core writes bypass the identity map: drop any stale catalogue objects it holds.
        db.expire_all()
        bump_catalog_revision(db)
    return report


def _read_ahead(blocks: Iterator[RowBlock], depth: int = 2) -> Iterator[RowBlock]:
    """``blocks``, read on a thread of their own while the caller stores the ones before
    (SQLite and the database drivers let go of the GIL while they write). Each block keeps
    its problems, so the report gets them in file order. Stops the reader when the caller
    stops early."""
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def hand_over(item) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for block in blocks:
                if not hand_over(block):
                    return
            hand_over(done)
        except BaseException as exc:  # handed to the caller, raised there
            hand_over(exc)

    reader = threading.Thread(target=read, name="catalogue-reader", daemon=True)
    reader.start()
    try:
        while True:
            item = ready.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        reader.join()


def import_csv(
    db: Session,
    source: Path | str | io.TextIOBase,
    *,
    vocabulary: Vocabulary | None = None,
    progress: bool = False,
    block_rows: int = BLOCK_ROWS,
) -> ImportReport:
    """Import a catalogue CSV file (a path or an open text stream) and commit. A file is read
    and checked on a second thread while the blocks before are stored."""
    vocabulary = vocabulary or default_vocabulary()
    report = ImportReport()
    with collector_paused():
        _import_source(db, source, vocabulary, report, progress, block_rows)
    db.commit()
    return report


def _import_source(db: Session, source: Path | str | io.TextIOBase, vocabulary: Vocabulary,
                   report: ImportReport, progress: bool, block_rows: int) -> None:
    if isinstance(source, (str, Path)):
        path = Path(source)
        with path.open("rb") as fh:
            total = max(sum(1 for _ in fh) - 1, 0)
        bar = tqdm(total=total, unit="rows", desc=f"importing {path.name}") if progress else None
        try:
            with path.open(newline="", encoding="utf-8-sig") as fh:
                blocks = _read_ahead(read_blocks(fh, vocabulary, None, block_rows=block_rows))
                try:
                    import_blocks(db, blocks, report, expected_rows=total, progress=bar)
                finally:
                    blocks.close()  # the reader stops before the file closes
        finally:
            if bar is not None:
                bar.close()
    else:
        import_blocks(db, read_blocks(source, vocabulary, report, block_rows=block_rows), report)
