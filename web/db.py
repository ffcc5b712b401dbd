"""The database for a request: one SQLAlchemy session on ``g``, closed at teardown."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import Flask, Response, current_app, g
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from recommender.cry_sessions import Recommender
from recommender.store.db import (
    WAL_CHECKPOINT_BYTES,
    checkpoint_if_due,
    make_engine,
    make_session_factory,
)

log = logging.getLogger(__name__)


@dataclass
class Store:
    engine: Engine
    session_factory: sessionmaker[Session]
    recommender: Recommender


def init_app(app: Flask) -> Store:
    # SQLite's write-ahead log is copied back into the database after a response has gone
    # out, never inside the request whose commit happened to fill it.
    engine = make_engine(app.config["DATABASE_URL"], checkpoint_on_commit=False)
    store = Store(engine, make_session_factory(engine), Recommender())
    app.extensions["goodcry"] = store
    app.teardown_appcontext(_close_db)
    min_bytes = app.config.get("WAL_CHECKPOINT_BYTES", WAL_CHECKPOINT_BYTES)

    @app.after_request
    def _checkpoint_when_sent(response: Response) -> Response:
        response.call_on_close(lambda: _checkpoint(engine, min_bytes))
        return response

    return store


def _checkpoint(engine: Engine, min_bytes: int) -> None:
    try:
        checkpoint_if_due(engine, min_bytes)
    except Exception:  # the answer has gone out; the next response tries again
        log.exception("checkpointing the database's write-ahead log failed")


def store() -> Store:
    return current_app.extensions["goodcry"]


def get_db() -> Session:
    if "db" not in g:
        g.db = store().session_factory()
    return g.db


def _close_db(_exc: BaseException | None) -> None:
    db = g.pop("db", None)
    if db is not None:
        db.close()
