"""Spotify and the catalogue: linking songs by search, and importing a person's library."""

from __future__ import annotations

from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from recommender.catalog.spotify_library import import_spotify_library
from recommender.catalog.spotify_link import link_catalogue, resume_at, songs_to_link
from recommender.cli import main
from recommender.services.lastfm import LastfmClient
from recommender.services.spotify import (
    SpotifyClient,
    SpotifyRejected,
    client_credentials_token,
)
from recommender.store.catalog import search_items
from recommender.store.models import CatalogItem, LibraryItem, SpotifyLookup, User, utcnow
from tests.fakes.spotify_server import DEFAULT_CLIENT_SECRET


@pytest.fixture
def app_client(spotify_server):
    token = client_credentials_token(spotify_server.config(), DEFAULT_CLIENT_SECRET)
    with SpotifyClient(spotify_server.config(), token.access_token) as client:
        yield client


def song(db, title, artist):
    return db.scalars(select(CatalogItem).where(CatalogItem.title == title,
                                                CatalogItem.artist == artist)).one()


def only_songs(db, keep: set[tuple[str, str]]) -> None:
    """Mark every other song as looked up already, so a test walks a handful of songs."""
    for item in db.scalars(select(CatalogItem).where(CatalogItem.kind == "song")):
        if (item.title, item.artist) not in keep:
            db.add(SpotifyLookup(item_id=item.id, status="unmatched", checked_at=utcnow()))
    db.commit()


def test_client_credentials(spotify_server):
    token = client_credentials_token(spotify_server.config(), DEFAULT_CLIENT_SECRET)
    assert token.access_token and not token.expires_within(60)
    sent = spotify_server.requests_to("/api/token")[-1]
    assert sent.form == {"grant_type": "client_credentials"}
    assert sent.authorization.startswith("Basic ")
    with pytest.raises(SpotifyRejected):
        client_credentials_token(spotify_server.config(), "wrong-secret")


def test_link_fills_uri_isrc_duration_and_year_and_caches(db, spotify_server, app_client):
    only_songs(db, {("Hurt", "Johnny Cash"), ("Fix You", "Coldplay"),
                    ("Between the Bars", "Elliott Smith")})
    fix_you = song(db, "Fix You", "Coldplay")
    fix_you.duration_estimated, fix_you.duration_s = True, 240
    db.commit()
    report = link_catalogue(db, app_client)
    assert (report.status, report.checked, report.matched, report.unmatched) == ("done", 3, 2, 1)
    assert report.remaining == 0
    hurt = song(db, "Hurt", "Johnny Cash")
    cash = spotify_server.find_track("Hurt", "Johnny Cash")
    assert hurt.spotify_uri == cash.uri and hurt.isrc == cash.isrc
    fix_you = song(db, "Fix You", "Coldplay")
    assert fix_you.duration_s == 295 and fix_you.duration_estimated is False
    searches = spotify_server.requests_to("/v1/search")
    assert searches and all(int(r.query["limit"]) <= 10 for r in searches)
    # The cache: a second run asks nothing.
    before = len(spotify_server.requests)
    again = link_catalogue(db, app_client)
    assert again.checked == 0 and len(spotify_server.requests) == before
    # The items API shows the link.
    page, _ = search_items(db, q="fix you")
    assert page[0].spotify_uri.startswith("spotify:track:")


