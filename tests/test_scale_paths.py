"""The paths that keep sessions fast on large catalogues: columnar matrix, bulk load,
on-disk artefacts, candidate retrieval. (Speed itself is measured in benchmarks/scale.py.)"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from recommender import retrieval, tastes
from recommender.catalog import identity
from recommender.catalog.importer import import_csv
from recommender.features import (
    ItemIndex,
    ItemRecord,
    ItemRecords,
    RequestMatch,
    SessionRequest,
    TextColumn,
    attribute_keys,
    build_item_matrix,
    build_item_matrix_from_frames,
    item_eras,
    item_title_keys,
    pair_features,
    query_vector,
    request_vector,
    taste_attribute_table,
)
from recommender.matrix_cache import cached_matrix, load_matrix, save_matrix
from recommender.retrieval import (
    RETRIEVE_ABOVE,
    SONG_CANDIDATES,
    LovedAttributes,
    candidate_rows,
    narrow_to_candidates,
    ranking_vector,
    request_match,
    retrieval_index,
)
from recommender.store.catalog import catalog_generation, item_frames
from recommender.store.models import CatalogItem
from recommender.vocabulary import default_vocabulary

HEADER = "kind,title,artist,director,year,duration_s,tags,spotify_id\n"


def orm_records(db) -> list[ItemRecord]:
    items = db.scalars(select(CatalogItem).where(CatalogItem.shared.is_(True))
                       .options(selectinload(CatalogItem.tags)).order_by(CatalogItem.id))
    return [ItemRecord(id=i.id, kind=i.kind, title=i.title, artist=i.artist,
                       director=i.director, year=i.year, duration_s=i.duration_s,
                       intensity=i.intensity, aftercare=i.aftercare, tags=tuple(i.tag_list),
                       spotify_uri=i.spotify_uri) for i in items]


def assert_same_matrix(a, b) -> None:
    assert list(a.records) == list(b.records)
    assert (a.moods != b.moods).nnz == 0 and (a.themes != b.themes).nnz == 0
    assert np.allclose(a.text.toarray(), b.text.toarray(), atol=1e-6)
    for name in ("intensity", "duration_s", "is_film", "aftercare", "has_suicide_theme"):
        assert np.array_equal(np.asarray(getattr(a, name)), np.asarray(getattr(b, name))), name
    # Same maker grouping (codes may differ, the partition may not).
    assert [a.maker_names[c] for c in a.maker] == [b.maker_names[c] for c in b.maker]


def test_bulk_load_builds_the_same_matrix_as_the_records(db):
    vocabulary = default_vocabulary()
    records = orm_records(db)
    assert len(records) > 800
    from_records = build_item_matrix(records, vocabulary)
    from_frames = build_item_matrix_from_frames(*item_frames(db), vocabulary)
    assert_same_matrix(from_records, from_frames)
    some = records[17]
    assert from_frames.index[some.id] == 17 and some.id in from_frames.index
    assert from_frames.index.get("no-such-item") is None and "nope" not in from_frames.index


def test_text_fitted_by_parts_equals_fitting_the_whole_documents():
    """The matrix build tokenises each distinct title, maker and tag once; the vectoriser
    and matrix must be those of fitting the joined documents."""
    import pandas as pd

    from recommender.features import _text_vectorizer, item_document

    vocabulary = default_vocabulary()
    rows = [("a1", "song", "The Rain Song no. 12", "Café Tacvba", None, ("grief", "loss_parent")),
            ("a2", "song", "Ünïcode – Remastered (feat. X)", "Beyoncé", None, ("hope",)),
            ("a3", "film", "The and of a", None, "Agnès Varda", ()),
            ("a4", "song", "ΟΔΥΣΣΕΑΣ Σ", "Café Tacvba", None, ("grief", "odd free tag")),
            ("a5", "film", "Rain, rain; RAIN!", None, "Director 7", ("loss_parent",)),
            ("a6", "song", "x", "y", None, ("nostalgia", "grief"))]
    items = pd.DataFrame({
        "id": [r[0] for r in rows], "identity_key": [f"{r[1]}|t{i}|m" for i, r in
                                                     enumerate(rows)],
        "kind": [r[1] for r in rows], "title": [r[2] for r in rows],
        "artist": [r[3] for r in rows], "director": [r[4] for r in rows],
        "year": [2000] * len(rows), "duration_s": [200] * len(rows),
        "intensity": [3] * len(rows), "aftercare": [False] * len(rows),
        "spotify_uri": [None] * len(rows)})
    tags = pd.DataFrame([(r[0], t, p) for r in rows for p, t in enumerate(r[5])],
                        columns=["item_id", "tag", "position"])
    matrix = build_item_matrix_from_frames(items, tags, vocabulary)
    records = [ItemRecord(id=r[0], kind=r[1], title=r[2], artist=r[3], director=r[4],
                          year=2000, duration_s=200, intensity=3, aftercare=False, tags=r[5])
               for r in rows]
    whole = _text_vectorizer()
    expected = whole.fit_transform([item_document(r, vocabulary) for r in records])
    assert matrix.vectorizer.vocabulary_ == whole.vocabulary_
    assert np.array_equal(matrix.vectorizer.idf_, whole.idf_)
    assert matrix.vectorizer.idf_.dtype == whole.idf_.dtype
    assert (abs(matrix.text - expected) > 1e-7).nnz == 0
    for words in ("the rain song", "Beyoncé café", "odysseas σ", "loss of a parent"):
        assert (abs(query_vector(matrix.vectorizer, words)
                    - query_vector(whole, words)) > 1e-7).nnz == 0
        assert (abs(matrix.vectorizer.transform([words]) - whole.transform([words]))
                > 1e-7).nnz == 0


def test_artefact_round_trip_and_a_new_one_after_the_catalogue_changes(db, tmp_path):
    vocabulary = default_vocabulary()
    first = cached_matrix(db, vocabulary, tmp_path, persist_min_items=0)
    generation = catalog_generation(db)
    assert generation and (tmp_path / f"items-{generation}" / "format").exists()
    again = load_matrix(tmp_path / f"items-{generation}")
    # Mapped read-only from the file, not copied into the process.
    assert not again.text.data.flags.writeable and not again.text.data.flags.owndata
    assert_same_matrix(first, again)

    csv_file = tmp_path / "more.csv"
    csv_file.write_text(HEADER + "song,An Entirely New Lament,The Scale Band,,2020,200,grief,\n",
                        encoding="utf-8")
    assert import_csv(db, csv_file).added == 1
    assert catalog_generation(db) != generation
    changed = cached_matrix(db, vocabulary, tmp_path, persist_min_items=0)
    assert len(changed) == len(first) + 1
    assert any(r.title == "An Entirely New Lament" for r in changed.records)
    assert (tmp_path / f"items-{catalog_generation(db)}" / "format").exists()


def test_saved_matrix_subset_keeps_records_and_arrays(db, tmp_path):
    vocabulary = default_vocabulary()
    matrix = build_item_matrix_from_frames(*item_frames(db), vocabulary)
    save_matrix(matrix, tmp_path / "m")
    loaded = load_matrix(tmp_path / "m")
    rows = np.array([400, 3, 77, 3 + len(matrix) // 2])
    small = loaded.subset(rows)
    assert list(small.records) == [matrix.records[int(r)] for r in rows]
    assert np.array_equal(small.duration_s, matrix.duration_s[rows])
    assert small.index[matrix.records[77].id] == 2


def test_records_read_together_equal_records_read_one_by_one(db, tmp_path):
    """A session's chosen items read column by column (``ItemRecords.at``) are the records
    read one at a time, from the mapped artefact and from a subset's view, in any order."""
    vocabulary = default_vocabulary()
    matrix = build_item_matrix_from_frames(*item_frames(db), vocabulary)
    save_matrix(matrix, tmp_path / "m")
    loaded = load_matrix(tmp_path / "m")
    rows = [400, 3, 77, 3, len(matrix) - 1, 0]
    assert loaded.records.at(rows) == [matrix.records[r] for r in rows]
    assert loaded.records.at([]) == []
    small = loaded.subset(np.array([400, 3, 77, 12, 5]))
    assert small.records.at([4, 0, 2]) == [small.records[4], small.records[0], small.records[2]]
    films = [r for r in range(len(matrix)) if matrix.records[r].kind == "film"][:3]
    assert [r.kind for r in loaded.records.at(films)] == ["film"] * 3
    odd = ItemRecords.from_records([
        ItemRecord(id="a1", kind="song", title="Dvořák ∙ naïve", artist="Björk", director=None,
                   year=None, duration_s=200, intensity=2, aftercare=True, tags=()),
        ItemRecord(id="b2", kind="film", title="日本語", artist=None, director="Ozu",
                   year=1953, duration_s=8000, intensity=5, aftercare=False,
                   tags=("grief", "loss_parent"), spotify_uri="spotify:track:x")])
    assert odd.at([1, 0]) == [odd[1], odd[0]]
    assert odd.at([0])[0].year is None and odd.at([0])[0].spotify_uri is None


