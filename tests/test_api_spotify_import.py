"""POST /api/v1/spotify/import: the caller's Spotify library into their personal library."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from recommender.store.models import LibraryItem
from tests.conftest import ApiUser, assert_error
from tests.spotify_flow import connect, spotify_app  # noqa: F401  (a fixture)


@pytest.fixture
def client(spotify_app):  # noqa: F811
    return spotify_app.test_client()


def test_import_needs_a_connection(client):
    alice = ApiUser(client, "alice")
    assert_error(alice.post("/api/v1/spotify/import"), 409, "spotify_not_connected")


def test_import_pauses_on_a_rate_limit_then_finishes(spotify_app, client,  # noqa: F811
                                                     spotify_server):
    alice = ApiUser(client, "alice")
    connect(alice)
    user = "goodcry-tester"
    hurt = spotify_server.find_track("Hurt", "Johnny Cash")
    mine = spotify_server.add_track("Kitchen Song", ["Our Garage Band"], 201)
    spotify_server.set_recently_played([hurt.id], user)
    spotify_server.set_top_tracks([mine.id], user)
    spotify_server.set_saved_tracks([hurt.id, mine.id], user)
    spotify_server.fail_next("/v1/me/tracks", status=429, retry_after=45)

    paused = alice.post("/api/v1/spotify/import")
    assert paused.status_code == 202, paused.get_json()
    body = paused.get_json()
    assert body["status"] == "paused" and body["retry_after_s"] == 45
    assert body["sources_done"] == ["spotify_recent", "spotify_top"] and body["added"] == 2

    done = alice.post("/api/v1/spotify/import")
    assert done.status_code == 200, done.get_json()
    assert done.get_json()["added"] == 2 and done.get_json()["unchanged"] == 2
    with spotify_app.extensions["goodcry"].session_factory() as db:
        rows = db.scalars(select(LibraryItem).where(LibraryItem.user_id == alice.user_id)).all()
        assert len(rows) == 4
    # The private track is not in the shared catalogue.
    assert alice.get("/api/v1/items?q=kitchen").get_json()["total"] == 0


def test_a_refused_import_is_a_clear_502_and_keeps_what_came_in(spotify_app, client,  # noqa: F811
                                                               spotify_server):
    alice = ApiUser(client, "alice")
    connect(alice)
    user = "goodcry-tester"
    hurt = spotify_server.find_track("Hurt", "Johnny Cash")
    spotify_server.set_recently_played([hurt.id], user)
    spotify_server.set_top_tracks([hurt.id], user)
    spotify_server.fail_next("/v1/me/top/tracks", status=403)
    answer = alice.post("/api/v1/spotify/import")
    error = assert_error(answer, 502, "spotify_refused")
    assert "403" in error["message"]
    with spotify_app.extensions["goodcry"].session_factory() as db:
        rows = db.scalars(select(LibraryItem).where(LibraryItem.user_id == alice.user_id)).all()
        assert [r.source for r in rows] == ["spotify_recent"]
