"""Last.fm top tags: the client against the loopback fake, the cache, and catalogue enrichment."""

from __future__ import annotations

from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from recommender.catalog.lastfm_tags import enrich_catalog, resume_at
from recommender.cli import main
from recommender.services.lastfm import (
    LastfmClient,
    LastfmConfig,
    LastfmRateLimited,
    LastfmRejected,
    LastfmUnavailable,
    lastfm_config,
)
from recommender.store.models import CatalogItem, LastfmTags, utcnow

SAD_TAGS = [("sad", 100), ("melancholy", 61), ("singer-songwriter", 40), ("tearjerker", 12),
            ("joy", 3)]


def song(db, title, artist):
    return db.scalars(select(CatalogItem).where(CatalogItem.title == title,
                                                CatalogItem.artist == artist)).one()


def test_config_is_optional():
    assert lastfm_config({}) is None
    config = lastfm_config({"GOODCRY_LASTFM_API_KEY": "k", "GOODCRY_LASTFM_API_URL": "http://x/"})
    assert config == LastfmConfig("k", "http://x/")
    assert "k" not in repr(config)


def test_track_and_artist_top_tags(lastfm_server):
    lastfm_server.add_track_tags("Johnny Cash", "Hurt", SAD_TAGS)
    lastfm_server.add_artist_tags("Isao Takahata", [("anime", 100), ("sad", 30)])
    with LastfmClient(lastfm_server.config()) as client:
        tags = client.track_top_tags("johnny cash", "HURT")
        assert [t.name for t in tags][:2] == ["sad", "melancholy"]
        assert client.artist_top_tags("Isao Takahata")[1].count == 30
        assert client.track_top_tags("Nobody", "Nothing") is None  # error 6
    sent = lastfm_server.calls("track.gettoptags")[0]
    assert sent["format"] == "json" and sent["api_key"] == lastfm_server.api_key
    assert sent["artist"] == "johnny cash" and sent["track"] == "HURT"


def test_errors_are_typed(lastfm_server):
    with LastfmClient(lastfm_server.config()) as client:
        lastfm_server.fail_next(error=29)
        with pytest.raises(LastfmRateLimited) as raised:
            client.track_top_tags("a", "b")
        assert raised.value.retry_after_s > 0
        lastfm_server.fail_next(error=None, status=503)
        with pytest.raises(LastfmUnavailable):
            client.track_top_tags("a", "b")
        lastfm_server.fail_next(error=11)
        with pytest.raises(LastfmUnavailable):
            client.track_top_tags("a", "b")
    with LastfmClient(LastfmConfig("wrong-key", lastfm_server.api_url)) as client:
        with pytest.raises(LastfmRejected, match="10") as raised:
            client.track_top_tags("a", "b")
        assert "wrong-key" not in str(raised.value)
    with (LastfmClient(LastfmConfig("k", "http://127.0.0.1:9/2.0/", timeout_s=1)) as client,
          pytest.raises(LastfmUnavailable, match="could not connect")):
        client.track_top_tags("a", "b")


