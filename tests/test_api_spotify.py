"""Connecting Spotify (PKCE) and exporting sessions to it, through the HTTP API and pages,
against the loopback fake of Spotify."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select, update

from recommender.services.spotify import SCOPES
from recommender.store.models import Export, OAuthState, SpotifyConnection
from recommender.token_vault import TokenVault
from tests.conftest import PASSWORD, ApiUser, assert_error
from tests.fakes.spotify_server import FakeSpotify, s256
from tests.spotify_flow import (
    TEST_SECRET,
    authorize,
    connect,
    playlist_for,
    spotify_app,  # noqa: F401  (a fixture)
    stock,
)


@pytest.fixture
def spotify_server():
    """The fake without its seeded tracks: each test stocks exactly the songs it needs."""
    with FakeSpotify(seed_catalogue=False) as server:
        yield server


@pytest.fixture
def client(spotify_app):  # noqa: F811
    return spotify_app.test_client()


def db_of(app):
    return app.extensions["goodcry"].session_factory()


# -- connect --------------------------------------------------------------------------------------


def test_connect_without_a_client_id_is_a_clear_503(app):
    user = ApiUser(app.test_client(), "nobody")
    answer = user.post("/api/v1/spotify/connect")
    assert_error(answer, 503, "spotify_not_configured", mentions="GOODCRY_SPOTIFY_CLIENT_ID")


def test_connect_gives_an_s256_authorize_url_with_the_scopes_and_keeps_the_verifier_sealed(
        spotify_app, client, spotify_server):  # noqa: F811
    alice = ApiUser(client, "alice")
    answer = alice.post("/api/v1/spotify/connect")
    assert answer.status_code == 200
    assert set(answer.get_json()) == {"authorize_url"}
    url = urlsplit(answer.get_json()["authorize_url"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == spotify_server.accounts_url + "authorize"
    params = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert params["code_challenge_method"] == "S256"
    assert params["response_type"] == "code"
    assert params["redirect_uri"] == "http://127.0.0.1:8000/spotify/callback"
    assert "playlist-modify-private" in params["scope"].split()
    assert params["scope"] == SCOPES
    with db_of(spotify_app) as db:
        row = db.get(OAuthState, params["state"])
        assert row.user_id == alice.user_id and row.used_at is None
        verifier = TokenVault(TEST_SECRET).unseal(row.code_verifier_enc)
        assert verifier not in row.code_verifier_enc
        assert s256(verifier) == params["code_challenge"]


def test_callback_exchanges_the_code_with_the_verifier_and_stores_tokens_sealed(
        spotify_app, client, spotify_server):  # noqa: F811
    alice = ApiUser(client, "alice")
    assert alice.get("/api/v1/me").get_json()["spotify_connected"] is False
    answer = alice.post("/api/v1/spotify/connect")
    challenge = parse_qs(urlsplit(answer.get_json()["authorize_url"]).query)["code_challenge"][0]
    path, query = authorize(answer.get_json()["authorize_url"])
    landed = client.get(f"{path}?{query}")  # no bearer token: the state names the person
    assert landed.status_code == 303
    page = client.get(landed.headers["Location"])
    assert page.status_code == 200 and "Your Spotify account is connected" in page.text
    exchange = spotify_server.requests_to("/api/token", "POST")[-1]
    assert exchange.form["grant_type"] == "authorization_code"
    assert s256(exchange.form["code_verifier"]) == challenge
    assert alice.get("/api/v1/me").get_json()["spotify_connected"] is True
    with db_of(spotify_app) as db:
        row = db.get(SpotifyConnection, alice.user_id)
        issued = set(spotify_server.access_tokens) | set(spotify_server.refresh_tokens)
        for token in issued:
            assert token not in row.access_token_enc and token not in row.refresh_token_enc
        assert TokenVault(TEST_SECRET).unseal(row.access_token_enc) in issued


def test_state_is_single_use_and_unknown_state_is_refused(spotify_app, client):  # noqa: F811
    alice = ApiUser(client, "alice")
    answer = alice.post("/api/v1/spotify/connect")
    path, query = authorize(answer.get_json()["authorize_url"])
    assert client.get(f"{path}?{query}").status_code == 303
    again = client.get(f"{path}?{query}")
    assert again.status_code == 400 and "used already" in again.text.lower()
    unknown = client.get(f"{path}?code=whatever&state=not-a-state-we-made")
    assert unknown.status_code == 400 and "unknown state" in unknown.text.lower()
    assert client.get(f"{path}?code=whatever").status_code == 400


def test_an_old_state_is_refused(spotify_app, client):  # noqa: F811
    alice = ApiUser(client, "alice")
    answer = alice.post("/api/v1/spotify/connect")
    path, query = authorize(answer.get_json()["authorize_url"])
    state = parse_qs(query)["state"][0]
    with db_of(spotify_app) as db:
        row = db.get(OAuthState, state)
        db.execute(update(OAuthState).where(OAuthState.state == state)
                   .values(created_at=row.created_at - timedelta(hours=1)))
        db.commit()
    answer = client.get(f"{path}?{query}")
    assert answer.status_code == 400 and "expired" in answer.text.lower()
    assert alice.get("/api/v1/me").get_json()["spotify_connected"] is False


def test_state_binds_the_connection_to_whoever_started_it(spotify_app, client):  # noqa: F811
    alice, bob = ApiUser(client, "alice"), ApiUser(client, "bob")
    connect(bob)
    assert bob.get("/api/v1/me").get_json()["spotify_connected"] is True
    assert alice.get("/api/v1/me").get_json()["spotify_connected"] is False


def test_declining_on_spotify_spends_the_state_and_connects_nothing(
        spotify_app, client):  # noqa: F811
    alice = ApiUser(client, "alice")
    url = alice.post("/api/v1/spotify/connect").get_json()["authorize_url"]
    state = parse_qs(urlsplit(url).query)["state"][0]
    answer = client.get(f"/spotify/callback?error=access_denied&state={state}")
    assert answer.status_code == 302
    assert "not connected" in client.get(answer.headers["Location"]).text
    assert alice.get("/api/v1/me").get_json()["spotify_connected"] is False
    assert client.get(f"/spotify/callback?code=x&state={state}").status_code == 400


def test_disconnect_forgets_the_tokens(spotify_app, client):  # noqa: F811
    alice = ApiUser(client, "alice")
    connect(alice)
    assert alice.delete("/api/v1/spotify/connection").status_code == 204
    assert alice.get("/api/v1/me").get_json()["spotify_connected"] is False
    with db_of(spotify_app) as db:
        assert db.get(SpotifyConnection, alice.user_id) is None
    session = alice.new_session(minutes=15)
    answer = alice.post(f"/api/v1/sessions/{session['id']}/export", json={"target": "spotify"})
    assert_error(answer, 409, "spotify_not_connected")
    assert alice.delete("/api/v1/spotify/connection").status_code == 204  # idempotent


# -- export ---------------------------------------------------------------------------------------


def export(user, session_id):
    return user.post(f"/api/v1/sessions/{session_id}/export", json={"target": "spotify"})


def test_export_needs_a_connection_and_the_callers_own_session(spotify_app, client):  # noqa: F811
    alice, bob = ApiUser(client, "alice"), ApiUser(client, "bob")
    session = alice.new_session(minutes=15)
    assert_error(export(alice, session["id"]), 409, "spotify_not_connected")
    connect(bob)
    assert_error(export(bob, session["id"]), 404)


def test_export_makes_one_private_playlist_in_session_order_and_says_nothing_private(
        spotify_app, client, spotify_server):  # noqa: F811
    alice = ApiUser(client, "alice")
    memory_text = "zephyrquill lighthouse where grandmother hummed"
    assert alice.post("/api/v1/memories", json={
        "title": "Grandmother's kitchen", "text": memory_text, "tags": ["grief"],
        "people": ["Nana Oddlington"], "places": ["Quillhaven"]}).status_code == 201
    session = alice.new_session(moods=["grief"], minutes=150, include_films=True,
                                prompt="missing my nana, the zephyrquill lighthouse")
    films = [i for i in session["items"] if i["kind"] == "film"]
    songs = [i for i in session["items"] if i["kind"] == "song"]
    assert films and len(songs) >= 4, "the session should hold both films and songs"
    held_back = songs[1]
    expected = stock(spotify_server, session, hold_back=lambda item: item is held_back)
    note = "cried at the third song, zephyrquill-note"
    assert alice.post(f"/api/v1/sessions/{session['id']}/feedback", json={
        "reactions": [{"item_id": songs[0]["item_id"], "reaction": "cried"}],
        "catharsis": 4, "mood_before": 3, "mood_after": 6, "note": note}).status_code == 201
    connect(alice)

    answer = export(alice, session["id"])
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert set(body) == {"export_id", "status", "playlist_url", "added", "unmatched",
                         "retry_after_s"}
    assert body["status"] == "done"
    assert body["added"] == len(expected)
    assert body["unmatched"] == [held_back["item_id"]]
    assert body["retry_after_s"] is None
    playlist = playlist_for(spotify_server, body["export_id"])
    assert body["playlist_url"] == f"https://open.spotify.com/playlist/{playlist.id}"
    assert playlist.items == expected
    assert playlist.public is False
    create = spotify_server.requests_to("/v1/me/playlists", "POST")
    assert len(create) == 1 and create[0].json["public"] is False
    assert "grief" in playlist.name and "grief" in playlist.description
    assert f"{round(session['total_duration_s'] / 60)} minutes" in playlist.description
    assert films[0]["title"] in playlist.description  # films are listed, not sent as tracks
    for search in spotify_server.requests_to("/v1/search"):
        assert int(search.query["limit"]) <= 10
    sent = spotify_server.all_sent_text()
    for private in (memory_text, "zephyrquill", "Oddlington", "Quillhaven", note,
                    "missing my nana"):
        assert private not in sent
    for item in session["items"]:
        assert item["prompt"]["text"] not in sent

    # matches are cached on the catalogue items
    again = alice.get(f"/api/v1/sessions/{session['id']}").get_json()
    cached = [i["spotify_uri"] for i in again["items"] if i["kind"] == "song" and
              i["spotify_uri"]]
    assert cached == expected

    # sent again: the same export, nothing new on Spotify
    before = len(spotify_server.requests)
    repeat = export(alice, session["id"]).get_json()
    assert repeat == body
    assert len(spotify_server.requests) == before
    exports = alice.get("/api/v1/me/export").get_json()["exports"]
    assert [e["export_id"] for e in exports] == [body["export_id"]]


def test_refused_refresh_drops_the_connection_and_keeps_everything_else(
        spotify_app, client, spotify_server):  # noqa: F811
    alice = ApiUser(client, "alice")
    session = alice.new_session(minutes=15)
    stock(spotify_server, session)
    connect(alice)
    with db_of(spotify_app) as db:  # the access token is about to expire: refresh first
        db.execute(update(SpotifyConnection).values(expires_at=0.0))
        db.commit()
    spotify_server.refuse_refresh = True
    answer = export(alice, session["id"])
    assert_error(answer, 409, "spotify_not_connected", mentions="invalid_grant")
    assert alice.get("/api/v1/me").get_json()["spotify_connected"] is False
    assert alice.get(f"/api/v1/sessions/{session['id']}").status_code == 200
    assert not spotify_server.requests_to("/v1/me/playlists", "POST")

    # connecting again carries on with the same export
    spotify_server.refuse_refresh = False
    connect(alice)
    body = export(alice, session["id"]).get_json()
    assert body["status"] == "done"
    with db_of(spotify_app) as db:
        assert len(db.scalars(select(Export)).all()) == 1


def test_a_401_refreshes_the_token_once_and_carries_on(
        spotify_app, client, spotify_server):  # noqa: F811
    alice = ApiUser(client, "alice")
    session = alice.new_session(minutes=15)
    expected = stock(spotify_server, session)
    connect(alice)
    with db_of(spotify_app) as db:
        row = db.get(SpotifyConnection, alice.user_id)
        spotify_server.expire_access_token(TokenVault(TEST_SECRET).unseal(row.access_token_enc))
    body = export(alice, session["id"]).get_json()
    assert body["status"] == "done"
    assert playlist_for(spotify_server, body["export_id"]).items == expected
    refreshes = [r for r in spotify_server.requests_to("/api/token")
                 if r.form.get("grant_type") == "refresh_token"]
    assert len(refreshes) == 1


def test_a_429_answers_pending_and_the_next_call_resumes_once_due(
        spotify_app, client, spotify_server):  # noqa: F811
    alice = ApiUser(client, "alice")
    session = alice.new_session(minutes=20)
    expected = stock(spotify_server, session)
    connect(alice)
    spotify_server.fail_next("/v1/me/playlists", status=429, retry_after=3600,
                             reason="QUOTA_EXCEEDED")
    first = export(alice, session["id"]).get_json()
    assert first["status"] == "pending" and first["retry_after_s"] == 3600
    assert first["playlist_url"] is None
    calls = len(spotify_server.requests)
    second = export(alice, session["id"]).get_json()  # not due yet: Spotify is left alone
    assert second["status"] == "pending" and 3590 <= second["retry_after_s"] <= 3600
    assert len(spotify_server.requests) == calls
    with db_of(spotify_app) as db:  # an hour passes
        db.execute(update(Export).values(retry_at=datetime.now(UTC) - timedelta(seconds=1)))
        db.commit()
    third = export(alice, session["id"]).get_json()
    assert third["status"] == "done" and third["export_id"] == first["export_id"]
    assert playlist_for(spotify_server, third["export_id"]).items == expected


def test_503s_are_retried_within_the_call_then_partial_then_resumed(
        spotify_app, client, spotify_server):  # noqa: F811
    alice = ApiUser(client, "alice")
    session = alice.new_session(minutes=20)
    expected = stock(spotify_server, session)
    connect(alice)
    spotify_server.fail_next("/v1/search", status=503, times=2)
    body = export(alice, session["id"]).get_json()
    assert body["status"] == "done"  # two 503s fit in the call's retries
    assert playlist_for(spotify_server, body["export_id"]).items == expected

    other = alice.new_session(moods=["longing"], minutes=20)
    expected = stock(spotify_server, other)
    spotify_server.fail_next("/v1/playlists/", status=503, times=50)
    body = export(alice, other["id"]).get_json()
    assert body["status"] == "partial" and body["added"] == 0
    assert body["playlist_url"]  # the playlist exists; the songs wait
    spotify_server.clear_faults()
    body = export(alice, other["id"]).get_json()
    assert body["status"] == "done" and body["added"] == len(expected)
    assert playlist_for(spotify_server, body["export_id"]).items == expected


# -- pages ----------------------------------------------------------------------------------------


def _csrf(html: str) -> str:
    tag = re.search(r'<input[^>]*name="csrf_token"[^>]*>', html).group(0)
    return re.search(r'value="([^"]+)"', tag).group(1)


def test_spotify_page_connects_and_disconnects(spotify_app, client, spotify_server):  # noqa: F811
    ApiUser(client, "carol")
    page = client.get("/signin")
    signed_in = client.post("/signin", data={"username": "carol", "password": PASSWORD,
                                             "csrf_token": _csrf(page.text)})
    assert signed_in.status_code == 302
    page = client.get("/spotify")
    assert page.status_code == 200 and "Connect Spotify" in page.text
    assert client.post("/spotify/connect").status_code == 400  # no CSRF token
    go = client.post("/spotify/connect", data={"csrf_token": _csrf(page.text)})
    assert go.status_code == 303
    assert go.headers["Location"].startswith(spotify_server.accounts_url + "authorize?")
    path, query = authorize(go.headers["Location"])
    assert client.get(f"{path}?{query}").status_code == 303
    page = client.get("/spotify")
    assert "Your Spotify account is connected" in page.text and "Disconnect" in page.text
    gone = client.post("/spotify/disconnect", data={"csrf_token": _csrf(page.text)})
    assert gone.status_code == 302
    assert "Connect Spotify" in client.get("/spotify").text
