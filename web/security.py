"""CSRF on every form, security headers on every answer, secure cookies and a real secret
in production, request rate limits (``web/ratelimit.py``)."""

from __future__ import annotations

import os

from flask import Flask, Response, abort, request
from flask_smorest import Api
from flask_wtf.csrf import CSRFProtect

csrf = CSRFProtect()

CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'self'"
)

MIN_SECRET_LENGTH = 32
WEAK_SECRET_WORDS = ("secret", "changeme", "change-me", "password", "development", "dev-key",
                     "test", "example", "goodcry")


def production_mode() -> bool:
    """Production is ``GOODCRY_ENV=production``: secure cookies, a real secret required."""
    return os.environ.get("GOODCRY_ENV", "").strip().lower() == "production"


def secret_key_problem(key: str | None) -> str | None:
    """Why ``key`` is not fit to sign production sessions, or None when it is."""
    if not key:
        return "GOODCRY_SECRET_KEY is not set"
    if len(key) < MIN_SECRET_LENGTH:
        return (f"GOODCRY_SECRET_KEY is too short ({len(key)} characters; at least "
                f"{MIN_SECRET_LENGTH} random characters are needed)")
    if len(set(key)) < 10:
        return "GOODCRY_SECRET_KEY repeats too few characters to be random"
    lowered = key.lower()
    for word in WEAK_SECRET_WORDS:
        if word in lowered:
            return f"GOODCRY_SECRET_KEY contains the guessable word {word!r}"
    return None


def production_start_problem() -> str | None:
    """What forbids starting in production mode, or None (also None outside production)."""
    if not production_mode():
        return None
    problem = secret_key_problem(os.environ.get("GOODCRY_SECRET_KEY"))
    if problem:
        return (f"refusing to start with GOODCRY_ENV=production: {problem}. Generate one with: "
                "python3 -c 'import secrets; print(secrets.token_hex(32))'")
    return None


def init_app(app: Flask, api: Api) -> None:
    if production_mode():
        problem = production_start_problem()
        if problem:
            raise RuntimeError(problem)
        app.config.update(SESSION_COOKIE_SECURE=True, REMEMBER_COOKIE_SECURE=True,
                          PREFERRED_URL_SCHEME="https")

    csrf.init_app(app)
    # The JSON API authenticates with bearer tokens, which a browser never sends on its own;
    # every other blueprint (the pages people use) keeps CSRF protection.
    for blueprint in app.blueprints.values():
        if (blueprint.url_prefix or "").startswith("/api/"):
            csrf.exempt(blueprint)

    from web import ratelimit

    ratelimit.init_app(app, app.extensions["goodcry"].engine)

    @app.before_request
    def refuse_nul_characters() -> None:
        """No store keeps a NUL character: refuse one in the path, query or a form at the door
        (JSON bodies are checked field by field by the API's schemas)."""
        values = [request.path, *request.args.keys(), *request.args.values()]
        if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            values += [*request.form.keys(), *request.form.values()]
        if any("\x00" in value for value in values):
            abort(400, description="the request contains a NUL character")

    @app.after_request
    def headers(resp: Response) -> Response:
        resp.headers.setdefault("Content-Security-Policy", CSP)
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Referrer-Policy", "same-origin")
        resp.headers.setdefault("X-Frame-Options", "DENY")
        if production_mode():
            resp.headers.setdefault("Strict-Transport-Security",
                                    "max-age=31536000; includeSubDomains")
        return resp
