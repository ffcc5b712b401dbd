"""Spotify pages: connect, the OAuth callback, disconnect, and sending a session to Spotify.

URL names: ``spotify_pages.connection`` (the page to link from an account page),
``spotify_pages.connect`` and ``spotify_pages.disconnect`` (POST forms),
``spotify_pages.callback`` (Spotify's redirect URI), ``spotify_pages.connected``,
``spotify_pages.export_to_spotify`` (POST, for a "Send to Spotify" button on a session page).
"""

from __future__ import annotations

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user, login_required
from werkzeug.exceptions import ServiceUnavailable

from recommender import cry_sessions, spotify_connection
from recommender.errors import NotFound
from recommender.services.spotify import SpotifyError, SpotifyInvalidGrant, SpotifyUnavailable
from recommender.spotify_connection import OAuthStateRejected, SpotifyNotConnected
from recommender.spotify_export import export_session
from web.api.spotify import export_settings, spotify_config, token_vault
from web.db import get_db
from web.security import csrf

bp = Blueprint("spotify_pages", __name__, template_folder="templates")


def _configured() -> bool:
    return bool(current_app.config.get("SPOTIFY_CLIENT_ID"))


@bp.route("/spotify")
@login_required
def connection():
    """Whether Spotify is connected, with a Connect or Disconnect button."""
    return render_template(
        "spotify.html", configured=_configured(),
        connected=spotify_connection.is_connected(get_db(), current_user.id))


@bp.route("/spotify/connect", methods=["POST"])
@login_required
def connect():
    """Send the browser to Spotify to say yes (PKCE; the state is bound to this person)."""
    csrf.protect()
    try:
        config = spotify_config()
    except ServiceUnavailable:
        abort(503, description="Spotify is not set up on this server yet.")
    url = spotify_connection.begin_connect(get_db(), token_vault(), config, current_user.id)
    return redirect(url, code=303)


@bp.route("/spotify/callback")
def callback():
    """Spotify's redirect back: the state names the person, so no sign-in is needed."""
    state = request.args.get("state", "")
    db = get_db()
    if request.args.get("error"):
        try:
            spotify_connection.consume_state(db, token_vault(), state)
        except OAuthStateRejected as exc:
            abort(400, description=exc.message)
        flash("Spotify was not connected: the request was declined.")
        return redirect(url_for("spotify_pages.connected", declined=1))
    code = request.args.get("code", "")
    if not code:
        abort(400, description="Spotify sent no authorization code.")
    try:
        spotify_connection.complete_connect(db, token_vault(), spotify_config(), state, code)
    except OAuthStateRejected as exc:
        abort(400, description=exc.message)
    except SpotifyInvalidGrant:
        abort(400, description="Spotify did not accept this sign-in. Please connect again.")
    except SpotifyUnavailable:
        abort(503, description="Spotify could not be reached. Please try connecting again.")
    except SpotifyError:
        abort(502, description="Spotify answered in a way we did not expect. Please try again.")
    return redirect(url_for("spotify_pages.connected"), code=303)


@bp.route("/spotify/connected")
def connected():
    """Where the callback lands: says the account is connected (or that it was declined)."""
    declined = bool(request.args.get("declined"))
    return render_template("spotify_connected.html", declined=declined)


@bp.route("/spotify/disconnect", methods=["POST"])
@login_required
def disconnect():
    """Forget the Spotify tokens."""
    csrf.protect()
    spotify_connection.disconnect(get_db(), current_user.id)
    flash("Spotify is disconnected. Your sessions and playlists are untouched.")
    return redirect(url_for("spotify_pages.connection"))


@bp.route("/sessions/<session_id>/spotify", methods=["POST"])
@login_required
def export_to_spotify(session_id: str):
    """Send a session to Spotify (or resume sending it) and come back to the session."""
    csrf.protect()
    db = get_db()
    try:
        session = cry_sessions.get_session(db, current_user.id, session_id)
    except NotFound:
        abort(404, description="We could not find that session.")
    try:
        outcome = export_session(db, export_settings(), current_user.id, session)
    except SpotifyNotConnected as exc:
        flash(f"Spotify is not connected: {exc.message}")
        return redirect(url_for("spotify_pages.connection"))
    except ServiceUnavailable:
        abort(503, description="Spotify is not set up on this server yet.")
    if outcome.status == "done":
        flash(f"Sent to Spotify: {outcome.added} songs in a private playlist.")
    elif outcome.status == "pending":
        flash(f"Spotify asked us to slow down; we will carry on in about "
              f"{outcome.retry_after_s or 1} seconds. Nothing is lost.")
    else:
        flash(f"Spotify is having trouble; {outcome.added} songs are in so far. Try again soon.")
    return redirect(url_for("pages.session_page", session_id=session_id))


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
