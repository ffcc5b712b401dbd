"""The Spotify service against a real loopback fake of Spotify 2026."""

from __future__ import annotations

import logging
import socket
import time
from email.utils import formatdate
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from recommender.services.spotify import (
    SCOPES,
    SpotifyClient,
    SpotifyConfig,
    SpotifyError,
    SpotifyInvalidGrant,
    SpotifyRateLimited,
    SpotifyRejected,
    SpotifyUnauthorized,
    SpotifyUnavailable,
    code_challenge_for,
    exchange_code,
    parse_retry_after,
    refresh,
    score_candidate,
    start_pkce,
)
from tests.fakes.spotify_server import FakeSpotify, spotify_server  # noqa: F401


@pytest.fixture
def client(spotify_server: FakeSpotify):  # noqa: F811
    tokens = spotify_server.issue_token()
    with SpotifyClient(spotify_server.config(), tokens.access_token) as spotify:
        yield spotify


def _login(server: FakeSpotify, config: SpotifyConfig):
    """Walk /authorize as a browser would; return (PkceStart, code from the redirect)."""
    start = start_pkce(config)
    answer = requests.get(start.authorize_url, allow_redirects=False, timeout=5)
    assert answer.status_code in (302, 303)
    location = urlsplit(answer.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == config.redirect_uri
    query = parse_qs(location.query)
    assert query["state"] == [start.state]
    return start, query["code"][0]


# -- PKCE and tokens ----------------------------------------------------------------------------


def test_authorize_url_carries_an_s256_challenge_of_the_verifier(spotify_server):  # noqa: F811
    config = spotify_server.config()
    start = start_pkce(config)
    url = urlsplit(start.authorize_url)
    params = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert start.authorize_url.startswith(spotify_server.accounts_url + "authorize?")
    assert params == {
        "client_id": config.client_id,
        "response_type": "code",
        "redirect_uri": config.redirect_uri,
        "scope": SCOPES,
        "state": start.state,
        "code_challenge": code_challenge_for(start.code_verifier),
        "code_challenge_method": "S256",
    }
    assert 43 <= len(start.code_verifier) <= 128
    assert start_pkce(config).state != start.state  # fresh every time
    assert start.code_verifier not in repr(start)


def test_code_challenge_is_rfc7636_s256():
    # the worked example in RFC 7636, appendix B
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert code_challenge_for(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_pkce_round_trip_gives_working_tokens(spotify_server):  # noqa: F811
    config = spotify_server.config()
    start, code = _login(spotify_server, config)
    tokens = exchange_code(config, code, start.code_verifier)
    assert tokens.scope == SCOPES
    assert tokens.expires_at > time.time() + 3000
    assert tokens.access_token not in repr(tokens)
    with SpotifyClient(config, tokens.access_token) as spotify:
        assert spotify.me()["id"] == "goodcry-tester"
    sent = spotify_server.requests_to("/api/token")[0].form
    assert sent["grant_type"] == "authorization_code"
    assert sent["code_verifier"] == start.code_verifier
    assert sent["redirect_uri"] == config.redirect_uri


def test_a_wrong_verifier_is_rejected(spotify_server):  # noqa: F811
    config = spotify_server.config()
    _start, code = _login(spotify_server, config)
    other = start_pkce(config)
    with pytest.raises(SpotifyInvalidGrant) as refused:
        exchange_code(config, code, other.code_verifier)
    assert refused.value.status == 400


def test_a_code_works_once(spotify_server):  # noqa: F811
    config = spotify_server.config()
    start = start_pkce(config)
    code = spotify_server.issue_code(code_challenge_for(start.code_verifier))
    exchange_code(config, code, start.code_verifier)
    with pytest.raises(SpotifyInvalidGrant):
        exchange_code(config, code, start.code_verifier)


def test_refresh_gives_a_new_access_token_and_keeps_the_new_refresh_token(
    spotify_server,  # noqa: F811
):
    config = spotify_server.config()
    first = spotify_server.issue_token()
    renewed = refresh(config, first.refresh_token)
    assert renewed.access_token != first.access_token
    assert renewed.refresh_token != first.refresh_token  # the fake rotates, as Spotify may
    with SpotifyClient(config, renewed.access_token) as spotify:
        assert spotify.me()["id"] == "goodcry-tester"
    sent = spotify_server.requests_to("/api/token")[-1].form
    assert sent == {
        "grant_type": "refresh_token",
        "refresh_token": first.refresh_token,
        "client_id": config.client_id,
    }
    assert refresh(config, renewed.refresh_token).access_token


def test_refused_refresh_raises_invalid_grant(spotify_server):  # noqa: F811
    tokens = spotify_server.issue_token()
    spotify_server.refuse_refresh = True
    with pytest.raises(SpotifyInvalidGrant) as refused:
        refresh(spotify_server.config(), tokens.refresh_token)
    assert refused.value.status == 400
    assert refused.value.reason == "invalid_grant"
    assert tokens.refresh_token not in str(refused.value)


def test_token_endpoint_faults_are_translated(spotify_server):  # noqa: F811
    config = spotify_server.config()
    tokens = spotify_server.issue_token()
    spotify_server.fail_next("/api/token", status=503)
    with pytest.raises(SpotifyUnavailable):
        refresh(config, tokens.refresh_token)
    spotify_server.fail_next("/api/token", status=429, retry_after=120)
    with pytest.raises(SpotifyRateLimited) as limited:
        refresh(config, tokens.refresh_token)
    assert limited.value.retry_after_s == 120


# -- search and matching ------------------------------------------------------------------------


def test_search_limit_is_capped_at_ten(spotify_server, client):  # noqa: F811
    client.search_track("Hurt", "Johnny Cash", 218, limit=50)
    searches = spotify_server.requests_to("/v1/search")
    assert searches
    assert all(int(r.query["limit"]) <= 10 for r in searches)


def test_the_server_refuses_a_search_limit_over_ten(spotify_server):  # noqa: F811
    tokens = spotify_server.issue_token()
    answer = requests.get(
        spotify_server.api_url + "search",
        params={"q": "hurt", "type": "track", "limit": 11},
        headers={"Authorization": f"Bearer {tokens.access_token}"},
        timeout=5,
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["message"] == "Invalid limit"


@pytest.mark.parametrize(
    ("title", "artist", "duration_s", "expected_title", "expected_artist"),
    [
        ("Hurt", "Johnny Cash", 218, "Hurt", "Johnny Cash"),
        ("Hurt", "Nine Inch Nails", 373, "Hurt", "Nine Inch Nails"),
        ("Hurt", "Johnny Cash", None, "Hurt", "Johnny Cash"),
        ("Someone Like You", "Adele", 285, "Someone Like You", "Adele"),
        (
            "Someone Like You (Live)", "Adele", 300,
            "Someone Like You - Live at the Royal Albert Hall", "Adele",
        ),
        ("Skinny Love", "Birdy", 201, "Skinny Love", "Birdy"),
        ("Skinny Love", "Bon Iver", None, "Skinny Love", "Bon Iver"),
        ("Nothing Compares 2 U", "Sinead O'Connor", 280, "Nothing Compares 2 U", "Sinéad O'Connor"),
        ("Mad World", "Gary Jules", 189, "Mad World", "Gary Jules"),
        ("Tears in Heaven", "Eric Clapton", 272, "Tears in Heaven", "Eric Clapton"),
        ("Everybody Hurts", "REM", 320, "Everybody Hurts", "R.E.M."),
        ("The Night We Met", "Lord Huron", None, "The Night We Met", "Lord Huron"),
    ],
)
def test_search_picks_the_right_version(
    spotify_server, client, title, artist, duration_s, expected_title, expected_artist  # noqa: F811
):
    expected = spotify_server.find_track(expected_title, expected_artist)
    match = client.search_track(title, artist, duration_s)
    assert match is not None
    assert match.spotify_id == expected.id
    assert match.uri == f"spotify:track:{expected.id}"
    assert match.title == expected_title
    assert expected_artist in match.artist
    assert match.duration_s == expected.duration_s
    assert match.year == expected.year
    assert match.isrc == expected.isrc
    assert match.score >= 0.7


@pytest.mark.parametrize(
    ("title", "artist", "duration_s"),
    [
        ("Qwertyuiop Zxcvb", "Nobody Atall", 200),
        ("Hurt", "Adele", 218),
        ("Fix You Up Completely Different Song", "Coldplay", 295),
        ("Fix", "Coldplay", 295),  # Spotify answers "Fix You": found, but not this song
    ],
)
def test_search_returns_none_for_no_good_candidate(
    spotify_server, client, title, artist, duration_s  # noqa: F811
):
    assert client.search_track(title, artist, duration_s) is None
    assert spotify_server.requests_to("/v1/search")


def test_search_falls_back_to_plain_words_once(spotify_server, client):  # noqa: F811
    match = client.search_track("Hurt (feat. Somebody Else)", "Johnny Cash", 218)
    assert match is not None
    assert match.spotify_id == spotify_server.find_track("Hurt", "Johnny Cash").id
    queries = [r.query["q"] for r in spotify_server.requests_to("/v1/search")]
    assert len(queries) == 2
    assert queries[0].startswith('track:"Hurt (feat. Somebody Else)"')


def test_scoring_gates_the_wrong_artist_and_a_cover(spotify_server):  # noqa: F811
    cash = spotify_server.find_track("Hurt", "Johnny Cash").as_json()
    karaoke = spotify_server.find_track("Hurt (Karaoke Version)", "Karaoke Hits Band").as_json()
    assert score_candidate("Hurt", "Johnny Cash", 218, cash) == pytest.approx(1.0)
    assert score_candidate("Hurt", "Adele", 218, cash) == 0.0
    assert score_candidate("Hurt", "Johnny Cash", 218, karaoke) == 0.0
    # a far-off duration costs, but does not by itself reject the right song
    assert 0.7 <= score_candidate("Hurt", "Johnny Cash", 400, cash) < 0.8


# -- single reads -------------------------------------------------------------------------------


def test_track_reads_one_id_and_never_the_batch_form(spotify_server, client):  # noqa: F811
    wanted = spotify_server.find_track("Fix You", "Coldplay")
    assert client.track(wanted.id)["name"] == "Fix You"
    assert client.track(wanted.uri)["id"] == wanted.id
    client.search_track("Hurt", "Johnny Cash", 218)
    client.saved_tracks()
    paths = [(r.path, r.query) for r in spotify_server.requests]
    assert ("/v1/tracks/" + wanted.id, {}) in paths
    assert not [p for p, q in paths if p.rstrip("/") == "/v1/tracks" or "ids" in q]


def test_the_server_refuses_the_batch_tracks_form(spotify_server):  # noqa: F811
    tokens = spotify_server.issue_token()
    wanted = spotify_server.find_track("Fix You", "Coldplay")
    answer = requests.get(
        spotify_server.api_url + "tracks",
        params={"ids": wanted.id},
        headers={"Authorization": f"Bearer {tokens.access_token}"},
        timeout=5,
    )
    assert answer.status_code == 403


def test_an_unknown_token_is_unauthorized(spotify_server):  # noqa: F811
    with (
        SpotifyClient(spotify_server.config(), "not-a-token") as spotify,
        pytest.raises(SpotifyUnauthorized) as refused,
    ):
        spotify.me()
    assert isinstance(refused.value, SpotifyRejected)
    assert refused.value.status == 401


def test_an_unknown_track_is_rejected_with_404(client):
    with pytest.raises(SpotifyRejected) as refused:
        client.track("0000000000000000000000")
    assert refused.value.status == 404


# -- playlists ----------------------------------------------------------------------------------


def test_create_playlist_is_private(spotify_server, client):  # noqa: F811
    made = client.create_playlist("goodcry: grief, 45 min", "A cry session from goodcry")
    assert set(made) == {"id", "url"}
    assert made["url"] == f"https://open.spotify.com/playlist/{made['id']}"
    stored = spotify_server.playlists[made["id"]]
    assert stored.public is False
    assert stored.name == "goodcry: grief, 45 min"
    assert stored.description == "A cry session from goodcry"
    sent = spotify_server.requests_to("/v1/me/playlists", method="POST")[0]
    assert sent.json["public"] is False


def test_the_server_makes_playlists_public_unless_told(spotify_server):  # noqa: F811
    tokens = spotify_server.issue_token()
    answer = requests.post(
        spotify_server.api_url + "me/playlists",
        json={"name": "loud"},
        headers={"Authorization": f"Bearer {tokens.access_token}"},
        timeout=5,
    )
    assert answer.status_code == 201
    assert spotify_server.playlist_named("loud").public is True


def test_create_playlist_needs_the_private_scope(spotify_server):  # noqa: F811
    tokens = spotify_server.issue_token(scope="user-top-read")
    with (
        SpotifyClient(spotify_server.config(), tokens.access_token) as spotify,
        pytest.raises(SpotifyRejected) as refused,
    ):
        spotify.create_playlist("x", "y")
    assert refused.value.status == 403


def test_add_items_in_chunks_keeps_order_and_reads_back_all_pages(
    spotify_server, client  # noqa: F811
):
    uris = [t.uri for t in spotify_server.make_tracks(130)]
    made = client.create_playlist("long", "")
    first = client.add_items(made["id"], uris[:100])
    second = client.add_items(made["id"], uris[100:])
    assert first and second and first != second
    assert spotify_server.playlists[made["id"]].items == uris
    assert client.playlist_items(made["id"]) == uris
    reads = spotify_server.requests_to(f"/v1/playlists/{made['id']}/items", method="GET")
    assert len(reads) == 3
    assert all(int(r.query["limit"]) <= 50 for r in reads)


def test_add_items_over_100_is_refused_before_sending(spotify_server, client):  # noqa: F811
    uris = [t.uri for t in spotify_server.make_tracks(101)]
    made = client.create_playlist("too many", "")
    with pytest.raises(ValueError):
        client.add_items(made["id"], uris)
    with pytest.raises(ValueError):
        client.add_items(made["id"], [])
    assert not spotify_server.requests_to(f"/v1/playlists/{made['id']}/items")
    assert spotify_server.playlists[made["id"]].items == []


def test_the_server_refuses_more_than_100_items(spotify_server):  # noqa: F811
    tokens = spotify_server.issue_token()
    headers = {"Authorization": f"Bearer {tokens.access_token}"}
    made = requests.post(
        spotify_server.api_url + "me/playlists",
        json={"name": "direct", "public": False}, headers=headers, timeout=5,
    ).json()
    uris = [t.uri for t in spotify_server.make_tracks(101)]
    too_many = requests.post(
        spotify_server.api_url + f"playlists/{made['id']}/items",
        json={"uris": uris}, headers=headers, timeout=5,
    )
    assert too_many.status_code == 400
    bare_list = requests.post(
        spotify_server.api_url + f"playlists/{made['id']}/items",
        json=uris[:100], headers=headers, timeout=5,
    )
    assert bare_list.status_code == 201
    assert "snapshot_id" in bare_list.json()


# -- faults -------------------------------------------------------------------------------------


def test_429_surfaces_at_once_with_retry_after(spotify_server, client):  # noqa: F811
    spotify_server.fail_next("/v1/search", status=429, retry_after=3600, reason="QUOTA_EXCEEDED")
    began = time.monotonic()
    with pytest.raises(SpotifyRateLimited) as limited:
        client.search_track("Hurt", "Johnny Cash", 218)
    assert time.monotonic() - began < 2
    assert limited.value.retry_after_s == 3600
    assert limited.value.status == 429
    assert limited.value.reason == "QUOTA_EXCEEDED"
    assert len(spotify_server.requests_to("/v1/search")) == 1  # no retry behind our back


def test_429_without_retry_after_defaults_to_30(spotify_server, client):  # noqa: F811
    spotify_server.fail_next("/v1/me", status=429, retry_after=None)
    with pytest.raises(SpotifyRateLimited) as limited:
        client.me()
    assert limited.value.retry_after_s == 30


def test_503_is_unavailable_and_not_retried(spotify_server, client):  # noqa: F811
    made = client.create_playlist("p", "")
    spotify_server.fail_next("/v1/playlists", status=503)
    with pytest.raises(SpotifyUnavailable) as down:
        client.add_items(made["id"], [spotify_server.find_track("Fix You", "Coldplay").uri])
    assert down.value.status == 503
    assert not isinstance(down.value, SpotifyRateLimited)
    assert len(spotify_server.requests_to("/v1/playlists")) == 1
    assert spotify_server.playlists[made["id"]].items == []


def test_a_slow_answer_times_out_as_unavailable(spotify_server):  # noqa: F811
    tokens = spotify_server.issue_token()
    spotify_server.delay_next("/v1/me", seconds=5)
    began = time.monotonic()
    with (
        SpotifyClient(spotify_server.config(timeout_s=0.5), tokens.access_token) as spotify,
        pytest.raises(SpotifyUnavailable),
    ):
        spotify.me()
    assert time.monotonic() - began < 2


def test_a_closed_port_is_unavailable():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = SpotifyConfig(
        client_id="c", redirect_uri="http://127.0.0.1:1/cb",
        api_url=f"http://127.0.0.1:{port}/v1/", accounts_url=f"http://127.0.0.1:{port}/",
        timeout_s=2,
    )
    with SpotifyClient(config, "token") as spotify, pytest.raises(SpotifyUnavailable):
        spotify.me()
    with pytest.raises(SpotifyUnavailable):
        refresh(config, "refresh")


def test_seeded_fault_rates_hit_every_request_at_rate_one(spotify_server, client):  # noqa: F811
    spotify_server.set_fault_rates(rate_limited=1.0, retry_after=7, path="/v1/me")
    for _ in range(3):
        with pytest.raises(SpotifyRateLimited) as limited:
            client.me()
        assert limited.value.retry_after_s == 7
    spotify_server.clear_faults()
    assert client.me()["id"] == "goodcry-tester"


@pytest.mark.parametrize(
    ("header", "expected"),
    [("3600", 3600), ("86400", 86400), (None, 30), ("soon", 30), ("-5", 0)],
)
def test_parse_retry_after(header, expected):
    assert parse_retry_after(header) == expected


def test_parse_retry_after_reads_an_http_date():
    assert 100 <= parse_retry_after(formatdate(time.time() + 120, usegmt=True)) <= 120


# -- the user's library -------------------------------------------------------------------------


def test_saved_tracks_read_every_page_in_order(spotify_server, client):  # noqa: F811
    ids = [t.id for t in spotify_server.make_tracks(120)]
    spotify_server.set_saved_tracks(ids)
    saved = client.saved_tracks()
    assert [entry["track"]["id"] for entry in saved] == ids
    assert all(entry["added_at"] for entry in saved)
    pages = spotify_server.requests_to("/v1/me/tracks")
    assert len(pages) == 3
    assert [r.query.get("limit") for r in pages] == ["50", "50", "50"]
    assert [r.query.get("offset") for r in pages] == ["0", "50", "100"]
    assert [e["track"]["id"] for e in client.saved_tracks(max_items=60)] == ids[:60]


def test_top_tracks_read_every_page(spotify_server, client):  # noqa: F811
    ids = [t.id for t in spotify_server.make_tracks(70)]
    spotify_server.set_top_tracks(ids)
    assert [track["id"] for track in client.top_tracks()] == ids


def test_recently_played_is_the_last_fifty(spotify_server, client):  # noqa: F811
    ids = [t.id for t in spotify_server.make_tracks(60)]
    spotify_server.set_recently_played(ids)
    played = client.recently_played()
    assert [entry["track"]["id"] for entry in played] == ids[:50]
    assert all(entry["played_at"] for entry in played)


def test_an_empty_library_is_an_empty_list(client):
    assert client.saved_tracks() == []
    assert client.top_tracks() == []
    assert client.recently_played() == []


# -- secrets ------------------------------------------------------------------------------------


def test_tokens_never_reach_the_logs(spotify_server, caplog):  # noqa: F811
    tokens = spotify_server.issue_token()
    config = spotify_server.config()
    caplog.set_level(logging.DEBUG)
    with SpotifyClient(config, tokens.access_token) as spotify:
        spotify.me()
        spotify_server.fail_next("/v1/me", status=503)
        with pytest.raises(SpotifyError) as failed:
            spotify.me()
    renewed = refresh(config, tokens.refresh_token)
    assert "Bearer" in caplog.text  # spotipy did log its headers, redacted
    for secret in (tokens.access_token, tokens.refresh_token, renewed.access_token,
                   renewed.refresh_token):
        assert secret not in caplog.text
        assert secret not in str(failed.value)