def test_rate_limit_is_scheduled_not_slept_and_the_next_run_resumes(db, spotify_server,
                                                                   app_client):
    only_songs(db, {("Hurt", "Johnny Cash"), ("Fix You", "Coldplay"),
                    ("Someone Like You", "Adele"), ("Tears in Heaven", "Eric Clapton")})
    first_id = songs_to_link(db)[0]
    spotify_server.fail_next("/v1/search", status=429, retry_after=3600,
                             reason="QUOTA_EXCEEDED")
    spotify_server.fail_next("/v1/search", status=429, retry_after=3600)
    now = utcnow()
    paused = link_catalogue(db, app_client, now=now)
    assert paused.status == "paused" and paused.checked == 0 and paused.remaining == 4
    assert paused.resume_at == now + timedelta(seconds=3600)
    assert "Run again after" in paused.message and "3600 s" in paused.message
    assert resume_at(db) == now + timedelta(seconds=3600)
    before = len(spotify_server.requests)
    waiting = link_catalogue(db, app_client, now=now + timedelta(minutes=30))
    assert waiting.status == "waiting" and len(spotify_server.requests) == before
    # Later: one song done, then a fault on the second keeps the first.
    spotify_server.clear_faults()
    done = link_catalogue(db, app_client, now=now + timedelta(hours=1, seconds=1), limit=1)
    assert done.status == "partial" and done.checked == 1 and done.remaining == 3
    assert db.get(SpotifyLookup, first_id) is not None
    spotify_server.fail_next("/v1/search", status=503)
    outage = link_catalogue(db, app_client, now=now + timedelta(hours=2))
    assert outage.status == "paused" and "unavailable" in outage.message
    assert outage.remaining == 3
    final = link_catalogue(db, app_client, now=now + timedelta(hours=3))
    assert (final.status, final.checked, final.remaining) == ("done", 3, 0)
    assert resume_at(db) is None


def test_link_spotify_cli(database_url, monkeypatch, spotify_server):
    monkeypatch.setenv("GOODCRY_DATABASE_URL", database_url)
    monkeypatch.setenv("GOODCRY_SPOTIFY_CLIENT_ID", spotify_server.client_id)
    monkeypatch.setenv("GOODCRY_SPOTIFY_API_URL", spotify_server.api_url)
    monkeypatch.setenv("GOODCRY_SPOTIFY_ACCOUNTS_URL", spotify_server.accounts_url)
    monkeypatch.delenv("GOODCRY_SPOTIFY_CLIENT_SECRET", raising=False)
    runner = CliRunner()
    missing = runner.invoke(main, ["catalog", "link-spotify"])
    assert missing.exit_code != 0 and "GOODCRY_SPOTIFY_CLIENT_SECRET" in missing.output
    monkeypatch.setenv("GOODCRY_SPOTIFY_CLIENT_SECRET", DEFAULT_CLIENT_SECRET)
    result = runner.invoke(main, ["catalog", "link-spotify", "--limit", "3"])
    assert result.exit_code == 0, result.output
    assert "partial: 3 songs looked up" in result.output
    spotify_server.fail_next("/v1/search", status=429, retry_after=120)
    paused = runner.invoke(main, ["catalog", "link-spotify"])
    assert paused.exit_code == 75 and "Run again after" in paused.output
    waiting = runner.invoke(main, ["catalog", "link-spotify"])
    assert waiting.exit_code == 75 and "run again after" in waiting.output


# -- a person's library ---------------------------------------------------------------------------


@pytest.fixture
def user_id(db):
    user = User(username="listener", password_hash="x")
    db.add(user)
    db.commit()
    return user.id


@pytest.fixture
def user_client(spotify_server):
    token = spotify_server.issue_token()
    with SpotifyClient(spotify_server.config(), token.access_token) as client:
        yield client


def seed_library(spotify_server):
    hurt = spotify_server.find_track("Hurt", "Johnny Cash")
    night = spotify_server.find_track("The Night We Met", "Lord Huron")
    private = spotify_server.add_track("Kitchen Song", ["Our Garage Band"], 201, year=2024)
    fillers = spotify_server.make_tracks(60, prefix="Saved Song")
    spotify_server.set_recently_played([hurt.id, private.id, hurt.id])
    spotify_server.set_top_tracks([night.id, private.id])
    spotify_server.set_saved_tracks([t.id for t in fillers] + [hurt.id])
    return hurt, night, private


def library(db, user_id):
    return {(row.item.title, row.source) for row in
            db.scalars(select(LibraryItem).where(LibraryItem.user_id == user_id))}


