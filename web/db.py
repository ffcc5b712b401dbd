"""The database for a request: one SQLAlchemy session on ``g``, closed at teardown."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, Response, current_app, g
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from recommender.cry_sessions import Recommender
from recommender.store.db import (
    WAL_CHECKPOINT_BYTES,
    Checkpointer,
    make_engine,
    make_session_factory,
    wal_path,
)


@dataclass
class Store:
    engine: Engine
    session_factory: sessionmaker[Session]
    recommender: Recommender


def init_app(app: Flask) -> Store:
    # SQLite's write-ahead log is copied back into the database on a thread of the worker's
    # own, nudged once a response has gone out: never inside the request whose commit
    # happened to fill it, nor holding the worker while the disk confirms the copy.
    engine = make_engine(app.config["DATABASE_URL"], checkpoint_on_commit=False)
    store = Store(engine, make_session_factory(engine), Recommender())
    app.extensions["goodcry"] = store
    app.teardown_appcontext(_close_db)
    if wal_path(engine) is not None:
        checkpointer = Checkpointer(
            engine, app.config.get("WAL_CHECKPOINT_BYTES", WAL_CHECKPOINT_BYTES))

        @app.after_request
        def _checkpoint_when_sent(response: Response) -> Response:
            response.call_on_close(checkpointer.nudge)
            return response

    return store


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
