"""Helpers shared by the Spotify connect and export tests: an app aimed at the fake Spotify,
the real connect flow walked as a browser would, and a fake stocked with a session's songs."""

from __future__ import annotations

import os
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.fakes.spotify_server import DEFAULT_REDIRECT_URI, FakeSpotify

TEST_SECRET = "test-secret-key-not-for-production"


def spotify_app_config(database_url: str, server: FakeSpotify, **extra) -> dict:
    return {
        "TESTING": True,
        "DATABASE_URL": database_url,
        "SECRET_KEY": TEST_SECRET,
        "RATE_LIMITS": False,
        "SPOTIFY_CLIENT_ID": server.client_id,
        "SPOTIFY_REDIRECT_URI": DEFAULT_REDIRECT_URI,
        "SPOTIFY_API_URL": server.api_url,
        "SPOTIFY_ACCOUNTS_URL": server.accounts_url,
        "SPOTIFY_TIMEOUT_S": 2.0,
        "SPOTIFY_EXPORT_BACKOFF_S": (0.0, 0.0, 0.0, 0.0),
        **extra,
    }


@pytest.fixture
def spotify_app(database_url, spotify_server):
    from web import create_app

    os.environ.pop("GOODCRY_DATABASE_URL", None)
    app = create_app(spotify_app_config(database_url, spotify_server))
    yield app
    app.extensions["goodcry"].engine.dispose()


def authorize(authorize_url: str) -> tuple[str, str]:
    """Say yes on the fake's /authorize; returns the callback's (path, query string)."""
    answer = requests.get(authorize_url, allow_redirects=False, timeout=5)
    assert answer.status_code in (302, 303), answer.text
    location = urlsplit(answer.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == DEFAULT_REDIRECT_URI
    return location.path, location.query


def connect(user) -> dict:
    """Connect ``user`` (an ApiUser) through the API and the callback; returns the query."""
    answer = user.post("/api/v1/spotify/connect")
    assert answer.status_code == 200, answer.get_json()
    path, query = authorize(answer.get_json()["authorize_url"])
    done = user.client.get(f"{path}?{query}")
    assert done.status_code == 303, done.get_data(as_text=True)
    return {k: v[0] for k, v in parse_qs(query).items()}


def stock(server: FakeSpotify, session_doc: dict, hold_back=lambda item: False) -> list[str]:
    """Put the session's songs on the fake (except those held back); returns their URIs
    in session order, as the playlist should hold them."""
    uris: list[str] = []
    for item in session_doc["items"]:
        if item["kind"] != "song" or hold_back(item):
            continue
        track = server.add_track(item["title"], item["artist"], item["duration_s"])
        if track.uri not in uris:
            uris.append(track.uri)
    return uris


def playlist_for(server: FakeSpotify, export_id: str):
    """The one playlist whose description carries this export's reference."""
    found = [p for p in server.playlists.values() if f"ref {export_id}" in p.description]
    assert len(found) == 1, f"{len(found)} playlists for export {export_id}"
    return found[0]
