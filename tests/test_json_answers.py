"""JSON answers are written by orjson and read back the same as Flask's own provider's."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import json
import uuid

from flask import Flask
from flask.json.provider import DefaultJSONProvider

from web.json_provider import OrjsonProvider


@dataclasses.dataclass
class Point:
    x: int
    label: str


ANSWER = {
    "zeta": 1, "alpha": [1, 2.5, None, True], "text": "Dvořák, naïve café, 日本語 \"quoted\"",
    "nested": {"b": {"d": 1, "c": 2}, "a": []},
    "when": datetime.datetime(2026, 12, 3, 13, 5, 7, tzinfo=datetime.UTC),
    "day": datetime.date(2026, 12, 3), "money": decimal.Decimal("12.50"),
    "point": Point(3, "p"), "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
}


def _answers(debug: bool, answer=ANSWER) -> tuple[bytes, bytes]:
    app = Flask(__name__)
    app.debug = debug
    with app.app_context():
        flask_body = DefaultJSONProvider(app).response(answer).get_data()
        ours = OrjsonProvider(app).response(answer)
        assert ours.mimetype == "application/json"
        return flask_body, ours.get_data()


def test_answers_read_back_as_flasks_own():
    for debug in (False, True):
        flask_body, ours = _answers(debug)
        assert json.loads(ours) == json.loads(flask_body)
        assert ours.endswith(b"\n") and not ours.endswith(b"\n\n")
        read = json.loads(ours)
        assert read["when"] == "Thu, 03 Dec 2026 13:05:07 GMT"   # an HTTP date, as Flask's
        assert read["point"] == {"x": 3, "label": "p"} and read["money"] == "12.50"
        assert "日本語".encode() in ours   # UTF-8, not escapes


def test_answers_are_compact_with_sorted_keys_and_indented_in_debug():
    _, compact = _answers(debug=False)
    assert b"\n" not in compact[:-1] and b": " not in compact
    keys = list(json.loads(compact))
    assert keys == sorted(keys)
    assert list(json.loads(compact)["nested"]["b"]) == ["c", "d"]
    _, indented = _answers(debug=True)
    assert indented.startswith(b'{\n  "alpha": [\n    1,\n')
    # Number keys become strings, as Flask's own provider writes them.
    flask_body, ours = _answers(False, {2: "b", 10: "a"})
    assert json.loads(ours) == json.loads(flask_body) == {"2": "b", "10": "a"}


def test_the_app_answers_with_it(client):
    assert isinstance(client.application.json, OrjsonProvider)
    answer = client.get("/api/v1/moods")
    assert answer.status_code == 200 and answer.data.endswith(b"\n")
    assert answer.get_json() == json.loads(answer.data)
