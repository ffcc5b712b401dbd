"""The Spotify Web API as a Development Mode app meets it in 2026.

This is the only module in the project that imports spotipy. Everything it talks to is read
from a :class:`SpotifyConfig` (both base URLs included), so tests point it at a loopback server.

What it deliberately does not do:

- retry or sleep: a 429 surfaces at once as :class:`SpotifyRateLimited` carrying
  ``retry_after_s`` and the caller schedules the retry (Spotify has answered 3,600 and 86,400);
- call endpoints that are gone for new apps (batch ``/tracks?ids=``, audio features,
  recommendations, ``/users/{id}/...``);
- log or put tokens into error messages.

Only catalogue facts (titles, artist names, track URIs, playlist names) are sent; nothing a
person wrote ever passes through here.
"""

from __future__ import annotations

import base64
import difflib
import email.utils
import hashlib
import logging
import re
import secrets
import time
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode

import requests
import spotipy

from recommender.catalog.identity import normalise_name, normalise_title

SCOPES = "playlist-modify-private user-top-read user-library-read user-read-recently-played"

DEFAULT_RETRY_AFTER_S = 30
SEARCH_LIMIT_MAX = 10
PLAYLIST_ADD_MAX = 100
PAGE_LIMIT_MAX = 50

_T = TypeVar("_T")


@dataclass(frozen=True)
class SpotifyConfig:
    """Where Spotify lives and who we are to it."""

    client_id: str
    redirect_uri: str
    api_url: str = "https://api.spotify.com/v1/"
    accounts_url: str = "https://accounts.spotify.com/"
    timeout_s: float = 10.0

    @property
    def token_url(self) -> str:
        return _with_slash(self.accounts_url) + "api/token"

    @property
    def authorize_url(self) -> str:
        return _with_slash(self.accounts_url) + "authorize"


# -- errors -------------------------------------------------------------------------------------


class SpotifyError(Exception):
    """Anything that went wrong talking to Spotify."""

    def __init__(self, message: str, status: int | None = None, reason: str | None = None):
        super().__init__(message)
        self.status = status
        self.reason = reason


class SpotifyRateLimited(SpotifyError):
    """429: try again after ``retry_after_s`` seconds (scheduled by the caller, never slept)."""

    def __init__(
        self,
        message: str,
        retry_after_s: int,
        status: int | None = 429,
        reason: str | None = None,
    ):
        super().__init__(message, status=status, reason=reason)
        self.retry_after_s = retry_after_s


class SpotifyUnavailable(SpotifyError):
    """5xx, timeouts and connection errors: worth trying again later."""


class SpotifyInvalidGrant(SpotifyError):
    """The token endpoint refused the grant (400 ``invalid_grant``): the user must reconnect."""


class SpotifyRejected(SpotifyError):
    """Any other 4xx: the request itself was refused."""


class SpotifyUnauthorized(SpotifyRejected):
    """401: the access token expired or was revoked; refresh it and try again."""


# -- authorisation (Authorization Code with PKCE) ----------------------------------------------


@dataclass(frozen=True)
class PkceStart:
    """What to keep in the server session between the login redirect and the callback."""

    state: str
    code_verifier: str
    authorize_url: str

    def __repr__(self) -> str:  # the verifier is a secret until it is spent
        return f"PkceStart(state=..., authorize_url={self.authorize_url!r})"


@dataclass(frozen=True)
class TokenSet:
    access_token: str
    refresh_token: str
    expires_at: float
    scope: str

    def __repr__(self) -> str:  # never print tokens
        return f"TokenSet(expires_at={self.expires_at!r}, scope={self.scope!r})"

    def expires_within(self, seconds: float, now: float | None = None) -> bool:
        return (time.time() if now is None else now) + seconds >= self.expires_at


