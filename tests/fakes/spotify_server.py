"""A fake Spotify (accounts + Web API) that behaves as a Development Mode app meets it in 2026.

It is a real HTTP server on 127.0.0.1 (a free port), served from a background thread, so the
production client talks to it through spotipy and requests exactly as it would to Spotify.

Use the ``spotify_server`` fixture (register it in ``tests/conftest.py`` with
``from tests.fakes.spotify_server import spotify_server  # noqa: F401``) or the context manager
``with FakeSpotify() as server: ...``. ``server.config()`` builds a ``SpotifyConfig`` aimed at
it; ``server.issue_token()`` skips the login dance when a test just needs a valid token.

What it checks, as Spotify does: PKCE (S256) at the token endpoint, single-use codes, rotating
refresh tokens, bearer tokens and scopes, search ``limit`` <= 10, playlist adds <= 100, page
limits <= 50, the batch ``/tracks?ids=`` form (403) and other endpoints gone for new apps.

Faults are programmed from the test (``fail_next``, ``delay_next``, ``set_fault_rates``) and
every request received is recorded in ``server.requests``.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import random
import re
import secrets
import threading
import time
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import pytest
from flask import Flask, Response, jsonify, redirect, request
from werkzeug.serving import WSGIRequestHandler, make_server

from recommender.services.spotify import SCOPES, SpotifyConfig, TokenSet

DEFAULT_USER = "goodcry-tester"
DEFAULT_CLIENT_ID = "goodcry-test-client"
DEFAULT_CLIENT_SECRET = "goodcry-test-secret"
DEFAULT_REDIRECT_URI = "http://127.0.0.1:8000/spotify/callback"
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_TRACK_URI = re.compile(r"^spotify:(track|episode):([0-9A-Za-z]+)$")
_FIELD = re.compile(r'\b(track|artist|album|year|isrc):(?:"([^"]*)"|(\S+))', re.IGNORECASE)


def base62_id(seed: str) -> str:
    """A stable 22-character base-62 id, shaped like Spotify's."""
    number = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:17], "big")
    chars = []
    for _ in range(22):
        number, rest = divmod(number, 62)
        chars.append(_BASE62[rest])
    return "".join(chars)


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _words(text: str) -> list[str]:
    """Search words, folded as Spotify's search folds them (case, accents, ' and .)."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).casefold()
    return re.findall(r"\w+", re.sub(r"['\u2019.]", "", text))


# -- state ----------------------------------------------------------------------------------------


@dataclass
class FakeTrack:
    id: str
    title: str
    artists: list[str]
    duration_s: int
    year: int | None = None
    isrc: str | None = None
    album: str = ""

    @property
    def uri(self) -> str:
        return f"spotify:track:{self.id}"

    def as_json(self) -> dict[str, Any]:
        """A 2026 track object: no popularity, available_markets or preview_url."""
        album_id = base62_id("album:" + (self.album or self.title))
        return {
            "type": "track",
            "id": self.id,
            "uri": self.uri,
            "name": self.title,
            "duration_ms": self.duration_s * 1000,
            "explicit": False,
            "is_local": False,
            "track_number": 1,
            "disc_number": 1,
            "external_ids": {"isrc": self.isrc} if self.isrc else {},
            "external_urls": {"spotify": f"https://open.spotify.com/track/{self.id}"},
            "href": f"https://api.spotify.com/v1/tracks/{self.id}",
            "artists": [
                {
                    "type": "artist",
                    "id": base62_id("artist:" + name),
                    "uri": f"spotify:artist:{base62_id('artist:' + name)}",
                    "name": name,
                }
                for name in self.artists
            ],
            "album": {
                "type": "album",
                "id": album_id,
                "uri": f"spotify:album:{album_id}",
                "name": self.album or self.title,
                "release_date": f"{self.year}-01-01" if self.year else "",
                "release_date_precision": "day" if self.year else "year",
                "images": [],
            },
        }


@dataclass
class FakePlaylist:
    id: str
    owner: str
    name: str
    description: str
    public: bool
    collaborative: bool = False
    items: list[str] = field(default_factory=list)
    snapshot_id: str = ""
    add_requests: int = 0


@dataclass
class AccessGrant:
    user_id: str
    scope: str
    expires_at: float

    def allows(self, scope: str) -> bool:
        return scope in self.scope.split()


@dataclass
class PendingCode:
    challenge: str
    scope: str
    user_id: str
    redirect_uri: str | None
    client_id: str


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    json: Any
    form: dict[str, str]
    body: str
    authorization: str | None
    fault: str | None = None


@dataclass
class Fault:
    kind: str  # "status", "delay" or "hold"
    path: str | None  # a path prefix, or None for every path
    status: int = 0
    retry_after: int | None = None
    reason: str | None = None
    seconds: float = 0.0
    times: int = 1
    until: threading.Event | None = None  # "hold": answer once this is set

    def applies_to(self, path: str) -> bool:
        return self.path is None or path.startswith(self.path)


# Fake catalogue (made-up ids and ISRCs), with several versions of some songs so that matching
# has to choose by artist and duration.
SEED_TRACKS: list[tuple[str, list[str], int, int, str]] = [
    ("Hurt", ["Johnny Cash"], 218, 2002, "American IV"),
    ("Hurt - Live", ["Johnny Cash"], 245, 2003, "Live Sessions"),
    ("Hurt (Karaoke Version)", ["Karaoke Hits Band"], 218, 2012, "Karaoke Hits"),
    ("Hurt", ["Nine Inch Nails"], 373, 1994, "The Downward Spiral"),
    ("Everybody Hurts", ["R.E.M."], 320, 1992, "Automatic for the People"),
    ("Nothing Compares 2 U", ["Sinéad O'Connor"], 280, 1990, "I Do Not Want"),
    ("Tears in Heaven", ["Eric Clapton"], 272, 1992, "Rush"),
    ("Tears in Heaven - Acoustic; Live", ["Eric Clapton"], 279, 1992, "Unplugged"),
    ("Someone Like You", ["Adele"], 285, 2011, "21"),
    ("Someone Like You - Live at the Royal Albert Hall", ["Adele"], 300, 2011, "Live"),
    ("Fix You", ["Coldplay"], 295, 2005, "X&Y"),
    ("The Night We Met", ["Lord Huron"], 208, 2015, "Strange Trails"),
    ("Skinny Love", ["Bon Iver"], 238, 2008, "For Emma, Forever Ago"),
    ("Skinny Love", ["Birdy"], 201, 2011, "Birdy"),
    ("Mad World", ["Gary Jules", "Michael Andrews"], 189, 2001, "Donnie Darko"),
    ("Mad World", ["Tears For Fears"], 215, 1983, "The Hurting"),
]


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class FakeSpotify:
    """The fake's state, its Flask app and the thread serving it."""

    def __init__(self, client_id: str = DEFAULT_CLIENT_ID, seed_catalogue: bool = True):
        self.client_id = client_id
        self.client_secret = DEFAULT_CLIENT_SECRET
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._counter = itertools.count(1)
        self.tracks: dict[str, FakeTrack] = {}
        self.users: dict[str, str] = {}  # id -> display name
        self.playlists: dict[str, FakePlaylist] = {}
        self.access_tokens: dict[str, AccessGrant] = {}
        self.refresh_tokens: dict[str, tuple[str, str]] = {}  # token -> (user_id, scope)
        self.codes: dict[str, PendingCode] = {}
        self.top: dict[str, list[str]] = {}
        self.saved: dict[str, list[str]] = {}
        self.recent: dict[str, list[str]] = {}
        self.requests: list[RecordedRequest] = []
        self.refuse_refresh = False
        self._faults: list[Fault] = []
        self._rates: dict[str, Any] | None = None
        self._random = random.Random(0)
        self.add_user(DEFAULT_USER, "Test Listener")
        if seed_catalogue:
            for title, artists, duration, year, album in SEED_TRACKS:
                self.add_track(title, artists, duration, year=year, album=album)
        self.app = self._build_app()
        self._server = make_server(
            "127.0.0.1", 0, self.app, threaded=True, request_handler=_QuietHandler
        )
        self.port = self._server.server_port
        self.base_url = f"http://127.0.0.1:{self.port}/"
        self.api_url = self.base_url + "v1/"
        self.accounts_url = self.base_url
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> FakeSpotify:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-spotify",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeSpotify:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def config(
        self, timeout_s: float = 5.0, redirect_uri: str = DEFAULT_REDIRECT_URI
    ) -> SpotifyConfig:
        return SpotifyConfig(
            client_id=self.client_id,
            redirect_uri=redirect_uri,
            api_url=self.api_url,
            accounts_url=self.accounts_url,
            timeout_s=timeout_s,
        )

    # -- seeding --------------------------------------------------------------------------------

    def add_user(self, user_id: str, display_name: str = "") -> str:
        with self._lock:
            self.users[user_id] = display_name or user_id
        return user_id

    def add_track(
        self,
        title: str,
        artists: list[str] | str,
        duration_s: int,
        year: int | None = None,
        album: str = "",
        isrc: str | None = None,
    ) -> FakeTrack:
        names = [artists] if isinstance(artists, str) else list(artists)
        track_id = base62_id(f"track:{title}:{'/'.join(names)}:{duration_s}:{album}")
        track = FakeTrack(
            id=track_id,
            title=title,
            artists=names,
            duration_s=duration_s,
            year=year,
            album=album,
            isrc=isrc or "QZ" + base62_id("isrc:" + track_id)[:10].upper(),
        )
        with self._lock:
            self.tracks[track_id] = track
        return track

    def make_tracks(self, count: int, prefix: str = "Filler Song") -> list[FakeTrack]:
        return [
            self.add_track(f"{prefix} {n}", f"Filler Artist {n % 7}", 180 + n % 120, year=2000)
            for n in range(count)
        ]

    def find_track(self, title: str, artist: str) -> FakeTrack:
        for track in self.tracks.values():
            if track.title == title and artist in track.artists:
                return track
        raise KeyError((title, artist))

    def set_saved_tracks(self, track_ids: list[str], user_id: str = DEFAULT_USER) -> None:
        with self._lock:
            self.saved[user_id] = list(track_ids)

    def set_top_tracks(self, track_ids: list[str], user_id: str = DEFAULT_USER) -> None:
        with self._lock:
            self.top[user_id] = list(track_ids)

    def set_recently_played(self, track_ids: list[str], user_id: str = DEFAULT_USER) -> None:
        """Newest first."""
        with self._lock:
            self.recent[user_id] = list(track_ids)

    # -- tokens ---------------------------------------------------------------------------------

    def issue_code(
        self,
        challenge: str,
        scope: str = SCOPES,
        user_id: str = DEFAULT_USER,
        redirect_uri: str | None = None,
    ) -> str:
        """An authorization code as /authorize would give after the user said yes."""
        code = "code-" + secrets.token_urlsafe(16)
        with self._lock:
            self.codes[code] = PendingCode(challenge, scope, user_id, redirect_uri, self.client_id)
        return code

    def issue_token(
        self, scope: str = SCOPES, user_id: str = DEFAULT_USER, expires_in: int = 3600
    ) -> TokenSet:
        """A valid access/refresh pair without the login dance."""
        access, refresh_token = self._mint_tokens(user_id, scope, expires_in)
        return TokenSet(access, refresh_token, time.time() + expires_in, scope)

    def expire_access_token(self, access_token: str) -> None:
        with self._lock:
            self.access_tokens[access_token].expires_at = 0.0

    def revoke_refresh_token(self, refresh_token: str) -> None:
        with self._lock:
            self.refresh_tokens.pop(refresh_token, None)

    def _mint_tokens(self, user_id: str, scope: str, expires_in: int = 3600) -> tuple[str, str]:
        access = "at-" + secrets.token_urlsafe(24)
        refresh_token = "rt-" + secrets.token_urlsafe(24)
        with self._lock:
            self.access_tokens[access] = AccessGrant(user_id, scope, time.time() + expires_in)
            self.refresh_tokens[refresh_token] = (user_id, scope)
        return access, refresh_token

    # -- faults ---------------------------------------------------------------------------------

    def fail_next(
        self,
        path: str | None = None,
        status: int = 503,
        retry_after: int | None = None,
        reason: str | None = None,
        times: int = 1,
    ) -> None:
        """The next ``times`` requests under ``path`` (a prefix; None: any) answer ``status``.

        For 429 give ``retry_after`` (seconds; None sends no header) and optionally
        ``reason="QUOTA_EXCEEDED"``.
        """
        with self._lock:
            self._faults.append(
                Fault("status", path, status=status, retry_after=retry_after, reason=reason,
                      times=times)
            )

    def delay_next(self, path: str | None = None, seconds: float = 5.0, times: int = 1) -> None:
        """The next ``times`` requests under ``path`` wait ``seconds`` before answering."""
        with self._lock:
            self._faults.append(Fault("delay", path, seconds=seconds, times=times))

    def hold_next(self, path: str | None, until: threading.Event, times: int = 1,
                  longest_s: float = 8.0) -> None:
        """The next ``times`` requests under ``path`` wait until ``until`` is set (at most
        ``longest_s``) before answering: the test decides when a call in flight lands."""
        with self._lock:
            self._faults.append(Fault("hold", path, seconds=longest_s, times=times,
                                      until=until))

    def set_fault_rates(
        self,
        rate_limited: float = 0.0,
        unavailable: float = 0.0,
        seed: int = 0,
        path: str | None = None,
        retry_after: int = 5,
        reason: str | None = None,
    ) -> None:
        """Answer a seeded random share of requests with 429 or 503 (after queued faults)."""
        with self._lock:
            self._random = random.Random(seed)
            self._rates = {
                "rate_limited": rate_limited,
                "unavailable": unavailable,
                "path": path,
                "retry_after": retry_after,
                "reason": reason,
            }

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._rates = None

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.applies_to(path):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
            rates = self._rates
            if rates and (rates["path"] is None or path.startswith(rates["path"])):
                roll = self._random.random()
                if roll < rates["rate_limited"]:
                    return Fault("status", None, status=429, retry_after=rates["retry_after"],
                                 reason=rates["reason"])
                if roll < rates["rate_limited"] + rates["unavailable"]:
                    return Fault("status", None, status=503)
        return None

    # -- inspection -----------------------------------------------------------------------------

    def requests_to(self, path: str, method: str | None = None) -> list[RecordedRequest]:
        """Recorded requests whose path starts with ``path``."""
        with self._lock:
            return [
                r for r in self.requests
                if r.path.startswith(path) and (method is None or r.method == method)
            ]

    def all_sent_text(self) -> str:
        """Everything the client sent (paths, queries, bodies), for 'never sent' assertions."""
        with self._lock:
            return "\n".join(
                f"{r.method} {r.path} {json.dumps(r.query)} {r.body}" for r in self.requests
            )

    def playlist_named(self, name: str) -> FakePlaylist:
        matches = [p for p in self.playlists.values() if p.name == name]
        if len(matches) != 1:
            raise LookupError(f"{len(matches)} playlists named {name!r}")
        return matches[0]

    # -- the app --------------------------------------------------------------------------------

    def _build_app(self) -> Flask:
        app = Flask("fake_spotify")
        fake = self

        def api_error(status: int, message: str, **extra: Any) -> Response:
            response = jsonify({"error": {"status": status, "message": message, **extra}})
            response.status_code = status
            return response

        def oauth_error(status: int, error: str, description: str) -> Response:
            response = jsonify({"error": error, "error_description": description})
            response.status_code = status
            return response

        @app.before_request
        def record_and_inject() -> Response | None:
            body = request.get_data(cache=True, as_text=True)
            parsed_json = None
            if request.is_json and body:
                try:
                    parsed_json = json.loads(body)
                except ValueError:
                    parsed_json = None
            recorded = RecordedRequest(
                method=request.method,
                path=request.path,
                query=request.args.to_dict(),
                json=parsed_json,
                form=request.form.to_dict() if request.mimetype.endswith("urlencoded") else {},
                body=body,
                authorization=request.headers.get("Authorization"),
            )
            with fake._lock:
                fake.requests.append(recorded)
            fault = fake._take_fault(request.path)
            if fault is None:
                return None
            if fault.kind == "delay":
                recorded.fault = f"delay {fault.seconds}"
                fake._stopping.wait(fault.seconds)
                return None
            if fault.kind == "hold":
                recorded.fault = "hold"
                fault.until.wait(fault.seconds)
                return None
            recorded.fault = str(fault.status)
            if fault.status == 429:
                extra = {"reason": fault.reason} if fault.reason else {}
                response = api_error(429, "API rate limit exceeded", **extra)
                if fault.retry_after is not None:
                    response.headers["Retry-After"] = str(fault.retry_after)
                return response
            return api_error(fault.status, "Service unavailable")

        def grant() -> AccessGrant | Response:
            header = request.headers.get("Authorization", "")
            if not header.startswith("Bearer "):
                return api_error(401, "No token provided")
            with fake._lock:
                found = fake.access_tokens.get(header[len("Bearer "):])
            if found is None:
                return api_error(401, "Invalid access token")
            if found.expires_at <= time.time():
                return api_error(401, "The access token expired")
            return found

        def page_args(default: int, maximum: int) -> tuple[int, int] | Response:
            try:
                limit = int(request.args.get("limit", default))
                offset = int(request.args.get("offset", 0))
            except ValueError:
                return api_error(400, "Invalid limit")
            if limit < 1 or limit > maximum:
                return api_error(400, "Invalid limit")
            if offset < 0:
                return api_error(400, "Invalid offset")
            return limit, offset

        def paged(items: list[Any], limit: int, offset: int) -> dict[str, Any]:
            def link(at: int) -> str:
                args = request.args.to_dict()
                args.update(limit=str(limit), offset=str(at))
                return f"{request.base_url}?{urlencode(args)}"

            total = len(items)
            return {
                "href": link(offset),
                "items": items[offset: offset + limit],
                "limit": limit,
                "offset": offset,
                "total": total,
                "next": link(offset + limit) if offset + limit < total else None,
                "previous": link(max(0, offset - limit)) if offset > 0 else None,
            }

        # -- accounts ---------------------------------------------------------------------------

        @app.get("/authorize")
        def authorize() -> Response:
            args = request.args
            if args.get("client_id") != fake.client_id:
                return Response("INVALID_CLIENT: Invalid client", status=400)
            redirect_uri = args.get("redirect_uri", "")
            if not re.match(r"^(https://|http://127\.0\.0\.1[:/])", redirect_uri):
                return Response("INVALID_CLIENT: Insecure redirect URI", status=400)
            if args.get("response_type") != "code":
                return Response("unsupported_response_type", status=400)
            if args.get("code_challenge_method") != "S256" or not args.get("code_challenge"):
                return Response("invalid_request: code_challenge with S256 required", status=400)
            if not args.get("state"):
                return Response("invalid_request: state required", status=400)
            code = fake.issue_code(
                args["code_challenge"], args.get("scope", ""), redirect_uri=redirect_uri
            )
            separator = "&" if "?" in redirect_uri else "?"
            target = redirect_uri + separator + urlencode({"code": code, "state": args["state"]})
            return redirect(target, code=303)

        @app.post("/api/token")
        def token() -> Response:
            form = request.form
            grant_type = form.get("grant_type")
            if grant_type == "client_credentials":  # the app itself: Basic client_id:secret
                auth = request.authorization
                if (auth is None or auth.username != fake.client_id
                        or auth.password != fake.client_secret):
                    return oauth_error(400, "invalid_client", "Invalid client secret")
                access, _ = fake._mint_tokens("", "")
                return jsonify(access_token=access, token_type="Bearer", expires_in=3600)
            if form.get("client_id") != fake.client_id:
                return oauth_error(400, "invalid_client", "Invalid client")
            if grant_type == "authorization_code":
                with fake._lock:
                    pending = fake.codes.pop(form.get("code", ""), None)  # single use
                if pending is None:
                    return oauth_error(400, "invalid_grant", "Invalid authorization code")
                if pending.redirect_uri is not None and (
                    form.get("redirect_uri") != pending.redirect_uri
                ):
                    return oauth_error(400, "invalid_grant", "Invalid redirect URI")
                verifier = form.get("code_verifier", "")
                if not verifier or s256(verifier) != pending.challenge:
                    return oauth_error(400, "invalid_grant", "code_verifier was incorrect")
                access, refresh_token = fake._mint_tokens(pending.user_id, pending.scope)
                return jsonify(
                    access_token=access, token_type="Bearer", scope=pending.scope,
                    expires_in=3600, refresh_token=refresh_token,
                )
            if grant_type == "refresh_token":
                with fake._lock:
                    if fake.refuse_refresh:
                        known = None
                    else:  # refresh tokens rotate: the one spent here is dead afterwards
                        known = fake.refresh_tokens.pop(form.get("refresh_token", ""), None)
                if known is None:
                    return oauth_error(400, "invalid_grant", "Refresh token revoked")
                user_id, scope = known
                access, refresh_token = fake._mint_tokens(user_id, scope)
                return jsonify(
                    access_token=access, token_type="Bearer", scope=scope,
                    expires_in=3600, refresh_token=refresh_token,
                )
            return oauth_error(400, "unsupported_grant_type", f"grant_type {grant_type!r}")

        # -- the Web API ------------------------------------------------------------------------

        @app.get("/v1/me")
        @app.get("/v1/me/")
        def me() -> Response:
            found = grant()
            if isinstance(found, Response):
                return found
            user = found.user_id
            return jsonify(
                id=user, type="user", uri=f"spotify:user:{user}",
                display_name=fake.users.get(user, user), images=[],
                external_urls={"spotify": f"https://open.spotify.com/user/{user}"},
            )

        @app.get("/v1/search")
        def search() -> Response:
            found = grant()
            if isinstance(found, Response):
                return found
            q = request.args.get("q", "")
            if not q.strip():
                return api_error(400, "No search query")
            if "track" not in request.args.get("type", "").split(","):
                return api_error(400, "Unsupported type in this fake")
            limits = page_args(default=5, maximum=10)
            if isinstance(limits, Response):
                return limits
            limit, offset = limits
            hits = [t.as_json() for t in fake._search(q)]
            return jsonify(tracks=paged(hits, limit, offset))

        @app.get("/v1/tracks")
        def tracks_batch() -> Response:
            found = grant()
            if isinstance(found, Response):
                return found
            return api_error(403, "Batch track reads are not available to this app")

        @app.get("/v1/tracks/<track_id>")
        def track(track_id: str) -> Response:
            found = grant()
            if isinstance(found, Response):
                return found
            if not re.fullmatch(r"[0-9A-Za-z]+", track_id):
                return api_error(400, "Invalid base62 id")
            known = fake.tracks.get(track_id)
            if known is None:
                return api_error(404, "Resource not found")
            return jsonify(known.as_json())

        @app.post("/v1/me/playlists")
        def create_playlist() -> Response:
            found = grant()
            if isinstance(found, Response):
                return found
            if not found.allows("playlist-modify-private"):
                return api_error(403, "Insufficient client scope")
            body = request.get_json(silent=True)
            if not isinstance(body, dict) or not body.get("name"):
                return api_error(400, "Missing required field: name")
            playlist_id = base62_id(f"playlist:{next(fake._counter)}:{body['name']}")
            playlist = FakePlaylist(
                id=playlist_id,
                owner=found.user_id,
                name=str(body["name"]),
                description=str(body.get("description") or ""),
                public=bool(body.get("public", True)),
                collaborative=bool(body.get("collaborative", False)),
                snapshot_id=base62_id(f"snapshot:{playlist_id}:0"),
            )
            with fake._lock:
                fake.playlists[playlist_id] = playlist
            response = jsonify(fake._playlist_json(playlist))
            response.status_code = 201
            return response

        @app.get("/v1/me/playlists")
        def my_playlists() -> Response:
            found = grant()
            if isinstance(found, Response):
                return found
            limits = page_args(default=20, maximum=50)
            if isinstance(limits, Response):
                return limits
            limit, offset = limits
            with fake._lock:
                owned = [fake._playlist_json(p) for p in reversed(fake.playlists.values())
                         if p.owner == found.user_id]
            return jsonify(paged(owned, limit, offset))

        @app.get("/v1/playlists/<playlist_id>")
        def get_playlist(playlist_id: str) -> Response:
            found = grant()
            if isinstance(found, Response):
                return found
            playlist = fake.playlists.get(playlist_id)
            if playlist is None:
                return api_error(404, "Resource not found")
            return jsonify(fake._playlist_json(playlist))

        @app.post("/v1/playlists/<playlist_id>/items")
        def add_items(playlist_id: str) -> Response:
            found = grant()
            if isinstance(found, Response):
                return found
            playlist = fake.playlists.get(playlist_id)
            if playlist is None:
                return api_error(404, "Resource not found")
            if playlist.owner != found.user_id:
                return api_error(403, "You cannot add items to a playlist you do not own")
            scope = "playlist-modify-public" if playlist.public else "playlist-modify-private"
            if not found.allows(scope):
                return api_error(403, "Insufficient client scope")
            body = request.get_json(silent=True)
            position = request.args.get("position")
            if isinstance(body, dict):
                uris = body.get("uris")
                position = body.get("position", position)
            else:
                uris = body
            if uris is None and request.args.get("uris"):
                uris = request.args["uris"].split(",")
            if not isinstance(uris, list) or not uris:
                return api_error(400, "No uris provided")
            if len(uris) > 100:
                return api_error(400, "Too many ids requested")
            if not all(isinstance(u, str) and _TRACK_URI.match(u) for u in uris):
                return api_error(400, "Invalid track uri")
            with fake._lock:
                at = len(playlist.items) if position is None else int(position)
                playlist.items[at:at] = uris
                playlist.add_requests += 1
                playlist.snapshot_id = base62_id(
                    f"snapshot:{playlist_id}:{playlist.add_requests}"
                )
                snapshot = playlist.snapshot_id
            response = jsonify(snapshot_id=snapshot)
            response.status_code = 201
            return response

        @app.get("/v1/playlists/<playlist_id>/items")
        def playlist_items(playlist_id: str) -> Response:
            found = grant()
            if isinstance(found, Response):
                return found
            playlist = fake.playlists.get(playlist_id)
            if playlist is None:
                return api_error(404, "Resource not found")
            limits = page_args(default=20, maximum=50)
            if isinstance(limits, Response):
                return limits
            limit, offset = limits
            with fake._lock:
                entries = [fake._playlist_entry(uri, playlist.owner) for uri in playlist.items]
            return jsonify(paged(entries, limit, offset))

        @app.get("/v1/me/top/tracks")
        def top_tracks() -> Response:
            found = grant()
            if isinstance(found, Response):
                return found
            if not found.allows("user-top-read"):
                return api_error(403, "Insufficient client scope")
            limits = page_args(default=20, maximum=50)
            if isinstance(limits, Response):
                return limits
            limit, offset = limits
            ids = fake.top.get(found.user_id, [])
            return jsonify(paged([fake.tracks[i].as_json() for i in ids], limit, offset))

        @app.get("/v1/me/tracks")
        def saved_tracks() -> Response:
            found = grant()
            if isinstance(found, Response):
                return found
            if not found.allows("user-library-read"):
                return api_error(403, "Insufficient client scope")
            limits = page_args(default=20, maximum=50)
            if isinstance(limits, Response):
                return limits
            limit, offset = limits
            ids = fake.saved.get(found.user_id, [])
            entries = [
                {"added_at": f"2026-01-{1 + n % 28:02d}T12:00:00Z",
                 "track": fake.tracks[i].as_json()}
                for n, i in enumerate(ids)
            ]
            return jsonify(paged(entries, limit, offset))

        @app.get("/v1/me/player/recently-played")
        def recently_played() -> Response:
            found = grant()
            if isinstance(found, Response):
                return found
            if not found.allows("user-read-recently-played"):
                return api_error(403, "Insufficient client scope")
            limits = page_args(default=20, maximum=50)
            if isinstance(limits, Response):
                return limits
            limit, _ = limits
            ids = fake.recent.get(found.user_id, [])[:50][:limit]
            items = [
                {"played_at": f"2026-02-01T{23 - n % 24:02d}:00:00Z",
                 "track": fake.tracks[i].as_json(), "context": None}
                for n, i in enumerate(ids)
            ]
            return jsonify(
                href=request.url, items=items, limit=limit, next=None,
                cursors=None, total=len(items),
            )

        # endpoints gone for new apps
        @app.get("/v1/audio-features")
        @app.get("/v1/audio-features/<_id>")
        @app.get("/v1/audio-analysis/<_id>")
        @app.get("/v1/artists")
        @app.get("/v1/albums")
        def forbidden_for_new_apps(_id: str | None = None) -> Response:
            return api_error(403, "Forbidden")

        @app.get("/v1/recommendations")
        @app.get("/v1/users/<_id>")
        @app.get("/v1/users/<_id>/playlists")
        @app.post("/v1/users/<_id>/playlists")
        @app.get("/v1/artists/<_id>/related-artists")
        def gone(_id: str | None = None) -> Response:
            return api_error(404, "Resource not found")

        @app.errorhandler(404)
        def not_found(_error: Exception) -> Response:
            return api_error(404, "Service not found")

        @app.errorhandler(405)
        def not_allowed(_error: Exception) -> Response:
            return api_error(405, "Method not allowed")

        return app

    def _search(self, q: str) -> list[FakeTrack]:
        fields: dict[str, list[str]] = {}
        for match in _FIELD.finditer(q):
            value = match.group(2) if match.group(2) is not None else match.group(3)
            fields.setdefault(match.group(1).lower(), []).extend(_words(value))
        free = _words(_FIELD.sub(" ", q))
        hits = []
        with self._lock:
            tracks = list(self.tracks.values())
        for track in tracks:
            title_words = set(_words(track.title))
            artist_words = set(_words(" ".join(track.artists)))
            everything = title_words | artist_words | set(_words(track.album))
            if not set(fields.get("track", [])) <= title_words:
                continue
            if not set(fields.get("artist", [])) <= artist_words:
                continue
            if not set(fields.get("album", [])) <= set(_words(track.album)):
                continue
            if not set(free) <= everything:
                continue
            hits.append(track)
        return hits

    def _playlist_json(self, playlist: FakePlaylist) -> dict[str, Any]:
        return {
            "type": "playlist",
            "id": playlist.id,
            "uri": f"spotify:playlist:{playlist.id}",
            "name": playlist.name,
            "description": playlist.description,
            "public": playlist.public,
            "collaborative": playlist.collaborative,
            "snapshot_id": playlist.snapshot_id,
            "owner": {"id": playlist.owner, "type": "user"},
            "external_urls": {"spotify": f"https://open.spotify.com/playlist/{playlist.id}"},
            "items": {"total": len(playlist.items)},
        }

    def _playlist_entry(self, uri: str, owner: str) -> dict[str, Any]:
        track_id = uri.rsplit(":", 1)[-1]
        known = self.tracks.get(track_id)
        item = known.as_json() if known else {"type": "track", "id": track_id, "uri": uri}
        return {
            "added_at": "2026-03-01T12:00:00Z",
            "added_by": {"id": owner, "type": "user"},
            "is_local": False,
            "item": item,
        }


@pytest.fixture
def spotify_server() -> Iterator[FakeSpotify]:
    """A fresh fake Spotify on a free loopback port for one test."""
    with FakeSpotify() as server:
        yield server
