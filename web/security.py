"""CSRF on every form, security headers on every answer."""

from __future__ import annotations

from flask import Flask, Response
from flask_smorest import Api
from flask_wtf.csrf import CSRFProtect

csrf = CSRFProtect()

CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'self'"
)


def init_app(app: Flask, api: Api) -> None:
    csrf.init_app(app)
    # The JSON API authenticates with bearer tokens, which a browser never sends on its own.
    for name, blueprint in app.blueprints.items():
        if name != "pages" and name != "api-docs":
            csrf.exempt(blueprint)

    @app.after_request
    def headers(resp: Response) -> Response:
        resp.headers.setdefault("Content-Security-Policy", CSP)
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Referrer-Policy", "same-origin")
        resp.headers.setdefault("X-Frame-Options", "DENY")
        return resp
