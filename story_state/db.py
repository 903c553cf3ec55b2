"""The database: declarative base, naming convention, engine and session scope."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Boolean, MetaData, Table, create_engine, event, insert, select
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the CLI (a follower voting) and a running bot share the file.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_engine(url: str) -> Engine:
    """Create an engine for ``url``; SQLite files get their folder and sane pragmas."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    connect_args: dict[str, object] = {}
    if make_url(url).get_driver_name() == "psycopg":
        # No server-side prepared statements: after five runs psycopg prepares a query, and
        # PostgreSQL may then keep a generic plan, blind to the values. A harvest looks up
        # 500 handles a query in tables that grew since they were last analysed; the generic
        # plan compared each row with every handle, 130 ms a query instead of 7.
        connect_args["prepare_threshold"] = None
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


# The driver's own placeholder, by DB-API paramstyle: sqlite3 takes "?", psycopg "%s".
_PLACEHOLDER = {"qmark": "?", "format": "%s", "pyformat": "%s"}
_ROWS_PER_INSERT = 1000
_MAX_PARAMETERS = 30_000


def insert_many(
    session: Session,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    returning: Sequence[str] = (),
) -> list[tuple[Any, ...]]:
    """INSERT ``rows`` (each with the same keys), many a statement, through the driver.

    SQLAlchemy builds and processes each row's parameters in Python, about 17 µs a row; a
    busy round's harvest inserts ten thousand suggestions and as many people. Each value
    still goes through its column type's bind processor (UTC datetimes, booleans), so the
    stored rows are those a Core ``insert`` would store. A driver with another paramstyle
    gets the Core ``insert``.

    With ``returning``, those columns of the inserted rows come back (through each column's
    result processor), in no particular order: a new row's id without a query to find it.
    """
    if not rows:
        return []
    connection = session.connection()
    dialect = connection.dialect
    mark = _PLACEHOLDER.get(dialect.paramstyle)
    returned = [table.c[name] for name in returning]
    if mark is None:
        statement = insert(table)
        if returned:
            inserted = session.execute(statement.returning(*returned), list(rows))
            return [tuple(row) for row in inserted]
        session.execute(statement, list(rows))
        return []
    names = list(rows[0])
    columns = [table.c[name] for name in names]
    # Column by column, each value through its column's bind processor, then row by row.
    values_of: list[list[Any]] = []
    for name, column in zip(names, columns, strict=True):
        processor = column.type.dialect_impl(dialect).bind_processor(dialect)
        found = [row[name] for row in rows]
        if processor is None:
            values_of.append(found)
        elif isinstance(column.type, Boolean):
            # True and False stored as the processor stores them (1 and 0, or true and
            # false), without a call each; anything else goes through it (and its checks).
            yes, no = processor(True), processor(False)
            values_of.append(
                [yes if v is True else no if v is False else processor(v) for v in found]
            )
        else:
            values_of.append([processor(v) for v in found])
    values = [value for row in zip(*values_of, strict=True) for value in row]
    quote = dialect.identifier_preparer
    head = (
        f"INSERT INTO {quote.format_table(table)} "
        f"({', '.join(quote.format_column(column) for column in columns)}) VALUES "
    )
    tail = (
        f" RETURNING {', '.join(quote.format_column(column) for column in returned)}"
        if returned
        else ""
    )
    one = f"({', '.join([mark] * len(columns))})"
    # Many rows a statement: an executemany still runs the statement once a row (psycopg
    # waited 2 s on PostgreSQL for 10,000), and both databases cap a statement's parameters
    # (SQLite at 32,766).
    per = max(1, min(_ROWS_PER_INSERT, _MAX_PARAMETERS // len(columns)))
    width = per * len(columns)
    full = head + ", ".join([one] * per) + tail
    found_rows: list[tuple[Any, ...]] = []
    for start in range(0, len(values), width):
        part = values[start : start + width]
        sql = (
            full
            if len(part) == width
            else head + ", ".join([one] * (len(part) // len(columns))) + tail
        )
        result = connection.exec_driver_sql(sql, tuple(part))
        if returned:
            found_rows.extend(_processed(result.all(), returned, dialect))
    return found_rows


def _processed(
    rows: Sequence[Sequence[Any]], columns: Sequence[Any], dialect: Any
) -> Iterator[tuple[Any, ...]]:
    """``rows`` read through each column's result processor, as from a Core ``select``."""
    convert = [
        (position, reader)
        for position, column in enumerate(columns)
        if (reader := column.type.dialect_impl(dialect).result_processor(dialect, None))
    ]
    for row in rows:
        if not convert:
            yield tuple(row)
            continue
        found = list(row)
        for position, reader in convert:
            found[position] = reader(found[position])
        yield tuple(found)


def select_in(
    session: Session,
    table: Table,
    columns: Sequence[str],
    where: Mapping[str, Any],
    key: str,
    values: Sequence[Any],
    chunk: int = 500,
) -> Iterator[tuple[Any, ...]]:
    """``columns`` of the rows of ``table`` matching ``where`` whose ``key`` is in ``values``.

    A query per ``chunk`` values, through the driver: SQLAlchemy renders an ``IN`` list's
    parameters afresh for each execution, which cost a harvest more than the queries. The
    values read come back through each column's result processor, as from a Core ``select``.
    """
    connection = session.connection()
    dialect = connection.dialect
    mark = _PLACEHOLDER.get(dialect.paramstyle)
    wanted = [table.c[name] for name in columns]
    fixed = list(where.items())
    for start in range(0, len(values), chunk):
        part = list(values[start : start + chunk])
        if mark is None:
            clauses = [table.c[name] == value for name, value in fixed]
            query = select(*wanted).where(*clauses, table.c[key].in_(part))
            yield from (tuple(row) for row in session.execute(query))  # processed already
            continue
        else:
            tests = [(table.c[name], "=") for name, _ in fixed]
            tests.append((table.c[key], f"IN ({', '.join([mark] * len(part))})"))
            sql = _select_sql(dialect, table, wanted, tests, mark)
            args = tuple(value for _, value in fixed) + tuple(part)
            rows = connection.exec_driver_sql(sql, args).all()
            yield from _processed(rows, wanted, dialect)


def select_where(
    session: Session, table: Table, columns: Sequence[str], where: Mapping[str, Any]
) -> list[tuple[Any, ...]]:
    """``columns`` of the rows of ``table`` whose columns equal ``where``'s values.

    Through the driver, for the thousands of rows of a busy round: a Core ``select``'s row
    handling cost ranking more than the query. Each value of ``where`` goes through its
    column's bind processor and each value read through its result processor, as in Core.
    """
    connection = session.connection()
    dialect = connection.dialect
    mark = _PLACEHOLDER.get(dialect.paramstyle)
    wanted = [table.c[name] for name in columns]
    if mark is None:
        clauses = [table.c[name] == value for name, value in where.items()]
        return [tuple(row) for row in session.execute(select(*wanted).where(*clauses))]
    args: list[Any] = []
    for name, value in where.items():
        processor = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        args.append(processor(value) if processor is not None else value)
    sql = _select_sql(dialect, table, wanted, [(table.c[name], "=") for name in where], mark)
    return list(_processed(connection.exec_driver_sql(sql, tuple(args)).all(), wanted, dialect))


def _select_sql(
    dialect: Any, table: Table, wanted: Sequence[Any], tests: Sequence[tuple[Any, str]], mark: str
) -> str:
    """``SELECT wanted FROM table WHERE …`` in the driver's paramstyle; each test is a column
    and "=" (a placeholder follows) or the rest of its condition ("IN (?, ?)")."""
    quote = dialect.identifier_preparer
    conditions = [
        f"{quote.format_column(column)} {how}" + (f" {mark}" if how == "=" else "")
        for column, how in tests
    ]
    return (
        f"SELECT {', '.join(quote.format_column(column) for column in wanted)} "
        f"FROM {quote.format_table(table)}"
        + (f" WHERE {' AND '.join(conditions)}" if conditions else "")
    )
