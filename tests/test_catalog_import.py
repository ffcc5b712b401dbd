"""The bulk catalogue importer: the column-checked reader against the row-by-row one, the
fast insert path against the merge path, on a real database (SQLite or PostgreSQL)."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import select

from recommender.catalog.importer import (
    ImportReport,
    import_blocks,
    import_csv,
    read_blocks,
    read_rows,
)
from recommender.store.models import CatalogItem, ItemTag
from recommender.vocabulary import default_vocabulary

HEADER = ("kind,title,artist,director,year,duration_s,tags,spotify_id,intensity,aftercare,"
          "duration_estimated,sources\n")
TRICKY_ROWS = [
    "song,A Lament Nobody Sang,Band One,,2019,245,grief;Tearjerker;rainy days,"
    "4uLU6hMCjMI75M1A2tKUQC,2,true,false,somewhere",
    "song,No Artist,,,2001,200,grief,,,,,",
    " SONG , Padded Cells , Some Artist ,A Director, 2000 , 300 ,grief,"
    "spotify:track:5uLU6hMCjMI75M1A2tKUQC, 5 , YES , n ,  ",
    "film,A Film Without Length,Ignored Artist,Dir One,1999,,grief;loss_parent,,,,,",
    "film,Film With Id,,Dir Two,1999,7200.0,grief,4uLU6hMCjMI75M1A2tKUQC,,,,",
    "opera,Wrong Kind,Singer,,2000,100,grief,,,,,",
    "song,Bad Year,Singer,,nineteen,200,grief,,,,,",
    "song,Bad Id,Singer,,2000,200,grief,not-an-id,,,,",
    "song,Too Short,Singer,,2000",
    "song,Too Long,Singer,,2000,200,grief,,1,true,true,src,extra",
    "",
    'song,"Two\nLines",Singer,,2000,200,grief,,1,maybe,,',
    "song,Intensity Zero,Singer,,2000,200,grief,,0,,,",
    "song,Odd Numbers,Singer,,+2000,9,grief,,6,,,",
    "song,A Lament Nobody Sang,Band One,,2019,250,grief,,2,true,false,again",
    "film,Estimated Film,,Dir Three,,,hope,,,,true,",
    "song,Too Early,Singer,,1499,200,grief,,,,,",
    "song,Leading Zero,Singer,,01999,200,grief,,,,,",
    "song,Too Long A Song,Singer,,1999,21601,grief,,,,,",
    "song,Ünïcode – Remastered 2011 (feat. X),Beyoncé feat. Y,,1999,200,Grief; ;sad;odd tag,"
    ",,,,",
    "song,The Plain Title. Again,The Band,,1999,200,hope,,,,,",
    "film,Decimal Length,,Dir Four,1999,7200.0,grief,,,,,",
]


@pytest.mark.parametrize("block_rows", [1, 2, 3, 7, 1000])
def test_column_checks_match_the_row_by_row_reader(block_rows):
    """Same rows (identity keys included), same errors and warnings, in the same order."""
    vocabulary = default_vocabulary()
    text = HEADER + "\n".join(TRICKY_ROWS) + "\n"
    by_row, by_column = ImportReport(), ImportReport()
    rows = list(read_rows(io.StringIO(text), vocabulary, by_row))
    blocks = list(read_blocks(io.StringIO(text), vocabulary, by_column, block_rows=block_rows))
    assert [r for block in blocks for r in block.rows()] == rows
    assert [k for block in blocks for k in block.key] == [r.key for r in rows]
    assert by_column.errors == by_row.errors
    assert by_column.warnings == by_row.warnings
    assert len(rows) == 10 and len(by_row.errors) == 11 and len(by_row.warnings) == 2
    assert rows[-1].duration_s == 7200 and rows[3].line == 10  # checked alone, and accepted
    assert sum(block.records for block in blocks) == len(TRICKY_ROWS) - 1  # one blank line


def test_a_repeated_header_name_reads_as_csv_dictreader_does():
    text = ("kind,title,artist,director,year,duration_s,tags,spotify_id,kind\n"
            "song,Twice Named,Someone,,2019,245,grief,,film\n")
    by_row, by_column = ImportReport(), ImportReport()
    rows = list(read_rows(io.StringIO(text), default_vocabulary(), by_row))
    blocks = list(read_blocks(io.StringIO(text), default_vocabulary(), by_column))
    assert [r for b in blocks for r in b.rows()] == rows and rows[0].kind == "film"


def stored_catalogue(db) -> dict[str, tuple]:
    """Every item's stored facts and ordered tags, by identity key (ids and times aside)."""
    items = CatalogItem.__table__
    tags: dict[str, list[str]] = {}
    for item_id, tag in db.execute(select(ItemTag.item_id, ItemTag.tag)
                                   .order_by(ItemTag.item_id, ItemTag.position)):
        tags.setdefault(item_id, []).append(tag)
    return {row.identity_key: (row.kind, row.title, row.artist, row.director, row.year,
                               row.duration_s, row.duration_estimated, row.intensity,
                               row.aftercare, row.spotify_uri, row.sources, row.shared,
                               tuple(tags.get(row.id, ())))
            for row in db.execute(select(items))}


