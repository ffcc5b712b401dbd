"""Importers for public datasets a user downloads: MuSe and the MovieLens tag genome."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from recommender.catalog.merge import Candidate, merge_candidates
from recommender.catalog.movielens import import_movielens, split_title
from recommender.catalog.muse import DatasetFileError, import_muse, parse_seeds
from recommender.cli import main
from recommender.store.catalog import catalog_revision, search_items
from recommender.store.models import CatalogItem

DATA = Path(__file__).parent / "data"
MUSE = DATA / "muse" / "muse_sample.csv"
MOVIELENS = DATA / "movielens"


def item(db, kind, title, name):
    column = CatalogItem.artist if kind == "song" else CatalogItem.director
    found = db.scalars(select(CatalogItem).where(
        CatalogItem.kind == kind, CatalogItem.title == title,
        column.is_(None) if name is None else column == name)).all()
    assert len(found) == 1, (title, name, found)
    return found[0]


def count(db) -> int:
    return db.scalar(select(func.count()).select_from(CatalogItem))


# -- MuSe ---------------------------------------------------------------------------------------


def test_parse_seeds():
    assert parse_seeds("['sad', 'melancholy']") == ("sad", "melancholy")
    assert parse_seeds("[\"rock 'n' roll\"]") == ("rock 'n' roll",)
    assert parse_seeds("[]") == ()
    with pytest.raises(ValueError, match="not a list of tags"):
        parse_seeds("['sad', 'melancholy'")
    with pytest.raises(ValueError, match="not a list of tags"):
        parse_seeds("[1, 2]")


def test_muse_import_maps_seeds_and_quadrants_and_merges_with_the_catalogue(db):
    before = count(db)
    hurt_before = item(db, "song", "Hurt", "Johnny Cash")
    tags_before = hurt_before.tag_list
    report = import_muse(db, MUSE)

    # Malformed rows are reported with file and line; the rest imported.
    assert [(p.file, p.line) for p in report.errors] == [
        ("muse_sample.csv", 9), ("muse_sample.csv", 10), ("muse_sample.csv", 11)]
    assert "seeds is not a list" in report.errors[0].message
    assert "valence_tags must be a number" in report.errors[1].message
    assert "artist is empty" in report.errors[2].message
    # Unknown seed tags: one warning per tag, naming the first line.
    unknown = {p.message.split("'")[1]: p.line for p in report.warnings}
    assert unknown["aggressive"] == 6 and unknown["dark"] == 7 and unknown["intense"] == 8

    # A catalogue song gains tags and the source; its curated intensity stays.
    hurt = item(db, "song", "Hurt", "Johnny Cash")
    assert [t for t in hurt.tag_list if t in tags_before] == tags_before  # order kept
    assert "nostalgia" in hurt.tag_list and "muse" in hurt.sources.split(";")
    assert hurt.intensity == hurt_before.intensity
    adele = item(db, "song", "Someone Like You", "Adele")
    assert adele.spotify_uri == "spotify:track:4kflIGfjdZJW4ot2ioixTB"
    assert "release" in adele.tag_list

    # New songs: seeds mapped; valence/arousal used when seeds name no mood.
    about = item(db, "song", "About Today", "The National")
    assert about.tag_list == ["nostalgia", "loneliness"]
    assert about.intensity == 4 and about.duration_estimated and about.shared
    roads = item(db, "song", "Roads", "Portishead")
    assert roads.tag_list == ["grief"]  # low valence, low arousal
    # Metal with no mood word and neutral valence: not for a cry session.
    assert not db.scalars(select(CatalogItem).where(CatalogItem.title == "Angel of Death")).all()
    assert report.skipped == 1
    assert report.added == 2 and report.updated == 5
    assert count(db) == before + 2


def test_muse_reimport_changes_nothing(db):
    import_muse(db, MUSE)
    revision = catalog_revision(db)
    snapshot = sorted((i.identity_key, tuple(i.tag_list), i.sources, i.spotify_uri)
                      for i in db.scalars(select(CatalogItem)))
    again = import_muse(db, MUSE)
    assert (again.added, again.updated) == (0, 0)
    assert again.unchanged == 7
    assert catalog_revision(db) == revision
    db.expire_all()
    assert sorted((i.identity_key, tuple(i.tag_list), i.sources, i.spotify_uri)
                  for i in db.scalars(select(CatalogItem))) == snapshot


def test_muse_wrong_header_names_the_file_and_line(db, tmp_path):
    bad = tmp_path / "not_muse.csv"
    bad.write_text("kind,title,artist\nsong,Hurt,Johnny Cash\n", encoding="utf-8")
    before = count(db)
    with pytest.raises(DatasetFileError, match=r"not_muse.csv:1: not a MuSe file.*seeds"):
        import_muse(db, bad)
    assert count(db) == before


def test_muse_cli_reports_problems_with_file_and_line(database_url, monkeypatch):
    monkeypatch.setenv("GOODCRY_DATABASE_URL", database_url)
    result = CliRunner().invoke(main, ["catalog", "import-muse", str(MUSE), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "muse_sample.csv:9: skipped: seeds is not a list" in result.output
    assert "muse_sample.csv:6: warning: seed tag 'aggressive'" in result.output
    assert "added 2, updated 5" in result.output


# -- MovieLens -----------------------------------------------------------------------------------


def test_split_title():
    assert split_title("Up (2009)") == ("Up", 2009, ())
    assert split_title("Notebook, The (2004)") == ("The Notebook", 2004, ())
    assert split_title("Hunt, The (Jagten) (2012)") == ("The Hunt", 2012, ("Jagten",))


def test_movielens_imports_only_sad_films_and_merges_with_catalogue_films(db):
    before = count(db)
    report = import_movielens(db, MOVIELENS)
    assert [(p.file, p.line) for p in report.errors] == [
        ("movies.csv", 9), ("genome-scores.csv", 86)]
    # Toy Story (comedy) and Shawshank (injustice, bittersweet below 0.7) are not sad enough.
    assert report.skipped == 2
    assert not db.scalars(select(CatalogItem).where(CatalogItem.title == "Toy Story")).all()

    up = item(db, "film", "Up", "Pete Docter")
    assert {"release", "nostalgia", "loneliness", "death"} <= set(up.tag_list)
    assert "movielens" in up.sources.split(";")
    # Matched through its other title and year, onto the catalogue's own spelling.
    hachi = item(db, "film", "Hachi: A Dog's Tale", "Lasse Hallström")
    assert "movielens" in hachi.sources.split(";")
    # A film the catalogue lacks comes in without a director.
    hunt = item(db, "film", "The Hunt", None)
    assert hunt.year == 2012 and hunt.tag_list[0] == "release"
    assert {"injustice", "family"} <= set(hunt.tag_list) and hunt.intensity == 2
    assert count(db) == before + 1
    assert report.added == 1 and report.updated == 4

    again = import_movielens(db, MOVIELENS)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 5)


def test_movielens_threshold_decides_what_is_sad_enough(db):
    report = import_movielens(db, MOVIELENS, threshold=0.95)
    # Only Grave of the Fireflies (sad 0.98) and Hachiko (tearjerker 0.99) pass.
    assert report.added + report.updated == 2


def test_movielens_wrong_header_or_missing_file(db, tmp_path):
    target = tmp_path / "ml"
    shutil.copytree(MOVIELENS, target)
    (target / "genome-scores.csv").write_text("movie,tag,score\n1,1,0.9\n", encoding="utf-8")
    with pytest.raises(DatasetFileError, match=r"genome-scores.csv:1: wrong header"):
        import_movielens(db, target)
    (target / "genome-tags.csv").unlink()
    with pytest.raises(DatasetFileError, match=r"genome-tags\.csv: missing"):
        import_movielens(db, target)


def test_movielens_cli(database_url, monkeypatch):
    monkeypatch.setenv("GOODCRY_DATABASE_URL", database_url)
    result = CliRunner().invoke(main, ["catalog", "import-movielens", str(MOVIELENS),
                                       "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "movies.csv:9: skipped" in result.output
    assert "added 1, updated 4" in result.output


# -- merging ------------------------------------------------------------------------------------


def test_library_only_items_stay_out_of_the_shared_catalogue_until_a_source_names_them(db):
    private = Candidate(kind="song", title="Private Song", artist="Somebody", shared=False,
                        source="spotify")
    report = merge_candidates(db, [private])
    db.commit()
    assert report.added == 1
    assert search_items(db, q="private song")[1] == 0
    public = Candidate(kind="song", title="Private Song", artist="Somebody", tags=("grief",),
                       source="muse")
    merge_candidates(db, [public])
    db.commit()
    page, total = search_items(db, q="private song")
    assert total == 1 and page[0].tag_list == ["grief"]
