"""The database every service table lives on: one engine recipe and race-safe table creation."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa

READ_ONLY = "swapface_read_only"


@contextlib.contextmanager
def read_only(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A transaction that only reads: on SQLite it does not take the write lock, so readers never queue behind it."""
    with engine.connect() as conn:
        conn.execution_options(**{READ_ONLY: True})
        with conn.begin():
            yield conn


def _sqlite_engine(url: str) -> sa.Engine:
    """SQLite in WAL mode; a writing transaction takes the write lock up front (no upgrade deadlocks)."""
    engine = sa.create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN below
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE")

    return engine


def make_engine(url: str) -> sa.Engine:
    """An engine for the job store URL (``sqlite:///…`` or ``postgresql[+psycopg]://…``)."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        return _sqlite_engine(url)
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return sa.create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def create_tables(metadata: sa.MetaData, engine: sa.Engine) -> None:
    """Create a module's tables, and add the columns a newer version declares to tables an older one made;
    a concurrent creator winning the race is fine."""
    try:
        metadata.create_all(engine)
    except (sa.exc.OperationalError, sa.exc.ProgrammingError, sa.exc.IntegrityError):
        metadata.create_all(engine)  # the other creator finished: this pass sees the tables and skips them
    add_missing_columns(metadata, engine)


def _column_ddl(column: sa.Column, dialect: sa.Dialect) -> str:
    """``name TYPE [NOT NULL] DEFAULT value`` for ALTER TABLE … ADD COLUMN: existing rows take the column's
    default, so a NOT NULL column can be added to a table that has rows."""
    ddl = f"{dialect.identifier_preparer.quote(column.name)} {column.type.compile(dialect=dialect)}"
    default = column.default.arg if isinstance(column.default, sa.ColumnDefault) and column.default.is_scalar else None
    if default is not None:
        literal = sa.literal(default, column.type).compile(dialect=dialect, compile_kwargs={"literal_binds": True})
        ddl += f" DEFAULT {literal}"
    if not column.nullable and default is not None:
        ddl += " NOT NULL"
    return ddl


def add_missing_columns(metadata: sa.MetaData, engine: sa.Engine) -> list[str]:
    """Add every declared column an existing table lacks (the schema only ever grows by columns, each nullable
    or with a default); returns ``table.column`` of those added. Another process adding the same column at the
    same time is fine: the column is looked up again after a failed ALTER."""
    added = []
    for table in metadata.sorted_tables:
        present = {c["name"] for c in sa.inspect(engine).get_columns(table.name)}
        for column in table.columns:
            if column.name in present:
                continue
            statement = f"ALTER TABLE {engine.dialect.identifier_preparer.quote(table.name)} ADD COLUMN " \
                        f"{_column_ddl(column, engine.dialect)}"
            try:
                with engine.begin() as conn:
                    conn.exec_driver_sql(statement)
            except (sa.exc.OperationalError, sa.exc.ProgrammingError):
                if column.name not in {c["name"] for c in sa.inspect(engine).get_columns(table.name)}:
                    raise
                continue
            added.append(f"{table.name}.{column.name}")
    return added
