"""Sign-up and tokens."""

from flask_smorest import Blueprint

from recommender import accounts
from web.api.schemas import Credentials, ErrorOut, Registered, TokenOut
from web.db import get_db

blp = Blueprint("accounts", __name__, url_prefix="/api/v1/auth", description="Accounts")


@blp.route("/register", methods=["POST"])
@blp.arguments(Credentials)
@blp.response(201, Registered)
@blp.alt_response(409, schema=ErrorOut, description="The username is taken")
def register(body):
    """Create an account and return its first token."""
    db = get_db()
    user = accounts.register(db, body["username"], body["password"])
    return {"user_id": user.id, "token": accounts.issue_token(db, user)}


@blp.route("/token", methods=["POST"])
@blp.arguments(Credentials)
@blp.response(200, TokenOut)
@blp.alt_response(401, schema=ErrorOut, description="Wrong username or password")
def token(body):
    """Exchange a username and password for a new token."""
    db = get_db()
    user = accounts.authenticate(db, body["username"], body["password"])
    return {"token": accounts.issue_token(db, user)}
