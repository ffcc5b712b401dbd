"""The caller's own account and data."""

from flask import g
from flask_smorest import Blueprint

from recommender import accounts
from recommender.personal_data import export_person
from recommender.store.models import SpotifyConnection
from web.api.auth_token import BEARER, current_user_id, token_required
from web.api.schemas import MeOut
from web.db import get_db

blp = Blueprint("me", __name__, url_prefix="/api/v1/me", description="My account and data")


@blp.route("", methods=["GET"])
@blp.response(200, MeOut)
@blp.doc(security=BEARER)
@token_required
def me():
    """Who the token belongs to."""
    db = get_db()
    return {"user_id": g.api_user.id, "username": g.api_user.username,
            "spotify_connected": db.get(SpotifyConnection, g.api_user.id) is not None}


@blp.route("/export", methods=["GET"])
@blp.response(200)
@blp.doc(security=BEARER)
@token_required
def export_all():
    """Everything stored about the caller, as one JSON document."""
    return export_person(get_db(), current_user_id())


@blp.route("", methods=["DELETE"])
@blp.response(204)
@blp.doc(security=BEARER)
@token_required
def delete_me():
    """Delete the caller's account and everything stored about them."""
    accounts.delete_user(get_db(), current_user_id())
