"""Engine and session factory; migrations run through Alembic."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

log = logging.getLogger(__name__)


# A served SQLite store's write-ahead log is copied back into the database once it holds
# this much (SQLite's own automatic checkpoint starts at 1,000 pages, about as much).
WAL_CHECKPOINT_BYTES = 4 * 1024 * 1024
# SQLite reads the database file by system call, not through a memory map. A connection
# drops its page cache whenever another connection has written (every request, with two
# workers writing), and with a map it drops the whole map too: each request then faulted
# every page it read back in (31 page faults a session served at 100k items, against 0.3
# by system call) and unmapped a map the size of the file. Served, the workers spent
# 9.1 against 9.7 ms of CPU a session without the map (four alternating pairs).
SQLITE_MMAP_BYTES = 0


def json_text(value: object) -> str:
    """A JSON column's value as the text stored: orjson's (a session's four JSON columns
    in 2 us against 14 with the standard library's encoder), or the standard library's
    for what orjson refuses or would write otherwise. orjson is told to refuse dates and
    dataclasses, which the standard library refuses too; it also refuses text with a lone
    surrogate (the standard library escapes it) and keys that are not strings. Both read
    back to the same values, but for a float that is not a number: orjson writes null, the
    standard library NaN (not JSON: PostgreSQL refuses it). Otherwise the text differs only
    in spacing and in writing text outside ASCII as UTF-8 rather than as escapes."""
    try:
        return orjson.dumps(value, option=orjson.OPT_PASSTHROUGH_DATETIME
                            | orjson.OPT_PASSTHROUGH_DATACLASS).decode()
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(value)


def make_engine(url: str, *, checkpoint_on_commit: bool = True) -> Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout and foreign keys.

    With ``checkpoint_on_commit`` off, SQLite's automatic checkpoint is off too: a commit
    that fills the log past 1,000 pages no longer copies it back into the database (a
    pause of tens of milliseconds, fsync included, inside whichever request committed).
    The caller then calls :func:`checkpoint_if_due` where a pause costs nobody anything
    (the web app does it after a response has been sent), and the log file is cut back
    whenever it starts over, so its size tells when a checkpoint is due."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30}, json_serializer=json_text)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - exercised by every test
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
            if not checkpoint_on_commit:
                cur.execute("PRAGMA wal_autocheckpoint=0")
                # The log file shrinks back when it starts over, so its size says how
                # much is waiting to be copied.
                cur.execute("PRAGMA journal_size_limit=0")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, json_serializer=json_text)


def sqlite_file(engine: Engine) -> Path | None:
    """The database file of a SQLite file store (None for any other store)."""
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def wal_path(engine: Engine) -> Path | None:
    """The write-ahead log file of a SQLite file store (None for any other store)."""
    database = sqlite_file(engine)
    return None if database is None else Path(f"{database}-wal")


class _WriterLock:
    """An exclusive ``flock`` on a file beside a SQLite database, plus a thread lock (a
    ``flock`` is held per open file, so two threads of one process would share it). The
    file is opened once per process: a descriptor inherited across ``fork`` shares its lock
    with the parent, so a forked worker opens its own."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.threads = threading.Lock()
        self.fd: int | None = None
        self.pid = 0

    @contextmanager
    def held(self) -> Iterator[None]:
        with self.threads:
            if self.pid != os.getpid():
                if self.fd is not None:  # the parent's, inherited: closing it frees nothing
                    os.close(self.fd)    # the parent holds (its own descriptor stays open)
                self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                self.pid = os.getpid()
            fcntl.flock(self.fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self.fd, fcntl.LOCK_UN)


_writer_locks: dict[Path, _WriterLock] = {}
# Per store (dialect and database as its URL names them): its writer lock, or None when it
# needs none. Read on every write, so the file's path is worked out once.
_store_writer_locks: dict[tuple[str, str | None], _WriterLock | None] = {}
_writer_locks_guard = threading.Lock()


def _writer_lock(engine: Engine) -> _WriterLock | None:
    key = (engine.dialect.name, engine.url.database)
    lock = _store_writer_locks.get(key, False)
    if lock is not False:
        return lock
    with _writer_locks_guard:
        database = sqlite_file(engine)
        if database is None:
            lock = None
        else:
            path = Path(f"{database}-writer.lock")
            lock = _writer_locks.get(path)
            if lock is None:
                lock = _writer_locks[path] = _WriterLock(path)
        _store_writer_locks[key] = lock
    return lock


@contextmanager
def one_writer(db: Session) -> Iterator[None]:
    """Hold this while a SQLite file store is written, from the transaction's first write
    through its commit: writers of every process sharing the file then queue in the kernel
    and each starts the moment the one before it lets go.

    Without it, a writer that finds the database's write lock taken is put to sleep by
    SQLite's busy handler for 1, 2, 5, 10 ms and more between tries, however soon the lock
    comes free: with two workers creating sessions, about one session in twelve waited
    1-18 ms for a write that takes a fraction of a millisecond. Other stores (PostgreSQL,
    an in-memory SQLite) need nothing and get nothing. A transaction that has already
    written holds SQLite's write lock, so it goes on without waiting here (it could
    otherwise wait for a writer that is waiting for it)."""
    engine = db.get_bind()
    lock = _writer_lock(getattr(engine, "engine", engine))
    if lock is None or db.connection().connection.driver_connection.in_transaction:
        yield
        return
    with lock.held():
        yield


def _file_bytes(path: Path) -> int | None:
    """The size of the file at ``path`` (None when there is none)."""
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return None


def checkpoint_if_due(engine: Engine, min_bytes: int = WAL_CHECKPOINT_BYTES) -> int | None:
    """Copy a SQLite store's write-ahead log back into the database when the log file
    holds at least ``min_bytes``; returns the number of pages copied (None when nothing
    was due). A passive checkpoint: it waits for no reader or writer, copies what it can,
    and the log starts over at the next write once every page is back. Other stores have
    no such log and are left alone."""
    wal = wal_path(engine)
    size = None if wal is None else _file_bytes(wal)
    if size is None or size < min_bytes:
        return None
    with engine.connect() as conn:
        busy, _in_log, copied = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
    return None if busy else int(copied)


class Checkpointer:
    """Runs :func:`checkpoint_if_due` for a SQLite file store on a thread of its own when
    nudged with the log grown to ``min_bytes`` (the web app nudges it once a response has
    gone out).

    A checkpoint copies about 1,000 pages and waits for the disk to confirm them: 5 ms
    (1-11) a time, of which 2 ms of CPU, measured under the benchmark's load at 100k items.
    Run inside the request that sent the response, it held that worker, and the next
    request waiting for it, for all of it; here the worker goes on serving while SQLite
    (which lets go of Python's lock while it works) copies and waits. The thread is
    started in the process that first nudges it, so each forked worker has its own."""

    def __init__(self, engine: Engine, min_bytes: int = WAL_CHECKPOINT_BYTES) -> None:
        wal = wal_path(engine)
        if wal is None:
            raise ValueError(f"{engine.url.render_as_string()} is not a SQLite file store")
        self.wal = wal
        self.engine = engine
        self.min_bytes = min_bytes
        self._due = threading.Event()
        self._guard = threading.Lock()
        self._pid = 0
        self.runs = 0   # checkpoint_if_due calls made (for tests and curiosity)

    def nudge(self) -> None:
        """Wake the thread when the log has grown to a checkpoint's size (the size is read
        here: a look at the file costs microseconds, a wake of the thread more)."""
        size = _file_bytes(self.wal)
        if size is None or size < self.min_bytes:
            return
        if self._pid != os.getpid():
            with self._guard:
                if self._pid != os.getpid():
                    self._due = threading.Event()
                    threading.Thread(target=self._run, args=(self._due,), daemon=True,
                                     name="goodcry-checkpointer").start()
                    self._pid = os.getpid()
        self._due.set()

    def _run(self, due: threading.Event) -> None:
        while True:
            due.wait()
            due.clear()
            try:
                checkpoint_if_due(self.engine, self.min_bytes)
            except Exception:  # the next nudge tries again
                log.exception("checkpointing the database's write-ahead log failed")
            self.runs += 1


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest migration (safe to call on every start)."""
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "heads")
