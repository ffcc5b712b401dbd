"""A fake Last.fm API (``/2.0/``) on a real loopback HTTP server, for tests.

It answers ``?method=track.gettoptags&artist=...&track=...&api_key=...&format=json`` and
``artist.gettoptags`` as Last.fm does: ``{"toptags": {"tag": [{"name", "count", "url"}],
"@attr": {...}}}``; error 6 (not found), 10 (invalid API key), 29 (rate limit exceeded) in
Last.fm's JSON error shape; names matched without regard to case. Faults are programmed with
``fail_next`` (a Last.fm error code or an HTTP status such as 503) and every request is recorded.

Use the ``lastfm_server`` fixture or ``with FakeLastfm() as server: ...``;
``server.config()`` builds a :class:`LastfmConfig` aimed at it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from flask import Flask, Response, jsonify, request
from werkzeug.serving import WSGIRequestHandler, make_server

from recommender.services.lastfm import LastfmConfig

API_KEY = "fake-lastfm-key"


@dataclass
class LastfmFault:
    error: int | None  # a Last.fm error code, or None for a bare HTTP status
    status: int
    times: int
    method: str | None


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


def _key(*names: str) -> tuple[str, ...]:
    return tuple(" ".join(n.casefold().split()) for n in names)


class FakeLastfm:
    def __init__(self, api_key: str = API_KEY):
        self.api_key = api_key
        self._lock = threading.RLock()
        self.track_tags: dict[tuple[str, ...], list[tuple[str, int]]] = {}
        self.artist_tags: dict[tuple[str, ...], list[tuple[str, int]]] = {}
        self.requests: list[dict[str, str]] = []
        self._faults: list[LastfmFault] = []
        self.app = self._build_app()
        self._server = make_server("127.0.0.1", 0, self.app, threaded=True,
                                   request_handler=_QuietHandler)
        self.port = self._server.server_port
        self.api_url = f"http://127.0.0.1:{self.port}/2.0/"
        self._thread: threading.Thread | None = None

    def start(self) -> FakeLastfm:
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name="fake-lastfm", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeLastfm:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def config(self, timeout_s: float = 5.0) -> LastfmConfig:
        return LastfmConfig(api_key=self.api_key, api_url=self.api_url, timeout_s=timeout_s)

    # -- seeding and faults ---------------------------------------------------------------------

    def add_track_tags(self, artist: str, track: str, tags: list[tuple[str, int]]) -> None:
        with self._lock:
            self.track_tags[_key(artist, track)] = list(tags)

    def add_artist_tags(self, artist: str, tags: list[tuple[str, int]]) -> None:
        with self._lock:
            self.artist_tags[_key(artist)] = list(tags)

    def fail_next(self, error: int | None = 29, status: int | None = None, times: int = 1,
                  method: str | None = None) -> None:
        """The next ``times`` requests fail: Last.fm error ``error`` or HTTP ``status``."""
        if status is None:
            status = {29: 429, 11: 503, 16: 503, 8: 500}.get(error or 0, 400)
        with self._lock:
            self._faults.append(LastfmFault(error, status, times, method))

    def calls(self, method: str | None = None) -> list[dict[str, str]]:
        with self._lock:
            return [r for r in self.requests if method is None or r.get("method") == method]

    def _take_fault(self, method: str) -> LastfmFault | None:
        with self._lock:
            for fault in self._faults:
                if fault.method is None or fault.method == method:
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    # -- the app --------------------------------------------------------------------------------

    def _build_app(self) -> Flask:
        app = Flask("fake_lastfm")
        fake = self

        def error(code: int, message: str, status: int = 200) -> Response:
            response = jsonify({"error": code, "message": message, "links": []})
            response.status_code = status
            return response

        def toptags(tags: list[tuple[str, int]], attr: dict[str, str]) -> Response:
            return jsonify({"toptags": {
                "tag": [{"count": count, "name": name,
                         "url": f"https://www.last.fm/tag/{name.replace(' ', '+')}"}
                        for name, count in tags],
                "@attr": attr,
            }})

        @app.get("/2.0/")
        def api() -> Response:
            args = request.args.to_dict()
            method = args.get("method", "").lower()
            with fake._lock:
                fake.requests.append(args)
            fault = fake._take_fault(method)
            if fault is not None:
                if fault.error is None:
                    return Response("<html>Service Unavailable</html>", status=fault.status,
                                    mimetype="text/html")
                return error(fault.error, "Rate Limit Exceeded" if fault.error == 29
                             else "Operation failed", fault.status)
            if args.get("api_key") != fake.api_key:
                return error(10, "Invalid API key - You must be granted a valid key by last.fm",
                             403)
            if args.get("format") != "json":
                return Response("<lfm status=\"ok\"/>", mimetype="text/xml")
            if method == "track.gettoptags":
                if not args.get("artist") or not args.get("track"):
                    return error(6, "Track not found", 200)
                tags = fake.track_tags.get(_key(args["artist"], args["track"]))
                if tags is None:
                    return error(6, "Track not found", 200)
                return toptags(tags, {"artist": args["artist"], "track": args["track"]})
            if method == "artist.gettoptags":
                tags = fake.artist_tags.get(_key(args.get("artist", "")))
                if tags is None:
                    return error(6, "The artist you supplied could not be found", 200)
                return toptags(tags, {"artist": args["artist"]})
            return error(3, "Invalid Method - No method with that name in this package", 400)

        return app


@pytest.fixture
def lastfm_server() -> Iterator[FakeLastfm]:
    """A fresh fake Last.fm on a free loopback port for one test."""
    with FakeLastfm() as server:
        yield server