def synthetic_csv(n: int, *, variant: int = 0) -> str:
    """``n`` songs and films; ``variant`` changes every item's facts but not its identity."""
    lines = [HEADER.rstrip("\n")]
    moods = ["grief", "heartbreak", "nostalgia", "loneliness", "longing", "regret"]
    for i in range(n):
        tags = ";".join(moods[(i + variant + k) % len(moods)] for k in range(1 + i % 3))
        title = f"The Quiet Song Number {i}" if variant == 0 else f"the quiet song number {i}"
        if i % 9 == 0:
            lines.append(f"film,{title},,Director {i % 7},{1950 + (i + variant) % 70},"
                         f"{(90 + variant) * 60},{tags},,{1 + (i + variant) % 5},false,,")
        else:
            lines.append(f"song,{title},Artist {i % 13},,{1960 + (i + variant) % 60},"
                         f"{200 + variant + i % 50},{tags},,{1 + (i + variant) % 5},"
                         f"{'true' if (i + variant) % 10 == 0 else 'false'},,")
    return "\n".join(lines) + "\n"


def run_import(db, text: str, *, block_rows: int, read_all_keys: bool | None) -> ImportReport:
    report = ImportReport()
    import_blocks(db, read_blocks(io.StringIO(text), default_vocabulary(), report,
                                  block_rows=block_rows), report, read_all_keys=read_all_keys)
    db.commit()
    return report


@pytest.mark.parametrize("read_all_keys", [True, False])
def test_fresh_inserts_and_merges_store_the_same_catalogue(db, read_all_keys):
    """New items go in by bulk insert; a file whose items are stored goes through the
    compare-and-update path. Both must leave the same catalogue."""
    before = stored_catalogue(db)
    first = run_import(db, synthetic_csv(60), block_rows=7, read_all_keys=read_all_keys)
    assert (first.added, first.updated, first.unchanged, first.errors) == (60, 0, 0, [])
    fresh = stored_catalogue(db)
    assert len(fresh) == len(before) + 60
    assert {k: v for k, v in fresh.items() if k in before} == before

    changed = run_import(db, synthetic_csv(60, variant=1), block_rows=11,
                         read_all_keys=read_all_keys)
    assert (changed.added, changed.updated, changed.unchanged) == (0, 60, 0)
    assert stored_catalogue(db) != fresh
    back = run_import(db, synthetic_csv(60), block_rows=5, read_all_keys=read_all_keys)
    assert (back.added, back.updated, back.unchanged) == (0, 60, 0)
    assert stored_catalogue(db) == fresh
    again = run_import(db, synthetic_csv(60), block_rows=1000, read_all_keys=read_all_keys)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 60)
    assert stored_catalogue(db) == fresh


def test_the_later_of_two_rows_for_one_item_wins_within_and_across_blocks(db):
    for block_rows in (100, 2):
        one = f"song,Same Song Twice {block_rows},Same Artist,,2001,200,grief,,1,,,"
        two = f"song,same song twice {block_rows},SAME ARTIST,,2002,210,hope,,4,,,"
        text = HEADER + "\n".join([one, "song,Filler,Other,,2000,200,grief,,,,,", two]) + "\n"
        report = run_import(db, text, block_rows=block_rows, read_all_keys=None)
        song = stored_catalogue(db)[f"song|same song twice {block_rows}|same artist"]
        assert song[4:6] == (2002, 210) and song[-1] == ("hope",)
        if block_rows == 100:  # in one block: one insert, and a warning for the earlier row
            assert any(w.line == 4 and "later row wins" in w.message for w in report.warnings)
            assert (report.added, report.unchanged) in ((2, 1), (1, 2))
        else:  # the later block updates what the earlier one added
            assert report.updated == 1


def test_import_csv_leaves_the_sqlite_page_cache_as_it_was(db, tmp_path):
    sqlite = db.connection().dialect.name == "sqlite"

    def cache_size():
        return db.connection().exec_driver_sql("PRAGMA cache_size").scalar() if sqlite else 0

    before = cache_size()
    path = tmp_path / "few.csv"
    path.write_text(synthetic_csv(5), encoding="utf-8")
    assert import_csv(db, path, progress=True).added == 5
    assert cache_size() == before
    assert len(stored_catalogue(db)) > 5


def test_a_file_read_ahead_on_a_thread_reports_and_stores_as_a_stream_does(db, tmp_path):
    """A file path is read on a second thread while earlier blocks are stored: problems
    must still come in file order and the catalogue must be what a stream import stores."""
    text = (HEADER + "\n".join(TRICKY_ROWS) + "\n"
            + synthetic_csv(40).split("\n", 1)[1] + synthetic_csv(40, variant=1).split("\n", 1)[1])
    path = tmp_path / "tricky.csv"
    path.write_text(text, encoding="utf-8")
    before = stored_catalogue(db)
    from_file = import_csv(db, path, block_rows=4)
    stored = stored_catalogue(db)
    for key in set(stored) - set(before):  # back to the catalogue as it was
        db.execute(CatalogItem.__table__.delete().where(
            CatalogItem.__table__.c.identity_key == key))
    db.commit()
    assert stored_catalogue(db) == before
    from_stream = import_csv(db, io.StringIO(text), block_rows=4)
    assert stored_catalogue(db) == stored
    assert from_file == from_stream
    assert from_file.errors and from_file.warnings
    assert (from_file.added, from_file.updated) == (49, 41)  # the variants; one repeat
    assert [p.line for p in from_file.errors] == sorted(p.line for p in from_file.errors)