def test_text_column_take_handles_empty_and_non_ascii():
    values = ["Dvořák", "", "naïve café", "plain", "", "日本語"]
    col = TextColumn.from_strings(values)
    assert [col[i] for i in range(len(values))] == values
    assert col.take(np.array([5, 1, 0, 2])) == ["日本語", "", "Dvořák", "naïve café"]
    assert TextColumn.from_strings(["", None]).take(np.array([1, 0])) == ["", ""]
    assert col.strings_at(np.array([5, 1, 0, 2, 5])) == ["日本語", "", "Dvořák", "naïve café",
                                                        "日本語"]


def test_taste_table_matches_attribute_keys(db):
    vocabulary = default_vocabulary()
    matrix = build_item_matrix_from_frames(*item_frames(db), vocabulary)
    for m in (matrix, matrix.subset(np.array([5, 900 % len(matrix), 42]))):
        ids, groups, weights = taste_attribute_table(m, vocabulary)
        expected = [attribute_keys(r.id, r.kind, r.tags, r.artist, r.director, r.year,
                                   vocabulary) for r in m.records]
        assert ids == tuple(sorted({k for keys in expected for k in keys}))
        for i, keys in enumerate(expected):
            assert sorted(ids[j] for j in weights[i].indices) == sorted(keys)
        assert len(groups) == len(ids)


