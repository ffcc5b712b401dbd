"""One writer at a time on a SQLite file store, queued in the kernel (``one_writer``): another
process, a forked worker and another thread each wait for the holder to let go; a transaction
that has already written does not wait; other stores take no lock at all."""

from __future__ import annotations

import multiprocessing
import select
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from recommender.store.db import make_engine, make_session_factory, one_writer

ROOT = Path(__file__).resolve().parents[1]

# Another process: takes the lock, says so, and holds it until told to let go (or for at
# most ten seconds); writes the marker file just before it lets go.
HOLDER = """
import sys
from pathlib import Path
from recommender.store.db import make_engine, make_session_factory, one_writer
engine = make_engine(sys.argv[1])
with make_session_factory(engine)() as db, one_writer(db):
    print("held", flush=True)
    import select
    select.select([sys.stdin], [], [], 10.0)
    Path(sys.argv[2]).write_text("let go")
engine.dispose()
"""


def _store(tmp_path: Path):
    engine = make_engine(f"sqlite:///{tmp_path / 'store.sqlite'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)"))
    return engine


def _holder(engine, marker: Path) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(engine.url), str(marker)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              cwd=ROOT)
    ready, _, _ = select.select([holder.stdout], [], [], 10.0)
    if not ready:
        holder.kill()
        raise AssertionError("the other process never got the lock")
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_writer_waits_for_another_process_to_let_go(tmp_path):
    engine = _store(tmp_path)
    marker = tmp_path / "marker"
    holder = _holder(engine, marker)
    # Let the holder go once this process is queued behind it: a thread closes its stdin
    # after a moment; if the lock did not hold, the body below would run before the marker.
    threading.Timer(0.3, holder.stdin.close).start()
    with make_session_factory(engine)() as db, one_writer(db):
        assert marker.read_text() == "let go"
        db.execute(text("INSERT INTO notes (body) VALUES ('after the holder')"))
        db.commit()
    assert holder.wait(timeout=10) == 0
    with engine.connect() as conn:
        assert conn.execute(text("SELECT body FROM notes")).scalars().all() == [
            "after the holder"]
    engine.dispose()


def _forked_holder(url: str, marker: str, held, release) -> None:
    engine = make_engine(url)
    with make_session_factory(engine)() as db, one_writer(db):
        held.set()
        release.wait(10.0)
        Path(marker).write_text("let go")
    engine.dispose()


def test_a_forked_worker_takes_the_lock_for_itself(tmp_path):
    """gunicorn forks its workers: a lock file opened before the fork must not be shared."""
    engine = _store(tmp_path)
    with make_session_factory(engine)() as db, one_writer(db):
        pass  # this process has opened its lock file
    marker = tmp_path / "marker"
    fork = multiprocessing.get_context("fork")
    held, release = fork.Event(), fork.Event()
    child = fork.Process(target=_forked_holder, args=(str(engine.url), str(marker), held,
                                                      release))
    child.start()
    assert held.wait(10.0)
    threading.Timer(0.3, release.set).start()
    with make_session_factory(engine)() as db, one_writer(db):
        assert marker.exists(), "the parent wrote while its forked child held the lock"
    child.join(10.0)
    assert child.exitcode == 0
    engine.dispose()


def _order_of_two_writers(holder_engine, second_engine, second: str) -> list[str]:
    """A thread takes the lock through ``holder_engine`` and lets go 0.3 s after this
    thread, through ``second_engine``, asks for it: the order in which they got through."""
    held, release = threading.Event(), threading.Event()
    order: list[str] = []

    def hold() -> None:
        with make_session_factory(holder_engine)() as db, one_writer(db):
            held.set()
            release.wait(10.0)
            order.append("holder let go")

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(10.0)
    threading.Timer(0.3, release.set).start()
    with make_session_factory(second_engine)() as db, one_writer(db):
        order.append(second)
    holder.join(10.0)
    return order


def test_threads_of_one_process_take_turns(tmp_path):
    engine = _store(tmp_path)
    order = _order_of_two_writers(engine, engine, "second writer in")
    assert order == ["holder let go", "second writer in"]
    engine.dispose()


def test_a_transaction_that_has_written_goes_on_without_waiting(tmp_path):
    """It holds SQLite's write lock already: waiting here could wait for a writer that is
    itself waiting for SQLite's lock."""
    engine = _store(tmp_path)
    marker = tmp_path / "marker"
    holder = _holder(engine, marker)
    try:
        with make_session_factory(engine)() as db:
            db.execute(text("INSERT INTO notes (body) VALUES ('first')"))
            with one_writer(db):
                assert not marker.exists(), "it waited for the other process"
                db.execute(text("INSERT INTO notes (body) VALUES ('second')"))
                db.commit()
    finally:
        holder.stdin.close()
        assert holder.wait(timeout=10) == 0
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM notes")).scalar() == 2
    engine.dispose()


def test_a_failed_write_lets_the_lock_go(tmp_path):
    engine = _store(tmp_path)
    with pytest.raises(OperationalError, match="missing_table"), \
            make_session_factory(engine)() as db, one_writer(db):
        db.execute(text("INSERT INTO missing_table (body) VALUES ('x')"))
    marker = tmp_path / "marker"
    holder = _holder(engine, marker)  # would never say "held" if the lock were kept
    holder.stdin.close()
    assert holder.wait(timeout=10) == 0 and marker.exists()
    engine.dispose()


def _first_writer(engine, inside: threading.Event, both: threading.Event,
                  met: list[bool]) -> None:
    with make_session_factory(engine)() as db, one_writer(db):
        inside.set()
        met.append(both.wait(10.0))


def test_other_stores_take_no_lock(empty_database_url, tmp_path):
    urls = ["sqlite://"] + ([] if empty_database_url.startswith("sqlite")
                            else [empty_database_url])
    for url in urls:
        engine = make_engine(url)
        inside, both, met = threading.Event(), threading.Event(), []
        thread = threading.Thread(target=_first_writer, args=(engine, inside, both, met))
        thread.start()
        assert inside.wait(10.0)
        with make_session_factory(engine)() as db, one_writer(db):
            both.set()  # reached while the first is still inside
        thread.join(10.0)
        assert met == [True], f"{url}: the second writer waited for the first"
        engine.dispose()
    assert not list(tmp_path.glob("*.lock"))


def test_two_engines_on_one_file_take_turns(tmp_path):
    """The lock is looked up once per store and kept: a second engine naming the same file
    another way (and each engine's later writes) still queue behind the holder."""
    engine = _store(tmp_path)
    other = make_engine(f"sqlite:///{tmp_path}//./store.sqlite")
    assert other.url.database != engine.url.database
    for _ in range(2):  # the second round reads the kept locks
        order = _order_of_two_writers(engine, other, "other engine in")
        assert order == ["holder let go", "other engine in"]
    engine.dispose()
    other.dispose()