def code_challenge_for(code_verifier: str) -> str:
    """The S256 challenge of a verifier (RFC 7636): base64url(sha256(verifier)), unpadded."""
    digest = hashlib.sha256(code_verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def start_pkce(config: SpotifyConfig, scope: str = SCOPES) -> PkceStart:
    """A fresh verifier, its S256 challenge, a random state and the authorize URL.

    The caller keeps ``state`` and ``code_verifier`` server-side, bound to the user, and accepts
    the state once only.
    """
    code_verifier = secrets.token_urlsafe(64)  # 86 chars of [A-Za-z0-9_-]: within 43..128
    state = secrets.token_urlsafe(24)
    query = urlencode(
        {
            "client_id": config.client_id,
            "response_type": "code",
            "redirect_uri": config.redirect_uri,
            "scope": scope,
            "state": state,
            "code_challenge": code_challenge_for(code_verifier),
            "code_challenge_method": "S256",
        }
    )
    return PkceStart(
        state=state, code_verifier=code_verifier, authorize_url=f"{config.authorize_url}?{query}"
    )


def exchange_code(config: SpotifyConfig, code: str, code_verifier: str) -> TokenSet:
    """Trade the callback's code (and our verifier) for tokens.

    A wrong verifier, or a code used already, raises :class:`SpotifyInvalidGrant`.
    """
    return _token_request(
        config,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": config.redirect_uri,
            "client_id": config.client_id,
            "code_verifier": code_verifier,
        },
        previous_refresh_token=None,
    )


def refresh(config: SpotifyConfig, refresh_token: str) -> TokenSet:
    """A new access token; raises :class:`SpotifyInvalidGrant` when Spotify refuses to refresh.

    When Spotify issues a new refresh token the returned set carries it (store it: the old one
    may be dead); otherwise the old one is kept.
    """
    return _token_request(
        config,
        {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": config.client_id,
        },
        previous_refresh_token=refresh_token,
    )


def _post_to_token_endpoint(
    config: SpotifyConfig, form: dict[str, str], headers: dict[str, str] | None = None
) -> tuple[dict, int]:
    """POST a grant to the accounts token URL; its JSON body, or the error family raised."""
    try:
        response = requests.post(
            config.token_url,
            data=form,
            headers={"Accept": "application/json", **(headers or {})},
            timeout=config.timeout_s,
        )
    except requests.exceptions.RequestException as exc:
        raise _from_requests_error(exc, "token endpoint") from None
    try:
        body = response.json()
    except ValueError:
        body = None
    body = body if isinstance(body, dict) else {}
    if response.status_code >= 400:
        error = body.get("error")
        description = body.get("error_description") or ""
        if isinstance(error, dict):  # some Spotify errors use the API's envelope
            description = error.get("message") or description
            error = None
        message = f"token endpoint answered {response.status_code}: {error or ''} {description}"
        if response.status_code == 400 and error == "invalid_grant":
            raise SpotifyInvalidGrant(message.strip(), status=400, reason="invalid_grant")
        raise _from_status(response.status_code, message.strip(), response.headers, None)
    return body, response.status_code


def _expires_in(body: dict) -> float:
    try:
        return float(body.get("expires_in", 3600))
    except (TypeError, ValueError):
        return 3600.0


def _token_request(
    config: SpotifyConfig, form: dict[str, str], previous_refresh_token: str | None
) -> TokenSet:
    body, status = _post_to_token_endpoint(config, form)
    access_token = body.get("access_token")
    new_refresh_token = body.get("refresh_token") or previous_refresh_token
    if not access_token or not new_refresh_token:
        raise SpotifyError("token endpoint answered without the tokens", status=status)
    return TokenSet(
        access_token=access_token,
        refresh_token=new_refresh_token,
        expires_at=time.time() + _expires_in(body),
        scope=str(body.get("scope", "")),
    )


# -- client credentials (the app itself, for catalogue searches) -------------------------------


@dataclass(frozen=True)
class AppToken:
    """An app access token from the client-credentials flow: no user, no refresh token."""

    access_token: str
    expires_at: float

    def __repr__(self) -> str:  # never print tokens
        return f"AppToken(expires_at={self.expires_at!r})"

    def expires_within(self, seconds: float, now: float | None = None) -> bool:
        return (time.time() if now is None else now) + seconds >= self.expires_at


def client_credentials_token(config: SpotifyConfig, secret: str) -> AppToken:
    """An app token for searching the catalogue (client-credentials flow, Basic auth).

    Needs the app's client secret (``GOODCRY_SPOTIFY_CLIENT_SECRET``); it can read public data
    such as search, never a user's library.
    """
    if not config.client_id or not secret:
        raise SpotifyRejected("client credentials need both a client id and a client secret")
    basic = base64.b64encode(f"{config.client_id}:{secret}".encode()).decode("ascii")
    body, status = _post_to_token_endpoint(config, {"grant_type": "client_credentials"},
                                           {"Authorization": f"Basic {basic}"})
    if not body.get("access_token"):
        raise SpotifyError("token endpoint answered without a token", status=status)
    return AppToken(access_token=str(body["access_token"]),
                    expires_at=time.time() + _expires_in(body))