def test_candidates_taste_table_is_cut_from_the_catalogues(db):
    """A subset's taste attributes come from the whole catalogue's table (built once per
    revision); they must equal the table built for the subset alone."""
    vocabulary = default_vocabulary()
    matrix = build_item_matrix_from_frames(*item_frames(db), vocabulary)
    shuffled = np.random.default_rng(3).permutation(len(matrix))[:300]
    for rows in (np.array([len(matrix) - 1, 3, 0, 7 % len(matrix)]), shuffled,
                 np.array([9, 2]), np.zeros(0, dtype=np.int64)):
        subset = matrix.subset(rows)
        cut = tastes.taste_attributes(subset, vocabulary)
        assert "taste_attributes" in matrix.extra, "the whole catalogue's table is kept"
        ids, groups, weights = taste_attribute_table(subset, vocabulary)
        assert cut.ids == ids
        assert cut.index == {k: j for j, k in enumerate(ids)}
        assert np.array_equal(cut.group, groups)
        assert (cut.weights != weights).nnz == 0 and cut.weights.shape == weights.shape
        # Each row's entries in the catalogue's order, as a row of the catalogue's table.
        whole = tastes.taste_attributes(matrix, vocabulary)
        for i, row in enumerate(rows):
            assert np.array_equal(cut.parent_cols[cut.weights[i].indices],
                                  whole.weights[row].indices)
        assert list(cut.era) == list(item_eras(subset))
        assert list(cut.title_key) == list(item_title_keys(subset))
        # What a request reads of the cut (its entries, as arrays) is the table's own, and
        # the taste features over it are those of the table built for the subset alone.
        assert cut.entry_columns.dtype == np.intp
        assert np.array_equal(cut.entry_columns, weights.indices)
        assert np.array_equal(cut.entry_data, weights.data)
        assert np.array_equal(cut.indptr, weights.indptr) and cut.shape == weights.shape
        alone = tastes.TasteAttributes(ids, groups, weights, cut.era_code, cut.title_code)
        deviation = np.random.default_rng(len(rows)).normal(size=len(ids))
        subset.extra["taste_attributes"] = alone
        expected_features = tastes.taste_features(subset, deviation)
        subset.extra["taste_attributes"] = cut
        assert np.array_equal(tastes.taste_features(subset, deviation), expected_features)
        # The arc compares decades and titles by number: equal numbers, equal labels.
        assert np.array_equal(cut.era_code, whole.era_code[rows])
        assert np.array_equal(cut.title_code, whole.title_code[rows])
        assert_codes_name(cut.era_code, cut.era, unknown="")
        assert_codes_name(cut.title_code, cut.title_key)


def test_a_cut_reads_the_parents_values_unless_every_entry_is_one():
    dense = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    for values, unit in ((dense, True), (dense * np.array([[2.0], [1.0], [0.5]]), False)):
        weights = sp.csr_matrix(values)
        full = tastes.TasteAttributes(("a", "b", "c"), np.zeros(3, dtype=np.int64), weights,
                                      np.zeros(3, dtype=np.int64), np.arange(3))
        assert full.unit_entries is unit
        rows = np.array([2, 0])
        cut = tastes._subset_attributes(full, rows)
        assert np.array_equal(cut.weights.toarray(),
                              values[rows][:, cut.parent_cols])


def assert_codes_name(codes: np.ndarray, labels: np.ndarray, unknown: str | None = None):
    """Two items share a code exactly when they share a label (and 0 is ``unknown``)."""
    assert len(codes) == len(labels)
    pairs = set(zip(codes.tolist(), list(labels), strict=True))
    assert len({c for c, _ in pairs}) == len(pairs) == len({label for _, label in pairs})
    if unknown is not None:
        assert all((c == 0) == (label == unknown) for c, label in pairs)


def test_era_and_title_codes_tell_labels_apart(db):
    """The whole catalogue's decade and title numbers (as the arc's diversity checks read
    them) match its labels one to one, years before 10 AD and unknown years included."""
    vocabulary = default_vocabulary()
    matrix = build_item_matrix_from_frames(*item_frames(db), vocabulary)
    whole = tastes.taste_attributes(matrix, vocabulary)
    assert len(set(whole.era.tolist())) > 3 and "" in set(whole.era.tolist())
    assert len(set(whole.title_key.tolist())) > 100
    assert_codes_name(whole.era_code, whole.era, unknown="")
    assert_codes_name(whole.title_code, whole.title_key)
    records = [r for r in synthetic(40)]
    records[0] = dataclasses.replace(records[0], year=7)       # the decade "0s"
    records[1] = dataclasses.replace(records[1], year=None)    # unknown
    records[2] = dataclasses.replace(records[2], year=2003)
    small = tastes.taste_attributes(build_item_matrix(records, vocabulary), vocabulary)
    assert list(small.era[:3]) == ["0s", "", "2000s"]
    assert_codes_name(small.era_code, small.era, unknown="")


def synthetic(n: int) -> list[ItemRecord]:
    rng = np.random.default_rng(5)
    moods = ["grief", "heartbreak", "nostalgia", "loneliness", "longing"]
    records = []
    for i in range(n):
        kind = "film" if i % 25 == 0 else "song"
        aftercare = kind == "song" and i % 20 == 1
        tags = ("hope",) if aftercare else (moods[i % 5], "suicide") if i % 97 == 0 else (
            moods[i % 5],)
        records.append(ItemRecord(
            id=f"{i:016x}", kind=kind, title=f"Piece {i}", artist=None if kind == "film"
            else f"Maker {i % 700}", director=f"Dir {i % 50}" if kind == "film" else None,
            year=1990, duration_s=int(rng.integers(5400, 9000)) if kind == "film"
            else int(rng.integers(150, 330)), intensity=int(rng.integers(1, 6)),
            aftercare=aftercare, tags=tags))
    return records


