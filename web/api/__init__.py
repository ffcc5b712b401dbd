"""The JSON API under /api/v1 (flask-smorest generates its OpenAPI document)."""

from __future__ import annotations

from flask import Flask
from flask_smorest import Api

API_PREFIX = "/api/v1"


def init_app(app: Flask) -> Api:
    app.config.update(
        API_TITLE="goodcry",
        API_VERSION="1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX=API_PREFIX,
        OPENAPI_JSON_PATH="openapi.json",
        API_SPEC_OPTIONS={
            "info": {"description": "Cry sessions: sad songs and films ranked for a person, "
                                    "paired with prompts tied to their memories, ending in "
                                    "aftercare."},
            "components": {"securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer"}}},
        },
    )
    api = Api(app)
    from web.api import accounts, catalog, health, me, memories, sessions, spotify

    for module in (health, accounts, catalog, sessions, memories, me, spotify):
        api.register_blueprint(module.blp)
    return api
