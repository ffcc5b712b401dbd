"""The store itself: the schema the migrations build is the one the models describe, and a
served SQLite store copies its write-ahead log back after responses, not inside them."""

from __future__ import annotations

import multiprocessing
import shutil
import threading
import time
from itertools import pairwise
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from recommender.store.db import (
    SQLITE_MMAP_BYTES,
    WAL_CHECKPOINT_BYTES,
    Checkpointer,
    checkpoint_if_due,
    make_engine,
    make_session_factory,
    upgrade,
)
from recommender.store.models import Base, CrySession
from tests.conftest import _prepare
from tests.served import Client, Served

ROW = "x" * 3000  # about one page of log per row written


def test_the_migrated_schema_is_the_models_schema(empty_database_url):
    engine = make_engine(empty_database_url)
    try:
        upgrade(engine)
        with engine.connect() as conn:
            differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()
    assert differences == []


def _write(engine, rows: int) -> None:
    with engine.begin() as conn:
        for _ in range(rows):
            conn.execute(text("INSERT INTO notes (body) VALUES (:b)"), {"b": ROW})


def test_without_checkpoint_on_commit_the_log_waits_for_checkpoint_if_due(tmp_path):
    path = tmp_path / "store.sqlite"
    wal = Path(f"{path}-wal")
    # The usual engine: SQLite copies the log back itself once it passes 1,000 pages.
    usual = make_engine(f"sqlite:///{path}")
    with usual.begin() as conn:
        conn.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)"))
    for _ in range(30):
        _write(usual, 100)
    usual_largest = wal.stat().st_size
    usual.dispose()
    assert usual_largest < 2 * WAL_CHECKPOINT_BYTES

    served = make_engine(f"sqlite:///{path}", checkpoint_on_commit=False)
    sizes = []
    for _ in range(30):
        _write(served, 100)
        sizes.append(wal.stat().st_size)
    # Nothing copied it back: the log holds all 3,000 rows.
    assert sizes == sorted(sizes) and sizes[-1] > 3 * WAL_CHECKPOINT_BYTES
    assert checkpoint_if_due(served, min_bytes=sizes[-1] * 2) is None  # not due yet
    copied = checkpoint_if_due(served)
    assert copied is not None and copied * 4096 >= 3000 * 3000
    _write(served, 1)  # the next write starts the log over, and the file is cut back
    assert wal.stat().st_size < 64 * 1024
    with served.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM notes")).scalar() == 6001
    served.dispose()


def test_other_stores_have_no_log_to_checkpoint(empty_database_url, tmp_path):
    memory = make_engine("sqlite://")
    assert checkpoint_if_due(memory, min_bytes=0) is None
    memory.dispose()
    if not empty_database_url.startswith("sqlite"):
        engine = make_engine(empty_database_url)
        assert checkpoint_if_due(engine, min_bytes=0) is None
        engine.dispose()


def test_a_served_sqlite_store_keeps_its_log_short_and_loses_nothing(template_db, tmp_path):
    """Whatever the suite's flavour, this is about SQLite: a store of its own."""
    path = tmp_path / "served.sqlite"
    if isinstance(template_db, Path):
        shutil.copy(template_db, path)
    else:
        _prepare(f"sqlite:///{path}")
    url = f"sqlite:///{path}"
    wal = Path(f"{path}-wal")
    sizes, made = [], []
    def drops() -> int:
        return sum(1 for a, b in pairwise(sizes) if b < a / 2)

    with Served(url, workers=2, log_path=tmp_path / "serve.log") as server:
        people = [Client(server.url, f"logkeeper{k}") for k in range(3)]
        # Sessions until the log has been cut back twice (a session writes 20-100 KB of
        # log, so a few hundred), at most 1,500.
        while drops() < 2 and len(made) < 1500:
            made.append(people[len(made) % 3].new_session(minutes=90)["id"])
            sizes.append(wal.stat().st_size if wal.exists() else 0)
    # The log passed the checkpoint size and was copied back and cut short again, more
    # than once, without any commit checkpointing it.
    assert max(sizes) >= WAL_CHECKPOINT_BYTES
    assert drops() >= 2, sizes
    assert max(sizes) < 2 * WAL_CHECKPOINT_BYTES
    engine = make_engine(url)
    with make_session_factory(engine)() as db:
        stored = set(db.scalars(text("SELECT id FROM cry_sessions")))
        assert set(made) <= stored
        assert db.get(CrySession, made[-1]) is not None
    engine.dispose()