def test_candidate_retrieval_keeps_the_pools_the_arc_needs():
    vocabulary = default_vocabulary()
    matrix = build_item_matrix(synthetic(RETRIEVE_ABOVE + 1500), vocabulary)
    request = SessionRequest(moods=("grief",), minutes=150, intensity=3)
    vec = request_vector(request, matrix, vocabulary)
    keep = np.array([matrix.index[f"{3:016x}"]])  # a "loneliness" song someone rated
    rows = candidate_rows(matrix, vec, request, crisis=False, keep_rows=keep,
                          rng=np.random.default_rng(1))
    assert rows is not None and len(rows) < len(matrix) // 2
    assert keep[0] in rows
    songs = rows[~matrix.is_film[rows] & ~matrix.aftercare[rows]]
    grief = (matrix.moods @ vec.moods) > 0
    allowed_grief = np.flatnonzero(grief & ~matrix.is_film & ~matrix.aftercare
                                   & (matrix.intensity <= 4))
    # What was asked for comes first: with more allowed grief songs than the pool holds, the
    # pool is all grief songs (and the kept row, which is not one).
    assert len(allowed_grief) > SONG_CANDIDATES
    assert set(songs) - {int(keep[0])} <= set(allowed_grief)
    assert len(set(songs) - {int(keep[0])}) == SONG_CANDIDATES
    assert matrix.intensity[songs].max() <= 4
    assert (matrix.aftercare[rows] & (matrix.duration_s[rows] <= 150 * 60)).any()
    films = rows[matrix.is_film[rows]]
    assert len(films) and (matrix.duration_s[films] <= 150 * 60 - 8 * 60).all()

    crisis = candidate_rows(matrix, vec, request, crisis=True, rng=np.random.default_rng(1))
    assert not matrix.has_suicide_theme[crisis].any()
    # The sad songs' pool is told by the pool code alone: a code of 1 to ``cap`` is a song,
    # not aftercare, of intensity at most ``cap``.
    index = retrieval_index(matrix)
    for cap in range(1, 6):
        assert np.array_equal(
            np.flatnonzero(~matrix.is_film & ~matrix.aftercare & (matrix.intensity <= cap)),
            np.flatnonzero((index.pool_code >= 1) & (index.pool_code <= cap)))
    assert not matrix.is_film[crisis].any()
    assert candidate_rows(build_item_matrix(synthetic(50), vocabulary), vec, request,
                          crisis=False) is None


def test_retrieval_adds_the_songs_of_what_the_person_loved():
    vocabulary = default_vocabulary()
    matrix = build_item_matrix(synthetic(RETRIEVE_ABOVE + 1500), vocabulary)
    request = SessionRequest(moods=("grief",), minutes=150, intensity=3)
    vec = request_vector(request, matrix, vocabulary)
    plain = set(candidate_rows(matrix, vec, request, crisis=False,
                               rng=np.random.default_rng(3)))
    # A maker of grief songs (the synthetic maker follows the mood) whose allowed songs the
    # request alone left out: hundreds of grief songs compete for its pool.
    allowed = ~matrix.is_film & ~matrix.aftercare & (matrix.intensity <= 4)
    grief = np.flatnonzero(allowed & ((matrix.moods @ vec.moods) > 0))
    left_out = {int(matrix.maker[r]) for r in grief if r not in plain}
    code = min(left_out)
    theirs = set(np.flatnonzero(allowed & (matrix.maker == code)))
    assert theirs - plain
    name = matrix.maker_names[code]
    stats = {f"maker:{name}": [3.0, 3.0, 3.0, 0.0],       # cried three times
             "maker:someone else": [0.0, 2.0, 0.0, 0.0],  # left cold twice: not loved
             "theme:loss_parent": [1.0, 1.0, 1.0, 0.0]}
    taste = LovedAttributes.of(stats, vocabulary)
    assert set(taste.makers) == {name}
    assert set(taste.themes) == {vocabulary.theme_ids.index("loss_parent")}
    personal = candidate_rows(matrix, vec, request, crisis=False, rng=np.random.default_rng(3),
                              taste=taste)
    assert theirs <= set(personal)
    assert plain < set(personal)   # the request's own pools stay as they were
    assert matrix.intensity[personal[~matrix.is_film[personal]]].max() <= 4
    # The same hard limits hold for what the taste picks: in a crisis, no films and nothing
    # about suicide, even from a loved maker.
    suicide_maker = int(matrix.maker[np.flatnonzero(
        matrix.has_suicide_theme & ~matrix.is_film & (matrix.intensity <= 2))[0]])
    stats[f"maker:{matrix.maker_names[suicide_maker]}"] = [3.0, 3.0, 3.0, 0.0]
    crisis = candidate_rows(matrix, vec, request, crisis=True, rng=np.random.default_rng(3),
                            taste=LovedAttributes.of(stats, vocabulary))
    assert not matrix.has_suicide_theme[crisis].any()
    assert not matrix.is_film[crisis].any()
    assert matrix.intensity[crisis].max() <= 2


def _pools_by_catalogue_arrays(index, prior, taste, song_ok, film_ok, rng):
    """The personal pools worked out with catalogue-sized arrays (each loved attribute's
    deviation added onto a bonus per row): what retrieval's own must equal."""
    carrying = []
    for j, dev in taste.themes.items():
        carriers = index.themes_by_tag.indices[
            index.themes_by_tag.indptr[j]:index.themes_by_tag.indptr[j + 1]]
        if len(carriers) > retrieval.LOVED_THEME_ROWS:
            start = int(rng.integers(0, len(carriers)))
            carriers = np.take(carriers, np.arange(start, start + retrieval.LOVED_THEME_ROWS),
                               mode="wrap")
        carrying.append((carriers, dev))
    for name, dev in taste.makers.items():
        carrying.append((index.rows_of_maker(name), np.float32(dev)))
    bonus = np.zeros(len(prior), dtype=np.float32)
    carries = np.zeros(len(prior), dtype=bool)
    for carriers, dev in carrying:
        bonus[carriers] += dev
        carries[carriers] = True
    rows = np.flatnonzero(carries)
    score = prior[rows] + bonus[rows]
    pools = []
    for ok, k in ((song_ok, retrieval.PERSONAL_SONG_CANDIDATES),
                  (film_ok, retrieval.PERSONAL_FILM_CANDIDATES)):
        at = np.flatnonzero(ok(rows))
        pools.append(rows[at[np.argsort(-score[at], kind="stable")[:k]]])
    return pools