# -- error translation --------------------------------------------------------------------------


def parse_retry_after(value: Any, default: int = DEFAULT_RETRY_AFTER_S) -> int:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date), else ``default``."""
    if value is None:
        return default
    text = str(value).strip()
    try:
        return max(0, int(float(text)))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return default
    if when is None:
        return default
    return max(0, int(when.timestamp() - time.time()))


def _from_status(
    status: int, message: str, headers: Any, reason: str | None
) -> SpotifyError:
    if status == 429:
        retry_after = parse_retry_after(headers.get("Retry-After") if headers else None)
        return SpotifyRateLimited(message, retry_after_s=retry_after, reason=reason)
    if status >= 500:
        return SpotifyUnavailable(message, status=status, reason=reason)
    if status == 401:
        return SpotifyUnauthorized(message, status=status, reason=reason)
    if 400 <= status < 500:
        return SpotifyRejected(message, status=status, reason=reason)
    return SpotifyError(message, status=status, reason=reason)


def _from_requests_error(exc: requests.exceptions.RequestException, what: str) -> SpotifyError:
    if isinstance(exc, requests.exceptions.Timeout):
        return SpotifyUnavailable(f"{what} timed out")
    if isinstance(exc, requests.exceptions.ConnectionError):
        return SpotifyUnavailable(f"could not connect to {what}")
    return SpotifyError(f"{what} request failed: {type(exc).__name__}")


@contextmanager
def _translated(what: str) -> Iterator[None]:
    try:
        yield
    except spotipy.SpotifyException as exc:
        raise _from_status(
            int(exc.http_status or 0), f"{what}: {exc.msg}", exc.headers, exc.reason
        ) from None
    except requests.exceptions.RequestException as exc:
        raise _from_requests_error(exc, what) from None


# spotipy logs request headers (the bearer token) at DEBUG: strip them wherever they appear.
_BEARER = re.compile(r"Bearer\s+[^'\"\s,}]+")


class _RedactBearerTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "Bearer" in message:
            record.msg = _BEARER.sub("Bearer [redacted]", message)
            record.args = ()
        return True


_spotipy_logger = logging.getLogger("spotipy.client")
if not any(isinstance(f, _RedactBearerTokens) for f in _spotipy_logger.filters):
    _spotipy_logger.addFilter(_RedactBearerTokens())


# -- matching -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrackMatch:
    uri: str
    spotify_id: str
    title: str
    artist: str
    duration_s: int
    year: int | None
    isrc: str | None
    score: float


MATCH_THRESHOLD = 0.7
_TITLE_GATE = 0.75
_ARTIST_GATE = 0.5
# words that mark a different recording than the one asked for, unless the title asks for it
_VERSION_MARKERS = frozenset(
    {
        "live", "remix", "mix", "acoustic", "karaoke", "instrumental", "demo", "cover",
        "tribute", "originally", "performed", "famous", "lullaby", "piano",
        "rehearsal", "session", "edit", "version", "sped", "slowed", "reverb", "8d",
    }
)


def _fold(text: str) -> str:
    """Case- and accent-folded words, for spotting version markers."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).casefold()
    text = text.replace("'", "").replace("\u2019", "")
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


def _similarity(a: str, b: str) -> float:
    if not a or not b:
        return 0.0
    if a == b:
        return 1.0
    ratio = difflib.SequenceMatcher(None, a, b).ratio()
    words_a, words_b = set(a.split()), set(b.split())
    jaccard = len(words_a & words_b) / len(words_a | words_b)
    return max(ratio, jaccard)


def _title_score(wanted: str, candidate: str) -> float:
    score = _similarity(normalise_title(wanted), normalise_title(candidate))
    wanted_words = set(_fold(wanted).split())
    extra_markers = (set(_fold(candidate).split()) & _VERSION_MARKERS) - wanted_words
    if extra_markers:
        score -= 0.25
    return max(0.0, score)


