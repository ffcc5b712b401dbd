"""Request rate limits (Flask-Limiter) counted in the service's own database.

Counters live in the ``rate_limit_counters`` table, so every gunicorn worker and every
server sharing the database counts against the same numbers (an in-memory counter would
let each worker count alone). Each hit is one atomic upsert (a fixed window per limit and
caller), made on the request's own database session before its view runs and committed at
once (see :class:`DatabaseStorage`). ``GOODCRY_RATE_LIMITS=off`` switches all of it off.

What is limited:
- signing in (``POST /api/v1/auth/token``, the sign-in page): 10 a minute per address;
- signing up (``POST /api/v1/auth/register``, the sign-up page): 30 an hour per address;
- every other ``/api/v1`` call: 600 a minute per token (per address without one).
A refusal is a 429 in the contract's envelope, with ``Retry-After`` in seconds.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import ClassVar

from flask import Flask, Response, g, has_request_context, request
from flask_limiter import Limiter
from limits.storage import Storage
from sqlalchemy import Engine, Float, bindparam, case, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from recommender.store.db import make_session_factory, one_writer
from recommender.store.models import RateLimitCounter
from recommender.store.prepared import Prepared
from web.db import get_db

log = logging.getLogger(__name__)

SIGN_IN_LIMIT = "10 per minute"
SIGN_UP_LIMIT = "30 per hour"
API_LIMIT = "600 per minute"
SIGN_IN_ENDPOINTS = ("accounts.token", "pages.signin")
SIGN_UP_ENDPOINTS = ("accounts.register", "pages.signup")
UNLIMITED_BLUEPRINTS = ("health", "api-docs", "pages", "static")

_COUNTERS = RateLimitCounter.__table__


def _hit_statement(insert_of) -> Prepared:
    """One hit: the counter's row is made, or counted on, or started afresh when its window
    has closed; the row's hits and the end of its window come back in the same statement."""
    now = bindparam("now", type_=Float)
    stmt = insert_of(_COUNTERS).values(key=bindparam("key"), hits=bindparam("amount"),
                                       expires_at=bindparam("expires"))
    fresh = _COUNTERS.c.expires_at <= now
    stmt = stmt.on_conflict_do_update(
        index_elements=[_COUNTERS.c.key],
        set_={"hits": case((fresh, stmt.excluded.hits),
                           else_=_COUNTERS.c.hits + stmt.excluded.hits),
              "expires_at": case((fresh, stmt.excluded.expires_at),
                                 else_=_COUNTERS.c.expires_at)},
    ).returning(_COUNTERS.c.hits, _COUNTERS.c.expires_at)
    return Prepared(stmt)


_HIT = {"sqlite": _hit_statement(sqlite.insert), "postgresql": _hit_statement(postgresql.insert)}
_COUNTER = Prepared(select(_COUNTERS.c.hits, _COUNTERS.c.expires_at)
                    .where(_COUNTERS.c.key == bindparam("key")))


