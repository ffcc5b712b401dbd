"""Accounts, tokens, the vocabulary, health and the error envelope."""

from tests.conftest import PASSWORD, ApiUser, assert_error


def test_register_then_token_then_me(client):
    answer = client.post("/api/v1/auth/register", json={"username": "carol", "password": PASSWORD})
    assert answer.status_code == 201
    body = answer.get_json()
    assert set(body) == {"user_id", "token"}
    token = client.post("/api/v1/auth/token", json={"username": "carol", "password": PASSWORD})
    assert token.status_code == 200
    second = token.get_json()["token"]
    assert second and second != body["token"]
    for t in (body["token"], second):
        me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {t}"})
        assert me.status_code == 200
        assert me.get_json() == {"user_id": body["user_id"], "username": "carol",
                                 "spotify_connected": False}


def test_taken_username_is_409(client, alice):
    answer = client.post("/api/v1/auth/register", json={"username": "alice", "password": "x" * 9})
    assert_error(answer, 409)


def test_short_password_is_422_and_names_the_field(client):
    answer = client.post("/api/v1/auth/register", json={"username": "dan", "password": "short"})
    err = assert_error(answer, 422, mentions="password")
    assert "8" in err["message"]
    # nothing was stored: the name is still free
    ok = client.post("/api/v1/auth/register", json={"username": "dan", "password": PASSWORD})
    assert ok.status_code == 201


def test_missing_fields_are_422(client):
    err = assert_error(client.post("/api/v1/auth/register", json={"username": "erin"}), 422)
    assert "password" in err["message"]


def test_wrong_password_is_401(client, alice):
    answer = client.post("/api/v1/auth/token", json={"username": "alice", "password": "wrong-pw!"})
    assert_error(answer, 401)
    answer = client.post("/api/v1/auth/token", json={"username": "nobody", "password": "wrong-pw!"})
    assert_error(answer, 401)


def test_calls_without_a_valid_token_are_401(client):
    assert_error(client.get("/api/v1/me"), 401)
    assert_error(client.get("/api/v1/sessions",
                            headers={"Authorization": "Bearer not-a-token"}), 401)
    assert_error(client.get("/api/v1/items", headers={"Authorization": "Basic abc"}), 401)


def test_moods_need_no_token_and_hold_the_contract_ids(client):
    answer = client.get("/api/v1/moods")
    assert answer.status_code == 200
    moods = answer.get_json()["moods"]
    ids = {m["id"] for m in moods}
    assert {"grief", "heartbreak", "nostalgia", "loneliness", "regret", "gratitude", "release",
            "hope"} <= ids
    assert all(m["label"] and m["description"] for m in moods)


def test_healthz_names_the_model_and_counts_items(client):
    body = client.get("/healthz").get_json()
    assert body["status"] == "ok"
    assert body["model_version"].startswith("content-")
    assert body["catalog_items"] >= 440


def test_malformed_json_is_400(client, alice):
    answer = client.post("/api/v1/sessions", data="{not json",
                         headers={**alice.headers, "Content-Type": "application/json"})
    assert_error(answer, 400)


def test_unknown_api_path_is_404_envelope(client):
    assert_error(client.get("/api/v1/no/such/thing"), 404)


def test_wrong_method_is_405_envelope(client):
    assert_error(client.put("/api/v1/moods"), 405)


def test_body_over_one_mebibyte_is_413(client, alice):
    big = "x" * (1024 * 1024 + 10)
    answer = client.post("/api/v1/memories", json={"title": "big", "text": big},
                         headers=alice.headers)
    assert_error(answer, 413)
    assert alice.get("/api/v1/memories").get_json()["memories"] == []


def test_openapi_document_covers_the_contract(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    paths = doc["paths"]
    for path, method in [
        ("/api/v1/auth/register", "post"), ("/api/v1/auth/token", "post"),
        ("/api/v1/moods", "get"), ("/api/v1/items", "get"), ("/api/v1/sessions", "post"),
        ("/api/v1/sessions", "get"), ("/api/v1/sessions/{session_id}", "get"),
        ("/api/v1/sessions/{session_id}/feedback", "post"),
        ("/api/v1/sessions/{session_id}/export", "post"), ("/api/v1/me", "get"),
        ("/api/v1/me/export", "get"), ("/api/v1/me", "delete"), ("/api/v1/memories", "post"),
        ("/api/v1/memories", "get"), ("/api/v1/memories/{memory_id}", "patch"),
        ("/api/v1/memories/{memory_id}", "delete"), ("/healthz", "get"),
    ]:
        assert method in paths.get(path, {}), (path, method)
    assert "bearerAuth" in doc["components"]["securitySchemes"]


def test_security_headers_are_set(client):
    answer = client.get("/healthz")
    assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert answer.headers["Referrer-Policy"]


def test_two_users_have_separate_identities(client):
    a, b = ApiUser(client, "fran"), ApiUser(client, "gus")
    assert a.get("/api/v1/me").get_json()["username"] == "fran"
    assert b.get("/api/v1/me").get_json()["username"] == "gus"


def test_nul_characters_are_refused_by_name_and_store_nothing(client, alice):
    err = assert_error(client.post("/api/v1/auth/register",
                                   json={"username": "nul\x00user", "password": PASSWORD}), 422)
    assert "username" in err["message"] and "NUL" in err["message"]
    err = assert_error(alice.post("/api/v1/memories", json={"title": "ok", "tags": ["a\x00"]}),
                       422)
    assert "tags.0" in err["message"]
    assert_error(alice.get("/api/v1/sessions/abc%00def"), 400)
    assert_error(alice.get("/api/v1/items?q=x%00"), 400)
    page = client.post("/signin", data={"username": "a\x00", "password": "x"})
    assert page.status_code == 400
    assert alice.get("/api/v1/memories").get_json()["memories"] == []
