"""The goodcry web service: ``create_app`` builds the Flask app."""

from __future__ import annotations

import logging
from pathlib import Path

from flask import Flask

from recommender.bootstrap import prepare_store

MAX_BODY_BYTES = 1024 * 1024


def create_app(config: dict | None = None) -> Flask:
    """Build the app; ``config`` overrides what the environment says (tests pass one)."""
    app = Flask(__name__, instance_relative_config=True,
                static_folder="static", template_folder="pages/templates")
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    from web.config import from_environment
    from web.json_provider import OrjsonProvider

    app.json = OrjsonProvider(app)

    app.config.update(from_environment(Path(app.instance_path)))
    app.config.update(
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_HTTPONLY=True,
        WTF_CSRF_TIME_LIMIT=None,
        PREPARE_STORE=True,
    )
    if config:
        app.config.update(config)
    logging.basicConfig(level=logging.INFO)

    from web import db, errors

    store = db.init_app(app)
    if app.config["PREPARE_STORE"]:
        prepare_store(store.engine, store.session_factory)

    from web import api, pages, security

    flask_api = api.init_app(app)
    pages.init_app(app)
    from web.pages import spotify as spotify_pages

    spotify_pages.init_app(app)
    security.init_app(app, flask_api)
    errors.init_app(app)
    return app
