"""The tables goodcry stores, as SQLAlchemy 2 declarative models.

Portable SQL only: the same schema runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    event,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_id() -> str:
    return secrets.token_hex(8)


def new_ids(count: int) -> list[str]:
    """``count`` of :func:`new_id`, from one draw of random bytes (bulk imports)."""
    digits = secrets.token_hex(8 * count)
    return [digits[i:i + 16] for i in range(0, 16 * count, 16)]


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """A stored moment as ISO 8601 UTC (SQLite hands back naive datetimes that are UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CatalogItem(Base):
    __tablename__ = "items"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    identity_key: Mapped[str] = mapped_column(String(512), unique=True)
    kind: Mapped[str] = mapped_column(String(8), index=True)
    title: Mapped[str] = mapped_column(String(300))
    artist: Mapped[str | None] = mapped_column(String(300))
    director: Mapped[str | None] = mapped_column(String(300))
    year: Mapped[int | None] = mapped_column(Integer)
    duration_s: Mapped[int] = mapped_column(Integer)
    duration_estimated: Mapped[bool] = mapped_column(Boolean, default=True)
    intensity: Mapped[int] = mapped_column(Integer, default=3)
    aftercare: Mapped[bool] = mapped_column(Boolean, default=False)
    spotify_uri: Mapped[str | None] = mapped_column(String(100), index=True)
    sources: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # 0002: the recording's ISRC once linked to Spotify; ``shared`` is False for tracks known
    # only from someone's Spotify library (kept out of the catalogue everyone sees).
    isrc: Mapped[str | None] = mapped_column(String(16), index=True)
    shared: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())

    tags: Mapped[list[ItemTag]] = relationship(
        back_populates="item", cascade="all, delete-orphan", order_by="ItemTag.position"
    )

    @property
    def tag_list(self) -> list[str]:
        return [t.tag for t in self.tags]


