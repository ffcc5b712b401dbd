"""Nobody reaches anyone else's data: every route that takes an id, tried as another person,
is a 404 (never a 403 that leaks existence) and changes nothing.

The routes are enumerated from the app's url_map and cross-checked against the OpenAPI
document, so a route added later is covered without touching this file, or fails here
asking how to make the id it takes.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import JSON, String, Text, func, select

from recommender.store import models
from tests.conftest import PASSWORD, assert_error

MEMORY = {"title": "The orchard", "text": "ALICE-ONLY picking apples with Nan",
          "tags": ["nan"], "people": ["Nan"], "places": ["the orchard"], "when": "1999"}
NOTE = "ALICE-ONLY the second song undid me"


@pytest.fixture
def alices_things(alice):
    memory = alice.post("/api/v1/memories", json=MEMORY).get_json()
    session = alice.new_session(prompt="ALICE-ONLY the orchard is gone")
    items = [i["item_id"] for i in session["items"]]
    feedback = {"reactions": [{"item_id": items[0], "reaction": "cried"},
                              {"item_id": items[1], "reaction": "never_again"}],
                "catharsis": 4, "mood_before": 3, "mood_after": 6, "note": NOTE}
    assert alice.post(f"/api/v1/sessions/{session['id']}/feedback",
                      json=feedback).status_code == 201
    assert alice.post(f"/api/v1/sessions/{session['id']}/export",
                      json={"target": "csv"}).status_code == 200
    return {"session": session, "memory": memory, "items": items}


def id_values(things) -> dict[str, str]:
    """How to fill each path variable with one of alice's ids (or a harmless value)."""
    return {"session_id": things["session"]["id"], "memory_id": things["memory"]["id"],
            "target": "csv", "filename": "style.css"}


def bodies(things) -> dict[str, dict]:
    """A body that would be valid for the owner, per endpoint, so only ownership can refuse."""
    return {
        "sessions.feedback": {"reactions": [{"item_id": things["items"][0],
                                             "reaction": "skipped"}], "note": "bob was here"},
        "sessions.export": {"target": "csv"},
        "memories.patch": {"title": "bob's now"},
    }


def rules_with_ids(app, prefix: str):
    for rule in app.url_map.iter_rules():
        if rule.arguments and rule.rule.startswith(prefix) and rule.endpoint != "static":
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                yield rule, method


def fill(rule, values) -> str:
    missing = [a for a in rule.arguments if a not in values]
    assert not missing, (f"{rule.rule} takes {missing}: teach tests/test_isolation.py how to "
                         "make one of alice's")
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", lambda m: values[m.group(1)], rule.rule)


def snapshot(alice, things) -> dict:
    sid, mid = things["session"]["id"], things["memory"]["id"]
    return {"session": alice.get(f"/api/v1/sessions/{sid}").get_json(),
            "memory": alice.get(f"/api/v1/memories/{mid}").get_json(),
            "export": alice.get("/api/v1/me/export").get_json()["sessions"]}


def test_every_api_route_with_an_id_is_404_for_someone_else(app, alice, bob, alices_things):
    before = snapshot(alice, alices_things)
    values, body_for = id_values(alices_things), bodies(alices_things)
    tried = set()
    for rule, method in rules_with_ids(app, "/api/"):
        path = fill(rule, values)
        kw = {"json": body_for.get(rule.endpoint, {})} if method in ("POST", "PATCH", "PUT") \
            else {}
        answer = bob.client.open(path, method=method, headers=bob.headers, **kw)
        assert_error(answer, 404)
        assert "ALICE-ONLY" not in answer.get_data(as_text=True)
        tried.add((re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule), method.lower()))
    # the OpenAPI document names the same routes: none escaped the enumeration
    spec = app.test_client().get("/api/v1/openapi.json").get_json()
    documented = {(path, method) for path, ops in spec["paths"].items() if "{" in path
                  for method in ops if method in ("get", "post", "patch", "put", "delete")}
    assert documented <= tried, documented - tried
    assert {"/api/v1/sessions/{session_id}", "/api/v1/memories/{memory_id}",
            "/api/v1/sessions/{session_id}/feedback",
            "/api/v1/sessions/{session_id}/export"} <= {p for p, _ in tried}
    assert snapshot(alice, alices_things) == before