def test_personal_pools_add_up_what_each_row_carries():
    """Rows carrying several loved themes and a loved maker get each one's deviation, added
    in the same order and precision as catalogue-sized arrays would add them."""
    vocabulary = default_vocabulary()
    rng = np.random.default_rng(11)
    themes = list(vocabulary.theme_ids)
    records = [dataclasses.replace(
        r, tags=(*r.tags, *rng.choice(themes, size=3, replace=False).tolist()))
        for r in synthetic(RETRIEVE_ABOVE + 3000)]
    matrix = build_item_matrix(records, vocabulary)
    index = retrieval_index(matrix)
    loved = rng.choice(len(themes), size=3, replace=False).tolist()
    makers = sorted({r.artist or r.director for r in records})[:40:3]
    taste = LovedAttributes(
        themes={j: float(d) for j, d in zip(loved, (0.731, 0.402, 1.113), strict=True)},
        makers={identity.normalise_name(m): 0.3 + 0.01 * k for k, m in enumerate(makers)})
    rows_of_theme = [set(index.themes_by_tag[:, j].indices.tolist()) for j in loved]
    assert any(len([t for t in rows_of_theme if r in t]) == 3 for r in range(len(matrix)))
    def song_ok(rows, code=None):
        return ~matrix.is_film[rows] & ~matrix.aftercare[rows]

    def film_ok(rows, code=None):
        return matrix.is_film[rows]

    # The first request works the carrying rows out; the later ones (other priors) read them
    # from the index's cache, and must still add up the same.
    for seed in range(4):
        prior = np.random.default_rng(seed).random(len(matrix), dtype=np.float32)
        ours = retrieval._personal_pools(index, prior, taste, song_ok, film_ok,
                                         np.random.default_rng(seed))
        expected = _pools_by_catalogue_arrays(index, prior, taste, song_ok, film_ok,
                                              np.random.default_rng(seed))
        assert len(ours) == len(expected) == 2
        for got, want in zip(ours, expected, strict=True):
            assert np.array_equal(np.sort(got), np.sort(want))
        assert len(index.carried) == 1
    carried = retrieval._carried(index, taste, np.random.default_rng(0))
    assert np.array_equal(carried.codes, index.pool_code[carried.rows])
    assert not any(a.flags.writeable for a in (carried.rows, carried.devs, carried.codes))


def test_carrying_rows_are_kept_per_catalogue_and_taste_unless_drawn(monkeypatch):
    """What a taste's loved themes and makers carry is worked out once per catalogue and
    taste; a theme carried by more rows than a run holds is drawn anew each time, and a new
    catalogue starts with nothing kept."""
    vocabulary = default_vocabulary()
    rng = np.random.default_rng(5)
    records = [dataclasses.replace(r, tags=(*r.tags, str(rng.choice(vocabulary.theme_ids))))
               for r in synthetic(RETRIEVE_ABOVE + 3000)]
    matrix = build_item_matrix(records, vocabulary)
    index = retrieval_index(matrix)
    by_theme = index.themes_by_tag
    sizes = np.diff(by_theme.indptr)
    small, big = (int(j) for j in np.flatnonzero(sizes > 1)[:2])
    taste = LovedAttributes(themes={small: 0.5}, makers={})
    first = retrieval._carried(index, taste, np.random.default_rng(1))
    assert retrieval._carried(index, taste, np.random.default_rng(2)) is first
    assert np.array_equal(first.rows, np.sort(by_theme[:, small].indices))
    # Another deviation is another taste: worked out again, with its own sums.
    other = retrieval._carried(index, LovedAttributes(themes={small: 0.25}, makers={}),
                               np.random.default_rng(1))
    assert other is not first and np.array_equal(other.rows, first.rows)
    assert np.all(other.devs == np.float32(0.25)) and len(index.carried) == 2

    monkeypatch.setattr(retrieval, "LOVED_THEME_ROWS", int(sizes[big]) - 1)
    drawn = LovedAttributes(themes={big: 0.5}, makers={})
    runs = [retrieval._carried(index, drawn, np.random.default_rng(seed)).rows
            for seed in range(6)]
    assert len(index.carried) == 2   # a drawn run is not kept
    assert all(len(run) == sizes[big] - 1 for run in runs)
    assert len({run.tobytes() for run in runs}) > 1

    rebuilt = retrieval_index(build_item_matrix(records, vocabulary))
    assert rebuilt is not index and len(rebuilt.carried) == 0


def test_carried_cache_keeps_the_most_recently_used_within_its_bytes():
    rows = np.arange(100, dtype=np.intp)
    entry = retrieval.Carried(rows, np.zeros(100, dtype=np.float32),
                              np.zeros(100, dtype=np.uint8))
    cache = retrieval.CarriedCache(max_bytes=2 * entry.nbytes)
    cache.put(("a",), entry)
    cache.put(("b",), entry)
    assert cache.get(("a",)) is entry       # "a" is now the more recently used
    cache.put(("c",), entry)
    assert cache.get(("b",)) is None and cache.get(("a",)) is entry and len(cache) == 2
    huge = retrieval.Carried(np.arange(1000, dtype=np.intp), np.zeros(1000, dtype=np.float32),
                             np.zeros(1000, dtype=np.uint8))
    cache.put(("huge",), huge)              # larger than the whole cache: not kept
    assert cache.get(("huge",)) is None and len(cache) == 2


def test_narrowing_keeps_the_items_the_person_loved_and_not_the_ones_they_skipped():
    vocabulary = default_vocabulary()
    matrix = build_item_matrix(synthetic(RETRIEVE_ABOVE + 1500), vocabulary)
    request = SessionRequest(moods=("grief",), minutes=150, intensity=3)
    # Songs far from the request (other moods, intensity 5): no pool would pick them.
    far = [r for r in range(len(matrix)) if matrix.intensity[r] == 5 and not matrix.is_film[r]
           and not (matrix.moods[r] @ request_vector(request, matrix, vocabulary).moods)][:3]
    loved, skipped = far[:2], far[2]
    stats = {f"item:{matrix.records[r].id}": [1.0, 1.0, 1.0, 0.0] for r in loved}
    stats[f"item:{matrix.records[skipped].id}"] = [0.0, 1.0, 0.0, 0.0]
    stats["item:not-in-this-catalogue"] = [1.0, 1.0, 1.0, 0.0]
    narrowed = narrow_to_candidates(matrix, request, vocabulary, stats=stats, crisis=False,
                                    seed=4)
    assert len(narrowed) < len(matrix) // 2
    assert {matrix.records[r].id for r in loved} <= set(narrowed.index)
    assert matrix.records[skipped].id not in set(narrowed.index)
    alone = narrow_to_candidates(matrix, request, vocabulary, stats={}, crisis=False, seed=4)
    assert not {matrix.records[r].id for r in far} & set(alone.index)


