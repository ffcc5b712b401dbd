"""Server-rendered pages for people: request, session, rating, history, memories, account."""

from __future__ import annotations

import json
from datetime import date

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import (
    LoginManager,
    UserMixin,
    current_user,
    login_required,
    login_user,
    logout_user,
)
from flask_wtf.csrf import CSRFError

from recommender import accounts, cry_sessions, memories
from recommender.care import care_document, screen_note, screen_texts
from recommender.cry_sessions import FeedbackInput
from recommender.errors import Conflict, GoodcryError, NotFound
from recommender.exports import FILE_TARGETS, export_file
from recommender.features import SessionRequest
from recommender.history import person_history
from recommender.personal_data import export_person
from recommender.shown import session_count
from recommender.store.models import SpotifyConnection, User
from recommender.vocabulary import default_vocabulary
from web.db import get_db, store
from web.pages.charts import history_charts
from web.pages.forms import (
    CATHARSIS_LABELS,
    DeleteAccountForm,
    MemoryForm,
    SessionRequestForm,
    SignInForm,
    SignUpForm,
    feedback_form_class,
)

bp = Blueprint("pages", __name__)
login_manager = LoginManager()
login_manager.login_view = "pages.signin"
login_manager.login_message = "Please sign in first."

PHASE_NOTES = {
    "settle": "Arrive. Nothing has to happen yet.",
    "deepen": "Let it come closer.",
    "release": "If tears come, let them.",
    "aftercare": "Come back gently.",
}
# Spotify pages live in their own blueprint (web/pages/spotify.py); link to them only when
# it is registered, under whichever name it uses.
SPOTIFY_CONNECT = ("spotify_pages.connect_page", "spotify_pages.connection")
SPOTIFY_EXPORT = ("spotify_pages.export_to_spotify", "spotify_pages.export_session")


class PageUser(UserMixin):
    def __init__(self, user: User):
        self.id = user.id
        self.username = user.username


@login_manager.user_loader
def load_user(user_id: str) -> PageUser | None:
    user = get_db().get(User, user_id)
    return PageUser(user) if user else None


def _url_if_registered(endpoints: tuple[str, ...], **values) -> str | None:
    for endpoint in endpoints:
        if endpoint in current_app.view_functions:
            return url_for(endpoint, **values)
    return None


def _status(form) -> int:
    return 422 if form.errors else 200


def _render_request(form: SessionRequestForm, status: int = 200):
    return render_template("request.html", form=form,
                           moods=default_vocabulary().moods), status


@bp.errorhandler(CSRFError)
def form_expired(exc: CSRFError):
    """A form without its token (too old, or sent from elsewhere): say so kindly."""
    return render_template("error.html", status=400, message=(
        "this form was open for a long while or came from another page, so it was not "
        "sent; please go back, reload the page and try again")), 400


@bp.route("/")
def index():
    """The request form (or a welcome for people not signed in)."""
    if not current_user.is_authenticated:
        return render_template("welcome.html")
    return _render_request(SessionRequestForm())


@bp.route("/signup", methods=["GET", "POST"])
def signup():
    """Create an account."""
    form = SignUpForm()
    if form.validate_on_submit():
        try:
            user = accounts.register(get_db(), form.username.data, form.password.data)
        except Conflict:
            form.username.errors.append("That username is taken; try another.")
        except GoodcryError as exc:
            form.username.errors.append(exc.message[0].upper() + exc.message[1:] + ".")
        else:
            login_user(PageUser(user))
            flash("Welcome. Whenever you are ready, pick a feeling and start.")
            return redirect(url_for("pages.index"))
    return render_template("signup.html", form=form), _status(form)


@bp.route("/signin", methods=["GET", "POST"])
def signin():
    """Sign in."""
    form = SignInForm()
    if form.validate_on_submit():
        try:
            user = accounts.authenticate(get_db(), form.username.data, form.password.data)
        except GoodcryError:
            form.password.errors.append("That username and password do not match.")
        else:
            login_user(PageUser(user))
            target = request.args.get("next", "")
            if not target.startswith("/") or target.startswith("//"):
                target = url_for("pages.index")
            return redirect(target)
    return render_template("signin.html", form=form), _status(form)


@bp.route("/signout", methods=["POST"])
def signout():
    """Sign out."""
    logout_user()
    flash("You are signed out. Take care of yourself.")
    return redirect(url_for("pages.index"))