def test_library_import_links_catalogue_items_and_keeps_new_tracks_private(
        db, spotify_server, user_client, user_id):
    hurt, _, _ = seed_library(spotify_server)
    before = db.scalar(select(func.count()).select_from(CatalogItem))
    report = import_spotify_library(db, user_client, user_id)
    assert report.status == "done"
    assert report.sources_done == ["spotify_recent", "spotify_top", "spotify_saved"]
    rows = library(db, user_id)
    assert ("Hurt", "spotify_recent") in rows and ("Hurt", "spotify_saved") in rows
    assert ("The Night We Met", "spotify_top") in rows
    assert ("Kitchen Song", "spotify_recent") in rows
    assert len(rows) == 2 + 2 + 61
    # Catalogue songs merged by identity, not duplicated; they gain the URI and ISRC.
    cash = song(db, "Hurt", "Johnny Cash")
    assert cash.spotify_uri == hurt.uri and cash.isrc == hurt.isrc and cash.shared
    # New tracks: 61 of them (Kitchen Song and 60 saved), out of the shared catalogue.
    assert db.scalar(select(func.count()).select_from(CatalogItem)) == before + 61
    kitchen = song(db, "Kitchen Song", "Our Garage Band")
    assert kitchen.shared is False and kitchen.tag_list == []
    assert kitchen.duration_s == 201 and kitchen.duration_estimated is False
    assert search_items(db, q="kitchen song")[1] == 0
    # Pages of saved tracks asked 50 at a time.
    assert all(int(r.query["limit"]) <= 50 for r in spotify_server.requests_to("/v1/me/tracks"))

    # Re-importing changes nothing.
    again = import_spotify_library(db, user_client, user_id)
    assert (again.added, again.new_items) == (0, 0)
    assert again.unchanged == report.added + report.unchanged
    assert db.scalar(select(func.count()).select_from(CatalogItem)) == before + 61


def test_library_import_pauses_on_rate_limit_and_resumes(db, spotify_server, user_client,
                                                         user_id):
    seed_library(spotify_server)
    spotify_server.fail_next("/v1/me/tracks", status=429, retry_after=30)
    paused = import_spotify_library(db, user_client, user_id)
    assert paused.status == "paused" and paused.retry_after_s == 30
    assert "spotify_saved" in paused.message and "kept" in paused.message
    kept = library(db, user_id)
    assert ("Kitchen Song", "spotify_top") in kept  # recent and top are in
    assert not any(source == "spotify_saved" for _, source in kept)
    resumed = import_spotify_library(db, user_client, user_id)
    assert resumed.status == "done" and resumed.added == 61
    assert len(library(db, user_id)) == 65


def test_library_tags_from_lastfm_and_without_it(db, spotify_server, user_client, user_id,
                                                 lastfm_server):
    seed_library(spotify_server)
    lastfm_server.add_track_tags("Our Garage Band", "Kitchen Song",
                                 [("sad", 80), ("lo-fi", 50), ("heartbreak", 20)])
    with LastfmClient(lastfm_server.config()) as lastfm:
        report = import_spotify_library(db, user_client, user_id, lastfm=lastfm)
    assert report.status == "done" and report.tagged == 1
    assert song(db, "Kitchen Song", "Our Garage Band").tag_list == ["grief", "heartbreak"]
    # Last.fm down: the tracks still import, and the report says tags are pending.
    other = User(username="second", password_hash="x")
    db.add(other)
    db.commit()
    spotify_server.add_track("Another Kitchen Song", ["Our Garage Band"], 190)
    spotify_server.set_top_tracks([spotify_server.find_track("Another Kitchen Song",
                                                             "Our Garage Band").id])
    lastfm_server.fail_next(error=None, status=503, times=5)
    with LastfmClient(lastfm_server.config()) as lastfm:
        down = import_spotify_library(db, user_client, other.id, lastfm=lastfm)
    assert down.status == "done" and "Last.fm tags are pending" in down.message
    assert song(db, "Another Kitchen Song", "Our Garage Band").tag_list == []
