"""The Spotify export job at the recommender level: chunks, timeouts, crash windows, 429s
resumed by an injected clock, the CLI, and 50 exports in a row under injected faults."""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from recommender.cli import main as cli_main
from recommender.spotify_export import (
    ExportSettings,
    export_session,
    resume_due_exports,
)
from recommender.store.models import (
    CatalogItem,
    CrySession,
    Export,
    SessionItem,
    SpotifyConnection,
)
from recommender.token_vault import TokenVault
from tests.conftest import ApiUser
from tests.fakes.spotify_server import FakeSpotify
from tests.spotify_flow import (
    TEST_SECRET,
    connect,
    playlist_for,
    spotify_app,  # noqa: F401  (a fixture)
    stock,
)
from web.api.spotify import export_settings


@pytest.fixture
def spotify_server():
    """The fake without its seeded tracks: each test stocks exactly the songs it needs."""
    with FakeSpotify(seed_catalogue=False) as server:
        yield server


@dataclasses.dataclass
class World:
    app: object
    alice: ApiUser
    server: FakeSpotify
    settings: ExportSettings

    def db(self):
        return self.app.extensions["goodcry"].session_factory()

    def session(self, db, session_id: str) -> CrySession:
        return db.get(CrySession, session_id)


@pytest.fixture
def world(spotify_app, spotify_server):  # noqa: F811
    alice = ApiUser(spotify_app.test_client(), "alice")
    connect(alice)
    with spotify_app.app_context():
        settings = export_settings()
    return World(spotify_app, alice, spotify_server, settings)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Crash(BaseException):
    """The process dying at an awkward moment."""


class CrashAfter:
    """A clock that dies the first time it is read after Spotify received ``path``: that is
    the moment between Spotify doing the work and the job recording it."""

    def __init__(self, server: FakeSpotify, path: str):
        self.server, self.path, self.crashed = server, path, False

    def __call__(self) -> datetime:
        if not self.crashed and self.server.requests_to(self.path, "POST"):
            self.crashed = True
            raise Crash()
        return datetime.now(UTC)


def made_up_session(db, user_id: str, server: FakeSpotify, songs: int,
                    with_uris: bool) -> tuple[str, list[str]]:
    """A session longer than any real one, straight into the store; returns (id, URIs)."""
    session = CrySession(user_id=user_id, model_version="made-up", request={},
                         moods=["grief"], total_duration_s=songs * 200,
                         care={"crisis": False, "resources": [], "message": ""})
    uris = []
    for n in range(songs):
        track = server.add_track(f"Made Up Song {n}", f"Made Up Artist {n % 5}", 150 + n)
        uris.append(track.uri)
        item = CatalogItem(identity_key=f"song|made up song {n}|{user_id}", kind="song",
                           title=track.title, artist=track.artists[0], duration_s=150 + n,
                           duration_estimated=False,
                           spotify_uri=track.uri if with_uris else None)
        session.items.append(SessionItem(position=n, item=item, phase="release",
                                         technique="listen", prompt_text="", why=""))
    db.add(session)
    db.commit()
    return session.id, uris


def add_sizes(server: FakeSpotify) -> list[int]:
    bodies = [r.json for r in server.requests_to("/v1/playlists/", "POST") if r.fault is None]
    return [len(b["uris"] if isinstance(b, dict) else b) for b in bodies]


# -- chunks and limits ----------------------------------------------------------------------------


def test_a_long_session_is_added_in_chunks_of_at_most_100_in_order(world):
    with world.db() as db:
        session_id, uris = made_up_session(db, world.alice.user_id, world.server, 205, True)
        outcome = export_session(db, world.settings, world.alice.user_id,
                                 world.session(db, session_id))
    assert outcome.status == "done" and outcome.added == 205
    assert add_sizes(world.server) == [100, 100, 5]
    assert playlist_for(world.server, outcome.export_id).items == uris
    assert not world.server.requests_to("/v1/search")  # known URIs are not searched


def test_chunk_size_is_a_parameter_and_search_limit_stays_within_10(world):
    settings = dataclasses.replace(world.settings, chunk_size=3, search_limit=10)
    with world.db() as db:
        session_id, uris = made_up_session(db, world.alice.user_id, world.server, 8, False)
        outcome = export_session(db, settings, world.alice.user_id,
                                 world.session(db, session_id))
        cached = [i.item.spotify_uri for i in world.session(db, session_id).items]
    assert outcome.status == "done"
    assert add_sizes(world.server) == [3, 3, 2]
    assert playlist_for(world.server, outcome.export_id).items == uris == cached
    searches = world.server.requests_to("/v1/search")
    assert searches and all(int(r.query["limit"]) <= 10 for r in searches)
    with pytest.raises(ValueError):
        dataclasses.replace(world.settings, chunk_size=101)
    with pytest.raises(ValueError):
        dataclasses.replace(world.settings, search_limit=11)


