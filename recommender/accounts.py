"""People, their passwords and API tokens, and everything stored about them."""

from __future__ import annotations

import hashlib
import secrets
from typing import NamedTuple

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import bindparam, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from recommender.errors import Conflict, InvalidInput, Unauthorised
from recommender.store.models import (
    ApiToken,
    Base,
    CatalogItem,
    CrySession,
    LibraryItem,
    SessionItem,
    User,
)
from recommender.store.prepared import Prepared

MIN_PASSWORD = 8
_hasher = PasswordHasher()


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def validate_username(username: str) -> str:
    username = (username or "").strip()
    if not 3 <= len(username) <= 64:
        raise InvalidInput("username must be 3 to 64 characters")
    if any(c.isspace() for c in username):
        raise InvalidInput("username must not contain spaces")
    return username


def register(db: Session, username: str, password: str) -> User:
    username = validate_username(username)
    if len(password or "") < MIN_PASSWORD:
        raise InvalidInput(f"password must be at least {MIN_PASSWORD} characters")
    if db.scalar(select(User.id).where(User.username == username)):
        raise Conflict(f"the username {username!r} is taken", code="username_taken")
    user = User(username=username, password_hash=_hasher.hash(password))
    db.add(user)
    try:
        db.commit()
    except IntegrityError:
        db.rollback()
        raise Conflict(f"the username {username!r} is taken", code="username_taken") from None
    return user


def authenticate(db: Session, username: str, password: str) -> User:
    user = db.scalar(select(User).where(User.username == (username or "").strip()))
    if user is None:
        _hasher.hash(password or "x")  # spend the same time either way
        raise Unauthorised("wrong username or password", code="invalid_credentials")
    try:
        _hasher.verify(user.password_hash, password or "")
    except (VerificationError, InvalidHashError):
        raise Unauthorised("wrong username or password", code="invalid_credentials") from None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
        db.commit()
    return user


def issue_token(db: Session, user: User) -> str:
    token = secrets.token_urlsafe(32)
    db.add(ApiToken(user_id=user.id, token_hash=_token_hash(token)))
    db.commit()
    return token


# One indexed lookup (token_hash is unique) joined to its person, run on every API request
# (prepared: recommender/store/prepared.py).
_TOKEN_HOLDER = Prepared(
    select(User.__table__.c.id, User.__table__.c.username)
    .join(ApiToken.__table__, ApiToken.__table__.c.user_id == User.__table__.c.id)
    .where(ApiToken.__table__.c.token_hash == bindparam("token_hash")))


class TokenHolder(NamedTuple):
    id: str
    username: str


def user_for_token(db: Session, token: str) -> TokenHolder | None:
    """The person a bearer token belongs to, or None."""
    if not token:
        return None
    row = _TOKEN_HOLDER.first(db, {"token_hash": _token_hash(token)})
    return None if row is None else TokenHolder(*row)


def delete_user(db: Session, user_id: str) -> None:
    """Remove everything stored about a person.

    Every table with a ``user_id`` column is cleared, children before parents (so it works
    with or without database cascades, and covers tables added later); then the tracks that
    only this person's own library knew about.
    """
    library_only = list(db.scalars(
        select(LibraryItem.item_id).join(CatalogItem, CatalogItem.id == LibraryItem.item_id)
        .where(LibraryItem.user_id == user_id, CatalogItem.shared.is_(False))))
    session_ids = select(CrySession.id).where(CrySession.user_id == user_id)
    db.execute(delete(SessionItem).where(SessionItem.session_id.in_(session_ids)))
    for table in reversed(Base.metadata.sorted_tables):
        # Session items went with their sessions just above (their user_id is not indexed:
        # deleting by it would read the whole table).
        if ("user_id" in table.c and table.name != User.__tablename__
                and table is not SessionItem.__table__):
            db.execute(delete(table).where(table.c.user_id == user_id))
    db.execute(delete(User).where(User.id == user_id))
    for item_id in library_only:
        still_known = db.scalar(select(LibraryItem.user_id).where(LibraryItem.item_id == item_id)
                                .limit(1))
        shown = db.scalar(select(SessionItem.id).where(SessionItem.item_id == item_id).limit(1))
        if still_known is None and shown is None:
            db.execute(delete(CatalogItem).where(CatalogItem.id == item_id))
    db.commit()