class DatabaseStorage(Storage):
    """A ``limits`` storage over the goodcry database (fixed-window strategy only).

    Inside a request, a hit is one prepared statement on the request's own database session
    (its connection, and the one-writer lock SQLite stores take for every write), committed
    at once; what it returns (the window's hits and end) answers the limiter's questions for
    the rate-limit headers of the same answer, with no further reads. Through SQLAlchemy's
    own execution, on a connection of its own, a hit and those two reads cost 0.8 ms of CPU
    a request in-process and 2-3 ms served (BENCHMARKS.md, fifteenth round)."""

    STORAGE_SCHEME: ClassVar[list[str]] = ["goodcry-db"]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False,
                 engine: Engine | None = None, **options):
        if engine is None:
            raise ValueError("DatabaseStorage needs the service's engine (storage_options)")
        self.engine = engine
        self._hit = _HIT.get(engine.dialect.name)
        if self._hit is None:
            raise ValueError(f"no rate-limit counters for {engine.dialect.name} databases")
        self._sessions = make_session_factory(engine)
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)

    @property
    def base_exceptions(self):
        return SQLAlchemyError

    @staticmethod
    def _key(key: str) -> str:
        return key if len(key) <= 255 else hashlib.sha256(key.encode()).hexdigest()

    @contextmanager
    def _session(self) -> Iterator[Session]:
        """The request's own database session inside a request (it goes on to serve the
        request once the hit is committed), else one of the storage's own."""
        if has_request_context():
            yield get_db()
            return
        with self._sessions() as db:
            yield db

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = time.time()
        params = {"key": self._key(key), "amount": amount, "expires": now + expiry,
                  "now": now}
        # On a failure the session is rolled back when it closes (the request's at teardown).
        with self._session() as db, one_writer(db):
            hits, expires_at = self._hit.first(db, params)
            if random.random() < 0.001:  # now and then, forget windows long closed
                db.execute(delete(_COUNTERS).where(_COUNTERS.c.expires_at < now - 3600))
            db.commit()
        if has_request_context():
            g.setdefault("rate_limit_counters", {})[key] = (int(hits), float(expires_at))
        return int(hits)

    def _counter(self, key: str) -> tuple[int, float] | None:
        """The counter's hits and window end: as this request's hit left them, else read."""
        if has_request_context():
            seen = g.get("rate_limit_counters", {}).get(key)
            if seen is not None:
                return seen
        with self._session() as db:
            row = _COUNTER.first(db, {"key": self._key(key)})
        return None if row is None else (int(row[0]), float(row[1]))

    def get(self, key: str) -> int:
        counter = self._counter(key)
        return counter[0] if counter is not None and counter[1] > time.time() else 0

    def get_expiry(self, key: str) -> float:
        counter = self._counter(key)
        return counter[1] if counter is not None else time.time()

    def check(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.scalar(select(1))
        except SQLAlchemyError:
            return False
        return True

    def reset(self) -> int | None:
        with self.engine.begin() as conn:
            return conn.execute(delete(_COUNTERS)).rowcount

    def clear(self, key: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(_COUNTERS).where(_COUNTERS.c.key == self._key(key)))


def client_address() -> str:
    return "addr:" + (request.remote_addr or "unknown")


def caller() -> str:
    """Who is calling: their token (hashed: tokens are never stored plain), else their address."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return "token:" + hashlib.sha256(token.strip().encode()).hexdigest()[:32]
    return client_address()


def init_app(app: Flask, engine: Engine) -> Limiter:
    # Registered before the limiter's own hook, so it runs after it: Retry-After only on 429.
    @app.after_request
    def retry_after_only_when_refused(resp: Response) -> Response:
        if resp.status_code != 429:
            resp.headers.pop("Retry-After", None)
        return resp

    limiter = Limiter(
        key_func=caller,
        app=app,
        storage_uri="goodcry-db://",
        storage_options={"engine": engine},
        strategy="fixed-window",
        headers_enabled=True,
        enabled=bool(app.config.get("RATE_LIMITS", True)),
        swallow_errors=False,
    )
    # The limit decorators hold the limiter weakly: the app keeps it alive.
    app.extensions["goodcry_rate_limiter"] = limiter
    # One count per caller for the whole API (a limit per blueprint would count each part of
    # it apart: 600 a minute for sessions, 600 more for memories...).
    api_limit = limiter.shared_limit(API_LIMIT, scope="api")
    for name in app.blueprints:
        if name not in UNLIMITED_BLUEPRINTS:
            api_limit(app.blueprints[name])
    for endpoints, limit, what in ((SIGN_IN_ENDPOINTS, SIGN_IN_LIMIT, "sign-in attempts"),
                                   (SIGN_UP_ENDPOINTS, SIGN_UP_LIMIT, "sign-ups")):
        for endpoint in endpoints:
            view = app.view_functions.get(endpoint)
            if view is not None:
                app.view_functions[endpoint] = limiter.limit(
                    limit, key_func=client_address, methods=["POST"],
                    error_message=f"too many {what} from this address ({limit}); "
                                  "wait and try again",
                )(view)
    return limiter
