"""The database for a request: one SQLAlchemy session on ``g``, closed at teardown."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app, g
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from recommender.cry_sessions import Recommender
from recommender.store.db import make_engine, make_session_factory


@dataclass
class Store:
    engine: Engine
    session_factory: sessionmaker[Session]
    recommender: Recommender


def init_app(app: Flask) -> Store:
    engine = make_engine(app.config["DATABASE_URL"])
    store = Store(engine, make_session_factory(engine), Recommender())
    app.extensions["goodcry"] = store
    app.teardown_appcontext(_close_db)
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