# -- timeouts and crash windows -------------------------------------------------------------------


def _wait_for(predicate) -> None:
    """Wait (bounded) for a delayed request to finish being handled by the fake."""
    deadline = time.monotonic() + 5
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)


@pytest.mark.parametrize("path", ["/v1/me/playlists", "/v1/playlists/"])
def test_a_timed_out_write_is_checked_before_it_is_sent_again(world, path):
    settings = dataclasses.replace(
        world.settings, spotify=dataclasses.replace(world.settings.spotify, timeout_s=0.3))
    world.server.delay_next(path, seconds=0.6)  # Spotify does the work, but late
    with world.db() as db:
        session_id, uris = made_up_session(db, world.alice.user_id, world.server, 6, True)
        first = export_session(db, settings, world.alice.user_id, world.session(db, session_id))
        assert first.status == "partial"
        # the late request lands on Spotify meanwhile
        _wait_for(lambda: any(p.items for p in world.server.playlists.values())
                  if path == "/v1/playlists/" else world.server.playlists)
        second = export_session(db, settings, world.alice.user_id,
                                world.session(db, session_id))
    assert second.status == "done" and second.export_id == first.export_id
    assert len(world.server.playlists) == 1
    assert playlist_for(world.server, second.export_id).items == uris


@pytest.mark.parametrize("path", ["/v1/me/playlists", "/v1/playlists/"])
def test_a_crash_between_spotify_acting_and_the_job_recording_it(world, path):
    crashing = dataclasses.replace(world.settings, clock=CrashAfter(world.server, path))
    with world.db() as db:
        session_id, uris = made_up_session(db, world.alice.user_id, world.server, 6, True)
        with pytest.raises(Crash):
            export_session(db, crashing, world.alice.user_id, world.session(db, session_id))
    with world.db() as db:  # a new process picks it up
        job = db.scalar(select(Export))
        assert job.status == "partial" and job.progress["intent"]
        outcome = export_session(db, world.settings, world.alice.user_id,
                                 world.session(db, session_id))
    assert outcome.status == "done" and outcome.added == 6
    assert len(world.server.playlists) == 1
    assert playlist_for(world.server, outcome.export_id).items == uris


# -- 429s: pending, then resumed when due ---------------------------------------------------------


def test_a_429_is_resumed_by_resume_due_exports_once_due(world):
    clock = Clock()
    settings = dataclasses.replace(world.settings, clock=clock)
    with world.db() as db:
        session_id, uris = made_up_session(db, world.alice.user_id, world.server, 6, True)
        world.server.fail_next("/v1/playlists/", status=429, retry_after=86400)
        first = export_session(db, settings, world.alice.user_id, world.session(db, session_id))
        assert first.status == "pending" and first.retry_after_s == 86400
        assert first.playlist_url and first.added == 0
        clock.advance(3600)
        assert resume_due_exports(db, settings) == []  # not due: Spotify is left alone
        clock.advance(86400)
        resumed = resume_due_exports(db, settings)
    assert [(job.id, outcome.status) for job, outcome in resumed] == [(first.export_id, "done")]
    assert playlist_for(world.server, first.export_id).items == uris


def test_goodcry_exports_resume_command(world, database_url, monkeypatch):
    with world.db() as db:
        session_id, uris = made_up_session(db, world.alice.user_id, world.server, 4, True)
        world.server.fail_next("/v1/playlists/", status=429, retry_after=0)
        first = export_session(db, world.settings, world.alice.user_id,
                               world.session(db, session_id))
    assert first.status == "pending"
    for name, value in {
        "GOODCRY_DATABASE_URL": database_url, "GOODCRY_SECRET_KEY": TEST_SECRET,
        "GOODCRY_SPOTIFY_CLIENT_ID": world.server.client_id,
        "GOODCRY_SPOTIFY_API_URL": world.server.api_url,
        "GOODCRY_SPOTIFY_ACCOUNTS_URL": world.server.accounts_url,
        "GOODCRY_RATE_LIMITS": "off",
    }.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(cli_main, ["exports", "resume"])
    assert result.exit_code == 0, result.output
    assert f"{first.export_id}: done, 4 added" in result.output
    assert playlist_for(world.server, first.export_id).items == uris
    again = CliRunner().invoke(cli_main, ["exports", "resume"])
    assert "resumed 0 export(s)" in again.output


def test_resume_skips_a_dropped_connection_and_loses_nothing(world):
    with world.db() as db:
        session_id, _ = made_up_session(db, world.alice.user_id, world.server, 4, True)
        world.server.fail_next("/v1/playlists/", status=429, retry_after=0)
        export_session(db, world.settings, world.alice.user_id, world.session(db, session_id))
        db.query(SpotifyConnection).update({"expires_at": 0.0})
        db.commit()
        world.server.refuse_refresh = True
        [(job, why)] = resume_due_exports(db, world.settings)
        assert "invalid_grant" in why
        assert db.get(SpotifyConnection, world.alice.user_id) is None
        assert db.get(Export, job.id).playlist_id  # the job and its playlist are kept


