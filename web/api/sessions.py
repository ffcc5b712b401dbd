"""Cry sessions: create, read, list, rate, export."""

from flask import Response, jsonify
from flask_smorest import Blueprint

from recommender import cry_sessions
from recommender.care import care_document, screen_note
from recommender.cry_sessions import FeedbackInput
from recommender.errors import Conflict
from recommender.exports import FILE_TARGETS, export_file
from recommender.features import SessionRequest
from web.api.auth_token import BEARER, current_user_id, token_required
from web.api.schemas import (
    ErrorOut,
    ExportIn,
    FeedbackIn,
    Recorded,
    SessionOut,
    SessionRequestIn,
    SessionsOut,
    SessionWithFeedbackOut,
    SpotifyExportOut,
)
from web.db import get_db, store

blp = Blueprint("sessions", __name__, url_prefix="/api/v1/sessions",
                description="Cry sessions")


def session_with_feedback(db, session) -> dict:
    doc = cry_sessions.session_document(session)
    doc["feedback"] = cry_sessions.feedback_document(
        session.feedback, cry_sessions.session_reactions(db, session.id))
    return doc


@blp.route("", methods=["POST"])
@blp.arguments(SessionRequestIn())
@blp.response(201, SessionOut)
@blp.doc(security=BEARER)
@token_required
def create(body):
    """Build a cry session for the caller."""
    request = SessionRequest(
        moods=tuple(dict.fromkeys(body["moods"])), prompt=(body.get("prompt") or None),
        minutes=body["minutes"], intensity=body["intensity"],
        include_films=body["include_films"], exploration=body["exploration"],
    )
    db = get_db()
    document = cry_sessions.create_session_document(db, store().recommender, current_user_id(),
                                                    request)
    # The document is built in the contract's shape (SessionOut documents it); sent as it is
    # rather than copied field by field through the schema on the busiest endpoint.
    return jsonify(document), 201


@blp.route("", methods=["GET"])
@blp.response(200, SessionsOut)
@blp.doc(security=BEARER)
@token_required
def list_sessions():
    """The caller's sessions, newest first."""
    # Built in the contract's shape (SessionsOut documents it) and sent as it is: copied
    # field by field through the schema, a long history's list took a third longer.
    return jsonify({"sessions": cry_sessions.sessions_with_feedback(get_db(),
                                                                    current_user_id())})


@blp.route("/<session_id>", methods=["GET"])
@blp.response(200, SessionWithFeedbackOut)
@blp.alt_response(404, schema=ErrorOut)
@blp.doc(security=BEARER)
@token_required
def read(session_id):
    """One of the caller's sessions."""
    db = get_db()
    return session_with_feedback(db, cry_sessions.get_session(db, current_user_id(), session_id))


@blp.route("/<session_id>/feedback", methods=["POST"])
@blp.arguments(FeedbackIn)
@blp.response(201, Recorded)
@blp.alt_response(404, schema=ErrorOut)
@blp.doc(security=BEARER)
@token_required
def feedback(body, session_id):
    """Rate a session; sent again, it replaces the earlier rating."""
    fb = FeedbackInput(
        reactions=[(r["item_id"], r["reaction"]) for r in body["reactions"]],
        catharsis=body["catharsis"], mood_before=body["mood_before"],
        mood_after=body["mood_after"], note=body["note"],
    )
    recorded = cry_sessions.record_feedback(get_db(), current_user_id(), session_id, fb)
    answer = {"session_id": session_id, "recorded": recorded}
    # Kept by the note's digest: this worker's next session for the person reads it back.
    verdict = screen_note(fb.note)
    if verdict.crisis:
        answer["care"] = care_document(verdict)
    return answer


@blp.route("/<session_id>/export", methods=["POST"])
@blp.arguments(ExportIn)
@blp.response(200, SpotifyExportOut,
              description="Spotify export status; files come back as their own media type")
@blp.alt_response(404, schema=ErrorOut)
@blp.alt_response(409, schema=ErrorOut, description="Spotify is not connected")
@blp.doc(security=BEARER)
@token_required
def export(body, session_id):
    """Export a session to Spotify or as a file (m3u8, xspf, csv, letterboxd)."""
    db = get_db()
    session = cry_sessions.get_session(db, current_user_id(), session_id)
    target = body["target"]
    if target in FILE_TARGETS:
        file = export_file(session, target)
        return Response(file.content, mimetype=file.mimetype, headers={
            "Content-Disposition": f'attachment; filename="{file.filename}"'})
    from web.api.spotify import export_to_spotify

    result = export_to_spotify(db, current_user_id(), session)
    if result is None:
        raise Conflict("connect Spotify first", code="spotify_not_connected")
    return result