def test_reacted_rows_are_the_most_loved_items_and_kept_per_stored_stats_and_catalogue():
    from recommender.retrieval import REACTED_CANDIDATES, reacted_rows
    from recommender.tastes import StoredStats, deviation_from_sums

    vocabulary = default_vocabulary()
    records = synthetic(RETRIEVE_ABOVE + 1500)
    matrix = build_item_matrix(records, vocabulary)
    first = StoredStats({f"item:{records[5].id}": [1.0, 1.0, 1.0, 0.0],
                         f"item:{records[9].id}": [0.0, 1.0, 0.0, 0.0],
                         "theme:loss_of_parent": [1.0, 1.0, 1.0, 0.0]}, "first")
    assert reacted_rows(matrix, first).tolist() == [5]  # 9 left them cold: not kept in
    assert reacted_rows(matrix, first) is reacted_rows(matrix, first)  # worked out once
    # A rating stores new stats: an item just loved is among the rows at once.
    later = StoredStats({**first, f"item:{records[2].id}": [1.0, 1.0, 0.0, 1.0]}, "later")
    assert reacted_rows(matrix, later).tolist() == [2, 5]
    # The same stats against a new catalogue revision (items reordered): that matrix's rows.
    reordered = build_item_matrix(records[::-1], vocabulary)
    n = len(records)
    assert reacted_rows(reordered, first).tolist() == [n - 1 - 5]
    # A long history: the strongest REACTED_CANDIDATES of the loved items, whatever else.
    rng = np.random.default_rng(2)
    many = {}
    for row in range(3 * REACTED_CANDIDATES):
        count = float(rng.integers(1, 6))
        many[f"item:{records[row].id}"] = [float(rng.integers(0, count + 1)), count, 0.0, 0.0]
    keys = list(many)
    devs = deviation_from_sums(np.array([many[k][0] for k in keys]),
                               np.array([many[k][1] for k in keys]))
    ranked = sorted((k for k, d in zip(keys, devs, strict=True) if d > 0),
                    key=lambda k: (-devs[keys.index(k)], k[5:]))
    assert len(ranked) > REACTED_CANDIDATES
    expected = sorted(matrix.index[k[5:]] for k in ranked[:REACTED_CANDIDATES])
    # Loved most of all, but gone from the catalogue: no place taken.
    many.update({f"item:gone-{k}": [5.0, 5.0, 5.0, 0.0] for k in range(10)})
    assert reacted_rows(matrix, StoredStats(many, "many")).tolist() == expected


def test_query_vector_equals_the_vectorizers_transform(db):
    matrix = build_item_matrix_from_frames(*item_frames(db), default_vocabulary())
    texts = ("missing my grandmother", "grief grief GRIEF, and the rain", "zzzz qqqq", "",
             "Café RÉSUMÉ naïve", "the the and of", "rain-soaked letters, letters; letter")
    for text in texts:
        expected = matrix.vectorizer.transform([text])
        got = query_vector(matrix.vectorizer, text)
        assert got.dtype == expected.dtype and got.shape == expected.shape
        assert np.allclose(got.toarray(), expected.toarray(), atol=1e-7), text
    # Other settings of the same vectorizer class: binary counts, raw tf, l1, no idf.
    from sklearn.feature_extraction.text import TfidfVectorizer

    docs = ["rain on the window", "letters in the rain", "a café by the sea", "sea sea rain"]
    for settings in ({"binary": True}, {"sublinear_tf": False, "norm": "l1"},
                     {"use_idf": False, "norm": None}, {"strip_accents": "unicode"}):
        vectorizer = TfidfVectorizer(**settings).fit(docs)
        for text in ("rain rain rain on the sea", "café", "nothing known", ""):
            assert np.allclose(query_vector(vectorizer, text).toarray(),
                               vectorizer.transform([text]).toarray(), atol=1e-7), (settings, text)


def test_a_worker_does_not_wait_for_another_process_building_the_artefact(db, tmp_path):
    import fcntl

    vocabulary = default_vocabulary()
    tmp_path.mkdir(exist_ok=True)
    with open(tmp_path / ".lock", "w") as held:  # another process building right now
        fcntl.flock(held, fcntl.LOCK_EX)
        assert cached_matrix(db, vocabulary, tmp_path, persist_min_items=0, wait=False) is None
        fcntl.flock(held, fcntl.LOCK_UN)
    built = cached_matrix(db, vocabulary, tmp_path, persist_min_items=0, wait=False)
    assert built is not None and len(built) > 800


def test_item_index_finds_many_ids_in_one_search():
    unsorted = ItemIndex(np.array([b"b", b"a", b"d", b"c"], dtype="S"))
    assert list(unsorted.rows_of(["a", "missing", "c", "b"])) == [1, 3, 0]
    assert list(unsorted.rows_of(["a", "c", "b"])) == [unsorted[k] for k in ("a", "c", "b")]
    ordered = ItemIndex(np.array([b"a", b"b", b"c"], dtype="S"))
    assert list(ordered.rows_of(["c", "a", "0", "zzz"])) == [2, 0]
    assert len(ItemIndex(np.zeros(0, dtype="S4")).rows_of(["a"])) == 0