@bp.route("/sessions", methods=["POST"])
@login_required
def create_session():
    """Build a session from the request form."""
    form = SessionRequestForm()
    if not form.validate_on_submit():
        return _render_request(form, 422)
    req = SessionRequest(
        moods=tuple(form.moods.data or ()), prompt=(form.prompt.data or "").strip() or None,
        minutes=form.minutes.data, intensity=int(form.intensity.data or 3),
        include_films=form.include_films.data != "no",
        exploration=form.exploration.data or "balanced",
    )
    session = cry_sessions.create_session_document(get_db(), store().recommender,
                                                   current_user.id, req)
    return redirect(url_for("pages.session_page", session_id=session["id"]))


def _own_session(session_id: str):
    try:
        return cry_sessions.get_session(get_db(), current_user.id, session_id)
    except NotFound:
        abort(404, description="We could not find that session.")


def _phases(items: list[dict]) -> list[dict]:
    """Items grouped by phase, each with the minute it starts at."""
    phases: list[dict] = []
    elapsed = 0
    for item in items:
        if not phases or phases[-1]["phase"] != item["phase"]:
            phases.append({"phase": item["phase"], "note": PHASE_NOTES.get(item["phase"], ""),
                           "items": [], "start_s": elapsed, "duration_s": 0})
        phases[-1]["items"].append({**item, "start_s": elapsed})
        phases[-1]["duration_s"] += item["duration_s"]
        elapsed += item["duration_s"]
    return phases


@bp.route("/sessions/<session_id>")
@login_required
def session_page(session_id: str):
    """A session: its arc in phases, each item with its prompt and reason, then aftercare."""
    session = _own_session(session_id)
    doc = cry_sessions.session_document(session)
    db = get_db()
    memory_titles = {m.id: m.title for m in memories.list_memories(db, current_user.id)}
    spotify_export_url = (
        _url_if_registered(SPOTIFY_EXPORT, session_id=session.id)
        if db.get(SpotifyConnection, current_user.id) is not None else None)
    return render_template("session.html", session=doc, phases=_phases(doc["items"]),
                           memory_titles=memory_titles, rated=session.feedback is not None,
                           spotify_export_url=spotify_export_url)


@bp.route("/sessions/<session_id>/rate", methods=["GET", "POST"])
@login_required
def rate_session(session_id: str):
    """How it went: one tap per item, release, mood before and after, a private note."""
    db = get_db()
    session = _own_session(session_id)
    doc = cry_sessions.session_document(session)
    form_class = feedback_form_class([i["item_id"] for i in doc["items"]])
    fb = session.feedback
    if request.method == "GET":
        reactions = {r.item_id: r.reaction for r in cry_sessions.session_reactions(db, session.id)}
        form = form_class(data={
            "catharsis": str(fb.catharsis) if fb and fb.catharsis else None,
            "mood_before": str(fb.mood_before) if fb and fb.mood_before else None,
            "mood_after": str(fb.mood_after) if fb and fb.mood_after else None,
            "note": fb.note if fb else None,
            **{f"r_{k}": v for k, v in reactions.items()},
        })
    else:
        form = form_class()
    care = None
    if form.validate_on_submit():
        picked = [(i["item_id"], form[f"r_{i['item_id']}"].data) for i in doc["items"]]
        note = (form.note.data or "").strip() or None
        cry_sessions.record_feedback(db, current_user.id, session.id, FeedbackInput(
            reactions=[(item_id, r) for item_id, r in picked if r],
            catharsis=int(form.catharsis.data) if form.catharsis.data else None,
            mood_before=int(form.mood_before.data) if form.mood_before.data else None,
            mood_after=int(form.mood_after.data) if form.mood_after.data else None,
            note=note,
        ))
        verdict = screen_note(note)
        if not verdict.crisis:
            flash("Thank you. Your rating is saved; you can change it any time.")
            return redirect(url_for("pages.history"))
        care = care_document(verdict)
        fb = session.feedback
    return render_template("rate.html", session=doc, form=form, care=care,
                           rated=fb is not None, catharsis_labels=CATHARSIS_LABELS,
                           ), _status(form)


@bp.route("/sessions/<session_id>/download/<target>")
@login_required
def download(session_id: str, target: str):
    """The session as a file for another player."""
    if target not in FILE_TARGETS:
        abort(404, description="We do not know that file format.")
    file = export_file(_own_session(session_id), target)
    return Response(file.content, mimetype=file.mimetype, headers={
        "Content-Disposition": f'attachment; filename="{file.filename}"'})


@bp.route("/history")
@login_required
def history():
    """Past sessions, and charts of how they felt."""
    db = get_db()
    story = person_history(db, current_user.id)
    return render_template("history.html", sessions=cry_sessions.list_sessions(db, current_user.id),
                           story=story, charts=history_charts(story))


