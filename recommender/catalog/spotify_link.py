"""Link catalogue songs to Spotify: URI, ISRC, real duration and release year, by search.

One song at a time (``GET /search`` with ``limit`` at most 10, or ``GET /tracks/{id}`` for a
song that already has a URI), with an app token from the client-credentials flow. Every
outcome, a match or none, is cached in ``spotify_lookups``, so a run asks only about songs
never looked up, and an interrupted run resumes where it stopped.

A 429 is honoured by scheduling, never by sleeping: the moment to resume (now plus
``Retry-After``) is recorded in ``meta`` (key ``spotify_link_resume_at``) and the run stops
with a message saying when to run again; a run started before then does nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from recommender.services.spotify import (
    SpotifyClient,
    SpotifyRateLimited,
    SpotifyUnauthorized,
    SpotifyUnavailable,
    TrackMatch,
    score_candidate,
    track_match_from,
)
from recommender.store.catalog import bump_catalog_revision, schedule_resume, scheduled_resume
from recommender.store.models import CatalogItem, SpotifyLookup, utcnow

RESUME_KEY = "spotify_link_resume_at"
UNAVAILABLE_RETRY_S = 60
COMMIT_EVERY = 10


def resume_at(db: Session) -> datetime | None:
    return scheduled_resume(db, RESUME_KEY)


def _schedule(db: Session, when: datetime | None) -> None:
    schedule_resume(db, RESUME_KEY, when)


@dataclass
class LinkReport:
    status: str = "done"  # done | partial (limit reached) | paused | waiting
    checked: int = 0
    matched: int = 0
    unmatched: int = 0
    remaining: int = 0
    resume_at: datetime | None = None
    message: str = ""

    def summary(self) -> str:
        text = (f"{self.status}: {self.checked} songs looked up, {self.matched} linked, "
                f"{self.unmatched} not found on Spotify, {self.remaining} left")
        return f"{text}. {self.message}" if self.message else text


def songs_to_link(db: Session) -> list[str]:
    """Ids of catalogue songs never looked up on Spotify, in a stable order."""
    looked_up = select(SpotifyLookup.item_id)
    return list(db.scalars(
        select(CatalogItem.id)
        .where(CatalogItem.kind == "song", CatalogItem.artist.is_not(None),
               CatalogItem.id.not_in(looked_up))
        .order_by(CatalogItem.id)
    ))


def find_match(client: SpotifyClient, item: CatalogItem) -> TrackMatch | None:
    """The Spotify recording for a catalogue song (its own URI first, else a search)."""
    known_duration = None if item.duration_estimated else item.duration_s
    if item.spotify_uri:
        track = client.track(item.spotify_uri.rsplit(":", 1)[-1])
        return track_match_from(track, score_candidate(item.title, item.artist or "",
                                                       known_duration, track) or 1.0)
    return client.search_track(item.title, item.artist or "", known_duration, limit=10)


def apply_match(item: CatalogItem, match: TrackMatch) -> None:
    """Spotify's facts onto the item: URI and ISRC, its duration over an estimate, a year."""
    item.spotify_uri = item.spotify_uri or match.uri
    item.isrc = item.isrc or match.isrc
    if match.duration_s and item.duration_estimated:
        item.duration_s = match.duration_s
        item.duration_estimated = False
    if item.year is None and match.year:
        item.year = match.year
    item.updated_at = utcnow()


def link_catalogue(
    db: Session,
    client: SpotifyClient,
    *,
    new_client: Callable[[], SpotifyClient] | None = None,
    limit: int | None = None,
    now: datetime | None = None,
) -> LinkReport:
    """Look up catalogue songs on Spotify; commits as it goes.

    ``new_client`` gives a client with a fresh app token when the current one expires.
    ``limit`` caps the songs looked up in this run.
    """
    now = now or utcnow()
    report = LinkReport()
    scheduled = resume_at(db)
    if scheduled is not None and scheduled > now:
        report.status, report.resume_at = "waiting", scheduled
        report.remaining = len(songs_to_link(db))
        report.message = (f"Spotify asked us to wait; run again after "
                          f"{scheduled.isoformat(timespec='seconds')}")
        return report
    todo = songs_to_link(db)
    changed = False
    try:
        for n, item_id in enumerate(todo):
            if limit is not None and n >= limit:
                report.status = "partial"
                report.message = f"stopped after {limit} songs; run again to continue"
                break
            item = db.get(CatalogItem, item_id)
            try:
                match = find_match(client, item)
            except SpotifyUnauthorized:
                if new_client is None:
                    raise
                client = new_client()
                match = find_match(client, item)
            report.checked += 1
            if match is None:
                report.unmatched += 1
                db.add(SpotifyLookup(item_id=item.id, status="unmatched", checked_at=utcnow()))
            else:
                report.matched += 1
                apply_match(item, match)
                changed = True
                db.add(SpotifyLookup(item_id=item.id, status="matched", spotify_uri=match.uri,
                                     isrc=match.isrc, score=match.score, checked_at=utcnow()))
            if report.checked % COMMIT_EVERY == 0:
                db.commit()
    except SpotifyRateLimited as exc:
        report.status = "paused"
        report.resume_at = now + timedelta(seconds=exc.retry_after_s)
        quota = " (quota exceeded)" if exc.reason == "QUOTA_EXCEEDED" else ""
        report.message = (f"Spotify rate limit reached{quota}; the songs linked so far are "
                          f"kept. Run again after {report.resume_at.isoformat(timespec='seconds')}"
                          f" (in {exc.retry_after_s} s)")
        _schedule(db, report.resume_at)
    except SpotifyUnavailable as exc:
        report.status = "paused"
        report.resume_at = now + timedelta(seconds=UNAVAILABLE_RETRY_S)
        report.message = (f"Spotify is unavailable ({exc}); the songs linked so far are kept. "
                          f"Run again after {report.resume_at.isoformat(timespec='seconds')}")
        _schedule(db, report.resume_at)
    else:
        _schedule(db, None)
    if changed:
        bump_catalog_revision(db)
    db.commit()
    report.remaining = db.scalar(
        select(func.count()).select_from(CatalogItem)
        .where(CatalogItem.kind == "song", CatalogItem.artist.is_not(None),
               CatalogItem.id.not_in(select(SpotifyLookup.item_id)))
    ) or 0
    return report
