"""Connecting Spotify and exporting sessions to it (thin: the work is in ``recommender``)."""

from __future__ import annotations

from datetime import timedelta

from flask import current_app
from flask_smorest import Blueprint
from marshmallow import Schema, fields
from sqlalchemy.orm import Session
from werkzeug.exceptions import ServiceUnavailable

from recommender import spotify_connection
from recommender.services.spotify import SpotifyConfig
from recommender.spotify_export import DEFAULT_BACKOFF_S, ExportSettings, export_session
from recommender.store.models import CrySession
from recommender.token_vault import TokenVault
from web.api.auth_token import BEARER, current_user_id, token_required
from web.api.schemas import ErrorOut
from web.db import get_db

blp = Blueprint("spotify", __name__, url_prefix="/api/v1/spotify", description="Spotify")


class SpotifyNotConfigured(ServiceUnavailable):
    error_code = "spotify_not_configured"
    description = ("Spotify is not configured on this server: set GOODCRY_SPOTIFY_CLIENT_ID "
                   "(and GOODCRY_SPOTIFY_REDIRECT_URI)")


class AuthorizeOut(Schema):
    authorize_url = fields.String()


def spotify_config() -> SpotifyConfig:
    """Spotify as this app is configured to meet it; 503 when no client id is set."""
    config = current_app.config
    if not config.get("SPOTIFY_CLIENT_ID"):
        raise SpotifyNotConfigured()
    return SpotifyConfig(
        client_id=config["SPOTIFY_CLIENT_ID"],
        redirect_uri=config["SPOTIFY_REDIRECT_URI"],
        api_url=config["SPOTIFY_API_URL"],
        accounts_url=config["SPOTIFY_ACCOUNTS_URL"],
        timeout_s=float(config.get("SPOTIFY_TIMEOUT_S", 10.0)),
    )


def token_vault() -> TokenVault:
    vault = current_app.extensions.get("goodcry_token_vault")
    if vault is None:
        vault = TokenVault(current_app.config["SECRET_KEY"])
        current_app.extensions["goodcry_token_vault"] = vault
    return vault


def export_settings() -> ExportSettings:
    config = current_app.config
    return ExportSettings(
        spotify=spotify_config(),
        vault=token_vault(),
        backoff_s=tuple(config.get("SPOTIFY_EXPORT_BACKOFF_S", DEFAULT_BACKOFF_S)),
        chunk_size=int(config.get("SPOTIFY_EXPORT_CHUNK_SIZE", 100)),
        lease=timedelta(seconds=float(config.get("SPOTIFY_EXPORT_LEASE_S", 120))),
    )


@blp.route("/connect", methods=["POST"])
@blp.response(200, AuthorizeOut)
@blp.alt_response(503, schema=ErrorOut, description="Spotify is not configured")
@blp.doc(security=BEARER)
@token_required
def connect():
    """Start connecting Spotify (Authorization Code with PKCE): open ``authorize_url``."""
    url = spotify_connection.begin_connect(get_db(), token_vault(), spotify_config(),
                                           current_user_id())
    return {"authorize_url": url}


@blp.route("/connection", methods=["DELETE"])
@blp.response(204)
@blp.doc(security=BEARER)
@token_required
def disconnect():
    """Forget the caller's Spotify tokens."""
    spotify_connection.disconnect(get_db(), current_user_id())


def export_to_spotify(db: Session, user_id: str, session: CrySession) -> dict | None:
    """Run (or resume) the session's Spotify export; None when Spotify is not connected.

    When Spotify refuses to renew the stored token the connection is dropped and
    :class:`SpotifyNotConnected` (409 ``spotify_not_connected``) says so.
    """
    if not spotify_connection.is_connected(db, user_id):
        return None
    return export_session(db, export_settings(), user_id, session).document()


class LibraryImportOut(Schema):
    status = fields.String(metadata={"description": "done, or paused by Spotify (try later)"})
    added = fields.Integer()
    unchanged = fields.Integer()
    new_items = fields.Integer()
    catalogue_matches = fields.Integer()
    tagged = fields.Integer()
    skipped = fields.Integer()
    sources_done = fields.List(fields.String())
    retry_after_s = fields.Integer(allow_none=True)
    message = fields.String()


@blp.route("/import", methods=["POST"])
@blp.response(200, LibraryImportOut, description="The library was imported")
@blp.alt_response(202, schema=LibraryImportOut,
                  description="Paused by a Spotify rate limit or outage: what came in is kept; "
                              "send again after retry_after_s to finish")
@blp.alt_response(409, schema=ErrorOut, description="Spotify is not connected")
@blp.doc(security=BEARER)
@token_required
def import_library():
    """Import the caller's recent, top and saved Spotify tracks into their library."""
    from recommender.catalog.spotify_library import import_spotify_library
    from recommender.services.lastfm import LastfmClient, LastfmConfig
    from recommender.services.spotify import SpotifyClient, SpotifyUnauthorized

    db, user_id, config = get_db(), current_user_id(), spotify_config()
    settings = current_app.config
    lastfm = None
    if settings.get("LASTFM_API_KEY"):
        lastfm = LastfmClient(LastfmConfig(settings["LASTFM_API_KEY"],
                                           settings.get("LASTFM_API_URL")
                                           or "https://ws.audioscrobbler.com/2.0/"))
    try:
        for force_refresh in (False, True):
            token = spotify_connection.access_token(db, token_vault(), config, user_id,
                                                    force_refresh=force_refresh)
            with SpotifyClient(config, token) as client:
                try:
                    report = import_spotify_library(db, client, user_id, lastfm=lastfm)
                    break
                except SpotifyUnauthorized:
                    if force_refresh:
                        raise
    finally:
        if lastfm is not None:
            lastfm.close()
    return report.as_dict(), 200 if report.status == "done" else 202
