"""Shared fixtures: database URLs for SQLite and a throwaway PostgreSQL server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaos.pg import NO_PG_ENV, PgServer, PgUnavailable, running_server
from tests.bot.takahe import Takahe, running_takahe


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One PostgreSQL cluster for the whole run, on 127.0.0.1 and a free port.

    Missing binaries fail the run (a silent skip would hide untested SQL) unless
    STORYBOT_TEST_NO_PG=1 says to skip on purpose.
    """
    if os.environ.get(NO_PG_ENV) == "1":
        pytest.skip(f"{NO_PG_ENV}=1: PostgreSQL tests skipped")
    try:
        with running_server() as server:
            yield server
    except PgUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test."""
    with pg_server.database() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite file URL in this test's temp folder (the file does not exist yet)."""
    return f"sqlite:///{tmp_path / 'storybot.db'}"


@pytest.fixture(scope="session")
def takahe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Takahe]:
    """One real Takahe server for the whole test session (see tests/bot/takahe.py)."""
    with running_takahe(tmp_path_factory.mktemp("takahe")) as server:
        yield server
