"""Alembic environment: the storybot models' metadata and how to reach the database.

The URL comes, in order, from ``config.attributes["url"]`` (set by
``story_state.migrate``), the ``sqlalchemy.url`` option, the ``STORYBOT_DATABASE_URL``
environment variable, and finally ``sqlite:///storybot.db``. A caller may instead hand
over an open connection in ``config.attributes["connection"]``.
"""

from __future__ import annotations

import os
from logging.config import fileConfig
from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import Enum
from sqlalchemy.engine import Connection
from sqlalchemy.types import TypeDecorator

import story_state.models  # noqa: F401  (registers every table on Base.metadata)
from story_state.db import Base, make_engine

config = context.config

if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

# A caller may check another metadata (the drift tests hand in a deliberately altered copy).
target_metadata = config.attributes.get("target_metadata", Base.metadata)

DEFAULT_URL = "sqlite:///storybot.db"


def _url() -> str:
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    return str(url or os.environ.get("STORYBOT_DATABASE_URL") or DEFAULT_URL)


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Render column types as plain SQLAlchemy types so migrations never import app code.

    A migration must keep working after the models change, so ``UTCDateTime`` is written
    as the type it stores (``sa.DateTime(timezone=True)``) and a non-native ``Enum`` as
    the VARCHAR it really is; adding an enum member then needs no migration.
    """
    if type_ != "type":
        return False
    if isinstance(obj, Enum) and not obj.native_enum:
        return f"sa.String(length={obj.length})"
    if isinstance(obj, TypeDecorator):
        return f"sa.{obj.impl_instance!r}"
    return False


# Tables that live in the same database but belong to a library, not to our models.
FOREIGN_TABLES = frozenset({"apscheduler_jobs"})


def include_name(name: str | None, type_: str, _parents: Any) -> bool:
    return not (type_ == "table" and name in FOREIGN_TABLES)


def _configure(**kwargs: Any) -> None:
    context.configure(
        target_metadata=target_metadata,
        include_name=include_name,
        compare_type=True,
        # Batch mode is how SQLite alters tables; elsewhere it emits plain ALTERs,
        # so always on keeps every generated migration runnable on both backends.
        render_as_batch=True,
        render_item=render_item,
        **kwargs,
    )


def run_migrations_offline() -> None:
    _configure(url=_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def _run_with(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # Batch mode copies and drops tables; with foreign keys on, dropping a parent
        # table would cascade-delete its children's rows. The pragma is a no-op inside
        # a transaction, so set it and commit before alembic begins one.
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.commit()
    try:
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
    finally:
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            connection.commit()


def run_migrations_online() -> None:
    given = config.attributes.get("connection")
    if given is not None:
        _run_with(given)
        return
    engine = make_engine(_url())
    try:
        with engine.connect() as connection:
            _run_with(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
