"""How the catalogue build joins editorial lists with annotations."""

import csv
import shutil

import pytest

from recommender.catalog.build import CatalogBuildError, build_catalog
from recommender.paths import VOCABULARY_JSON

ANNOTATION_HEADER = ["kind", "title", "name", "moods", "themes", "intensity", "duration_s",
                     "duration_estimated", "keep", "note"]


def _write(path, header, rows):
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


@pytest.fixture
def editorial(tmp_path):
    ed = tmp_path / "editorial"
    ed.mkdir()
    shutil.copy(VOCABULARY_JSON, tmp_path / "vocabulary.json")
    _write(ed / "sad_songs.csv", ["kind", "title", "artist", "year", "sources"], [
        ["song", "Hurt", "Johnny Cash", "2002", "a;b"],
        ["song", "Fix You", "Coldplay", "2005", "a"],
        ["song", "Mr. Custer", "Larry Verne", "1960", "c"],
        ["song", "Unannotated, With Comma", "Someone", "", "a"],
    ])
    _write(ed / "annotations_songs.csv", ANNOTATION_HEADER, [
        ["song", "Hurt", "Johnny Cash", "regret;grief", "addiction", "5", "218", "false",
         "true", ""],
        ["song", "Fix You", "Coldplay", "grief", "", "4", "220", "true", "true", ""],
        ["song", "Mr. Custer", "Larry Verne", "grief", "", "1", "180", "false", "false",
         "novelty song"],
        ["song", "Typo Title", "Nobody", "grief", "", "3", "200", "false", "true", ""],
    ])
    _write(ed / "sad_films.csv", ["kind", "title", "director", "year", "sources"], [
        ["film", "Up", "Pete Docter", "2009", "d"],
        ["film", "Bad Tags", "X", "2000", "d"],
    ])
    _write(ed / "annotations_films.csv", ANNOTATION_HEADER, [
        ["film", "Up", "Pete Docter", "grief;tenderness", "loss_partner", "4", "5760", "false",
         "true", ""],
        ["film", "Bad Tags", "X", "weepy", "", "3", "6000", "false", "true", ""],
    ])
    _write(ed / "uplifting.csv", ["kind", "title", "artist_or_director", "year", "sources"], [
        ["song", "Fix You - Remastered", "Coldplay", "2005", "e;a"],
        ["film", "Paddington", "Paul King", "2014", "e"],
    ])
    _write(ed / "annotations_uplifting.csv", ANNOTATION_HEADER, [
        ["song", "Fix You - Remastered", "Coldplay", "hope", "", "2", "295", "false", "true",
         ""],
        ["film", "Paddington", "Paul King", "joy", "family", "1", "5700", "false", "true", ""],
    ])
    return ed


def _read(path):
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_build_joins_merges_and_sorts(editorial, tmp_path):
    out = tmp_path / "out" / "catalog.csv"
    report = build_catalog(editorial, out)
    rows = _read(out)
    assert [(r["kind"], r["title"]) for r in rows] == [
        ("film", "Paddington"), ("film", "Up"), ("song", "Fix You"), ("song", "Hurt"),
    ]
    fix_you = rows[2]
    assert fix_you["sources"] == "a;e"
    assert fix_you["tags"] == "grief;hope"
    assert fix_you["aftercare"] == "true"
    assert (fix_you["duration_s"], fix_you["duration_estimated"]) == ("295", "false")
    up = rows[1]
    assert (up["artist"], up["director"], up["tags"]) == ("", "Pete Docter",
                                                          "grief;tenderness;loss_partner")
    assert rows[3]["artist"] == "Johnny Cash" and rows[3]["director"] == ""
    assert rows[3]["spotify_id"] == ""
    assert (report.songs, report.films, report.aftercare) == (2, 2, 2)
    assert len(report.merged) == 1


def test_build_reports_every_dropped_row(editorial, tmp_path):
    out = tmp_path / "catalog.csv"
    report = build_catalog(editorial, out)
    dropped = {(d.file, d.line): d.reason for d in report.dropped}
    assert dropped[("sad_songs.csv", 4)] == "novelty song"
    assert dropped[("sad_songs.csv", 5)] == "not annotated yet"
    assert dropped[("annotations_songs.csv", 5)].startswith("annotation matches no row")
    assert "weepy" in dropped[("sad_films.csv", 3)]
    readme = (tmp_path / "README.md").read_text(encoding="utf-8")
    assert "python -m recommender.catalog.build" in readme
    row = "| `sad_songs.csv` | 5 | song | Unannotated, With Comma | Someone | not annotated yet |"
    assert row in readme


def test_missing_annotation_file_drops_its_rows(editorial, tmp_path):
    (editorial / "annotations_songs.csv").unlink()
    report = build_catalog(editorial, tmp_path / "catalog.csv")
    assert report.songs == 1  # only the aftercare Fix You is annotated
    assert sum(d.reason == "not annotated yet" for d in report.dropped) == 4


def test_wrong_header_is_an_error(editorial, tmp_path):
    _write(editorial / "sad_films.csv", ["kind", "name"], [["film", "Up"]])
    with pytest.raises(CatalogBuildError):
        build_catalog(editorial, tmp_path / "catalog.csv")


def test_build_is_deterministic(editorial, tmp_path):
    build_catalog(editorial, tmp_path / "a" / "catalog.csv")
    build_catalog(editorial, tmp_path / "b" / "catalog.csv")
    assert (tmp_path / "a" / "catalog.csv").read_bytes() == (
        tmp_path / "b" / "catalog.csv").read_bytes()
    assert (tmp_path / "a" / "README.md").read_bytes() == (
        tmp_path / "b" / "README.md").read_bytes()