def _exact_top(values: np.ndarray, k: int) -> np.ndarray:
    """The values of the ``k`` highest, in order (ties kept as often as they come)."""
    return np.sort(values)[::-1][:k]


def test_the_best_of_a_pool_are_its_exact_top_k():
    """Each compiled top-k keeps rows whose values are exactly the k highest of its pool (any
    of several tied at the k-th value may be kept), each row once; a pool of at most k rows
    comes back whole."""
    from recommender.retrieval_kernel import top_in_pool, top_of_rows, top_scored

    rng = np.random.default_rng(11)
    big = 100_000
    # A prior shaped like retrieval's: a few levels (moods matched, intensity) plus a small
    # spread, and one where most rows tie at the top.
    shaped = (rng.integers(0, 4, big) * 0.25 + rng.random(big) * 0.05).astype(np.float32)
    flat = np.zeros(big, dtype=np.float32)
    flat[rng.choice(big, 10, replace=False)] = 1.0
    code = rng.integers(0, 16, big).astype(np.uint8)
    blocked = rng.random(big) < 0.1
    for prior in (shaped, flat):
        for low, high, k in ((1, 5, 150), (1, 2, 300), (11, 15, 20), (3, 3, 1)):
            for block in (np.zeros(0, dtype=bool), blocked):
                fits = (code >= low) & (code <= high)
                if len(block):
                    fits &= ~block
                got = top_in_pool(prior, code, low, high, block, k)
                assert len(set(got.tolist())) == len(got) == k
                assert fits[got].all()
                assert np.array_equal(np.sort(prior[got])[::-1],
                                      _exact_top(prior[fits], k))
        for size, k in ((85_000, 300), (9_000, 30), (20, 30), (0, 5)):
            pool = np.sort(rng.choice(big, size=size, replace=False)).astype(np.int64)
            got = top_of_rows(prior, pool, k)
            assert len(set(got.tolist())) == len(got) == min(k, size)
            assert set(got.tolist()) <= set(pool.tolist())
            assert np.array_equal(np.sort(prior[got])[::-1], _exact_top(prior[pool], k))
            # Scored: the prior plus each position's own extra, among the allowed positions.
            extra = rng.random(size).astype(np.float32)
            allowed = rng.random(size) < 0.7
            at = top_scored(prior, pool, extra, allowed, k)
            score = prior[pool] + extra
            assert len(set(at.tolist())) == len(at) == min(k, int(allowed.sum()))
            assert allowed[at].all()
            assert np.array_equal(np.sort(score[at])[::-1], _exact_top(score[allowed], k))
    # Fewer fitting rows than k: all of them, whatever the prior.
    few = np.zeros(big, dtype=np.uint8)
    few[[5, 70, 99_999]] = 2
    assert sorted(top_in_pool(shaped, few, 1, 5, np.zeros(0, dtype=bool), 150).tolist()) == [
        5, 70, 99_999]
    assert len(top_in_pool(shaped, few, 1, 5, np.zeros(0, dtype=bool), 0)) == 0


def test_a_pool_by_length_gives_exactly_the_rows_that_fit_a_budget():
    from recommender.retrieval import ByLength

    rng = np.random.default_rng(3)
    duration = rng.integers(60, 9000, 5000)
    duration[::7] = 3600  # many rows exactly at a limit below
    pool = np.sort(rng.choice(5000, size=2000, replace=False))
    by_length = ByLength.of(pool, duration)
    for limit in (0, 59, 60, 3599, 3600, 3601, 8999, 9000, 20_000):
        fit = by_length.up_to(limit)
        assert sorted(fit.tolist()) == pool[duration[pool] <= limit].tolist()


def test_candidates_features_come_from_their_carried_match_and_lazily_cut_tables():
    vocabulary = default_vocabulary()
    matrix = build_item_matrix(synthetic(RETRIEVE_ABOVE + 1500), vocabulary)
    request = SessionRequest(moods=("grief", "longing"), prompt="a piece about my father",
                             minutes=150, intensity=3)
    vec = ranking_vector(request, matrix, vocabulary)
    narrowed = narrow_to_candidates(matrix, request, vocabulary, stats={}, crisis=False,
                                    seed=1, vec=vec)
    rows = narrowed.extra["parent_rows"]
    assert len(narrowed) < len(matrix)
    # The request's own features: read from what retrieval worked out for every row, equal
    # to those computed from the catalogue's tables for these rows.
    carried = pair_features(narrowed, vec)
    assert carried[:, 0].any() and carried[:, 2].any()
    np.testing.assert_allclose(carried, pair_features(matrix, vec, rows=rows), atol=1e-6)
    # Another request's (another vector) come from the candidates' own tables, cut from the
    # catalogue's when first read.
    other = ranking_vector(SessionRequest(moods=("heartbreak",), prompt="piece", intensity=2),
                           matrix, vocabulary)
    np.testing.assert_allclose(pair_features(narrowed, other),
                               pair_features(matrix, other, rows=rows), atol=1e-6)
    for table in ("moods", "themes", "text"):
        assert (getattr(narrowed, table) != getattr(matrix, table)[rows]).nnz == 0


