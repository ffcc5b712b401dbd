"""Care across the whole path: memories named in prompts, crisis from a person's own words,
aftercare always, and private words kept out of logs."""

import logging

import pytest

DAD = {"title": "Dad's fishing trips", "text": "Early mornings on the lake with Dad, "
       "his old green thermos and the radio", "people": ["Dad"], "places": ["the lake"],
       "tags": ["dad", "father"]}


def test_fitting_memories_are_named_in_prompts(alice):
    mid = alice.post("/api/v1/memories", json=DAD).get_json()["id"]
    doc = alice.new_session(moods=["grief"], prompt="I miss my dad", minutes=45)
    linked = [i for i in doc["items"] if i["prompt"]["memory_id"] == mid]
    assert linked, [i["prompt"] for i in doc["items"]]
    assert len(linked) <= 2
    for item in linked:
        text = item["prompt"]["text"]
        assert any(word in text for word in ("Dad", "fishing", "lake")), text
        assert item["phase"] != "aftercare"


def test_unrelated_memories_are_not_forced_onto_items(alice):
    alice.post("/api/v1/memories", json={
        "title": "My first concert", "text": "Dancing with my best mates, pure joy, confetti",
        "tags": ["concert", "joy"]})
    doc = alice.new_session(moods=["grief"], prompt="I miss my dad", minutes=45)
    assert all(i["prompt"]["memory_id"] is None for i in doc["items"])


def test_a_journal_note_with_risk_words_turns_the_next_session_to_care(alice):
    doc = alice.new_session(moods=["grief"])
    note = "i dont want to be here anymore, everyone would be better off without me"
    answer = alice.post(f"/api/v1/sessions/{doc['id']}/feedback", json={
        "reactions": [{"item_id": doc["items"][0]["item_id"], "reaction": "cried"}],
        "note": note})
    assert answer.status_code == 201
    assert answer.get_json()["care"]["crisis"] is True
    later = alice.new_session(moods=["grief"], minutes=60)
    assert later["care"]["crisis"] is True
    assert "deepen" not in {i["phase"] for i in later["items"]}
    assert later["items"][-1]["phase"] == "aftercare"
    stored = alice.get(f"/api/v1/sessions/{doc['id']}").get_json()["feedback"]
    assert stored["note"] == note, "the person's words are kept as written"


def test_an_ordinary_sad_note_does_not_raise_the_alarm(alice):
    doc = alice.new_session(moods=["grief"])
    answer = alice.post(f"/api/v1/sessions/{doc['id']}/feedback", json={
        "reactions": [], "note": "I'm not suicidal, just so sad about Dad tonight"})
    assert "care" not in answer.get_json()
    assert alice.new_session(moods=["grief"])["care"]["crisis"] is False


def test_a_memory_with_risk_words_gets_care_and_is_never_reopened(alice):
    answer = alice.post("/api/v1/memories", json={
        "title": "The winter after Dad", "text": "the night I wanted to end my life",
        "people": ["Dad"]})
    assert answer.status_code == 201
    body = answer.get_json()
    assert body["care"]["crisis"] is True and body["text"] == "the night I wanted to end my life"
    doc = alice.new_session(moods=["grief"], prompt="missing my dad")
    assert all(i["prompt"]["memory_id"] != body["id"] for i in doc["items"])


def test_a_memory_rewritten_with_risk_words_is_not_reopened_by_the_next_session(alice):
    """Each worker keeps a memory's screen and analysis by its words: rewritten, it is
    screened again (and pairs again) before any later session can name it."""
    mid = alice.post("/api/v1/memories", json=DAD).get_json()["id"]
    ask = {"moods": ["grief"], "prompt": "I miss my dad", "minutes": 45}
    assert any(i["prompt"]["memory_id"] == mid for i in alice.new_session(**ask)["items"])
    changed = alice.patch(f"/api/v1/memories/{mid}", json={
        "text": "Early mornings on the lake with Dad. Since he died I want to end my life"})
    assert changed.status_code == 200 and changed.get_json()["care"]["crisis"] is True
    for _ in range(3):
        assert all(i["prompt"]["memory_id"] != mid for i in alice.new_session(**ask)["items"])
    # Rewritten back to safe words, it is named again.
    assert alice.patch(f"/api/v1/memories/{mid}", json={"text": DAD["text"]}).status_code == 200
    assert any(i["prompt"]["memory_id"] == mid for i in alice.new_session(**ask)["items"])


@pytest.mark.parametrize("body", [
    {"moods": ["hope"], "minutes": 5},
    {"moods": ["heartbreak", "regret"], "minutes": 33, "intensity": 5},
    {"prompt": "work has been crushing me, I just need to let it out", "minutes": 20},
    {"moods": ["loneliness"], "minutes": 240, "exploration": "discover"},
    {"prompt": "I want to kill myself", "minutes": 90},
    {"moods": ["nostalgia"], "intensity": 1, "minutes": 15},
])
def test_every_session_ends_in_aftercare(alice, body):
    doc = alice.new_session(**body)
    assert doc["items"][-1]["phase"] == "aftercare"
    assert doc["items"][-1]["prompt"]["memory_id"] is None


def test_private_words_never_reach_the_logs(alice, caplog):
    caplog.set_level(logging.DEBUG)
    mid = alice.post("/api/v1/memories", json=DAD).get_json()["id"]
    doc = alice.new_session(moods=["grief"], prompt="my secret words about grandad")
    alice.post(f"/api/v1/sessions/{doc['id']}/feedback", json={
        "reactions": [{"item_id": doc["items"][0]["item_id"], "reaction": "moved"}],
        "note": "a very private journal line"})
    alice.patch(f"/api/v1/memories/{mid}", json={"text": "another private memory text"})
    logged = caplog.text
    assert logged, "the flow logs something, so the check below means something"
    for secret in (DAD["text"], "another private memory text", "my secret words about grandad",
                   "a very private journal line", alice.token):
        assert secret not in logged
