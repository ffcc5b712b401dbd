"""A cry session exported to Spotify as a stored job: resumable, idempotent, rate-limit proof.

One job (a row in ``exports``, target ``spotify``) per session and person. Each call moves it
forward one recorded step at a time:

1. match every song without a Spotify URI by search (the match is cached on the catalogue
   item, ``items.spotify_uri``); films are not tracks and only appear in the description;
2. freeze the plan: matched URIs in session order, each once;
3. create one private playlist (``POST /me/playlists``, ``public: false``) whose name and
   description say what the session was (date, moods, minutes) and nothing a person wrote;
4. add the plan in chunks of at most 100 URIs.

Before every write the job records its intent. A write whose outcome is unknown (a crash, a
timeout, a 5xx) is reconciled by reading Spotify back before anything is sent again: the
playlist is found again by the job's reference in its description, a chunk is looked for in the
playlist's items. So a repeat call never makes a second playlist nor adds a track twice.

A 429 is never slept through: the job becomes ``pending`` with ``retry_after_s`` and
``retry_at`` and is resumed by the next call once due, or by ``goodcry exports resume``.
5xx answers and timeouts of reads are retried within the call on a short backoff (well under
two seconds in all); after that, or after a timed-out write, the job is ``partial``.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, selectinload

from recommender.services.spotify import (
    PLAYLIST_ADD_MAX,
    SEARCH_LIMIT_MAX,
    SpotifyClient,
    SpotifyConfig,
    SpotifyError,
    SpotifyRateLimited,
    SpotifyUnauthorized,
    SpotifyUnavailable,
)
from recommender.spotify_connection import SpotifyNotConnected, access_token, is_connected
from recommender.store.models import CrySession, Export, SessionItem, utcnow
from recommender.token_vault import TokenVault

TARGET = "spotify"
NAME_MAX = 100
DESCRIPTION_MAX = 300
DEFAULT_BACKOFF_S = (0.1, 0.2, 0.4, 0.8)
RUNNING_LEASE = timedelta(minutes=2)
PARTIAL_RESUME_AFTER = timedelta(seconds=30)
BUSY_RETRY_AFTER_S = 2


@dataclass(frozen=True)
class ExportSettings:
    """What an export needs besides the database: where Spotify is, the vault, and its pace."""

    spotify: SpotifyConfig
    vault: TokenVault
    backoff_s: tuple[float, ...] = DEFAULT_BACKOFF_S
    chunk_size: int = PLAYLIST_ADD_MAX
    search_limit: int = SEARCH_LIMIT_MAX
    clock: Callable[[], datetime] = utcnow
    sleep: Callable[[float], None] = time.sleep
    lease: timedelta = RUNNING_LEASE

    def __post_init__(self) -> None:
        if not 1 <= self.chunk_size <= PLAYLIST_ADD_MAX:
            raise ValueError(f"chunk_size must be 1..{PLAYLIST_ADD_MAX}")
        if not 1 <= self.search_limit <= SEARCH_LIMIT_MAX:
            raise ValueError(f"search_limit must be 1..{SEARCH_LIMIT_MAX}")


@dataclass(frozen=True)
class ExportOutcome:
    export_id: str
    status: str  # done | pending | partial
    playlist_url: str | None
    added: int
    unmatched: list[str]
    retry_after_s: int | None

    def document(self) -> dict[str, Any]:
        return {
            "export_id": self.export_id,
            "status": self.status,
            "playlist_url": self.playlist_url,
            "added": self.added,
            "unmatched": list(self.unmatched),
            "retry_after_s": self.retry_after_s,
        }


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _outcome(job: Export, status: str | None = None,
             retry_after_s: int | None = None) -> ExportOutcome:
    shown = status or job.status
    if shown == "running":
        shown = "pending"
    return ExportOutcome(
        export_id=job.id,
        status=shown,
        playlist_url=job.playlist_url,
        added=int(job.added or 0),
        unmatched=list(job.unmatched or []),
        retry_after_s=retry_after_s if retry_after_s is not None else (
            job.retry_after_s if shown == "pending" else None),
    )


# -- what the playlist says (catalogue facts and the session's shape; nothing anyone wrote) ---


def playlist_name(session: CrySession) -> str:
    moods = ", ".join(session.moods or []) or "a good cry"
    return f"goodcry · {session.created_at:%d %b %Y} · {moods}"[:NAME_MAX]


def _reference(job: Export) -> str:
    return f"(goodcry ref {job.id})"


def playlist_description(session: CrySession, job: Export) -> str:
    """Date, moods, minutes and the films to watch alongside; never prompts, memories, notes."""
    minutes = max(1, round((session.total_duration_s or 0) / 60))
    moods = ", ".join(session.moods or []) or "a good cry"
    head = (f"A goodcry cry session from {session.created_at:%d %B %Y}: {moods}, "
            f"{minutes} minutes.")
    tail = " " + _reference(job)
    films = [f"{si.item.title} ({si.item.year})" if si.item.year else si.item.title
             for si in session.items if si.item.kind == "film"]
    text = head
    if films:
        listed: list[str] = []
        for film in films:
            candidate = f" Films (not on Spotify): {'; '.join([*listed, film])}."
            if len(head) + len(candidate) + len(tail) > DESCRIPTION_MAX:
                break
            listed.append(film)
        if listed:
            text += f" Films (not on Spotify): {'; '.join(listed)}."
    return text[: DESCRIPTION_MAX - len(tail)] + tail


# -- jobs ---------------------------------------------------------------------------------------


def _job_for(db: Session, session: CrySession, user_id: str) -> Export:
    """The session's one Spotify export job, made on first use."""

    def existing() -> list[Export]:
        return list(db.scalars(
            select(Export)
            .where(Export.session_id == session.id, Export.user_id == user_id,
                   Export.target == TARGET)
            .order_by(Export.created_at, Export.id)
        ))

    found = existing()
    if found:
        return found[0]
    job = Export(session_id=session.id, user_id=user_id, target=TARGET, status="pending",
                 added=0, progress={}, unmatched=[])
    db.add(job)
    db.commit()
    found = existing()
    if found[0].id != job.id:  # a concurrent first call won: keep one job only
        db.delete(job)
        db.commit()
    return found[0]


