"""Statements of the busiest request, run on the database driver's own cursor.

Inside a request, every statement SQLAlchemy runs costs 100-150 us on top of the driver's own
work (an execution context, a result object, events, a cache key computed from the
statement's tree), measured in a session's request at 100,000 items; a session runs about
ten. A :class:`Prepared` statement is an ordinary SQLAlchemy Core statement, compiled once per
kind of database by SQLAlchemy's own compiler, whose values go through each column type's own
bind and result processors; only the run itself is the driver's. It runs on the connection of
the caller's ORM session, inside that session's transaction, so the session's commit or
rollback covers it; like the session's own reads, a read first writes the session's pending
changes (unless autoflush is off).

Only what such a statement can say plainly is accepted: no lists expanded at run time, no
values rendered into the text, and an insert names every column it fills, either as the
``columns`` its rows carry (run with :meth:`Prepared.insert`) or as parameters in its own
values (an upsert that returns what it stored, run like a query); a column default computed
in Python would not run here (the database's own defaults do).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Dialect, Insert
from sqlalchemy.orm import Session
from sqlalchemy.sql import ClauseElement
from sqlalchemy.types import TypeEngine


class NotPreparable(ValueError):
    """A statement that cannot be run as a prepared one (what is wrong is named)."""


@dataclass(frozen=True)
class _Compiled:
    sql: str
    order: tuple[str, ...] | None          # parameter names by position; None: by name
    values: Mapping[str, Any]              # values the statement carries (converted)
    required: frozenset[str]               # parameters a run must give
    binds: Mapping[str, Callable[[Any], Any]]            # parameters a type converts
    # What a run returns: each column's type as the dialect reads it, and the dialect. Some
    # result processors need the driver's own type code for the column (PostgreSQL's
    # numbers), so they are made at the first run, from the cursor's description.
    result_types: tuple[TypeEngine, ...]
    dialect: Dialect
    # An insert's columns in the driver's order, each with its converter (or None): a row
    # of exactly these columns becomes the driver's arguments in one pass.
    row_plan: tuple[tuple[str, Callable[[Any], Any] | None], ...] = ()


class Prepared:
    """A Core statement compiled once per database kind and run on the driver's cursor.

    ``columns`` names the columns an insert of rows fills (every row must carry exactly
    these). An insert without them carries its values as parameters and is run like a query
    (an upsert with ``RETURNING``).
    """

    def __init__(self, statement: ClauseElement, *, columns: Sequence[str] | None = None):
        if columns is not None and not isinstance(statement, Insert):
            raise NotPreparable("an insert names its columns, and only an insert does")
        self.statement = statement
        self.columns = tuple(columns) if columns is not None else None
        self._column_set = frozenset(self.columns or ())
        self._compiled: dict[tuple, _Compiled] = {}
        # Per compiled statement: its result processors (or () if none convert).
        self._results: dict[int, tuple[Callable[[Any], Any] | None, ...]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Prepared({' '.join(str(self.statement).split())[:80]!r})"

    # -- running it ----------------------------------------------------------------------

    def all(self, db: Session, params: Mapping[str, Any] | None = None) -> list[tuple]:
        """Every row, as tuples of converted values."""
        compiled, cursor = self._run(db, params)
        try:
            rows = cursor.fetchall()
            results = self._results_of(compiled, cursor)
        finally:
            cursor.close()
        if results:
            return [self._convert(results, row) for row in rows]
        return [tuple(row) for row in rows]

    def first(self, db: Session, params: Mapping[str, Any] | None = None) -> tuple | None:
        """The first row (None when there is none); the rest are not read."""
        compiled, cursor = self._run(db, params)
        try:
            row = cursor.fetchone()
            results = self._results_of(compiled, cursor) if row is not None else ()
        finally:
            cursor.close()
        if row is None:
            return None
        return self._convert(results, row) if results else tuple(row)

    def scalar(self, db: Session, params: Mapping[str, Any] | None = None) -> Any:
        """The first row's first value (None when there is no row)."""
        row = self.first(db, params)
        return None if row is None else row[0]

    def scalars(self, db: Session, params: Mapping[str, Any] | None = None) -> list:
        """Every row's first value."""
        return [row[0] for row in self.all(db, params)]

    def insert(self, db: Session, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert ``rows`` (each with exactly the statement's columns) in one driver call."""
        if self.columns is None:
            raise NotPreparable(f"{self!r} is not an insert")
        if not rows:
            return
        connection = db.connection()
        compiled = self._for(connection.dialect)
        for row in rows:
            if row.keys() != self._column_set:
                extra = sorted(row.keys() - self._column_set)
                missing = sorted(self._column_set - row.keys())
                raise NotPreparable(f"{self!r}: a row's columns differ from the statement's "
                                    f"(extra {extra}, missing {missing})")
        arguments = self._row_arguments if compiled.row_plan else self._arguments
        cursor = connection.connection.cursor()
        try:
            if len(rows) == 1:
                cursor.execute(compiled.sql, arguments(compiled, rows[0]))
            else:
                cursor.executemany(compiled.sql, [arguments(compiled, row) for row in rows])
        finally:
            cursor.close()

    def _run(self, db: Session, params: Mapping[str, Any] | None):
        if self.columns is not None:
            raise NotPreparable(f"{self!r} is an insert: call insert()")
        if db.autoflush:  # as the session's own reads do, pending changes are written first
            db.flush()
        connection = db.connection()
        compiled = self._for(connection.dialect)
        cursor = connection.connection.cursor()
        try:
            cursor.execute(compiled.sql, self._arguments(compiled, params or {}))
        except BaseException:
            cursor.close()
            raise
        return compiled, cursor

    def _arguments(self, compiled: _Compiled, params: Mapping[str, Any]) -> tuple | dict:
        missing = compiled.required - params.keys()
        if missing:
            raise NotPreparable(f"{self!r}: no value for {sorted(missing)}")
        values = dict(compiled.values)
        binds = compiled.binds
        for name, value in params.items():
            process = binds.get(name)
            values[name] = value if process is None else process(value)
        if compiled.order is None:
            return values
        return tuple(values[name] for name in compiled.order)

    @staticmethod
    def _row_arguments(compiled: _Compiled, row: Mapping[str, Any]) -> tuple | dict:
        """An insert's row (its columns already checked) as the driver's arguments."""
        if compiled.order is not None:
            return tuple([row[name] if process is None else process(row[name])
                          for name, process in compiled.row_plan])
        return {name: row[name] if process is None else process(row[name])
                for name, process in compiled.row_plan}

    def _results_of(self, compiled: _Compiled, cursor) -> tuple:
        """The statement's result processors, made at its first run (see ``_Compiled``)."""
        results = self._results.get(id(compiled))
        if results is None:
            processes = tuple(
                kind.result_processor(compiled.dialect, column[1])
                for kind, column in zip(compiled.result_types, cursor.description, strict=True))
            results = processes if any(p is not None for p in processes) else ()
            self._results[id(compiled)] = results
        return results

    @staticmethod
    def _convert(results: tuple, row: Sequence) -> tuple:
        return tuple(value if process is None else process(value)
                     for process, value in zip(results, row, strict=True))

    # -- compiling it --------------------------------------------------------------------

    def _for(self, dialect: Dialect) -> _Compiled:
        key = (type(dialect), dialect.paramstyle, dialect.server_version_info)
        compiled = self._compiled.get(key)
        if compiled is None:
            with self._lock:
                compiled = self._compiled.get(key)
                if compiled is None:
                    compiled = self._compiled[key] = self._compile(dialect)
        return compiled

    def _compile(self, dialect: Dialect) -> _Compiled:
        if self.columns is None:
            compiled = self.statement.compile(dialect=dialect)
        else:
            # Compiled as for many rows: nothing is fetched back (no RETURNING of new keys).
            compiled = self.statement.compile(dialect=dialect, column_keys=list(self.columns),
                                              for_executemany=True)
        prefetched = [column.name for column in (*compiled.insert_prefetch,
                                                 *compiled.update_prefetch)]
        if prefetched:
            raise NotPreparable(f"{self!r}: the columns {prefetched} take their values from "
                                "Python-side column defaults, which do not run here")
        if compiled.post_compile_params or compiled.literal_execute_params:
            raise NotPreparable(f"{self!r} expands or renders values at run time")
        if compiled.escaped_bind_names:
            raise NotPreparable(f"{self!r}: parameter names the driver would need escaped: "
                                f"{sorted(compiled.escaped_bind_names)}")
        names = set(compiled.bind_names.values())
        if self.columns is not None and names != set(self.columns):
            raise NotPreparable(
                f"{self!r}: the statement's parameters {sorted(names)} are not the columns "
                f"named {sorted(self.columns)} (a Python-side column default would not run)")
        values, required, binds = {}, set(), {}
        for bind, name in compiled.bind_names.items():
            if bind.callable is not None:
                raise NotPreparable(f"{self!r}: the parameter {name} takes its value from a "
                                    "function")
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                binds[name] = process
            if bind.required:
                required.add(name)
            else:
                values[name] = bind.value if process is None else process(bind.value)
        result_types: tuple = ()
        if self.columns is None:
            # A query's columns, or what an upsert returns.
            columns = (self.statement.exported_columns if isinstance(self.statement, Insert)
                       else self.statement.selected_columns)
            result_types = tuple(column.type.dialect_impl(dialect) for column in columns)
        order = tuple(compiled.positiontup) if compiled.positiontup is not None else None
        row_plan: tuple = ()
        if self.columns is not None and not values and required == names:
            # Every parameter is a column a row gives (none carries a value of its own).
            row_plan = tuple((name, binds.get(name))
                             for name in (order if order is not None else self.columns))
        return _Compiled(compiled.string, order, values, frozenset(required), binds,
                         result_types, dialect, row_plan)