def test_moods_added_from_the_dense_table_equal_the_scattered_sums():
    vocabulary = default_vocabulary()
    matrix = build_item_matrix(synthetic(RETRIEVE_ABOVE + 1500), vocabulary)
    index = retrieval_index(matrix)
    assert index.mood_columns.dtype == np.float32 and index.mood_columns.flags.c_contiguous
    np.testing.assert_array_equal(index.mood_columns, matrix.moods.toarray().T)
    rng = np.random.default_rng(4)
    vec = request_vector(SessionRequest(moods=("grief",), prompt="a piece about my father"),
                         matrix, vocabulary)
    n = len(matrix)
    for k in (1, 2, 3, len(vocabulary.mood_ids)):
        # Any weights, not only equal ones: each mood's share of the request differs.
        moods = np.zeros(len(vocabulary.mood_ids), dtype=np.float32)
        moods[rng.choice(len(moods), k, replace=False)] = rng.uniform(0.1, 3.0, k)
        asked = dataclasses.replace(vec, moods=moods)
        dense = RequestMatch.of(asked, n, index.moods_by_tag, index.themes_by_tag,
                                index.text_by_term, mood_columns=index.mood_columns)
        scattered = RequestMatch.of(asked, n, index.moods_by_tag, index.themes_by_tag,
                                    index.text_by_term)
        assert dense.mood.dtype == scattered.mood.dtype == np.float32
        assert dense.mood.tobytes() == scattered.mood.tobytes()
        assert (dense.mood > 0).sum() > 0
        assert dense.text.tobytes() == scattered.text.tobytes()
        assert (dense.theme is None) == (scattered.theme is None)
    # Retrieval's own match (from the dense table) is the scattered sums too.
    assert request_match(matrix, vec).mood.tobytes() == RequestMatch.of(
        vec, n, index.moods_by_tag, index.themes_by_tag, index.text_by_term).mood.tobytes()


def test_requests_mood_and_theme_columns_are_kept_per_catalogue_read_only():
    """A request's mood and theme columns are kept by the moods or themes asked and their
    weights: the same request reads the same read-only column, equal to one worked out
    afresh; other weights are another entry; words are worked out each time; a new
    catalogue table starts with nothing kept."""
    vocabulary = default_vocabulary()
    matrix = build_item_matrix(synthetic(RETRIEVE_ABOVE + 1500), vocabulary)
    index = retrieval_index(matrix)
    n = len(matrix)
    request = SessionRequest(moods=("grief", "longing"), prompt="a piece about my father",
                             intensity=3)
    vec = ranking_vector(request, matrix, vocabulary)
    assert vec.themes.any() and vec.text.nnz
    first, again = request_match(matrix, vec), request_match(matrix, vec)
    fresh = RequestMatch.of(vec, n, index.moods_by_tag, index.themes_by_tag,
                            index.text_by_term, mood_columns=index.mood_columns)
    assert again.mood is first.mood and again.theme is first.theme
    assert again.text is not first.text
    for kept, worked in ((first.mood, fresh.mood), (first.theme, fresh.theme)):
        assert not kept.flags.writeable and kept.tobytes() == worked.tobytes()
    with pytest.raises(ValueError):
        first.mood[0] = 1.0
    # The same moods weighed alike (each half) are the same entry; weighed otherwise, not.
    alike = dataclasses.replace(vec, moods=vec.moods * np.float32(4.0))
    assert request_match(matrix, alike).mood is first.mood
    uneven = vec.moods.copy()
    uneven[np.flatnonzero(uneven)[0]] = 3.0
    heavier = dataclasses.replace(vec, moods=uneven)
    other = request_match(matrix, heavier)
    assert other.mood is not first.mood
    assert other.mood.tobytes() == RequestMatch.of(
        heavier, n, index.moods_by_tag, index.themes_by_tag, index.text_by_term).mood.tobytes()
    assert len(index.matches) == 3
    rebuilt = build_item_matrix(synthetic(RETRIEVE_ABOVE + 1500), vocabulary)
    assert len(retrieval_index(rebuilt).matches) == 0
    assert request_match(rebuilt, vec).mood is not first.mood


def test_requests_without_words_share_one_read_only_word_row():
    """A request with no free text reads the same empty word row as every other such
    request (built once per vocabulary width); it cannot be written through, so no request
    can change another's."""
    vocabulary = default_vocabulary()
    matrix = build_item_matrix(synthetic(300), vocabulary)
    a = request_vector(SessionRequest(moods=("grief",)), matrix, vocabulary)
    b = request_vector(SessionRequest(moods=("longing",), intensity=2), matrix, vocabulary)
    assert a.text is b.text
    assert a.text.nnz == 0 and a.text.shape == (1, matrix.text.shape[1])
    for array in (a.text.data, a.text.indices, a.text.indptr):
        assert not array.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        a.text.indptr[1] = 1
    worded = request_vector(SessionRequest(prompt="a piece about grief"), matrix, vocabulary)
    assert worded.text is not a.text and worded.text.nnz > 0
    assert np.array_equal(worded.text.toarray(),
                          matrix.vectorizer.transform(["a piece about grief"]).toarray())


@pytest.mark.parametrize("index_type", [np.int32, np.int64])
def test_the_compiled_cut_equals_scipys_rows_and_leaves_its_scratch_clean(index_type):
    from recommender import taste_kernel

    rng = np.random.default_rng(5)
    table = sp.random(400, 3000, density=0.004, format="csr", random_state=6)
    table.indptr, table.indices = (table.indptr.astype(index_type),
                                   table.indices.astype(index_type))
    for rows in (np.array([], dtype=np.int64), np.array([7]), rng.choice(400, 90, replace=False),
                 np.arange(400), np.array([3, 3, 1])):
        starts, columns, used, at = taste_kernel.cut_rows(table.indptr, table.indices, 3000,
                                                          rows)
        expected = table[rows]
        assert np.array_equal(used, np.unique(expected.indices))
        cut = sp.csr_matrix((table.data[at], columns, starts), shape=(len(rows), len(used)))
        assert np.array_equal(cut.toarray(), expected[:, used].toarray())
        assert (taste_kernel._scratch.arrays[3000] == -1).all()
    for bad in (np.array([400]), np.array([0, -1])):
        with pytest.raises(IndexError, match="rows outside the table's 400"):
            taste_kernel.cut_rows(table.indptr, table.indices, 3000, bad)
