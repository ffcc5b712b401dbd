"""Web security: CSRF, headers, cookies, password hashing, rate limits, production mode,
and logs that never hold a secret."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select, update

from recommender.store.models import RateLimitCounter, User
from tests.conftest import PASSWORD, ApiUser, assert_error

GOODCRY = str(Path(sys.executable).with_name("goodcry"))
STRONG_KEY = "9f1c2e7a4b8d0f3e6a5c1b9d7e2f4a8c0b3d6e9f1a4c7b2e"
PAGES = ("/", "/signin", "/signup", "/help")


def make_app(database_url, **config):
    from web import create_app

    return create_app({"TESTING": True, "DATABASE_URL": database_url,
                       "SECRET_KEY": STRONG_KEY, **config})


def csrf_token(client, path: str) -> str:
    page = client.get(path).get_data(as_text=True)
    found = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page) or re.search(
        r'value="([^"]+)"[^>]*name="csrf_token"', page)
    assert found, f"no csrf_token field on {path}"
    return found.group(1)


def sign_up_on_the_page(client, username: str) -> None:
    token = csrf_token(client, "/signup")
    answer = client.post("/signup", data={"csrf_token": token, "username": username,
                                          "password": PASSWORD, "confirm": PASSWORD})
    assert answer.status_code in (302, 303), answer.get_data(as_text=True)[:500]


# --- CSRF ---------------------------------------------------------------------------------

def test_a_page_post_without_its_csrf_token_is_refused(client):
    refused = client.post("/signup", data={"username": "mallory", "password": PASSWORD,
                                           "confirm": PASSWORD})
    assert refused.status_code == 400
    assert "text/html" in refused.content_type
    store = client.application.extensions["goodcry"]
    with store.session_factory() as db:
        assert db.scalar(select(User).where(User.username == "mallory")) is None
    # the same form with its token goes through, so the refusal above was the token's doing
    sign_up_on_the_page(client, "mallory")


def test_every_form_on_the_pages_carries_a_csrf_token(client):
    sign_up_on_the_page(client, "formcheck")
    for path in ("/", "/memories", "/history", "/help"):
        page = client.get(path).get_data(as_text=True)
        for form in re.findall(r"<form\b.*?</form>", page, flags=re.S | re.I):
            if re.search(r'method="post"', form, flags=re.I):
                assert 'name="csrf_token"' in form, (path, form[:300])


# --- headers and cookies ------------------------------------------------------------------

@pytest.mark.parametrize("path", [*PAGES, "/api/v1/moods", "/api/v1/nowhere", "/healthz"])
def test_security_headers_on_pages_and_api(client, path):
    answer = client.get(path)
    csp = answer.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert answer.headers["Referrer-Policy"] == "same-origin"
    assert answer.headers["X-Frame-Options"] == "DENY"


def test_session_cookie_is_httponly_and_not_secure_outside_production(client):
    sign_up_on_the_page(client, "plainhttp")
    cookie = client.get_cookie("session")
    assert cookie is not None and cookie.http_only and not cookie.secure


def test_production_mode_sets_secure_cookies_and_hsts(database_url, monkeypatch):
    monkeypatch.setenv("GOODCRY_ENV", "production")
    monkeypatch.setenv("GOODCRY_SECRET_KEY", STRONG_KEY)
    app = make_app(database_url)
    try:
        client = app.test_client()
        token = csrf_token(client, "/signup")
        answer = client.post("/signup", base_url="https://localhost", data={
            "csrf_token": token, "username": "secure", "password": PASSWORD,
            "confirm": PASSWORD}, headers={"Referer": "https://localhost/signup"})
        cookies = answer.headers.getlist("Set-Cookie")
        session = [c for c in cookies if c.startswith("session=")]
        assert session, cookies
        assert "Secure" in session[0] and "HttpOnly" in session[0]
        assert "SameSite=Lax" in session[0]
        assert "max-age" in answer.headers["Strict-Transport-Security"]
    finally:
        app.extensions["goodcry"].engine.dispose()


@pytest.mark.parametrize("key, words", [
    (None, "not set"), ("short-key", "too short"), ("a" * 40, "random"),
    ("my-goodcry-secret-key-for-production-use-1234", "guessable"),
])
def test_production_mode_refuses_a_missing_or_weak_secret(database_url, monkeypatch, key, words):
    monkeypatch.setenv("GOODCRY_ENV", "production")
    if key is None:
        monkeypatch.delenv("GOODCRY_SECRET_KEY", raising=False)
    else:
        monkeypatch.setenv("GOODCRY_SECRET_KEY", key)
    with pytest.raises(RuntimeError, match=words):
        make_app(database_url)


def test_goodcry_serve_refuses_production_without_a_real_secret(empty_database_url):
    env = {**os.environ, "GOODCRY_ENV": "production", "GOODCRY_DATABASE_URL": empty_database_url}
    env.pop("GOODCRY_SECRET_KEY", None)
    answer = subprocess.run([GOODCRY, "serve", "--port", "9"], env=env, capture_output=True,
                            text=True, timeout=60)
    assert answer.returncode != 0
    assert "GOODCRY_SECRET_KEY is not set" in answer.stderr
    assert "GOODCRY_ENV=production" in answer.stderr
    weak = subprocess.run([GOODCRY, "serve", "--port", "9"], capture_output=True, text=True,
                          env={**env, "GOODCRY_SECRET_KEY": "hunter2"}, timeout=60)
    assert weak.returncode != 0 and "too short" in weak.stderr


# --- passwords ----------------------------------------------------------------------------

def test_passwords_are_stored_as_argon2id_hashes(client, alice):
    store = client.application.extensions["goodcry"]
    with store.session_factory() as db:
        stored = db.get(User, alice.user_id).password_hash
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


# --- rate limits --------------------------------------------------------------------------

def test_sign_in_is_rate_limited_with_retry_after_in_the_envelope(client, alice):
    body = {"username": "alice", "password": "not the password"}
    answers = [client.post("/api/v1/auth/token", json=body) for _ in range(11)]
    assert [a.status_code for a in answers[:10]] == [401] * 10
    assert "Retry-After" not in answers[0].headers
    error = assert_error(answers[10], 429, "rate_limited", mentions="sign-in")
    assert error
    retry_after = int(answers[10].headers["Retry-After"])
    assert 0 < retry_after <= 60
    # even the right password waits now: the limit is per address, not per guess
    assert_error(client.post("/api/v1/auth/token",
                             json={"username": "alice", "password": PASSWORD}), 429)
    # the API itself still answers the token already held
    assert alice.get("/api/v1/me").status_code == 200


def test_the_sign_in_page_is_limited_too(client):
    for _ in range(10):
        client.post("/api/v1/auth/token", json={"username": "x", "password": "wrong pw!"})
    token = csrf_token(client, "/signin")
    page = client.post("/signin", data={"csrf_token": token, "username": "x",
                                        "password": "wrong pw!"})
    assert page.status_code in (200, 401, 422)  # its own counter: 10 a minute per address
    for _ in range(10):
        page = client.post("/signin", data={"csrf_token": token, "username": "x",
                                            "password": "wrong pw!"})
    assert page.status_code == 429 and "text/html" in page.content_type
    assert int(page.headers["Retry-After"]) > 0


def test_limits_are_counted_in_the_database_across_workers(database_url):
    """Two app instances (as two gunicorn workers would be) share one count."""
    first, second = make_app(database_url), make_app(database_url)
    try:
        body = {"username": "nobody", "password": "wrong password"}
        for _ in range(5):
            assert first.test_client().post("/api/v1/auth/token", json=body).status_code == 401
        for _ in range(5):
            assert second.test_client().post("/api/v1/auth/token", json=body).status_code == 401
        assert_error(first.test_client().post("/api/v1/auth/token", json=body), 429)
        assert_error(second.test_client().post("/api/v1/auth/token", json=body), 429)
    finally:
        first.extensions["goodcry"].engine.dispose()
        second.extensions["goodcry"].engine.dispose()


def test_api_calls_are_limited_per_token(database_url, monkeypatch):
    from web import ratelimit

    monkeypatch.setattr(ratelimit, "API_LIMIT", "5 per minute")
    app = make_app(database_url)
    try:
        client = app.test_client()
        alice, bob = ApiUser(client, "alice"), ApiUser(client, "bob")
        assert [alice.get("/api/v1/memories").status_code for _ in range(5)] == [200] * 5
        refused = alice.get("/api/v1/memories")
        assert_error(refused, 429, "rate_limited")
        assert int(refused.headers["Retry-After"]) > 0
        assert bob.get("/api/v1/memories").status_code == 200  # bob counts apart
    finally:
        app.extensions["goodcry"].engine.dispose()


def test_one_count_for_the_whole_api_and_each_answer_counts_down_from_its_own_hit(
        database_url, monkeypatch):
    """Calls to different parts of the API count against one limit per token (the README's
    "600 a minute per token"; each blueprint used to count apart). Each answer's headers
    count down with it, and a call whose view fails still counts."""
    from web import ratelimit

    monkeypatch.setattr(ratelimit, "API_LIMIT", "4 per minute")
    app = make_app(database_url)
    try:
        client = app.test_client()
        alice = ApiUser(client, "alice")
        answers = [alice.get("/api/v1/memories"), alice.get("/api/v1/sessions/nonexistent"),
                   alice.get("/api/v1/memories"), alice.get("/api/v1/sessions/nonexistent")]
        assert [a.status_code for a in answers] == [200, 404, 200, 404]
        assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["3", "2", "1", "0"]
        assert {a.headers["X-RateLimit-Limit"] for a in answers} == {"4"}
        # A session closed before the store is disposed: left open, its connection outlived
        # the test's database and failed its rollback when collected, in another test.
        with app.app_context(), app.extensions["goodcry"].session_factory() as db:
            stored = db.execute(select(RateLimitCounter.hits, RateLimitCounter.expires_at)
                                .where(RateLimitCounter.key.like("%/api/%"))).all()
        assert [hits for hits, _ in stored] == [4]
        # Flask-Limiter gives the second after the window's end.
        assert {int(a.headers["X-RateLimit-Reset"]) for a in answers} == {int(stored[0][1]) + 1}
        assert_error(alice.get("/api/v1/memories"), 429, "rate_limited")
    finally:
        app.extensions["goodcry"].engine.dispose()


def test_a_closed_window_starts_afresh_and_the_storage_works_outside_a_request(database_url,
                                                                                monkeypatch):
    from web import ratelimit

    monkeypatch.setattr(ratelimit, "API_LIMIT", "2 per minute")
    app = make_app(database_url)
    try:
        client = app.test_client()
        alice = ApiUser(client, "alice")
        assert [alice.get("/api/v1/memories").status_code for _ in range(3)] == [200, 200, 429]
        store = app.extensions["goodcry"]
        with store.session_factory() as db:  # the window closes (a minute passes)
            db.execute(update(RateLimitCounter)
                       .where(RateLimitCounter.key.like("%/api/%"))
                       .values(expires_at=RateLimitCounter.expires_at - 120))
            db.commit()
        fresh = alice.get("/api/v1/memories")
        assert fresh.status_code == 200 and fresh.headers["X-RateLimit-Remaining"] == "1"
        # The limiter's storage, asked outside any request (as Flask-Limiter's own tools do).
        storage = app.extensions["goodcry_rate_limiter"].storage
        assert storage.incr("outside", 60) == 1 and storage.incr("outside", 60) == 2
        assert storage.get("outside") == 2 and storage.get_expiry("outside") > time.time()
        assert storage.get("never counted") == 0
    finally:
        app.extensions["goodcry"].engine.dispose()


def test_rate_limits_off_switch(database_url, monkeypatch):
    monkeypatch.setenv("GOODCRY_RATE_LIMITS", "off")
    app = make_app(database_url)
    try:
        client = app.test_client()
        body = {"username": "nobody", "password": "wrong password"}
        assert {client.post("/api/v1/auth/token", json=body).status_code
                for _ in range(15)} == {401}
    finally:
        app.extensions["goodcry"].engine.dispose()


# --- logs ---------------------------------------------------------------------------------

def test_no_secret_or_private_text_reaches_the_logs(client, caplog):
    caplog.set_level(logging.DEBUG)
    secret_password = "lighthouse keeper 1987"
    memory_text = "the smell of her cardigan on the hospital chair"
    note = "I finally let it out after the third song"
    prompt = "I keep replaying the last voicemail from my brother"
    reg = client.post("/api/v1/auth/register",
                      json={"username": "private", "password": secret_password})
    token = reg.get_json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    second = client.post("/api/v1/auth/token",
                         json={"username": "private", "password": secret_password})
    other_token = second.get_json()["token"]
    client.post("/api/v1/auth/token", json={"username": "private", "password": "wrong one!"})
    client.post("/api/v1/memories", headers=headers,
                json={"title": "Grandma's cardigan", "text": memory_text})
    doc = client.post("/api/v1/sessions", headers=headers,
                      json={"moods": ["grief"], "prompt": prompt}).get_json()
    client.post(f"/api/v1/sessions/{doc['id']}/feedback", headers=headers, json={
        "reactions": [{"item_id": doc["items"][0]["item_id"], "reaction": "cried"}],
        "catharsis": 4, "note": note})
    client.get("/api/v1/me/export", headers=headers)
    client.get("/api/v1/me", headers={"Authorization": "Bearer not-a-real-token-abc123"})
    client.post("/api/v1/sessions", headers=headers, data="{broken json " + note,
                content_type="application/json")
    token_page = csrf_token(client, "/signin")
    client.post("/signin", data={"csrf_token": token_page, "username": "private",
                                 "password": secret_password})
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert caplog.records, "the flow logged nothing at all: the capture is not working"
    for secret in (secret_password, token, other_token, memory_text, note, prompt,
                   "not-a-real-token-abc123"):
        assert secret not in logged, secret


def test_every_page_post_route_demands_a_csrf_token(app, client):
    """Every POST outside the bearer-token API is refused without the form's token."""
    checked = []
    for rule in app.url_map.iter_rules():
        if "POST" not in rule.methods or rule.rule.startswith("/api/"):
            continue
        url = rule.rule
        for arg in rule.arguments:
            url = url.replace(f"<{arg}>", "x").replace(f"<string:{arg}>", "x")
        answer = client.post(url, data={"anything": "1"})
        assert answer.status_code == 400, (rule.rule, answer.status_code)
        checked.append(rule.rule)
    assert "/signin" in checked and "/sessions" in checked and len(checked) >= 8, checked
