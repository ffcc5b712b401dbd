"""The HTML pages through the Flask test client with CSRF on: the no-JavaScript flow,
field-level errors that keep what was typed, memories, export and account deletion."""

from __future__ import annotations

import json
import re
from html import unescape

import pytest

from recommender.history import person_history
from recommender.personal_data import export_person
from recommender.store.models import User
from tests.conftest import PASSWORD

REQUEST_DEFAULTS = {"minutes": "45", "intensity": "3", "include_films": "yes",
                    "exploration": "balanced"}


def token(html: str) -> str:
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html)
    assert match, "the page has no CSRF token"
    return match.group(1)


def page(client, path: str) -> str:
    answer = client.get(path)
    assert answer.status_code == 200, (path, answer.status_code)
    return answer.get_data(as_text=True)


def send(client, path: str, data: dict, *, form_page: str | None = None):
    """Submit a form the way a browser without JavaScript does: token from the page."""
    html = page(client, form_page or path)
    return client.post(path, data={"csrf_token": token(html), **data})


def errors(html: str) -> list[str]:
    return [unescape(e) for e in re.findall(r'<p class="error" id="[^"]+">([^<]+)</p>', html)]


def sign_up(client, username: str = "river") -> None:
    answer = send(client, "/signup", {"username": username, "password": PASSWORD,
                                      "confirm": PASSWORD})
    assert answer.status_code == 302, errors(answer.get_data(as_text=True))


def new_session(client, **fields) -> str:
    answer = send(client, "/sessions", {**REQUEST_DEFAULTS, **fields}, form_page="/")
    assert answer.status_code == 302, errors(answer.get_data(as_text=True))
    return answer.headers["Location"].rsplit("/", 1)[-1]


def db_of(app):
    return app.extensions["goodcry"].session_factory()


def test_sign_up_errors_are_next_to_the_field_and_keep_what_was_typed(client):
    answer = send(client, "/signup", {"username": "ri", "password": "short",
                                      "confirm": "other"})
    html = answer.get_data(as_text=True)
    assert answer.status_code == 422
    assert errors(html) == ["A username has 3 to 64 characters.",
                            "A password needs at least 8 characters.",
                            "The two passwords are not the same."]
    assert 'value="ri"' in html
    assert 'aria-invalid="true"' in html
    assert 'aria-describedby="username-hint username-error"' in html
    assert "Something needs a second look" in html  # the summary at the top links to each

    sign_up(client, "river")
    client.post("/signout", data={"csrf_token": token(page(client, "/account"))})
    answer = send(client, "/signup", {"username": "river", "password": PASSWORD,
                                      "confirm": PASSWORD})
    assert errors(answer.get_data(as_text=True)) == ["That username is taken; try another."]
    answer = send(client, "/signup", {"username": "two words", "password": PASSWORD,
                                      "confirm": PASSWORD})
    assert errors(answer.get_data(as_text=True)) == ["A username cannot contain spaces."]


def test_a_form_without_its_token_is_refused_kindly(client):
    answer = client.post("/signup", data={"username": "river", "password": PASSWORD,
                                          "confirm": PASSWORD})
    assert answer.status_code == 400
    assert "please go back, reload the page and try again" in answer.get_data(as_text=True)
    answer = client.post("/signin", data={"username": "river", "password": PASSWORD})
    assert answer.status_code == 400


def test_sign_in_errors(client):
    answer = send(client, "/signin", {"username": "", "password": ""})
    assert errors(answer.get_data(as_text=True)) == ["Enter your username.",
                                                     "Enter your password."]
    answer = send(client, "/signin", {"username": "nobody", "password": "whatever1"})
    html = answer.get_data(as_text=True)
    assert answer.status_code == 422
    assert errors(html) == ["That username and password do not match."]
    assert 'value="nobody"' in html


def test_request_form_errors_in_plain_words(client):
    sign_up(client)
    html = page(client, "/")
    # Sensible defaults: 45 minutes, depth 3, films, a mix; nothing else needed but a mood.
    assert 'value="45"' in html
    assert re.search(r'value="3"[^>]*checked|checked[^>]*value="3"', html)
    assert re.search(r'value="yes"[^>]*checked|checked[^>]*value="yes"', html)

    answer = send(client, "/sessions", {**REQUEST_DEFAULTS}, form_page="/")
    assert answer.status_code == 422
    assert errors(answer.get_data(as_text=True)) == [
        "Pick a feeling, or write a few words below, or both."]

    answer = send(client, "/sessions", {**REQUEST_DEFAULTS, "minutes": "an hour",
                                        "prompt": "missing home"}, form_page="/")
    html = answer.get_data(as_text=True)
    assert errors(html) == ["Write the minutes as a whole number, like 45."]
    assert 'value="an hour"' in html and "missing home" in html
    assert "<details class=\"options\" open>" in html  # the error is not hidden away

    answer = send(client, "/sessions", {**REQUEST_DEFAULTS, "moods": ["grief", "rage"],
                                        "minutes": "500", "intensity": "9"}, form_page="/")
    assert errors(answer.get_data(as_text=True)) == [
        "We do not know that mood; pick one of these.",
        "Choose between 5 and 240 minutes.", "Pick a depth from 1 to 5."]


