"""Last.fm top tags, over plain HTTP with ``requests``: the only module that talks to Last.fm.

Optional: without an API key (``GOODCRY_LASTFM_API_KEY``) :func:`lastfm_config` returns None
and goodcry works on its own catalogue tags. The base URL (``GOODCRY_LASTFM_API_URL``) is read
from the configuration, so tests point it at a loopback server.

Like the Spotify module it never sleeps or retries: a rate limit (error 29, or HTTP 429)
raises :class:`LastfmRateLimited` with the seconds to wait, and the caller schedules the
retry. Only catalogue facts (artist and track names) are sent; nothing a person wrote.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests

DEFAULT_API_URL = "https://ws.audioscrobbler.com/2.0/"
DEFAULT_RETRY_AFTER_S = 60
# Last.fm error codes (https://www.last.fm/api/errorcodes)
NOT_FOUND = 6
INVALID_API_KEY = 10
TEMPORARILY_UNAVAILABLE = frozenset({8, 11, 16})
RATE_LIMIT_EXCEEDED = 29


@dataclass(frozen=True)
class LastfmConfig:
    api_key: str
    api_url: str = DEFAULT_API_URL
    timeout_s: float = 10.0

    def __repr__(self) -> str:  # never print the key
        return f"LastfmConfig(api_url={self.api_url!r})"


def lastfm_config(environ: Mapping[str, str] | None = None) -> LastfmConfig | None:
    """The configuration from the environment, or None when no API key is set."""
    environ = os.environ if environ is None else environ
    key = (environ.get("GOODCRY_LASTFM_API_KEY") or "").strip()
    if not key:
        return None
    url = (environ.get("GOODCRY_LASTFM_API_URL") or "").strip() or DEFAULT_API_URL
    return LastfmConfig(api_key=key, api_url=url)


class LastfmError(Exception):
    """Anything that went wrong talking to Last.fm."""

    def __init__(self, message: str, code: int | None = None, status: int | None = None):
        super().__init__(message)
        self.code = code
        self.status = status


class LastfmRateLimited(LastfmError):
    """Error 29 or HTTP 429: try again after ``retry_after_s`` (scheduled, never slept)."""

    def __init__(self, message: str, retry_after_s: int, **kw: Any):
        super().__init__(message, **kw)
        self.retry_after_s = retry_after_s


class LastfmUnavailable(LastfmError):
    """5xx, timeouts, connection errors and Last.fm's "try again later" codes."""


class LastfmRejected(LastfmError):
    """The request itself was refused (for example an invalid API key)."""


@dataclass(frozen=True)
class TopTag:
    name: str
    count: int  # Last.fm's weight, 0..100 relative to the top tag


def _retry_after(headers: Mapping[str, str]) -> int:
    try:
        return max(0, int(float(headers.get("Retry-After", ""))))
    except ValueError:
        return DEFAULT_RETRY_AFTER_S


class LastfmClient:
    """Top tags for tracks and artists (``track.getTopTags``, ``artist.getTopTags``)."""

    def __init__(self, config: LastfmConfig):
        self.config = config
        self._session = requests.Session()

    def __repr__(self) -> str:
        return f"LastfmClient(api_url={self.config.api_url!r})"

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> LastfmClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def track_top_tags(self, artist: str, track: str) -> list[TopTag] | None:
        """The track's top tags, strongest first; None when Last.fm does not know the track."""
        return self._top_tags("track.getTopTags", {"artist": artist, "track": track})

    def artist_top_tags(self, artist: str) -> list[TopTag] | None:
        """The artist's top tags, strongest first; None when Last.fm does not know them."""
        return self._top_tags("artist.getTopTags", {"artist": artist})

    def _top_tags(self, method: str, params: dict[str, str]) -> list[TopTag] | None:
        body = self._get(method, params)
        if body is None:
            return None
        raw = (body.get("toptags") or {}).get("tag") or []
        if isinstance(raw, dict):  # a single tag comes as an object, not a list
            raw = [raw]
        tags = []
        for entry in raw:
            if not isinstance(entry, dict) or not str(entry.get("name") or "").strip():
                continue
            try:
                count = int(entry.get("count") or 0)
            except (TypeError, ValueError):
                count = 0
            tags.append(TopTag(str(entry["name"]).strip(), count))
        return sorted(tags, key=lambda t: -t.count)

    def _get(self, method: str, params: dict[str, str]) -> dict[str, Any] | None:
        query = {"method": method.lower(), **params, "autocorrect": "1",
                 "api_key": self.config.api_key, "format": "json"}
        what = f"Last.fm {method}"
        try:
            response = self._session.get(
                self.config.api_url, params=query, timeout=self.config.timeout_s
            )
        except requests.exceptions.Timeout:
            raise LastfmUnavailable(f"{what} timed out") from None
        except requests.exceptions.ConnectionError:
            raise LastfmUnavailable(f"could not connect to {what}") from None
        except requests.exceptions.RequestException as exc:
            raise LastfmError(f"{what} failed: {type(exc).__name__}") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        body = body if isinstance(body, dict) else {}
        code = body.get("error")
        message = str(body.get("message") or "")
        if code == RATE_LIMIT_EXCEEDED or response.status_code == 429:
            raise LastfmRateLimited(
                f"{what}: rate limit exceeded", retry_after_s=_retry_after(response.headers),
                code=code, status=response.status_code,
            )
        if code == NOT_FOUND:
            return None
        if code in TEMPORARILY_UNAVAILABLE or response.status_code >= 500:
            raise LastfmUnavailable(
                f"{what}: unavailable ({response.status_code} {message})".strip(),
                code=code, status=response.status_code,
            )
        if code is not None or response.status_code >= 400:
            raise LastfmRejected(f"{what}: error {code} {message}".strip(), code=code,
                                 status=response.status_code)
        return body