def _artist_score(wanted: str, artists: list[str]) -> float:
    want = normalise_name(wanted)
    names = [normalise_name(a) for a in artists if a]
    if not names:
        return 0.0
    options = [*names, normalise_name(" and ".join(artists)), " ".join(names)]
    return max(_similarity(want, option) for option in options)


def _duration_score(wanted_s: int, candidate_s: int) -> float:
    difference = abs(wanted_s - candidate_s)
    if difference <= 2:
        return 1.0
    return max(0.0, 1.0 - (difference - 2) / 28.0)


def score_candidate(
    title: str, artist: str, duration_s: int | None, track: dict[str, Any]
) -> float:
    """How surely ``track`` (a Spotify track object) is the recording asked for, 0..1.

    Title and artist must each clear a gate (a right title by the wrong artist is no match);
    then title, artist and, when known, duration closeness are weighed together.
    """
    title_score = _title_score(title, str(track.get("name") or ""))
    artist_names = [str(a.get("name") or "") for a in track.get("artists") or []]
    artist_score = _artist_score(artist, artist_names)
    if title_score < _TITLE_GATE or artist_score < _ARTIST_GATE:
        return 0.0
    if duration_s is None or not track.get("duration_ms"):
        return 0.6 * title_score + 0.4 * artist_score
    duration = _duration_score(int(duration_s), round(int(track["duration_ms"]) / 1000))
    return 0.45 * title_score + 0.3 * artist_score + 0.25 * duration


def track_match_from(track: dict[str, Any], score: float) -> TrackMatch:
    release_date = str((track.get("album") or {}).get("release_date") or "")
    year = int(release_date[:4]) if release_date[:4].isdigit() else None
    return TrackMatch(
        uri=str(track.get("uri") or f"spotify:track:{track['id']}"),
        spotify_id=str(track["id"]),
        title=str(track.get("name") or ""),
        artist=", ".join(str(a.get("name") or "") for a in track.get("artists") or []),
        duration_s=round(int(track.get("duration_ms") or 0) / 1000),
        year=year,
        isrc=(track.get("external_ids") or {}).get("isrc"),
        score=round(score, 4),
    )


def _field(value: str) -> str:
    return " ".join(value.replace('"', " ").split())


# -- the API client -----------------------------------------------------------------------------