def test_the_whole_flow_works_without_javascript(client, app):
    sign_up(client)
    sid = new_session(client, moods=["grief"])
    html = page(client, f"/sessions/{sid}")
    for phase in ("Settle", "Deepen", "Release", "Aftercare"):
        assert f"<h2>{phase}</h2>" in html
    assert html.count('class="prompt"') == html.count('class="item"') >= 4
    assert html.count('class="why"') == html.count('class="item"')
    assert "open.spotify.com/" in html
    assert "Afterwards" in html and "988" in html
    # The guide script is self-hosted; nothing inline (the CSP allows only 'self').
    assert re.findall(r"<script[^>]*>", html) == [
        '<script src="/static/session.js" defer>']
    assert " style=" not in html
    assert 'class="crisis' not in html

    rate_html = page(client, f"/sessions/{sid}/rate")
    item_fields = re.findall(r'name="(r_[^"]+)" type="radio" value="cried"', rate_html)
    assert item_fields and len(item_fields) == html.count('class="item"')
    answer = client.post(f"/sessions/{sid}/rate", data={
        "csrf_token": token(rate_html), item_fields[0]: "cried", item_fields[1]: "moved",
        item_fields[2]: "never_again", "catharsis": "4", "mood_before": "3",
        "mood_after": "6", "note": "lighter"})
    assert answer.status_code == 302 and answer.headers["Location"].endswith("/history")

    again = page(client, f"/sessions/{sid}/rate")  # editable later, prefilled
    assert re.search(rf'name="{item_fields[0]}" type="radio" value="cried" checked', again) \
        or re.search(rf'checked id="[^"]+" name="{item_fields[0]}" type="radio" value="cried"',
                     again)
    assert "lighter" in again

    history = page(client, "/history")
    assert history.count('<svg xmlns="http://www.w3.org/2000/svg"') == 3
    assert history.count('role="img"') == 3 and history.count("<desc") == 3
    assert "<table>" in history and " style=" not in history
    assert "ns0:" not in history and "<svg:" not in history
    with db_of(app) as db:
        user = db.query(User).filter_by(username="river").one()
        story = person_history(db, user.id)
    assert story.rated == 1 and story.timeline[0].mood_change == 3
    assert story.effects and all(0 <= e.score <= 1 for e in story.effects)


def test_rating_errors_keep_the_note_and_crisis_words_bring_care(client):
    sign_up(client)
    sid = new_session(client, prompt="my dog died last week")
    answer = send(client, f"/sessions/{sid}/rate", {"mood_before": "11", "catharsis": "0",
                                                     "note": "I keep seeing her bowl"})
    html = answer.get_data(as_text=True)
    assert answer.status_code == 422
    assert errors(html) == ["Pick a number from 1 to 5.", "Pick a number from 1 to 10."]
    assert "I keep seeing her bowl" in html

    answer = send(client, f"/sessions/{sid}/rate", {"note": "I want to end my life"})
    html = answer.get_data(as_text=True)
    assert answer.status_code == 200
    assert "Your note is saved. Are you okay?" in html and "116 123" in html
    assert "I want to end my life" in html  # never hides the person's words


def test_memories_add_edit_delete_with_errors(client, app):
    sign_up(client)
    answer = send(client, "/memories", {"title": "", "text": "the lake at dusk",
                                        "people": "Dad"})
    html = answer.get_data(as_text=True)
    assert answer.status_code == 422
    assert errors(html) == ["Give the memory a short name, like “Dad's workshop”."]
    assert "the lake at dusk" in html and 'value="Dad"' in html

    answer = send(client, "/memories", {"title": "Dad's workshop", "people": "Dad, Uncle Jo",
                                        "tags": "father, home", "text": "sawdust and radio"})
    assert answer.status_code == 302
    html = page(client, "/memories")
    memory_id = re.search(r'/memories/([0-9a-f]+)/edit', html).group(1)
    edit = page(client, f"/memories/{memory_id}/edit")
    assert 'value="Dad, Uncle Jo"' in edit and 'value="father, home"' in edit

    answer = send(client, f"/memories/{memory_id}/edit", {"title": "x" * 201})
    assert errors(answer.get_data(as_text=True)) == ["Keep the name under 200 characters."]
    answer = send(client, f"/memories/{memory_id}/edit", {
        "title": "Dad's workshop", "people": "Dad", "tags": "father, home, loss",
        "text": "sawdust and radio"})
    assert answer.status_code == 302
    assert "<li>loss</li>" in page(client, "/memories")

    # A memory that fits is named on the session page, with a way to edit it.
    sid = new_session(client, moods=["grief"], prompt="I miss my dad")
    session_html = unescape(page(client, f"/sessions/{sid}"))
    assert "Your memory: Dad's workshop" in session_html
    assert f"/memories/{memory_id}/edit" in session_html

    other = app.test_client()
    sign_up(other, "stranger")
    assert other.get(f"/memories/{memory_id}/edit").status_code == 404

    answer = client.post(f"/memories/{memory_id}/delete",
                         data={"csrf_token": token(page(client, "/memories"))})
    assert answer.status_code == 302
    assert f"memory-{memory_id}" not in page(client, "/memories")


