"""UTC datetimes on SQLite: the fast bind processor stores exactly what SQLAlchemy's would."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.types import TypeDecorator

from story_state.models import UTCDateTime

zones = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-11)),
     timezone(timedelta(seconds=-1))]
)  # fmt: skip
aware = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=zones)


def _general(dialect: Any) -> Any:
    """SQLAlchemy's own processor for the column type: process_bind_param, then DATETIME's."""
    adapted = cast(TypeDecorator[datetime], UTCDateTime().dialect_impl(dialect))
    return TypeDecorator.bind_processor(adapted, dialect)


def _fast(dialect: Any) -> Any:
    """The processor SQLAlchemy asks the column type for (of its copy for the dialect)."""
    return UTCDateTime().dialect_impl(dialect).bind_processor(dialect)


@settings(max_examples=500, deadline=None)
@given(aware)
def test_the_fast_processor_stores_what_sqlalchemys_does(value: datetime) -> None:
    dialect = sqlite.dialect()
    fast = _fast(dialect)
    assert fast.__qualname__ == "UTCDateTime.bind_processor.<locals>.process"
    assert fast(value) == _general(dialect)(value)


def test_edges_and_refusals_are_the_general_ones() -> None:
    dialect = sqlite.dialect()
    fast, general = _fast(dialect), _general(dialect)
    for value in (datetime(2026, 1, 1, tzinfo=UTC), datetime(1, 1, 1, tzinfo=UTC), None):
        assert fast(value) == general(value)
    assert fast(datetime(2026, 5, 1, 12, tzinfo=UTC)) == "2026-05-01 12:00:00.000000"
    with pytest.raises(ValueError, match="naive datetime"):
        fast(datetime(2026, 1, 1))
    with pytest.raises(AttributeError):  # a date is no datetime: refused as before
        general(date(2026, 1, 1))
    with pytest.raises(AttributeError):
        fast(date(2026, 1, 1))


def test_other_databases_and_formats_get_the_general_processor() -> None:
    other = _fast(postgresql.dialect())  # type: ignore[no-untyped-call]
    assert other is None or other.__qualname__ != "UTCDateTime.bind_processor.<locals>.process"

    class Slashes(UTCDateTime):
        impl = sqlite.DATETIME(storage_format="%(year)04d/%(month)02d/%(day)02d")  # type: ignore[no-untyped-call]

    slashed = Slashes().dialect_impl(sqlite.dialect()).bind_processor(sqlite.dialect())
    assert slashed is not None
    assert slashed(datetime(2026, 5, 1, 12, tzinfo=UTC)) == "2026/05/01"


def test_stored_and_read_back_on_a_real_sqlite_file(tmp_path: Any) -> None:
    from sqlalchemy import Column, Integer, MetaData, Table, insert, select

    table = Table("t", MetaData(), Column("id", Integer, primary_key=True),
                  Column("at", UTCDateTime()))  # fmt: skip
    engine = create_engine(f"sqlite:///{tmp_path}/t.db")
    table.metadata.create_all(engine)
    when = datetime(2026, 12, 3, 15, 4, 5, 60, tzinfo=timezone(timedelta(hours=2)))
    with engine.begin() as connection:
        connection.execute(insert(table), [{"at": when}])
        raw = connection.exec_driver_sql("SELECT at FROM t").scalar()
        back = connection.execute(select(table.c.at)).scalar()
    assert raw == "2026-12-03 13:04:05.000060"
    assert back == when and back.tzinfo is UTC