def _wait_for(condition, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def _checkpointer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "goodcry-checkpointer"]


def test_the_checkpointer_copies_the_log_back_on_a_thread_of_its_own(tmp_path):
    path = tmp_path / "store.sqlite"
    wal = Path(f"{path}-wal")
    engine = make_engine(f"sqlite:///{path}", checkpoint_on_commit=False)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)"))
    checkpointer = Checkpointer(engine, min_bytes=256 * 1024)
    threads_before = len(_checkpointer_threads())
    _write(engine, 20)
    checkpointer.nudge()  # the log is short of the size: nothing to wake for
    assert checkpointer.runs == 0 and len(_checkpointer_threads()) == threads_before
    _write(engine, 200)
    grown = wal.stat().st_size
    assert grown >= 256 * 1024
    checkpointer.nudge()
    assert _wait_for(lambda: checkpointer.runs == 1), "the thread never checkpointed"
    assert len(_checkpointer_threads()) == threads_before + 1
    _write(engine, 1)  # everything was copied back: the log starts over, cut short
    assert wal.stat().st_size < grown / 4
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM notes")).scalar() == 221
    engine.dispose()


def _nudge_in_child(checkpointer: Checkpointer, ran) -> None:
    inherited = checkpointer.runs  # the parent's count, copied by the fork
    _write(checkpointer.engine, 40)
    checkpointer.nudge()
    ran.put(_wait_for(lambda: checkpointer.runs > inherited))


def test_a_forked_worker_nudges_a_checkpointer_thread_of_its_own(tmp_path):
    """gunicorn forks its workers: the parent's thread does not exist in the child."""
    path = tmp_path / "store.sqlite"
    engine = make_engine(f"sqlite:///{path}", checkpoint_on_commit=False)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)"))
    checkpointer = Checkpointer(engine, min_bytes=64 * 1024)
    _write(engine, 40)
    checkpointer.nudge()
    assert _wait_for(lambda: checkpointer.runs == 1)
    engine.dispose()  # the child opens its own connections
    fork = multiprocessing.get_context("fork")
    ran = fork.Queue()
    child = fork.Process(target=_nudge_in_child, args=(checkpointer, ran))
    child.start()
    assert ran.get(timeout=20) is True, "the forked process's nudge reached no thread"
    child.join(10)
    assert child.exitcode == 0


def test_the_checkpointer_is_only_for_a_sqlite_file(empty_database_url):
    urls = ["sqlite://"] + ([] if empty_database_url.startswith("sqlite")
                            else [empty_database_url])
    for url in urls:
        engine = make_engine(url)
        with pytest.raises(ValueError, match="not a SQLite file store"):
            Checkpointer(engine)
        engine.dispose()


def test_sqlite_connections_read_by_system_call_and_see_each_others_writes(tmp_path):
    url = f"sqlite:///{tmp_path / 'mapped.sqlite'}"
    writer, reader = make_engine(url), make_engine(url)
    with writer.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
        conn.execute(text("INSERT INTO t VALUES (1)"))
    with reader.connect() as conn:
        assert conn.execute(text("PRAGMA mmap_size")).scalar() == SQLITE_MMAP_BYTES
        assert conn.execute(text("SELECT sum(x) FROM t")).scalar() == 1
        with writer.begin() as other:   # another connection writes between two reads
            other.execute(text("INSERT INTO t VALUES (2)"))
        assert conn.execute(text("SELECT sum(x) FROM t")).scalar() == 3