def test_enrichment_maps_tags_through_the_vocabulary_and_caches(db, lastfm_server):
    lastfm_server.add_track_tags("Johnny Cash", "Hurt", SAD_TAGS)
    lastfm_server.add_artist_tags("Pete Docter", [("pixar", 100), ("bittersweet", 50)])
    hurt_before = list(song(db, "Hurt", "Johnny Cash").tag_list)
    with LastfmClient(lastfm_server.config()) as client:
        report = enrich_catalog(db, client)
    assert report.status == "done"
    total = db.scalar(select(func.count()).select_from(CatalogItem).where(
        (CatalogItem.artist.is_not(None)) | (CatalogItem.director.is_not(None))))
    assert report.items_seen == total
    # Films of one director share one request.
    assert report.asked == len(lastfm_server.requests) == total - report.from_cache
    hurt = song(db, "Hurt", "Johnny Cash")
    # sad -> grief (already there), melancholy -> nostalgia, tearjerker -> release; genre and
    # weak tags (joy at 3) are left out.
    assert set(hurt.tag_list) == set(hurt_before) | {"nostalgia", "release"}
    assert "joy" not in hurt.tag_list and "singer-songwriter" not in hurt.tag_list
    up = db.scalars(select(CatalogItem).where(CatalogItem.title == "Up")).one()
    assert "nostalgia" in up.tag_list
    assert report.enriched >= 2 and 0 < report.not_found < total - 1

    # A second run answers from the cache: no request reaches Last.fm, nothing changes.
    requests_before = len(lastfm_server.requests)
    with LastfmClient(lastfm_server.config()) as client:
        again = enrich_catalog(db, client)
    assert len(lastfm_server.requests) == requests_before
    assert (again.asked, again.enriched, again.from_cache) == (0, 0, total)


def test_rate_limit_pauses_keeps_what_was_fetched_and_resumes(db, lastfm_server):
    lastfm_server.add_track_tags("Johnny Cash", "Hurt", SAD_TAGS)
    with LastfmClient(lastfm_server.config()) as client:
        first = enrich_catalog(db, client, limit=30)
        assert first.status == "partial" and first.asked == 30
        lastfm_server.fail_next(error=29, times=1)
        now = utcnow()
        paused = enrich_catalog(db, client, limit=60, now=now)
        assert paused.status == "paused" and "rate limit" in paused.message
        assert paused.resume_at == now + timedelta(seconds=60)
        assert "Run again after" in paused.message
        kept = db.scalar(select(func.count()).select_from(LastfmTags))
        assert kept == 30  # nothing fetched so far was lost
        # Before the scheduled moment nothing is asked.
        requests_before = len(lastfm_server.requests)
        waiting = enrich_catalog(db, client, now=now + timedelta(seconds=10))
        assert waiting.status == "waiting" and len(lastfm_server.requests) == requests_before
        # Afterwards it resumes where it stopped, asking only what it has not asked yet.
        done = enrich_catalog(db, client, now=now + timedelta(seconds=61))
    assert done.status == "done" and done.from_cache >= 30
    asked = [(r["artist"], r.get("track")) for r in lastfm_server.calls()]
    assert len(asked) == len(set(asked)) + 1  # only the rate-limited request was repeated
    assert resume_at(db) is None


def test_outage_pauses_with_the_reason(db, lastfm_server):
    lastfm_server.fail_next(error=None, status=503, times=1)
    with LastfmClient(lastfm_server.config()) as client:
        report = enrich_catalog(db, client)
    assert report.status == "paused" and "unavailable" in report.message


def test_enrich_lastfm_cli(database_url, monkeypatch, lastfm_server):
    lastfm_server.add_track_tags("Johnny Cash", "Hurt", SAD_TAGS)
    monkeypatch.setenv("GOODCRY_DATABASE_URL", database_url)
    monkeypatch.delenv("GOODCRY_LASTFM_API_KEY", raising=False)
    runner = CliRunner()
    missing = runner.invoke(main, ["catalog", "enrich-lastfm"])
    assert missing.exit_code != 0 and "GOODCRY_LASTFM_API_KEY" in missing.output
    monkeypatch.setenv("GOODCRY_LASTFM_API_KEY", lastfm_server.api_key)
    monkeypatch.setenv("GOODCRY_LASTFM_API_URL", lastfm_server.api_url)
    result = runner.invoke(main, ["catalog", "enrich-lastfm", "--limit", "5"])
    assert result.exit_code == 0, result.output
    assert "partial: 5 items looked at" in result.output
    lastfm_server.fail_next(error=29)
    paused = runner.invoke(main, ["catalog", "enrich-lastfm"])
    assert paused.exit_code == 75 and "Run again after" in paused.output
