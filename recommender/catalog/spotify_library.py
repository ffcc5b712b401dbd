"""A person's own Spotify library as items in their personal library.

``import_spotify_library`` reads the connected user's recently played tracks, top tracks and
saved tracks (through :mod:`recommender.services.spotify` only) and links each to a catalogue
item: an item the catalogue already has (same identity key or Spotify URI) is linked as it is,
gaining the URI, ISRC and real duration it lacked; a track the catalogue lacks becomes a new
item that stays out of the shared catalogue (``shared`` False) and belongs only to the
libraries that hold it. Tags for such tracks come from Last.fm when it is configured;
otherwise they stay empty and the track still imports.

Each source is committed as soon as it is read, so a rate limit or an outage part-way keeps
what came in: the report says why it paused and when to try again, and running the import
again finishes it (re-importing changes nothing).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from recommender.catalog.lastfm_tags import cached_top_tags, vocabulary_tags
from recommender.catalog.merge import Candidate, MergeReport, merge_candidates, merge_into
from recommender.services.lastfm import LastfmClient, LastfmError
from recommender.services.spotify import (
    SpotifyClient,
    SpotifyRateLimited,
    SpotifyUnavailable,
)
from recommender.store.models import CatalogItem, LibraryItem, utcnow
from recommender.vocabulary import Vocabulary, default_vocabulary

SOURCES = ("spotify_recent", "spotify_top", "spotify_saved")


@dataclass
class LibraryImportReport:
    status: str = "done"  # done | paused
    added: int = 0  # library entries new this time
    unchanged: int = 0  # library entries already there
    new_items: int = 0  # tracks the catalogue did not have
    catalogue_matches: int = 0  # tracks linked to items the catalogue had
    tagged: int = 0  # new tracks that got mood tags from Last.fm
    skipped: int = 0  # local files and tracks without an id
    sources_done: list[str] = field(default_factory=list)
    retry_after_s: int | None = None
    message: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status, "added": self.added, "unchanged": self.unchanged,
            "new_items": self.new_items, "catalogue_matches": self.catalogue_matches,
            "tagged": self.tagged, "skipped": self.skipped,
            "sources_done": list(self.sources_done), "retry_after_s": self.retry_after_s,
            "message": self.message,
        }


def _moment(text: str | None, default: datetime) -> datetime:
    if not text:
        return default
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return default


def candidate_from_track(track: dict[str, Any]) -> Candidate | None:
    """A catalogue candidate for a Spotify track object; None for local files and the like."""
    if not track or track.get("is_local") or not track.get("id") or not track.get("name"):
        return None
    artists = [str(a.get("name") or "") for a in track.get("artists") or [] if a.get("name")]
    if not artists:
        return None
    release = str((track.get("album") or {}).get("release_date") or "")
    duration_ms = track.get("duration_ms")
    return Candidate(
        kind="song",
        title=str(track["name"]),
        artist=", ".join(artists),
        year=int(release[:4]) if release[:4].isdigit() else None,
        duration_s=round(int(duration_ms) / 1000) if duration_ms else None,
        spotify_uri=str(track.get("uri") or f"spotify:track:{track['id']}"),
        isrc=(track.get("external_ids") or {}).get("isrc"),
        shared=False,
    )


def _read(client: SpotifyClient, source: str, now: datetime) -> list[tuple[dict, datetime]]:
    """(track object, added_at) pairs from one source."""
    if source == "spotify_recent":
        return [(e.get("track") or {}, _moment(e.get("played_at"), now))
                for e in client.recently_played()]
    if source == "spotify_top":
        return [(t or {}, now) for t in client.top_tracks()]
    return [(e.get("track") or {}, _moment(e.get("added_at"), now))
            for e in client.saved_tracks()]


def _link(db: Session, user_id: str, source: str, entries: list[tuple[str, datetime]],
          report: LibraryImportReport) -> None:
    have = set(db.scalars(select(LibraryItem.item_id).where(
        LibraryItem.user_id == user_id, LibraryItem.source == source)))
    for item_id, added_at in entries:
        if item_id in have:
            report.unchanged += 1
            continue
        have.add(item_id)
        db.add(LibraryItem(user_id=user_id, item_id=item_id, source=source, added_at=added_at,
                           imported_at=utcnow()))
        report.added += 1


def _tag_from_lastfm(db: Session, lastfm: LastfmClient, item_ids: list[str],
                     vocabulary: Vocabulary, report: LibraryImportReport) -> None:
    items = db.scalars(select(CatalogItem).where(CatalogItem.id.in_(item_ids))
                       .options(selectinload(CatalogItem.tags))).all()
    for item in items:
        if item.tags or not item.artist:
            continue
        tags, _ = cached_top_tags(db, lastfm, item.artist.split(", ")[0], item.title)
        found = vocabulary_tags(tags, vocabulary)
        if found and merge_into(item, Candidate(kind="song", title=item.title, tags=found),
                                vocabulary):
            report.tagged += 1


def import_spotify_library(
    db: Session,
    client: SpotifyClient,
    user_id: str,
    *,
    lastfm: LastfmClient | None = None,
    vocabulary: Vocabulary | None = None,
    now: datetime | None = None,
) -> LibraryImportReport:
    """Import the user's recent, top and saved tracks into their library; commits per source.

    Rate limits and outages pause the import (``status`` ``paused``, with the reason and
    ``retry_after_s``); a token Spotify refuses (401) propagates for the caller to refresh.
    """
    vocabulary = vocabulary or default_vocabulary()
    now = now or utcnow()
    report = LibraryImportReport()
    lastfm_problem = ""
    for source in SOURCES:
        try:
            pairs = _read(client, source, now)
        except SpotifyRateLimited as exc:
            report.status, report.retry_after_s = "paused", exc.retry_after_s
            report.message = (f"Spotify rate limit reached while reading {source}; what was "
                              f"imported is kept. Try again in {exc.retry_after_s} s.")
            break
        except SpotifyUnavailable as exc:
            report.status, report.retry_after_s = "paused", 60
            report.message = (f"Spotify is unavailable ({exc}) while reading {source}; what "
                              f"was imported is kept. Try again in a minute.")
            break
        candidates: list[tuple[Candidate, datetime]] = []
        for track, added_at in pairs:
            candidate = candidate_from_track(track)
            if candidate is None:
                report.skipped += 1
                continue
            candidates.append((candidate, added_at))
        merged = merge_candidates(db, [c for c, _ in candidates], MergeReport(),
                                  vocabulary=vocabulary)
        new_ids = [merged.item_ids[k] for k in merged.item_ids
                   if db.get(CatalogItem, merged.item_ids[k]).shared is False]
        report.new_items += merged.added
        report.catalogue_matches += len(merged.item_ids) - len(new_ids)
        _link(db, user_id, source, [(merged.item_ids[c.key], at) for c, at in candidates], report)
        if lastfm is not None and new_ids and not lastfm_problem:
            try:
                _tag_from_lastfm(db, lastfm, new_ids, vocabulary, report)
            except LastfmError as exc:
                lastfm_problem = (f" Last.fm tags are pending ({exc}); the tracks are imported "
                                  f"without them.")
        db.commit()
        report.sources_done.append(source)
    report.message = (report.message + lastfm_problem).strip()
    db.commit()
    return report
