"""Rating sessions: replacement, bans, and that feedback changes what comes next."""

from tests.conftest import assert_error


def rate(user, doc, reactions, **extra):
    body = {"reactions": [{"item_id": i, "reaction": r} for i, r in reactions],
            "catharsis": 4, "mood_before": 3, "mood_after": 6, **extra}
    return user.post(f"/api/v1/sessions/{doc['id']}/feedback", json=body)


def test_feedback_is_recorded_and_replaced_not_doubled(alice):
    doc = alice.new_session()
    ids = [i["item_id"] for i in doc["items"]]
    first = rate(alice, doc, [(ids[0], "cried"), (ids[1], "moved")], note="a heavy day")
    assert first.status_code == 201
    assert first.get_json() == {"session_id": doc["id"], "recorded": 2}
    again = rate(alice, doc, [(ids[0], "neutral")], catharsis=2)
    assert again.get_json() == {"session_id": doc["id"], "recorded": 1}
    stored = alice.get(f"/api/v1/sessions/{doc['id']}").get_json()["feedback"]
    assert stored["reactions"] == [{"item_id": ids[0], "reaction": "neutral"}]
    assert stored["catharsis"] == 2 and stored["note"] is None
    export = alice.get("/api/v1/me/export").get_json()
    reactions = [r for s in export["sessions"] if s["feedback"]
                 for r in s["feedback"]["reactions"]]
    assert reactions == [{"item_id": ids[0], "reaction": "neutral"}]


def test_never_again_bans_the_item_in_every_later_session(alice):
    doc = alice.new_session(moods=["grief"], minutes=60, exploration="familiar")
    banned = doc["items"][1]["item_id"]
    assert rate(alice, doc, [(banned, "never_again")]).status_code == 201
    for _ in range(6):
        later = alice.new_session(moods=["grief"], minutes=60, exploration="familiar")
        assert banned not in [i["item_id"] for i in later["items"]]


def test_a_ban_is_only_for_that_person(alice, bob):
    doc = alice.new_session(moods=["grief"], minutes=60, exploration="familiar")
    banned = doc["items"][0]["item_id"]
    rate(alice, doc, [(banned, "never_again")])
    seen = set()
    for _ in range(4):
        seen |= {i["item_id"] for i in bob.new_session(moods=["grief"], minutes=60,
                                                      exploration="familiar")["items"]}
    assert banned in seen


def test_feedback_changes_the_next_session(alice):
    doc = alice.new_session(moods=["grief"], minutes=45, exploration="familiar")
    sad = [i for i in doc["items"] if i["phase"] != "aftercare"]
    skipped = [i["item_id"] for i in sad]
    rate(alice, doc, [(i, "skipped") for i in skipped])
    after = alice.new_session(moods=["grief"], minutes=45, exploration="familiar")
    again = {i["item_id"] for i in after["items"]} & set(skipped)
    assert len(again) < len(skipped) / 2, "skipped items mostly make way for others"


def test_bad_feedback_is_422_and_changes_nothing(alice):
    doc = alice.new_session()
    ids = [i["item_id"] for i in doc["items"]]
    assert rate(alice, doc, [(ids[0], "cried")]).status_code == 201
    cases = [
        ([(ids[0], "sobbed")], None, "reaction"),
        ([("not-in-session", "cried")], None, "not-in-session"),
        ([(ids[0], "cried"), (ids[0], "moved")], None, "more than one"),
        ([(ids[0], "cried")], {"catharsis": 9}, "catharsis"),
        ([(ids[0], "cried")], {"mood_before": 0}, "mood_before"),
        ([(ids[0], "cried")], {"mood_after": 11}, "mood_after"),
    ]
    for reactions, extra, mentions in cases:
        assert_error(rate(alice, doc, reactions, **(extra or {})), 422, mentions=mentions)
    assert_error(alice.post(f"/api/v1/sessions/{doc['id']}/feedback", json={}), 422,
                 mentions="reactions")
    stored = alice.get(f"/api/v1/sessions/{doc['id']}").get_json()["feedback"]
    assert stored["reactions"] == [{"item_id": ids[0], "reaction": "cried"}]
    assert stored["catharsis"] == 4
