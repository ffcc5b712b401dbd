"""Bearer-token authentication for the JSON API."""

from __future__ import annotations

from functools import wraps

from flask import g, request

from recommender.accounts import user_for_token
from recommender.errors import Unauthorised
from web.db import get_db

BEARER = [{"bearerAuth": []}]


def current_user_id() -> str:
    return g.api_user.id


def token_required(view):
    """Let the view run only for a valid ``Authorization: Bearer <token>``."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorised("send Authorization: Bearer <token>", code="unauthorized")
        user = user_for_token(get_db(), token.strip())
        if user is None:
            raise Unauthorised("the token is not valid", code="unauthorized")
        g.api_user = user
        return view(*args, **kwargs)

    return wrapped
