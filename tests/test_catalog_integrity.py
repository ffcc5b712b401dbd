"""The committed catalogue (data/catalog.csv) is sound and is exactly what its sources build."""

import csv
import json
import re
from collections import Counter

import pytest

from recommender.catalog.build import CATALOG_HEADER, build_catalog
from recommender.catalog.identity import identity_key
from recommender.paths import CATALOG_CSV, DATA_DIR, VOCABULARY_JSON

EDITORIAL_DIR = DATA_DIR / "editorial"


@pytest.fixture(scope="module")
def rows():
    with CATALOG_CSV.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def vocabulary():
    raw = json.loads(VOCABULARY_JSON.read_text(encoding="utf-8"))
    return {m["id"] for m in raw["moods"]}, {t["id"] for t in raw["themes"]}


@pytest.fixture(scope="module")
def source_names():
    text = (EDITORIAL_DIR / "SOURCES.md").read_text(encoding="utf-8")
    return set(re.findall(r"^\|\s*`([^`]+)`\s*\|", text, flags=re.MULTILINE))


def test_header():
    with CATALOG_CSV.open(encoding="utf-8", newline="") as fh:
        assert tuple(next(csv.reader(fh))) == CATALOG_HEADER


def test_no_duplicate_identities(rows):
    keys = Counter(identity_key(r["kind"], r["title"], r["artist"] or r["director"])
                   for r in rows)
    assert [k for k, n in keys.items() if n > 1] == []


def test_kinds_and_name_columns(rows):
    for r in rows:
        assert r["kind"] in {"song", "film"}, r
        assert r["title"], r
        if r["kind"] == "song":
            assert r["director"] == "", r
        else:
            assert r["artist"] == "", r


def test_every_tag_is_in_the_vocabulary_and_each_row_has_a_mood(rows, vocabulary):
    moods, themes = vocabulary
    for r in rows:
        tags = r["tags"].split(";")
        assert set(tags) <= moods | themes, (r["title"], set(tags) - moods - themes)
        assert any(t in moods for t in tags), r["title"]


def test_every_row_names_known_sources(rows, source_names):
    assert source_names, "no short names found in SOURCES.md"
    for r in rows:
        sources = r["sources"].split(";")
        assert sources and all(sources), r["title"]
        assert set(sources) <= source_names, (r["title"], set(sources) - source_names)


def test_intensity_duration_and_flags(rows):
    for r in rows:
        assert 1 <= int(r["intensity"]) <= 5, r["title"]
        assert 60 <= int(r["duration_s"]) <= 14400, r["title"]
        assert r["aftercare"] in {"true", "false"}, r["title"]
        assert r["duration_estimated"] in {"true", "false"}, r["title"]
        assert r["year"] == "" or 1600 <= int(r["year"]) <= 2030, r["title"]


def test_aftercare_items_exist(rows):
    assert any(r["aftercare"] == "true" for r in rows)


def test_committed_catalog_equals_a_fresh_build(tmp_path):
    out = tmp_path / "catalog.csv"
    build_catalog(EDITORIAL_DIR, out, VOCABULARY_JSON)
    assert out.read_text(encoding="utf-8") == CATALOG_CSV.read_text(encoding="utf-8"), (
        "data/catalog.csv drifted from its sources: run python -m recommender.catalog.build"
    )
    assert (tmp_path / "README.md").read_text(encoding="utf-8") == (
        DATA_DIR / "README.md"
    ).read_text(encoding="utf-8")


def test_catalog_is_big_enough(rows):
    counts = Counter(r["kind"] for r in rows)
    assert counts["song"] >= 300
    assert counts["film"] >= 100
    assert sum(r["aftercare"] == "true" for r in rows) >= 40