def test_export_is_the_same_document_as_the_api(client, app):
    sign_up(client)
    new_session(client, moods=["longing"])
    send(client, "/memories", {"title": "Grandma's kitchen"})
    answer = client.get("/account/export")
    assert answer.status_code == 200
    assert answer.headers["Content-Disposition"].startswith(
        'attachment; filename="goodcry-river-')
    document = json.loads(answer.get_data(as_text=True))
    api_token = client.post("/api/v1/auth/token",
                            json={"username": "river", "password": PASSWORD}).get_json()["token"]
    from_api = client.get("/api/v1/me/export",
                          headers={"Authorization": f"Bearer {api_token}"}).get_json()
    assert document == from_api
    with db_of(app) as db:
        assert document == json.loads(json.dumps(export_person(db, document["user"]["user_id"])))


def test_delete_account_needs_the_password_then_removes_everything(client, app):
    sign_up(client)
    new_session(client, moods=["grief"])
    new_session(client, moods=["hope"])
    html = page(client, "/account")
    assert "/account/export" in html and "/account/delete" in html
    assert "<dt>Sessions</dt><dd>2</dd>" in html and "<dt>Memories</dt><dd>0</dd>" in html
    answer = send(client, "/account/delete", {"password": "not it at all"})
    assert answer.status_code == 422
    assert errors(answer.get_data(as_text=True)) == [
        "That is not your password; nothing was deleted."]
    with db_of(app) as db:
        assert db.query(User).filter_by(username="river").count() == 1

    answer = send(client, "/account/delete", {"password": PASSWORD})
    assert answer.status_code == 302
    with db_of(app) as db:
        assert db.query(User).filter_by(username="river").count() == 0
    assert client.get("/history").status_code == 302  # signed out: back to sign in
    answer = send(client, "/signin", {"username": "river", "password": PASSWORD})
    assert errors(answer.get_data(as_text=True)) == ["That username and password do not match."]


def test_account_links_to_spotify_when_those_pages_exist(client, app):
    sign_up(client)
    html = page(client, "/account")
    names = ("spotify_pages.connect_page", "spotify_pages.connection")
    registered = [n for n in names if n in app.view_functions]
    if registered:
        from flask import url_for
        with app.test_request_context():
            assert f'href="{url_for(registered[0])}"' in html
    else:
        assert "Connecting Spotify is not available here yet." in html


@pytest.mark.parametrize("path", ["/", "/signup", "/signin", "/help"])
def test_public_pages_render(client, path):
    html = page(client, path)
    assert '<main id="main"' in html and 'lang="en"' in html


def test_history_charts_are_drawn_once_for_the_same_numbers():
    """A history's charts are kept per worker by a digest of the numbers they show: the same
    numbers give the charts already drawn, any change draws them again."""
    from datetime import UTC, datetime, timedelta

    from recommender.history import PersonHistory, SessionPoint, TagEffect
    from web.pages import charts

    start = datetime(2026, 11, 1, 20, 0, tzinfo=UTC)
    points = [SessionPoint(f"s{k}", start + timedelta(days=k), 3, 5 + k % 3, 1 + k % 5)
              for k in range(12)]
    effects = [TagEffect("grief", "grief", "mood", 10, 6, 2),
               TagEffect("loss_parent", "loss of a parent", "theme", 4, 1, 1)]
    history = PersonHistory(12, 12, points, effects)
    first = charts.history_charts(history)
    assert [c.id for c in first] == ["chart-mood", "chart-catharsis", "chart-effects"]
    again = charts.history_charts(PersonHistory(12, 12, list(points), list(effects)))
    assert all(a is b for a, b in zip(first, again, strict=True))
    changed = [*points[:-1], SessionPoint("s11", points[-1].created_at, 3, 9, 5)]
    redrawn = charts.history_charts(PersonHistory(12, 12, changed, effects))
    assert redrawn[0] is not first[0] and redrawn[0].svg != first[0].svg
    with charts._drawn_lock:
        assert all(isinstance(key, bytes) for key in charts._drawn)