def test_every_page_with_an_id_is_404_for_someone_else(app, alice, alices_things):
    from tests.test_security import csrf_token, sign_up_on_the_page

    before = snapshot(alice, alices_things)
    browser = app.test_client()
    sign_up_on_the_page(browser, "bobpages")
    token = csrf_token(browser, "/memories")
    values = id_values(alices_things)
    tried = 0
    for rule, method in rules_with_ids(app, "/"):
        if rule.rule.startswith("/api/"):
            continue
        data = {"csrf_token": token} if method == "POST" else None
        answer = browser.open(fill(rule, values), method=method, data=data)
        assert answer.status_code == 404, (rule.rule, method, answer.status_code)
        assert "ALICE-ONLY" not in answer.get_data(as_text=True)
        tried += 1
    assert tried >= 3
    assert snapshot(alice, alices_things) == before


def test_lists_and_export_hold_only_the_callers_own(alice, bob, alices_things):
    bob_session = bob.new_session(moods=["hope"])
    bob.post(f"/api/v1/sessions/{bob_session['id']}/feedback", json={
        "reactions": [{"item_id": bob_session["items"][0]["item_id"], "reaction": "moved"}],
        "note": "BOB-ONLY"})
    bob.post("/api/v1/memories", json={"title": "BOB-ONLY", "text": "BOB-ONLY"})
    for path in ("/api/v1/sessions", "/api/v1/memories", "/api/v1/me/export", "/api/v1/me"):
        assert "ALICE-ONLY" not in bob.get(path).get_data(as_text=True), path
        assert "BOB-ONLY" not in alice.get(path).get_data(as_text=True), path
    export = alice.get("/api/v1/me/export").get_json()
    assert [s["id"] for s in export["sessions"]] == [alices_things["session"]["id"]]
    reactions = export["sessions"][0]["feedback"]["reactions"]
    assert sorted((r["item_id"], r["reaction"]) for r in reactions) == sorted(
        [(alices_things["items"][0], "cried"), (alices_things["items"][1], "never_again")])
    assert export["sessions"][0]["feedback"]["note"] == NOTE
    assert [m["id"] for m in export["memories"]] == [alices_things["memory"]["id"]]
    assert isinstance(export["exports"], list)  # file exports are not stored; Spotify ones are


def _user_columns():
    for table in models.Base.metadata.sorted_tables:
        if "user_id" in table.c:
            yield table


def test_delete_me_leaves_no_row_and_no_text_of_the_caller(client, alice, bob, alices_things):
    """Beyond the per-model check in test_api_memories_me: every table with a user_id, and
    every text column of every table, whatever tables exist when this runs."""
    bob.new_session()
    assert alice.delete("/api/v1/me").status_code == 204
    assert_error(alice.get("/api/v1/me"), 401)
    store = client.application.extensions["goodcry"]
    with store.session_factory() as db:
        for table in _user_columns():
            left = db.scalar(select(func.count()).select_from(table)
                             .where(table.c.user_id == alice.user_id))
            assert left == 0, table.name
        for table in models.Base.metadata.sorted_tables:
            texts = [c for c in table.c if isinstance(c.type, String | Text | JSON)]
            for row in db.execute(select(*texts)) if texts else ():
                assert "ALICE-ONLY" not in str(tuple(row)), table.name
                assert alice.user_id not in str(tuple(row)), table.name
    assert bob.get("/api/v1/me").status_code == 200
    assert_error(client.post("/api/v1/auth/token",
                             json={"username": "alice", "password": PASSWORD}), 401)
