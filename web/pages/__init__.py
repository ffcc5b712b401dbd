"""Server-rendered pages for people: sign-up, request, session, rating, history, memories."""

from __future__ import annotations

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
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

from recommender import accounts, cry_sessions, memories
from recommender.care import care_document, screen_texts
from recommender.cry_sessions import FeedbackInput
from recommender.errors import Conflict, GoodcryError, NotFound
from recommender.exports import FILE_TARGETS, export_file
from recommender.features import SessionRequest
from recommender.store.models import User
from recommender.vocabulary import default_vocabulary
from web.db import get_db, store
from web.pages.forms import (
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


class PageUser(UserMixin):
    def __init__(self, user: User):
        self.id = user.id
        self.username = user.username


@login_manager.user_loader
def load_user(user_id: str) -> PageUser | None:
    user = get_db().get(User, user_id)
    return PageUser(user) if user else None


def _split(text: str | None) -> list[str]:
    return [p.strip() for p in (text or "").split(",") if p.strip()]


@bp.route("/")
def index():
    """The request form (or a welcome for people not signed in)."""
    if not current_user.is_authenticated:
        return render_template("welcome.html")
    return render_template("request.html", form=SessionRequestForm(),
                           moods=default_vocabulary().moods)


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
            return redirect(url_for("pages.index"))
    return render_template("signup.html", form=form), 422 if form.errors else 200


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
    return render_template("signin.html", form=form), 422 if form.errors else 200


@bp.route("/signout", methods=["POST"])
def signout():
    """Sign out."""
    logout_user()
    return redirect(url_for("pages.index"))


@bp.route("/sessions", methods=["POST"])
@login_required
def create_session():
    """Build a session from the request form."""
    form = SessionRequestForm()
    if not form.validate_on_submit():
        return render_template("request.html", form=form,
                               moods=default_vocabulary().moods), 422
    req = SessionRequest(
        moods=tuple(form.moods.data or ()), prompt=(form.prompt.data or "").strip() or None,
        minutes=form.minutes.data, intensity=int(form.intensity.data or 3),
        include_films=bool(form.include_films.data),
        exploration=form.exploration.data or "balanced",
    )
    session = cry_sessions.create_session(get_db(), store().recommender, current_user.id, req)
    return redirect(url_for("pages.session_page", session_id=session.id))


def _own_session(session_id: str):
    try:
        return cry_sessions.get_session(get_db(), current_user.id, session_id)
    except NotFound:
        abort(404, description="We could not find that session.")


@bp.route("/sessions/<session_id>", methods=["GET", "POST"])
@login_required
def session_page(session_id: str):
    """A session: its arc, prompts and reasons, and the rating form."""
    db = get_db()
    session = _own_session(session_id)
    doc = cry_sessions.session_document(session)
    reactions = {r.item_id: r.reaction for r in cry_sessions.session_reactions(db, session.id)}
    form_class = feedback_form_class([i["item_id"] for i in doc["items"]])
    fb = session.feedback
    form = form_class(data={
        "catharsis": str(fb.catharsis) if fb and fb.catharsis else None,
        "mood_before": fb.mood_before if fb else None,
        "mood_after": fb.mood_after if fb else None,
        "note": fb.note if fb else None,
        **{f"r_{k}": v for k, v in reactions.items()},
    }) if request.method == "GET" else form_class()
    status = 200
    if request.method == "POST":
        if form.validate_on_submit():
            picked = [(i["item_id"], getattr(form, f"r_{i['item_id']}").data)
                      for i in doc["items"]]
            cry_sessions.record_feedback(db, current_user.id, session.id, FeedbackInput(
                reactions=[(item_id, r) for item_id, r in picked if r],
                catharsis=int(form.catharsis.data) if form.catharsis.data else None,
                mood_before=form.mood_before.data, mood_after=form.mood_after.data,
                note=(form.note.data or "").strip() or None,
            ))
            flash("Thank you. Your rating is saved; you can change it any time.")
            return redirect(url_for("pages.session_page", session_id=session.id) + "#rate")
        status = 422
    memory_titles = {m.id: m.title for m in memories.list_memories(db, current_user.id)}
    phases = []
    for item in doc["items"]:
        if not phases or phases[-1]["phase"] != item["phase"]:
            phases.append({"phase": item["phase"], "items": []})
        phases[-1]["items"].append(item)
    return render_template("session.html", session=doc, phases=phases, form=form,
                           memory_titles=memory_titles, targets=FILE_TARGETS,
                           rated=fb is not None), status


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
    """Past sessions."""
    sessions = cry_sessions.list_sessions(get_db(), current_user.id)
    return render_template("history.html", sessions=sessions)


@bp.route("/memories", methods=["GET", "POST"])
@login_required
def memories_page():
    """Memories: list and add."""
    db = get_db()
    form = MemoryForm()
    care = None
    status = 200
    if request.method == "POST":
        if form.validate_on_submit():
            memory = memories.add_memory(db, current_user.id, {
                "title": form.title.data, "text": form.text.data or "",
                "people": _split(form.people.data), "places": _split(form.places.data),
                "tags": _split(form.tags.data), "when": form.when.data or None})
            verdict = screen_texts(memory.title, memory.text)
            if verdict.crisis:
                care = care_document(verdict)
            else:
                flash("Memory kept. Only you can see it.")
                return redirect(url_for("pages.memories_page"))
        else:
            status = 422
    return render_template("memories.html", form=form, care=care,
                           memories=memories.list_memories(db, current_user.id)), status


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


@bp.route("/help")
def help_page():
    """What goodcry is and is not, and where to find help."""
    return render_template("help.html", care=care_document(screen_texts()))


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    app.register_blueprint(bp)