def _memory_or_404(memory_id: str):
    try:
        return memories.get_memory(get_db(), current_user.id, memory_id)
    except NotFound:
        abort(404, description="We could not find that memory.")


def _kept_memory_care(memory) -> dict | None:
    verdict = screen_texts(memory.title, memory.text)
    return care_document(verdict) if verdict.crisis else None


@bp.route("/memories", methods=["GET", "POST"])
@login_required
def memories_page():
    """Memories: list and add."""
    db = get_db()
    form = MemoryForm()
    care = None
    if form.validate_on_submit():
        memory = memories.add_memory(db, current_user.id, form.fields_document())
        care = _kept_memory_care(memory)
        if care is None:
            flash("Memory kept. Only you can see it.")
            return redirect(url_for("pages.memories_page") + f"#memory-{memory.id}")
        form = MemoryForm(formdata=None)
    return render_template("memories.html", form=form, care=care,
                           memories=memories.list_memories(db, current_user.id)), _status(form)


@bp.route("/memories/<memory_id>/edit", methods=["GET", "POST"])
@login_required
def edit_memory(memory_id: str):
    """Change a memory."""
    memory = _memory_or_404(memory_id)
    if request.method == "GET":
        form = MemoryForm(data={
            "title": memory.title, "text": memory.text, "when": memory.when,
            "people": ", ".join(memory.people or []), "places": ", ".join(memory.places or []),
            "tags": ", ".join(memory.tags or [])})
    else:
        form = MemoryForm()
    care = None
    if form.validate_on_submit():
        memory = memories.update_memory(get_db(), current_user.id, memory.id,
                                        form.fields_document())
        care = _kept_memory_care(memory)
        if care is None:
            flash("Memory saved.")
            return redirect(url_for("pages.memories_page") + f"#memory-{memory.id}")
    return render_template("memory_edit.html", form=form, memory=memory,
                           care=care), _status(form)


@bp.route("/memories/<memory_id>/delete", methods=["POST"])
@login_required
def delete_memory(memory_id: str):
    """Forget a memory."""
    try:
        memories.delete_memory(get_db(), current_user.id, memory_id)
    except NotFound:
        abort(404, description="We could not find that memory.")
    flash("Memory deleted.")
    return redirect(url_for("pages.memories_page"))


@bp.route("/account")
@login_required
def account():
    """Account: Spotify, a copy of everything, signing out, deleting it all."""
    db = get_db()
    user = db.get(User, current_user.id)
    return render_template(
        "account.html", user=user, spotify_url=_url_if_registered(SPOTIFY_CONNECT),
        spotify_connected=db.get(SpotifyConnection, current_user.id) is not None,
        counts={"sessions": session_count(db, current_user.id),
                "memories": len(memories.list_memories(db, current_user.id))})


@bp.route("/account/export")
@login_required
def export_account():
    """Everything stored about me, as the same JSON document the API gives."""
    document = export_person(get_db(), current_user.id)
    filename = f"goodcry-{current_user.username}-{date.today().isoformat()}.json"
    return Response(json.dumps(document, ensure_ascii=False, indent=2),
                    mimetype="application/json",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"',
                             "Cache-Control": "no-store"})


@bp.route("/account/delete", methods=["GET", "POST"])
@login_required
def delete_account():
    """Delete the account and everything in it, after a confirmation."""
    form = DeleteAccountForm()
    if form.validate_on_submit():
        try:
            accounts.authenticate(get_db(), current_user.username, form.password.data)
        except GoodcryError:
            form.password.errors.append("That is not your password; nothing was deleted.")
        else:
            accounts.delete_user(get_db(), current_user.id)
            logout_user()
            flash("Your account and everything in it are deleted. Be gentle with yourself.")
            return redirect(url_for("pages.index"))
    return render_template("account_delete.html", form=form), _status(form)


@bp.route("/help")
def help_page():
    """What goodcry is and is not, and where to find help."""
    return render_template("help.html", care=care_document(screen_texts()))


@bp.app_template_filter("duration")
def duration(seconds: int | None) -> str:
    """Seconds as words: '4 min', '2 h 5 min'."""
    minutes = round((seconds or 0) / 60)
    if minutes < 60:
        return f"{max(minutes, 1)} min"
    hours, rest = divmod(minutes, 60)
    return f"{hours} h {rest} min" if rest else f"{hours} h"


@bp.app_template_filter("clock")
def clock(seconds: int | None) -> str:
    """Seconds as a clock position: '0:00', '1:04:30'."""
    minutes, secs = divmod(int(seconds or 0), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    app.register_blueprint(bp)