def _claim(db: Session, job: Export, now: datetime, lease: timedelta) -> bool:
    """Mark the job running for this call; False if another call is running it right now."""
    claimed = db.execute(
        update(Export)
        .where(Export.id == job.id,
               or_(Export.status != "running", Export.updated_at < now - lease))
        .values(status="running", updated_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.commit()
    db.refresh(job)
    return claimed == 1


def export_session(
    db: Session, settings: ExportSettings, user_id: str, session: CrySession
) -> ExportOutcome:
    """Run, resume, or report the session's Spotify export.

    Raises :class:`SpotifyNotConnected` when the person has no usable connection (including
    when Spotify refuses to refresh it: the connection is dropped, the job kept).
    """
    if not is_connected(db, user_id):
        raise SpotifyNotConnected("connect Spotify first")
    job = _job_for(db, session, user_id)
    return _advance(db, settings, job, session)


def _advance(db: Session, settings: ExportSettings, job: Export,
             session: CrySession) -> ExportOutcome:
    if job.status == "done":
        return _outcome(job)
    now = settings.clock()
    retry_at = _aware(job.retry_at)
    if job.status == "pending" and retry_at is not None and retry_at > now:
        wait = math.ceil((retry_at - now).total_seconds())
        return _outcome(job, "pending", retry_after_s=max(1, wait))
    if not _claim(db, job, now, settings.lease):
        return _outcome(job, "pending", retry_after_s=BUSY_RETRY_AFTER_S)
    return _ExportRun(db, settings, job, session).drive()


def resume_due_exports(
    db: Session, settings: ExportSettings, limit: int = 100
) -> list[tuple[Export, ExportOutcome | str]]:
    """Resume Spotify exports that are due (their Retry-After passed, or a partial one cooled
    down, or a running one whose worker vanished). Returns each job with its outcome, or with
    why it could not go on (e.g. Spotify no longer connected)."""
    now = settings.clock()
    due = list(db.scalars(
        select(Export)
        .where(Export.target == TARGET, Export.status.in_(("pending", "partial", "running")),
               or_(Export.retry_at.is_(None), Export.retry_at <= now))
        .order_by(Export.retry_at, Export.created_at)
        .limit(limit)
    ))
    results: list[tuple[Export, ExportOutcome | str]] = []
    for job in due:
        if job.status == "running" and _aware(job.updated_at) >= now - settings.lease:
            continue
        session = db.scalar(
            select(CrySession).where(CrySession.id == job.session_id)
            .options(selectinload(CrySession.items).selectinload(SessionItem.item))
        )
        if session is None:
            continue
        try:
            results.append((job, export_session(db, settings, job.user_id, session)))
        except SpotifyNotConnected as exc:
            results.append((job, exc.message))
    return results


# -- one call's worth of work -------------------------------------------------------------------


class _Stop(Exception):
    pass


class _ExportRun:
    """Moves one claimed job forward, recording progress after every step."""

    def __init__(self, db: Session, settings: ExportSettings, job: Export, session: CrySession):
        self.db = db
        self.settings = settings
        self.job = job
        self.session = session
        self.progress: dict[str, Any] = copy.deepcopy(dict(job.progress or {}))
        self.progress.setdefault("resolved", {})
        self.progress.setdefault("sent", 0)
        self.backoff = list(settings.backoff_s)
        self._client: SpotifyClient | None = None
        self._refreshed = False
        self._force_refresh = False
        self._writing = False

    # -- plumbing -------------------------------------------------------------------------------

    def client(self) -> SpotifyClient:
        """The person's client; a token about to expire (or refused once) is refreshed."""
        if self._client is None or self._force_refresh:
            if self._client is not None:
                self._client.close()
            token = access_token(self.db, self.settings.vault, self.settings.spotify,
                                 self.job.user_id, force_refresh=self._force_refresh)
            self._force_refresh = False
            self._client = SpotifyClient(self.settings.spotify, token)
        return self._client

    def save(self, **fields: Any) -> None:
        for name, value in fields.items():
            setattr(self.job, name, value)
        self.job.progress = copy.deepcopy(self.progress)
        self.job.updated_at = self.settings.clock()
        self.db.commit()

    def finish(self, status: str, retry_after_s: int | None = None,
               error: str | None = None) -> ExportOutcome:
        now = self.settings.clock()
        if status == "pending":
            retry_at = now + timedelta(seconds=retry_after_s or 0)
        elif status == "partial":
            retry_at = now + PARTIAL_RESUME_AFTER
        else:
            retry_at = None
        self.save(status=status, retry_after_s=retry_after_s, retry_at=retry_at, error=error)
        return _outcome(self.job, status, retry_after_s)

    # -- the loop -------------------------------------------------------------------------------

    def drive(self) -> ExportOutcome:
        try:
            while True:
                try:
                    if self.step():
                        return self.finish("done")
                except SpotifyRateLimited as exc:
                    return self.finish("pending", retry_after_s=int(exc.retry_after_s))
                except SpotifyUnauthorized:
                    if self._refreshed:
                        return self.finish("partial", error="Spotify refused the access token")
                    self._refreshed = True
                    self._force_refresh = True
                except SpotifyUnavailable as exc:
                    ambiguous_write = self._writing and exc.status is None
                    if ambiguous_write or not self.backoff:
                        return self.finish("partial", error=str(exc))
                    self.settings.sleep(self.backoff.pop(0))
                except SpotifyError as exc:
                    return self.finish("partial", error=str(exc))
                finally:
                    self._writing = False
        except SpotifyNotConnected:
            self.db.rollback()
            self.finish("partial", error="Spotify is not connected")
            raise
        except BaseException:
            # Unexpected: what is in memory may not have happened. Keep the recorded progress
            # (its intent makes the next call check Spotify) and only release the job.
            self.db.rollback()
            self.db.refresh(self.job)
            if self.job.status == "running":
                self.job.status = "partial"
                self.job.error = "the export was interrupted"
                self.db.commit()
            raise
        finally:
            if self._client is not None:
                self._client.close()

    def step(self) -> bool:
        """Do the next unit of work and record it; True when the export is complete."""
        progress = self.progress
        resolved: dict[str, str | None] = progress["resolved"]
        songs = [si.item for si in self.session.items if si.item.kind == "song"]

        for item in songs:  # 1. match songs (one search per step)
            if item.id in resolved:
                continue
            if item.spotify_uri:
                resolved[item.id] = item.spotify_uri
                continue
            duration = None if item.duration_estimated else item.duration_s
            match = self.client().search_track(item.title, item.artist or "", duration,
                                               limit=self.settings.search_limit)
            resolved[item.id] = match.uri if match else None
            if match:
                item.spotify_uri = match.uri  # cached on the catalogue item for everyone
            self.save()
            return False

        if progress.get("plan") is None:  # 2. freeze the plan
            plan = list(dict.fromkeys(resolved[i.id] for i in songs if resolved.get(i.id)))
            progress["plan"] = plan
            self.save(unmatched=[i.id for i in songs if not resolved.get(i.id)])
            return False
        plan: list[str] = progress["plan"]

        intent = progress.get("intent")
        if not self.job.playlist_id:  # 3. one playlist
            if intent and intent.get("op") == "create":
                self.reconcile_create()
                return False
            progress["intent"] = {"op": "create"}
            self.save()
            self._writing = True
            created = self.client().create_playlist(
                playlist_name(self.session), playlist_description(self.session, self.job))
            self._writing = False
            progress["intent"] = None
            self.save(playlist_id=created["id"], playlist_url=created["url"])
            return False

        if intent and intent.get("op") == "add":  # 4. add, after settling an unknown add
            self.reconcile_add(plan, int(intent["at"]), int(intent["count"]))
            return False
        sent = int(progress["sent"])
        if sent >= len(plan):
            return True
        chunk = plan[sent: sent + self.settings.chunk_size]
        progress["intent"] = {"op": "add", "at": sent, "count": len(chunk)}
        self.save()
        self._writing = True
        self.client().add_items(self.job.playlist_id, chunk)
        self._writing = False
        progress["sent"] = sent + len(chunk)
        progress["intent"] = None
        self.save(added=progress["sent"])
        return False

    def reconcile_create(self) -> None:
        """Did a playlist creation whose answer we never recorded happen? Look for our ref."""
        reference = _reference(self.job)
        for playlist in self.client().my_playlists(max_items=100):
            if reference in str(playlist.get("description") or ""):
                url = (playlist.get("external_urls") or {}).get("spotify") or (
                    f"https://open.spotify.com/playlist/{playlist['id']}")
                self.progress["intent"] = None
                self.save(playlist_id=str(playlist["id"]), playlist_url=str(url))
                return
        self.progress["intent"] = None
        self.save()

    def reconcile_add(self, plan: list[str], at: int, count: int) -> None:
        """Did the chunk ``plan[at:at+count]`` land? Read the playlist back to know."""
        chunk = plan[at: at + count]
        present = self.client().playlist_items(self.job.playlist_id)
        landed = present[at: at + count] == chunk or (
            len(present) >= count and present[-count:] == chunk and len(present) > at)
        self.progress["intent"] = None
        if landed:
            self.progress["sent"] = at + count
            self.save(added=at + count)
        else:
            self.progress["sent"] = at
            self.save()
