"""Memories, the caller's data export, and deleting an account."""

from tests.conftest import PASSWORD, assert_error

MEMORY = {"title": "Dad's fishing trips", "text": "Early mornings on the lake with Dad",
          "tags": ["dad", "lake"], "people": ["Dad"], "places": ["the lake house"],
          "when": "summers in the 90s"}


def test_memory_crud(alice):
    created = alice.post("/api/v1/memories", json=MEMORY)
    assert created.status_code == 201
    memory = created.get_json()
    assert memory["id"] and {k: memory[k] for k in MEMORY} == MEMORY
    mid = memory["id"]
    assert alice.get(f"/api/v1/memories/{mid}").get_json()["title"] == MEMORY["title"]
    patched = alice.patch(f"/api/v1/memories/{mid}", json={"places": ["Lake Tahoe"]})
    assert patched.status_code == 200
    assert patched.get_json()["places"] == ["Lake Tahoe"]
    assert patched.get_json()["text"] == MEMORY["text"]
    assert [m["id"] for m in alice.get("/api/v1/memories").get_json()["memories"]] == [mid]
    assert alice.delete(f"/api/v1/memories/{mid}").status_code == 204
    assert_error(alice.get(f"/api/v1/memories/{mid}"), 404)


def test_bad_memories_are_422_and_store_nothing(alice):
    assert_error(alice.post("/api/v1/memories", json={"text": "no title"}), 422, mentions="title")
    assert_error(alice.post("/api/v1/memories", json={"title": ""}), 422, mentions="title")
    assert_error(alice.post("/api/v1/memories", json={"title": "x", "tags": "a"}), 422,
                 mentions="tags")
    assert alice.get("/api/v1/memories").get_json()["memories"] == []
    mid = alice.post("/api/v1/memories", json=MEMORY).get_json()["id"]
    assert_error(alice.patch(f"/api/v1/memories/{mid}", json={"title": ""}), 422)
    assert alice.get(f"/api/v1/memories/{mid}").get_json()["title"] == MEMORY["title"]


def test_memories_are_private(alice, bob):
    mid = alice.post("/api/v1/memories", json=MEMORY).get_json()["id"]
    assert_error(bob.get(f"/api/v1/memories/{mid}"), 404)
    assert_error(bob.patch(f"/api/v1/memories/{mid}", json={"title": "mine"}), 404)
    assert_error(bob.delete(f"/api/v1/memories/{mid}"), 404)
    assert bob.get("/api/v1/memories").get_json()["memories"] == []
    assert alice.get(f"/api/v1/memories/{mid}").get_json()["title"] == MEMORY["title"]


def test_me_export_holds_only_the_callers_data(alice, bob):
    alice.post("/api/v1/memories", json=MEMORY)
    doc = alice.new_session()
    alice.post(f"/api/v1/sessions/{doc['id']}/feedback", json={
        "reactions": [{"item_id": doc["items"][0]["item_id"], "reaction": "cried"}],
        "catharsis": 5, "mood_before": 2, "mood_after": 7, "note": "needed that"})
    alice.post(f"/api/v1/sessions/{doc['id']}/export", json={"target": "csv"})
    bob.post("/api/v1/memories", json={"title": "Bob's secret", "text": "only bob knows"})
    bob.new_session(moods=["hope"])
    export = alice.get("/api/v1/me/export").get_json()
    assert export["user"] == {"user_id": alice.user_id, "username": "alice",
                              "created_at": export["user"]["created_at"]}
    assert [s["id"] for s in export["sessions"]] == [doc["id"]]
    assert export["sessions"][0]["feedback"]["note"] == "needed that"
    assert [m["title"] for m in export["memories"]] == [MEMORY["title"]]
    text = str(export)
    assert "Bob's secret" not in text and "only bob knows" not in text
    assert alice.token not in text


def test_delete_me_removes_everything_and_kills_the_token(client, alice, bob):
    alice.post("/api/v1/memories", json=MEMORY)
    doc = alice.new_session()
    alice.post(f"/api/v1/sessions/{doc['id']}/feedback", json={
        "reactions": [{"item_id": doc["items"][0]["item_id"], "reaction": "never_again"}]})
    bob_doc = bob.new_session()
    assert alice.delete("/api/v1/me").status_code == 204
    assert_error(alice.get("/api/v1/me"), 401)
    assert_error(client.post("/api/v1/auth/token",
                             json={"username": "alice", "password": PASSWORD}), 401)
    from sqlalchemy import func, select

    from recommender.store import models

    store = client.application.extensions["goodcry"]
    with store.session_factory() as db:
        for model in (models.CrySession, models.Memory, models.Reaction, models.Ban,
                      models.Feedback, models.ApiToken, models.Export, models.PersonTaste,
                      models.LibraryItem):
            left = db.scalar(select(func.count()).select_from(model)
                             .where(model.user_id == alice.user_id))
            assert left == 0, model.__name__
        assert db.get(models.User, alice.user_id) is None
    # bob is untouched
    assert bob.get(f"/api/v1/sessions/{bob_doc['id']}").status_code == 200
    # the name is free again
    again = client.post("/api/v1/auth/register", json={"username": "alice", "password": PASSWORD})
    assert again.status_code == 201


def test_delete_me_drops_tracks_only_my_library_knew(client, alice, bob):
    from sqlalchemy import select

    from recommender.store import models

    store = client.application.extensions["goodcry"]
    with store.session_factory() as db:
        mine = models.CatalogItem(identity_key="song|alices private track|someone",
                                  kind="song", title="Alice's Private Track",
                                  artist="Someone", duration_s=200, shared=False)
        both = models.CatalogItem(identity_key="song|a track we share|someone",
                                  kind="song", title="A Track We Share", artist="Someone",
                                  duration_s=200, shared=False)
        db.add_all([mine, both])
        db.flush()
        db.add_all([
            models.LibraryItem(user_id=alice.user_id, item_id=mine.id, source="spotify_saved"),
            models.LibraryItem(user_id=alice.user_id, item_id=both.id, source="spotify_saved"),
            models.LibraryItem(user_id=bob.user_id, item_id=both.id, source="spotify_top"),
        ])
        db.commit()
        mine_id, both_id = mine.id, both.id
    export = alice.get("/api/v1/me/export").get_json()
    assert {e["title"] for e in export["library"]} == {"Alice's Private Track", "A Track We Share"}
    assert "Alice's Private Track" not in str(bob.get("/api/v1/me/export").get_json())
    assert alice.delete("/api/v1/me").status_code == 204
    with store.session_factory() as db:
        assert db.get(models.CatalogItem, mine_id) is None
        assert db.get(models.CatalogItem, both_id) is not None
        assert db.scalars(select(models.LibraryItem.user_id)
                          .where(models.LibraryItem.item_id == both_id)).all() == [bob.user_id]
