"""A person's Spotify connection: the PKCE dance, tokens sealed at rest, refresh before expiry.

- ``begin_connect`` keeps a single-use ``state`` with its (sealed) verifier server-side, bound
  to the person, and hands back the authorize URL.
- ``complete_connect`` spends the state once, trades the code for tokens and stores them sealed.
- ``access_token`` refreshes a token about to expire; when Spotify refuses the refresh
  (``invalid_grant``) the connection is dropped and :class:`SpotifyNotConnected` raised. Nothing
  else the person has (sessions, exports, memories) is touched.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from recommender.errors import Conflict, InvalidInput
from recommender.services.spotify import (
    SpotifyConfig,
    SpotifyInvalidGrant,
    TokenSet,
    exchange_code,
    refresh,
    start_pkce,
)
from recommender.store.models import OAuthState, SpotifyConnection, utcnow
from recommender.token_vault import SealBroken, TokenVault

STATE_TTL = timedelta(minutes=15)
REFRESH_MARGIN_S = 60.0


class SpotifyNotConnected(Conflict):
    """The person has no usable Spotify connection (never made, dropped, or refused)."""

    code = "spotify_not_connected"


class OAuthStateRejected(InvalidInput):
    """The callback's ``state`` is unknown, used already, or too old."""

    code = "invalid_state"


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def is_connected(db: Session, user_id: str) -> bool:
    return db.get(SpotifyConnection, user_id) is not None


def begin_connect(
    db: Session,
    vault: TokenVault,
    config: SpotifyConfig,
    user_id: str,
    now: Callable[[], datetime] = utcnow,
) -> str:
    """A fresh single-use state bound to ``user_id``; returns the Spotify authorize URL."""
    moment = now()
    db.execute(delete(OAuthState).where(OAuthState.created_at < moment - STATE_TTL * 4))
    start = start_pkce(config)
    db.add(OAuthState(state=start.state, user_id=user_id,
                      code_verifier_enc=vault.seal(start.code_verifier), created_at=moment))
    db.commit()
    return start.authorize_url


def consume_state(
    db: Session, vault: TokenVault, state: str, now: Callable[[], datetime] = utcnow
) -> tuple[str, str]:
    """Spend ``state`` once (atomically, so two callbacks cannot both use it).

    Returns ``(user_id, code_verifier)``; raises :class:`OAuthStateRejected`.
    """
    moment = now()
    row = db.get(OAuthState, state) if state else None
    if row is None:
        raise OAuthStateRejected("unknown state: start connecting Spotify again")
    claimed = db.execute(
        update(OAuthState)
        .where(OAuthState.state == state, OAuthState.used_at.is_(None))
        .values(used_at=moment)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.commit()
    if claimed != 1:
        raise OAuthStateRejected("this state was used already: start connecting Spotify again")
    if _aware(row.created_at) < moment - STATE_TTL:
        raise OAuthStateRejected("this state has expired: start connecting Spotify again")
    try:
        verifier = vault.unseal(row.code_verifier_enc)
    except SealBroken:
        raise OAuthStateRejected("this state cannot be read: start connecting again") from None
    return row.user_id, verifier


def complete_connect(
    db: Session,
    vault: TokenVault,
    config: SpotifyConfig,
    state: str,
    code: str,
    now: Callable[[], datetime] = utcnow,
) -> str:
    """Spend the state, exchange the code and store the tokens sealed; returns the user id.

    Spotify's own errors (``SpotifyInvalidGrant`` for a bad code or verifier,
    ``SpotifyUnavailable``) pass through for the caller to word.
    """
    user_id, verifier = consume_state(db, vault, state, now)
    tokens = exchange_code(config, code, verifier)
    store_tokens(db, vault, user_id, tokens)
    return user_id


def store_tokens(db: Session, vault: TokenVault, user_id: str, tokens: TokenSet) -> None:
    connection = db.get(SpotifyConnection, user_id)
    if connection is None:
        connection = SpotifyConnection(user_id=user_id)
        db.add(connection)
    connection.access_token_enc = vault.seal(tokens.access_token)
    connection.refresh_token_enc = vault.seal(tokens.refresh_token)
    connection.expires_at = float(tokens.expires_at)
    connection.scope = tokens.scope
    db.commit()


def disconnect(db: Session, user_id: str) -> bool:
    """Forget the tokens (and any half-finished connect); True if there was a connection."""
    gone = db.execute(
        delete(SpotifyConnection).where(SpotifyConnection.user_id == user_id)
    ).rowcount
    db.execute(delete(OAuthState).where(OAuthState.user_id == user_id))
    db.commit()
    return bool(gone)


def _drop(db: Session, user_id: str, why: str) -> SpotifyNotConnected:
    db.rollback()
    db.execute(delete(SpotifyConnection).where(SpotifyConnection.user_id == user_id))
    db.commit()
    return SpotifyNotConnected(why)


def access_token(
    db: Session,
    vault: TokenVault,
    config: SpotifyConfig,
    user_id: str,
    force_refresh: bool = False,
    clock: Callable[[], float] | None = None,
) -> str:
    """A usable access token for ``user_id``, refreshed when it expires within a minute.

    Raises :class:`SpotifyNotConnected` when there is no connection, or when Spotify refuses
    the refresh (the connection is dropped then). Other Spotify errors pass through.
    """
    connection = db.get(SpotifyConnection, user_id)
    if connection is None:
        raise SpotifyNotConnected("connect Spotify first")
    try:
        current_access = vault.unseal(connection.access_token_enc)
        current_refresh = vault.unseal(connection.refresh_token_enc)
    except SealBroken:
        raise _drop(db, user_id, "the stored Spotify connection cannot be read any more: "
                                 "connect Spotify again") from None
    spent_refresh_enc = connection.refresh_token_enc
    moment = (clock or time.time)()
    if not force_refresh and connection.expires_at - REFRESH_MARGIN_S > moment:
        return current_access
    try:
        tokens = refresh(config, current_refresh)
    except SpotifyInvalidGrant:
        # Another worker may have refreshed (refresh tokens rotate): use what it stored.
        db.rollback()
        latest = db.get(SpotifyConnection, user_id)
        if latest is not None and latest.refresh_token_enc != spent_refresh_enc:
            return vault.unseal(latest.access_token_enc)
        raise _drop(db, user_id, "Spotify refused to renew access (invalid_grant); the "
                                 "connection was removed: connect Spotify again") from None
    store_tokens(db, vault, user_id, tokens)
    return tokens.access_token
