"""Prepared statements (recommender/store/prepared.py) run on the driver's cursor give what
SQLAlchemy's own run of the same statement gives, inside the ORM session's transaction, on
SQLite and on PostgreSQL (whichever store the tests run on)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from sqlalchemy import Float, Integer, Text, bindparam, cast, insert, select

from recommender import accounts, cry_sessions, shown
from recommender.store.catalog import _REVISION, catalog_revision
from recommender.store.db import json_text, make_engine, make_session_factory
from recommender.store.models import CatalogItem, CrySession, Feedback, Memory, User, new_id
from recommender.store.prepared import NotPreparable, Prepared
from recommender.tastes import _STATS_TEXT_OF

MEMORY_COLUMNS = ("id", "user_id", "title", "text", "tags", "people", "places", "when_text",
                  "created_at", "updated_at")


def _person(db, name="ada") -> User:
    user = User(username=name, password_hash="not a real hash")
    db.add(user)
    db.commit()
    return user


def _memory_row(user_id: str, title: str, moment: datetime) -> dict:
    return {"id": new_id(), "user_id": user_id, "title": title, "text": "the kitchen radio",
            "tags": ["grief", "family"], "people": ["Nan"], "places": [], "when_text": None,
            "created_at": moment, "updated_at": moment}


def _sqlalchemy_rows(db, statement, params) -> list[tuple]:
    return [tuple(row) for row in db.execute(statement, params)]


def test_reads_equal_sqlalchemys_own_for_every_prepared_statement_of_a_session(db):
    ada = _person(db)
    now = datetime.now(UTC)
    Prepared(insert(Memory.__table__), columns=MEMORY_COLUMNS).insert(db, [
        _memory_row(ada.id, "Nan's last summer", now - timedelta(days=2)),
        _memory_row(ada.id, "The flat on Elm Street", now - timedelta(days=1))])
    session_id = new_id()
    cry_sessions._INSERT_SESSION.insert(db, [{
        "id": session_id, "user_id": ada.id, "created_at": now, "model_version": "v1",
        "request": {"moods": ["grief"], "minutes": 30}, "moods": ["grief"], "themes": [],
        "total_duration_s": 1800, "care": {"crisis": False}}])
    items = list(db.scalars(select(CatalogItem.id).order_by(CatalogItem.id).limit(3)))
    assert len(items) == 3
    cry_sessions._INSERT_ITEMS.insert(db, [
        {"session_id": session_id, "user_id": ada.id, "position": k + 1, "item_id": item,
         "phase": "build", "technique": "photo", "prompt_text": "open a photo",
         "memory_id": None, "why": "Matches 'grief'.", "score": 0.5 + k}
        for k, item in enumerate(items)])
    db.add(Feedback(session_id=session_id, user_id=ada.id, note="it helped",
                    updated_at=now - timedelta(hours=2)))
    db.commit()

    token = accounts.issue_token(db, ada)
    asked = [items[0], "not-an-item", items[2]]
    cases = [
        (accounts._TOKEN_HOLDER, {"token_hash": accounts._token_hash(token)}),
        (_REVISION, {}),
        (_STATS_TEXT_OF, {"user": ada.id}),
        (cry_sessions._BANS_OF, {"user": ada.id}),
        (shown._SESSION_COUNT, {"user": ada.id}),
        (shown._NEWEST, {"user": ada.id, "newest": 5}),
        (shown._ITEMS_OF_SESSION, {"session": session_id}),
        (cry_sessions._JOURNAL_SINCE, {"user": ada.id, "since": now - timedelta(days=1)}),
        (cry_sessions._MEMORIES_OF, {"user": ada.id}),
    ]
    for prepared, params in cases:
        expected = _sqlalchemy_rows(db, prepared.statement, params)
        assert sorted(prepared.all(db, params), key=repr) == sorted(expected, key=repr), prepared

    # And what each gave is what was stored, converted by the column types.
    assert accounts.user_for_token(db, token) == (ada.id, "ada")
    assert accounts.user_for_token(db, token + "x") is None
    assert catalog_revision(db) >= 1
    assert shown._SESSION_COUNT.scalar(db, {"user": ada.id}) == 1
    assert shown._NEWEST.all(db, {"user": ada.id, "newest": 5}) == [(session_id, 1)]
    assert shown._NEWEST.all(db, {"user": ada.id, "newest": 0}) == []
    assert sorted(shown._ITEMS_OF_SESSION.scalars(db, {"session": session_id})) == sorted(items)
    assert shown.shown_to(db, ada.id).among(asked) == {items[0], items[2]}
    assert cry_sessions._JOURNAL_SINCE.scalars(
        db, {"user": ada.id, "since": now - timedelta(days=1)}) == ["it helped"]
    assert cry_sessions._JOURNAL_SINCE.scalars(
        db, {"user": ada.id, "since": now - timedelta(hours=1)}) == []
    memories = cry_sessions._MEMORIES_OF.all(db, {"user": ada.id})
    assert [m[1] for m in memories] == ["Nan's last summer", "The flat on Elm Street"]
    # The lists come as their stored JSON text, which the session reads itself.
    assert tuple(map(cry_sessions._listed, memories[0][3:6])) == (("grief", "family"),
                                                                   ("Nan",), ())


def test_inserted_rows_read_back_through_the_orm_as_stored(db):
    ada = _person(db)
    moment = datetime(2026, 11, 30, 21, 15, 7, 123456, tzinfo=UTC)
    session_id = new_id()
    cry_sessions._INSERT_SESSION.insert(db, [{
        "id": session_id, "user_id": ada.id, "created_at": moment, "model_version": "v7",
        "request": {"moods": ["grief"], "prompt": "Nan's kitchen"}, "moods": ["grief"],
        "themes": ["loss"], "total_duration_s": 2400, "care": {"crisis": False, "steps": []}}])
    db.commit()
    db.expire_all()
    stored = db.get(CrySession, session_id)
    assert stored.request == {"moods": ["grief"], "prompt": "Nan's kitchen"}
    assert (stored.moods, stored.themes, stored.care) == (["grief"], ["loss"],
                                                          {"crisis": False, "steps": []})
    assert stored.total_duration_s == 2400 and stored.model_version == "v7"
    at = stored.created_at if stored.created_at.tzinfo else stored.created_at.replace(tzinfo=UTC)
    assert at == moment


def test_writes_belong_to_the_sessions_transaction(db, database_url):
    ada = _person(db)
    insert_memory = Prepared(insert(Memory.__table__), columns=MEMORY_COLUMNS)
    now = datetime.now(UTC)
    insert_memory.insert(db, [_memory_row(ada.id, "rolled back", now)])
    db.rollback()
    insert_memory.insert(db, [_memory_row(ada.id, "kept", now)])
    db.commit()
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as other:
            assert list(other.scalars(select(Memory.title).where(Memory.user_id == ada.id))) == [
                "kept"]
    finally:
        engine.dispose()


def test_a_read_first_writes_the_sessions_pending_changes(db):
    ada = _person(db)
    db.add(Memory(user_id=ada.id, title="not yet flushed", tags=[], people=[], places=[]))
    titles = [row[1] for row in cry_sessions._MEMORIES_OF.all(db, {"user": ada.id})]
    assert titles == ["not yet flushed"]
    with db.no_autoflush:
        db.add(Memory(user_id=ada.id, title="held back", tags=[], people=[], places=[]))
        held = [row[1] for row in cry_sessions._MEMORIES_OF.all(db, {"user": ada.id})]
    assert held == ["not yet flushed"]


def test_what_cannot_be_prepared_or_run_is_named(db):
    ada = _person(db)
    with pytest.raises(NotPreparable, match=r"\['user'\]"):
        cry_sessions._BANS_OF.all(db, {})
    expanding = Prepared(select(Memory.id).where(Memory.id.in_(bindparam("ids", expanding=True))))
    with pytest.raises(NotPreparable, match="expands"):
        expanding.all(db, {"ids": ["a"]})
    # Memory.id's default (new_id) runs in Python: an insert leaving it out is refused.
    no_id = Prepared(insert(Memory.__table__), columns=MEMORY_COLUMNS[1:])
    with pytest.raises(NotPreparable, match="Python-side column default"):
        no_id.insert(db, [{k: v for k, v in _memory_row(ada.id, "x", datetime.now(UTC)).items()
                           if k != "id"}])
    extra = {**_memory_row(ada.id, "x", datetime.now(UTC)), "mood": "grief"}
    with pytest.raises(NotPreparable, match=r"extra \['mood'\]"):
        Prepared(insert(Memory.__table__), columns=MEMORY_COLUMNS).insert(db, [extra])
    # An insert carrying its values as parameters runs like a query, but the same rule holds.
    values_no_id = Prepared(insert(Memory.__table__).values(
        {name: bindparam(name) for name in MEMORY_COLUMNS[1:]}).returning(Memory.title))
    with pytest.raises(NotPreparable, match=r"columns \['id'\] take their values from Python-side"):
        values_no_id.first(db, {k: v for k, v in _memory_row(ada.id, "x", datetime.now(UTC))
                                .items() if k != "id"})
    with pytest.raises(NotPreparable, match="only an insert"):
        Prepared(select(Memory.id), columns=("id",))
    with pytest.raises(NotPreparable, match="call insert"):
        cry_sessions._INSERT_SESSION.all(db, {})
    db.rollback()
    assert db.scalar(select(Memory.id).where(Memory.user_id == ada.id)) is None


def test_an_insert_with_its_values_as_parameters_returns_what_it_stored(db):
    ada = _person(db)
    row = _memory_row(ada.id, "the pier at dusk", datetime.now(UTC))
    stored = Prepared(insert(Memory.__table__).values(
        {name: bindparam(name) for name in MEMORY_COLUMNS}).returning(Memory.title, Memory.tags))
    assert stored.first(db, {**row, "tags": ["sea", "summer"]}) == (
        "the pier at dusk", ["sea", "summer"])  # the JSON column's value, converted back
    db.commit()
    assert db.get(Memory, row["id"]).tags == ["sea", "summer"]


def test_numbers_come_back_as_numbers_on_every_database(db):
    """PostgreSQL's result processor for a float needs the driver's type code for the
    column, which only a run gives (the rate limiter's counters read one back)."""
    half = Prepared(select(cast(bindparam("x", type_=Float), Float).label("x"),
                           cast(bindparam("n", type_=Integer), Integer).label("n")))
    assert half.first(db, {"x": 2.5, "n": 7}) == (2.5, 7)
    assert half.first(db, {"x": 0.25, "n": 0}) == (0.25, 0)  # the second run, as made


def test_json_columns_are_stored_as_orjson_writes_them_and_read_back_as_given(db):
    """The engine's JSON columns are written by json_text (orjson), through the ORM and
    through a prepared insert alike, and read back to the values given."""
    user = _person(db)
    request = {"prompt": "Nan's kitchen, 台所, the radio 🌧", "minutes": 45, "films": False,
               "nested": {"weights": [0.5, 1.25], "none": None}}
    care = {"crisis": False, "message": "Drink some water — slowly."}
    by_orm = CrySession(user_id=user.id, model_version="v", request=request, moods=["grief"],
                        themes=[], total_duration_s=60, care=care)
    db.add(by_orm)
    db.commit()
    prepared_id = new_id()
    cry_sessions._INSERT_SESSION.insert(db, [{
        "id": prepared_id, "user_id": user.id, "created_at": datetime.now(UTC),
        "model_version": "v", "request": request, "moods": ["grief", "longing"],
        "themes": ["loss"], "total_duration_s": 60, "care": care}])
    db.commit()
    sessions = CrySession.__table__
    for session_id in (by_orm.id, prepared_id):
        row = db.execute(select(sessions.c.request, sessions.c.care, cast(sessions.c.request,
                                                                         Text))
                         .where(sessions.c.id == session_id)).one()
        assert (row[0], row[1]) == (request, care)
        # The stored text is orjson's (compact, UTF-8), not the standard library's.
        assert row[2] == orjson.dumps(request).decode() != json.dumps(request)


def test_json_text_falls_back_to_the_standard_library_for_what_orjson_refuses():
    lone = {"prompt": "half a pair \ud83d"}
    assert json_text(lone) == json.dumps(lone)  # escaped; orjson refuses the lone half
    assert json.loads(json_text({1: "one"})) == {"1": "one"}  # a key that is not a string
    with pytest.raises(TypeError):  # refused by both, as before
        json_text({"when": datetime.now(UTC)})
    assert json_text(["é", 1.5, None, True]) == '["é",1.5,null,true]'
