"""Mood knowledge from Last.fm: top tags of songs (and of films' directors) mapped onto the
vocabulary, cached in the store, added to catalogue items.

Songs ask ``track.getTopTags``; films ask ``artist.getTopTags`` for their director (MovieLens
and our lists name no soundtrack artist). Tags weighted at least :data:`MIN_TAG_COUNT` that the
vocabulary knows (directly or through its synonyms, "sad" -> grief, "tearjerker" -> release)
are added to the item; genre and other tags outside the vocabulary are left out.

Every answer (including "not found") is cached in ``lastfm_tags``, so a run interrupted by a
rate limit or an outage resumes where it stopped: what was fetched is kept, and a rate limit
records when to try again (``meta`` key ``lastfm_resume_at``) instead of sleeping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from recommender.catalog.identity import normalise_name, normalise_title
from recommender.catalog.merge import Candidate, merge_into
from recommender.services.lastfm import (
    LastfmClient,
    LastfmError,
    LastfmRateLimited,
    LastfmUnavailable,
)
from recommender.store.catalog import bump_catalog_revision, schedule_resume, scheduled_resume
from recommender.store.models import CatalogItem, LastfmTags, utcnow
from recommender.vocabulary import Vocabulary, default_vocabulary

MIN_TAG_COUNT = 10
MAX_TAGS_ADDED = 4
RESUME_KEY = "lastfm_resume_at"
UNAVAILABLE_RETRY_S = 60
COMMIT_EVERY = 25


def cache_key(method: str, artist: str, track: str | None = None) -> str:
    parts = [method, normalise_name(artist)]
    if track is not None:
        parts.append(normalise_title(track))
    return "|".join(parts)[:700]


def cached_top_tags(
    db: Session, client: LastfmClient | None, artist: str, track: str | None = None
) -> tuple[list[tuple[str, int]] | None, bool]:
    """(tags or None when Last.fm does not know it, whether Last.fm was asked).

    With no client, only the cache answers (None on a miss). Errors from Last.fm propagate.
    """
    method = "track.getTopTags" if track is not None else "artist.getTopTags"
    key = cache_key(method, artist, track)
    cached = db.get(LastfmTags, key)
    if cached is not None:
        return ([tuple(t) for t in cached.tags] if cached.found else None), False
    if client is None:
        return None, False
    if track is not None:
        found = client.track_top_tags(artist, track)
    else:
        found = client.artist_top_tags(artist)
    tags = [(t.name, t.count) for t in found] if found is not None else []
    db.add(LastfmTags(key=key, found=found is not None, tags=[list(t) for t in tags],
                      fetched_at=utcnow()))
    db.flush()
    return (tags if found is not None else None), True


def vocabulary_tags(tags: list[tuple[str, int]] | None, vocabulary: Vocabulary) -> tuple[str, ...]:
    """The vocabulary ids among Last.fm tags weighted at least MIN_TAG_COUNT, strongest first."""
    if not tags:
        return ()
    strong = [name for name, count in tags if count >= MIN_TAG_COUNT]
    mapping = vocabulary.map_tags(strong)
    known = [t for t in mapping.tags if t not in mapping.unknown]
    return tuple(known[:MAX_TAGS_ADDED])


def item_lookup(item: CatalogItem) -> tuple[str, str | None] | None:
    """(artist, track) to ask Last.fm about for an item, or None when it has no name to ask."""
    if item.kind == "song" and item.artist:
        return item.artist, item.title
    if item.kind == "film" and item.director:
        return item.director, None
    return None


def resume_at(db: Session) -> datetime | None:
    return scheduled_resume(db, RESUME_KEY)


def _schedule(db: Session, when: datetime | None) -> None:
    schedule_resume(db, RESUME_KEY, when)


@dataclass
class EnrichReport:
    status: str = "done"  # done | partial (limit reached) | paused | waiting
    items_seen: int = 0
    asked: int = 0  # requests that reached Last.fm
    from_cache: int = 0
    enriched: int = 0
    not_found: int = 0
    resume_at: datetime | None = None
    message: str = ""
    enriched_ids: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text = (f"{self.status}: {self.items_seen} items looked at, {self.enriched} gained tags, "
                f"{self.asked} asked of Last.fm, {self.from_cache} from the cache, "
                f"{self.not_found} unknown to Last.fm")
        return f"{text}. {self.message}" if self.message else text


def enrich_catalog(
    db: Session,
    client: LastfmClient,
    *,
    vocabulary: Vocabulary | None = None,
    limit: int | None = None,
    now: datetime | None = None,
) -> EnrichReport:
    """Add Last.fm mood tags to catalogue items; commits as it goes.

    ``limit`` caps the requests sent to Last.fm in this run (cached answers are free).
    """
    vocabulary = vocabulary or default_vocabulary()
    now = now or utcnow()
    report = EnrichReport()
    scheduled = resume_at(db)
    if scheduled is not None and scheduled > now:
        report.status, report.resume_at = "waiting", scheduled
        report.message = (f"Last.fm asked us to slow down; run again after "
                          f"{scheduled.isoformat(timespec='seconds')}")
        return report
    items = db.scalars(select(CatalogItem).options(selectinload(CatalogItem.tags))
                       .order_by(CatalogItem.kind, CatalogItem.id)).all()
    changed = False
    pending = 0
    try:
        for item in items:
            lookup = item_lookup(item)
            if lookup is None:
                continue
            if limit is not None and report.asked >= limit:
                report.status = "partial"
                report.message = f"stopped after {limit} requests; run again to continue"
                break
            tags, asked = cached_top_tags(db, client, *lookup)
            report.items_seen += 1
            report.asked += asked
            report.from_cache += not asked
            if tags is None:
                report.not_found += 1
            found = vocabulary_tags(tags, vocabulary)
            if found and merge_into(item, Candidate(kind=item.kind, title=item.title,
                                                    tags=found), vocabulary):
                report.enriched += 1
                report.enriched_ids.append(item.id)
                changed = True
            pending += asked
            if pending >= COMMIT_EVERY:
                db.commit()
                pending = 0
    except LastfmRateLimited as exc:
        report.status = "paused"
        report.resume_at = now + timedelta(seconds=exc.retry_after_s)
        report.message = (f"Last.fm rate limit reached; what was fetched is kept. Run again "
                          f"after {report.resume_at.isoformat(timespec='seconds')}")
        _schedule(db, report.resume_at)
    except LastfmUnavailable as exc:
        report.status = "paused"
        report.resume_at = now + timedelta(seconds=UNAVAILABLE_RETRY_S)
        report.message = (f"Last.fm is unavailable ({exc}); what was fetched is kept. "
                          f"Run again after {report.resume_at.isoformat(timespec='seconds')}")
        _schedule(db, report.resume_at)
    except LastfmError:
        db.commit()
        raise
    else:
        _schedule(db, None)
    if changed:
        bump_catalog_revision(db)
    db.commit()
    return report