class ItemTag(Base):
    __tablename__ = "item_tags"

    item_id: Mapped[str] = mapped_column(
        ForeignKey("items.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)

    item: Mapped[CatalogItem] = relationship(back_populates="tags")


class LibraryItem(Base):
    """An item in one person's own library, and where it came from (0002)."""

    __tablename__ = "library_items"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    item_id: Mapped[str] = mapped_column(
        ForeignKey("items.id", ondelete="CASCADE"), primary_key=True
    )
    source: Mapped[str] = mapped_column(String(32), primary_key=True)  # spotify_top, ...
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    imported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    item: Mapped[CatalogItem] = relationship()


class SpotifyLookup(Base):
    """The cached outcome of searching Spotify for a catalogue song (0002)."""

    __tablename__ = "spotify_lookups"

    item_id: Mapped[str] = mapped_column(
        ForeignKey("items.id", ondelete="CASCADE"), primary_key=True
    )
    status: Mapped[str] = mapped_column(String(16))  # matched | unmatched
    spotify_uri: Mapped[str | None] = mapped_column(String(100))
    isrc: Mapped[str | None] = mapped_column(String(16))
    score: Mapped[float | None] = mapped_column(Float)
    checked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class LastfmTags(Base):
    """Cached Last.fm top tags for a track or an artist (0002); ``found`` False: not known."""

    __tablename__ = "lastfm_tags"

    key: Mapped[str] = mapped_column(String(700), primary_key=True)
    found: Mapped[bool] = mapped_column(Boolean)
    tags: Mapped[list] = mapped_column(JSON, default=list)  # [[name, count], ...]
    fetched_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Memory(Base):
    __tablename__ = "memories"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[list] = mapped_column(JSON, default=list)
    people: Mapped[list] = mapped_column(JSON, default=list)
    places: Mapped[list] = mapped_column(JSON, default=list)
    when: Mapped[str | None] = mapped_column("when_text", String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CrySession(Base):
    __tablename__ = "cry_sessions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    # Found by the (user_id, created_at) index below: no index of its own.
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    model_version: Mapped[str] = mapped_column(String(64))
    request: Mapped[dict] = mapped_column(JSON)
    moods: Mapped[list] = mapped_column(JSON)
    themes: Mapped[list] = mapped_column(JSON, default=list)
    total_duration_s: Mapped[int] = mapped_column(Integer)
    care: Mapped[dict] = mapped_column(JSON)

    items: Mapped[list[SessionItem]] = relationship(
        back_populates="session", cascade="all, delete-orphan", order_by="SessionItem.position"
    )
    feedback: Mapped[Feedback | None] = relationship(
        back_populates="session", cascade="all, delete-orphan", uselist=False
    )

    __table_args__ = (Index("ix_cry_sessions_user_created", "user_id", "created_at"),)


class SessionItem(Base):
    __tablename__ = "session_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # Found by the unique (session_id, position) index below: no index of its own.
    session_id: Mapped[str] = mapped_column(ForeignKey("cry_sessions.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    item_id: Mapped[str] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    phase: Mapped[str] = mapped_column(String(16))
    technique: Mapped[str] = mapped_column(String(32))
    prompt_text: Mapped[str] = mapped_column(Text)
    memory_id: Mapped[str | None] = mapped_column(
        ForeignKey("memories.id", ondelete="SET NULL"), nullable=True
    )
    why: Mapped[str] = mapped_column(Text)
    score: Mapped[float] = mapped_column(Float, default=0.0)
    # The session's person again. Not indexed: what a person was shown is kept per worker
    # (recommender/shown.py), and an index by (user_id, item_id) cost a page write per item.
    user_id: Mapped[str | None] = mapped_column(String(32), nullable=True)

    session: Mapped[CrySession] = relationship(back_populates="items")
    item: Mapped[CatalogItem] = relationship()

    __table_args__ = (UniqueConstraint("session_id", "position"),)


@event.listens_for(SessionItem, "before_insert")
def _item_carries_its_person(_mapper, _connection, item: SessionItem) -> None:
    if item.user_id is None and item.session is not None:
        item.user_id = item.session.user_id


class Feedback(Base):
    """How a session went, as a whole; its per-item reactions live in ``reactions``."""

    __tablename__ = "feedback"

    session_id: Mapped[str] = mapped_column(
        ForeignKey("cry_sessions.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    catharsis: Mapped[int | None] = mapped_column(Integer)
    mood_before: Mapped[int | None] = mapped_column(Integer)
    mood_after: Mapped[int | None] = mapped_column(Integer)
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    session: Mapped[CrySession] = relationship(back_populates="feedback")


class Reaction(Base):
    __tablename__ = "reactions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("cry_sessions.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    reaction: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (UniqueConstraint("session_id", "item_id"),)


class Ban(Base):
    """An item a person never wants again; it came from a ``never_again`` reaction."""

    __tablename__ = "bans"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    item_id: Mapped[str] = mapped_column(
        ForeignKey("items.id", ondelete="CASCADE"), primary_key=True
    )
    session_id: Mapped[str | None] = mapped_column(
        ForeignKey("cry_sessions.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Export(Base):
    __tablename__ = "exports"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("cry_sessions.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    target: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    playlist_id: Mapped[str | None] = mapped_column(String(64))
    playlist_url: Mapped[str | None] = mapped_column(String(300))
    added: Mapped[int] = mapped_column(Integer, default=0)
    progress: Mapped[dict] = mapped_column(JSON, default=dict)
    unmatched: Mapped[list] = mapped_column(JSON, default=list)
    retry_after_s: Mapped[int | None] = mapped_column(Integer)
    retry_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SpotifyConnection(Base):
    __tablename__ = "spotify_connections"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    access_token_enc: Mapped[str] = mapped_column(Text)
    refresh_token_enc: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[float] = mapped_column(Float)
    scope: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class OAuthState(Base):
    """A single-use PKCE ``state`` with its verifier, kept between redirect and callback."""

    __tablename__ = "oauth_states"

    state: Mapped[str] = mapped_column(String(128), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_verifier_enc: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ModelVersion(Base):
    """A trained ranking model: its joblib artefact and JSON sidecar, seen by every worker."""

    __tablename__ = "model_versions"

    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    artefact: Mapped[bytes] = mapped_column(LargeBinary)
    sidecar: Mapped[dict] = mapped_column(JSON)
    active: Mapped[bool] = mapped_column(Boolean, default=False, index=True)


class PersonTaste(Base):
    """A person's learned taste: per-attribute reaction statistics (recommender/tastes.py)."""

    __tablename__ = "person_tastes"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    stats: Mapped[dict] = mapped_column(JSON, default=dict)
    n_reactions: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Meta(Base):
    """Small key/value facts about the store, such as the catalogue revision."""

    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class RateLimitCounter(Base):
    """A fixed-window request counter (web/ratelimit.py): one row per limit and caller."""

    __tablename__ = "rate_limit_counters"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    hits: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[float] = mapped_column(Float)