# -- the done-when: 50 exports under fault injection ----------------------------------------------


@pytest.mark.slow
def test_fifty_exports_under_injected_faults_each_end_with_one_complete_playlist(world):
    """Every Spotify call (token refreshes included) may answer 429 or 503. Each export is
    driven to the end through the API and the resume function (with a clock moved past each
    Retry-After, never slept), and then holds every matched song once, in session order."""
    alice, server = world.alice, world.server
    memory = "velvetquarry: the hospital corridor in March"
    assert alice.post("/api/v1/memories", json={"title": "Corridor",
                                                "text": memory}).status_code == 201
    vault = TokenVault(TEST_SECRET)
    moods = ["grief", "longing", "loneliness", "regret", "heartbreak", "nostalgia"]
    chooser = random.Random(7)
    held_back = lambda item: int(item["item_id"], 16) % 5 == 0  # noqa: E731  never on Spotify
    clock = Clock()
    settings = dataclasses.replace(world.settings, clock=clock)
    calls = resumes = 0
    for n in range(50):
        session = alice.new_session(moods=[chooser.choice(moods)],
                                    minutes=chooser.randint(10, 25), include_films=False)
        songs = [i for i in session["items"] if i["kind"] == "song"]
        expected = stock(server, session, hold_back=held_back)
        note = f"velvetquarry note {n}"
        alice.post(f"/api/v1/sessions/{session['id']}/feedback", json={
            "reactions": [{"item_id": songs[0]["item_id"], "reaction": "moved"}],
            "catharsis": 3, "mood_before": 4, "mood_after": 5, "note": note})
        if n % 10 == 9:  # now and then the access token has expired: a 401, then a refresh
            with world.db() as db:
                row = db.get(SpotifyConnection, alice.user_id)
                server.expire_access_token(vault.unseal(row.access_token_enc))
        server.set_fault_rates(rate_limited=0.15, unavailable=0.15, seed=n,
                               retry_after=chooser.choice([1, 30, 3600]))
        body = None
        for _attempt in range(60):
            if body is None or body["status"] == "partial":
                calls += 1
                answer = alice.post(f"/api/v1/sessions/{session['id']}/export",
                                    json={"target": "spotify"})
                assert answer.status_code == 200, answer.get_json()
                body = answer.get_json()
            elif body["status"] == "pending":
                clock.now = max(clock.now, datetime.now(UTC)) + timedelta(
                    seconds=body["retry_after_s"] + 1)
                resumes += 1
                with world.db() as db:
                    mine = [o for job, o in resume_due_exports(db, settings)
                            if job.id == body["export_id"]]
                body = mine[0].document() if mine else body
            if body["status"] == "done":
                break
        server.clear_faults()
        assert body["status"] == "done", (n, body)
        playlist = playlist_for(server, body["export_id"])
        assert playlist.items == expected, n
        assert len(set(playlist.items)) == len(playlist.items)
        assert body["added"] == len(expected)
        assert sorted(body["unmatched"]) == sorted(i["item_id"] for i in songs if held_back(i))
        assert note not in server.all_sent_text()
    owned = [p for p in server.playlists.values()]
    assert len(owned) == 50
    sent = server.all_sent_text()
    assert "velvetquarry" not in sent and memory not in sent
    faults = [r for r in server.requests if r.fault]
    print(f"\n50 exports: {len(server.requests)} Spotify requests, {len(faults)} faults "
          f"injected, {calls} export calls, {resumes} resumes")
    assert faults  # the faults really happened


def test_two_exports_at_once_make_one_playlist(world):
    with world.db() as db:
        session_id, uris = made_up_session(db, world.alice.user_id, world.server, 30, False)
    # The first export's first search is held in flight until the second call has answered:
    # the second call meets a running export, whatever the machine's load.
    in_flight = threading.Event()
    world.server.hold_next("/v1/search", until=in_flight)
    outcomes = []

    def run() -> None:
        with world.db() as db:
            outcomes.append(export_session(db, world.settings, world.alice.user_id,
                                           world.session(db, session_id)))

    first = threading.Thread(target=run)
    first.start()
    deadline = time.monotonic() + 10
    while not world.server.requests_to("/v1/search") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert world.server.requests_to("/v1/search"), "the first export never searched"
    run()   # the second call, while the first is running
    assert [o.status for o in outcomes] == ["pending"]
    in_flight.set()
    first.join(timeout=30)
    assert sorted(o.status for o in outcomes) == ["done", "pending"]
    assert len({o.export_id for o in outcomes}) == 1
    assert len(world.server.playlists) == 1
    assert playlist_for(world.server, outcomes[0].export_id).items == uris
