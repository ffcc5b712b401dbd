"""Request rate limits (Flask-Limiter) counted in the service's own database.

Counters live in the ``rate_limit_counters`` table, so every gunicorn worker and every
server sharing the database counts against the same numbers (an in-memory counter would
let each worker count alone). Each hit is one atomic upsert: a fixed window per limit and
caller. ``GOODCRY_RATE_LIMITS=off`` switches all of it off (benchmarks, load tests).

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
from typing import ClassVar

from flask import Flask, Response, request
from flask_limiter import Limiter
from limits.storage import Storage
from sqlalchemy import Engine, case, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from recommender.store.models import RateLimitCounter

log = logging.getLogger(__name__)

SIGN_IN_LIMIT = "10 per minute"
SIGN_UP_LIMIT = "30 per hour"
API_LIMIT = "600 per minute"
SIGN_IN_ENDPOINTS = ("accounts.token", "pages.signin")
SIGN_UP_ENDPOINTS = ("accounts.register", "pages.signup")
UNLIMITED_BLUEPRINTS = ("health", "api-docs", "pages", "static")

_COUNTERS = RateLimitCounter.__table__


class DatabaseStorage(Storage):
    """A ``limits`` storage over the goodcry database (fixed-window strategy only)."""

    STORAGE_SCHEME: ClassVar[list[str]] = ["goodcry-db"]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False,
                 engine: Engine | None = None, **options):
        if engine is None:
            raise ValueError("DatabaseStorage needs the service's engine (storage_options)")
        self.engine = engine
        self._insert = (postgresql.insert if engine.dialect.name == "postgresql"
                        else sqlite.insert)
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)

    @property
    def base_exceptions(self):
        return SQLAlchemyError

    @staticmethod
    def _key(key: str) -> str:
        return key if len(key) <= 255 else hashlib.sha256(key.encode()).hexdigest()

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = time.time()
        fresh = _COUNTERS.c.expires_at <= now
        stmt = self._insert(_COUNTERS).values(key=self._key(key), hits=amount,
                                              expires_at=now + expiry)
        stmt = stmt.on_conflict_do_update(
            index_elements=[_COUNTERS.c.key],
            set_={"hits": case((fresh, amount), else_=_COUNTERS.c.hits + amount),
                  "expires_at": case((fresh, now + expiry), else_=_COUNTERS.c.expires_at)},
        ).returning(_COUNTERS.c.hits)
        with self.engine.begin() as conn:
            hits = conn.execute(stmt).scalar_one()
            if random.random() < 0.001:  # now and then, forget windows long closed
                conn.execute(delete(_COUNTERS).where(_COUNTERS.c.expires_at < now - 3600))
        return int(hits)

    def get(self, key: str) -> int:
        with self.engine.connect() as conn:
            hits = conn.scalar(select(_COUNTERS.c.hits).where(
                _COUNTERS.c.key == self._key(key), _COUNTERS.c.expires_at > time.time()))
        return int(hits or 0)

    def get_expiry(self, key: str) -> float:
        with self.engine.connect() as conn:
            expires = conn.scalar(select(_COUNTERS.c.expires_at).where(
                _COUNTERS.c.key == self._key(key)))
        return float(expires) if expires is not None else time.time()

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