class SpotifyClient:
    """One user's access to the Web API, through spotipy, with errors in our own family."""

    def __init__(self, config: SpotifyConfig, access_token: str):
        self.config = config
        # A plain session: no urllib3 status retries. spotipy's own retrying session would
        # sleep through Retry-After, and with retries=0 plus a status_forcelist it turns a
        # 503 into a header-less "429 Max Retries". Without it every status reaches us intact.
        self._session = requests.Session()
        self._sp = spotipy.Spotify(
            auth=access_token,
            requests_session=self._session,
            requests_timeout=config.timeout_s,
            retries=0,
            status_retries=0,
            status_forcelist=(500, 502, 503, 504),
        )
        self._sp.prefix = _with_slash(config.api_url)

    def __repr__(self) -> str:
        return f"SpotifyClient(api_url={self.config.api_url!r})"

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> SpotifyClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _call(self, what: str, call: Callable[[], _T]) -> _T:
        with _translated(what):
            return call()

    # -- reads ----------------------------------------------------------------------------------

    def me(self) -> dict[str, Any]:
        return self._call("me", self._sp.me)

    def track(self, spotify_id: str) -> dict[str, Any]:
        """One track by id, URI or URL (``GET /tracks/{id}``; the batch form is gone)."""
        return self._call("track", lambda: self._sp.track(spotify_id))

    def search_track(
        self, title: str, artist: str, duration_s: int | None = None, limit: int = 10
    ) -> TrackMatch | None:
        """The best-scoring Spotify track for a catalogue song, or None below the threshold.

        At most two searches: a field search (``track:"..." artist:"..."``) and, if that finds
        nothing, a plain-words search.
        """
        limit = max(1, min(int(limit), SEARCH_LIMIT_MAX))
        queries = [
            f'track:"{_field(title)}" artist:"{_field(artist)}"',
            f"{_field(normalise_title(title))} {_field(normalise_name(artist))}",
        ]
        best: tuple[float, dict[str, Any]] | None = None
        for query in queries:
            result = self._call(
                "search", lambda q=query: self._sp.search(q=q, limit=limit, type="track")
            )
            candidates = ((result or {}).get("tracks") or {}).get("items") or []
            for track in candidates:
                if not track or not track.get("id"):
                    continue
                score = score_candidate(title, artist, duration_s, track)
                if best is None or score > best[0]:
                    best = (score, track)
            if candidates:
                break
        if best is None or best[0] < MATCH_THRESHOLD:
            return None
        return track_match_from(best[1], best[0])

    def playlist_items(self, playlist_id: str) -> list[str]:
        """The URIs in a playlist, in order, across all pages."""
        page = self._call(
            "playlist items",
            lambda: self._sp.playlist_items(
                playlist_id, limit=PAGE_LIMIT_MAX, additional_types=("track",)
            ),
        )
        uris: list[str] = []
        for entry in self._all_items("playlist items", page):
            item = entry.get("item") or entry.get("track") or {}
            if item.get("uri"):
                uris.append(item["uri"])
        return uris

    def my_playlists(self, max_items: int | None = None) -> list[dict[str, Any]]:
        """The user's playlists (``GET /me/playlists``, simplified objects), newest first."""
        page = self._call(
            "my playlists",
            lambda: self._sp.current_user_playlists(limit=PAGE_LIMIT_MAX, offset=0),
        )
        return list(self._all_items("my playlists", page, max_items))

    def top_tracks(
        self, time_range: str = "medium_term", max_items: int | None = None
    ) -> list[dict[str, Any]]:
        """The user's top tracks (track objects), all pages."""
        page = self._call(
            "top tracks",
            lambda: self._sp.current_user_top_tracks(
                limit=PAGE_LIMIT_MAX, offset=0, time_range=time_range
            ),
        )
        return list(self._all_items("top tracks", page, max_items))

    def saved_tracks(self, max_items: int | None = None) -> list[dict[str, Any]]:
        """The user's saved tracks as Spotify gives them: ``{"added_at", "track"}``, all pages."""
        page = self._call(
            "saved tracks",
            lambda: self._sp.current_user_saved_tracks(limit=PAGE_LIMIT_MAX, offset=0),
        )
        return list(self._all_items("saved tracks", page, max_items))

    def recently_played(self) -> list[dict[str, Any]]:
        """The last (at most 50) plays as Spotify gives them: ``{"played_at", "track"}``."""
        page = self._call(
            "recently played",
            lambda: self._sp.current_user_recently_played(limit=PAGE_LIMIT_MAX),
        )
        return list((page or {}).get("items") or [])

    def _all_items(
        self, what: str, page: dict[str, Any] | None, max_items: int | None = None
    ) -> Iterator[dict[str, Any]]:
        count = 0
        seen_pages: set[str] = set()
        while page:
            for item in page.get("items") or []:
                if max_items is not None and count >= max_items:
                    return
                count += 1
                yield item
            next_url = page.get("next")
            if not next_url or next_url in seen_pages:
                return
            seen_pages.add(next_url)
            page = self._call(what, lambda p=page: self._sp.next(p))

    # -- writes ---------------------------------------------------------------------------------

    def create_playlist(self, name: str, description: str) -> dict[str, str]:
        """A private playlist for the user (``POST /me/playlists``, ``public: false``)."""
        created = self._call(
            "create playlist",
            lambda: self._sp.current_user_playlist_create(
                name, public=False, collaborative=False, description=description
            ),
        )
        if not created or not created.get("id"):
            raise SpotifyError("create playlist: Spotify answered without an id")
        url = (created.get("external_urls") or {}).get("spotify") or (
            f"https://open.spotify.com/playlist/{created['id']}"
        )
        return {"id": str(created["id"]), "url": str(url)}

    def add_items(self, playlist_id: str, uris: list[str]) -> str:
        """Append up to 100 URIs in one request; returns the new ``snapshot_id``."""
        uris = list(uris)
        if not uris:
            raise ValueError("add_items needs at least one URI")
        if len(uris) > PLAYLIST_ADD_MAX:
            raise ValueError(
                f"Spotify takes at most {PLAYLIST_ADD_MAX} URIs per request, got {len(uris)}"
            )
        answer = self._call("add items", lambda: self._sp.playlist_add_items(playlist_id, uris))
        snapshot = (answer or {}).get("snapshot_id")
        if not snapshot:
            raise SpotifyError("add items: Spotify answered without a snapshot_id")
        return str(snapshot)


def _with_slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"
