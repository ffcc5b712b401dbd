"""File exports of a session and the Spotify export's refusal when not connected."""

import csv
import io
from xml.etree import ElementTree as ET

from tests.conftest import assert_error


def export(user, doc, target):
    return user.post(f"/api/v1/sessions/{doc['id']}/export", json={"target": target})


def test_m3u8_lists_the_songs_in_order_with_durations(alice):
    doc = alice.new_session(minutes=180, include_films=True)
    answer = export(alice, doc, "m3u8")
    assert answer.status_code == 200
    assert answer.mimetype == "audio/x-mpegurl"
    lines = answer.get_data(as_text=True).splitlines()
    assert lines[0] == "#EXTM3U"
    infos = [line for line in lines if line.startswith("#EXTINF:")]
    songs = [i for i in doc["items"] if i["kind"] == "song"]
    assert len(infos) == len(songs)
    for info, song in zip(infos, songs, strict=True):
        assert info == f"#EXTINF:{song['duration_s']},{song['artist']} - {song['title']}"


def test_xspf_is_valid_xml_with_every_song(alice):
    doc = alice.new_session()
    answer = export(alice, doc, "xspf")
    assert answer.mimetype == "application/xspf+xml"
    root = ET.fromstring(answer.get_data())
    ns = {"x": "http://xspf.org/ns/0/"}
    titles = [t.text for t in root.findall("x:trackList/x:track/x:title", ns)]
    assert titles == [i["title"] for i in doc["items"] if i["kind"] == "song"]


def test_csv_holds_the_whole_session(alice):
    doc = alice.new_session(minutes=180)
    answer = export(alice, doc, "csv")
    assert answer.mimetype == "text/csv"
    assert "attachment" in answer.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(answer.get_data(as_text=True))))
    assert [r["title"] for r in rows] == [i["title"] for i in doc["items"]]
    assert [r["phase"] for r in rows] == [i["phase"] for i in doc["items"]]


def test_letterboxd_csv_has_the_films(alice):
    doc = alice.new_session(minutes=200, include_films=True)
    rows = list(csv.DictReader(io.StringIO(export(alice, doc, "letterboxd")
                                           .get_data(as_text=True))))
    films = [i for i in doc["items"] if i["kind"] == "film"]
    assert films
    assert [r["Title"] for r in rows] == [f["title"] for f in films]
    assert set(rows[0]) == {"Title", "Year", "Directors"}


def test_spotify_without_a_connection_is_409(alice):
    doc = alice.new_session()
    assert_error(export(alice, doc, "spotify"), 409, code="spotify_not_connected")


def test_unknown_target_is_422(alice):
    doc = alice.new_session()
    assert_error(export(alice, doc, "mp3"), 422, mentions="target")
