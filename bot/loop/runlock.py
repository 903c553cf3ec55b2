"""One runner per database: `storybot run` and `storybot tick` hold a lock while they act.

PostgreSQL: ``pg_try_advisory_lock`` on a dedicated connection kept open for the process's
lifetime; the server frees it when that connection ends, including when the process is
killed (server-side TCP keepalives are shortened on that connection, so even a host that
vanishes without closing its socket lets go within about a minute). SQLite: an exclusive
``flock`` on ``<database file>.lock`` beside the database, freed by the kernel when the
process dies. The lock is database-wide, not per story, because the outbox sweep and the
local sandbox span every story in the database.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import socket
from contextlib import suppress
from pathlib import Path
from types import TracebackType

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from story_state.errors import StorybotError

LOCK_NAME = "storybot:run"
_APP_NAME = re.compile(r"storybot pid=(\d+)")
_KEEPALIVE = {"tcp_keepalives_idle": "20", "tcp_keepalives_interval": "5"}


class RunnerActive(StorybotError):
    """Another process holds this database's runner lock."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        shown = str(pid) if pid is not None else "unknown"
        super().__init__(f"another storybot run holds the lock for this database (pid {shown})")


class LockLost(StorybotError):
    """The runner lock went away while the runner held it; the runner stopped acting."""


class RunLockError(StorybotError):
    """The lock could not even be tried (database unreachable, lock file not writable)."""


def lock_key(name: str = LOCK_NAME) -> int:
    """A stable positive 63-bit advisory-lock key."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") >> 1


class RunLock:
    """The runner lock for the database at ``url``; use ``with`` or acquire/release."""

    def __init__(self, url: str) -> None:
        try:
            parsed = make_url(url)
        except ArgumentError:  # the URL may hold a password: never echo it
            raise RunLockError("database.url is not a database URL") from None
        self.url = url
        self.is_postgres = parsed.get_backend_name() == "postgresql"
        database = parsed.database or ""
        sqlite_file = parsed.get_backend_name() == "sqlite" and database not in ("", ":memory:")
        self.path = Path(database + ".lock") if sqlite_file else None
        self._fd: int | None = None
        self._engine: Engine | None = None
        self._conn: Connection | None = None

    # -- the public face ----------------------------------------------------------------

    def try_acquire(self) -> bool:
        """Take the lock if it is free; False when another process holds it."""
        try:
            self.acquire()
        except RunnerActive:
            return False
        return True

    def acquire(self) -> None:
        """Take the lock or raise :class:`RunnerActive` naming the holder's pid."""
        if self.held:
            return
        if self.is_postgres:
            self._acquire_pg()
        elif self.path is not None:
            self._acquire_file(self.path)

    def release(self) -> None:
        if self._conn is not None:
            with suppress(SQLAlchemyError):  # a dead connection took the lock with it
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": lock_key()})
            self._conn.close()
            self._conn = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None or self._conn is not None

    def still_held(self) -> bool:
        """For a long-lived runner: is the lock still ours (its PostgreSQL session alive)?"""
        if self._conn is None:
            return self._fd is not None or (not self.is_postgres and self.path is None)
        try:
            found = self._conn.execute(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    "AND pid = pg_backend_pid() AND classid = :hi AND objid = :lo"
                ),
                _key_parts(),
            ).scalar()
        except SQLAlchemyError:
            return False
        return bool(found)

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    # -- SQLite: a file lock ------------------------------------------------------------

    def _acquire_file(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise RunLockError(f"cannot open the runner lock {path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            os.close(fd)
            raise RunnerActive(int(holder) if holder.isdigit() else None) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    # -- PostgreSQL: an advisory lock on its own connection -----------------------------

    def _acquire_pg(self) -> None:
        name = f"storybot pid={os.getpid()} host={socket.gethostname()}"[:63]
        engine = create_engine(
            self.url, poolclass=NullPool, connect_args={"application_name": name}
        )
        try:
            conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        except SQLAlchemyError as exc:
            engine.dispose()
            reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
            raise RunLockError(f"cannot take the runner lock: {reason}") from None
        for setting, value in _KEEPALIVE.items():
            # The lock must not outlive a host that vanished without closing its socket.
            with suppress(DBAPIError):
                conn.execute(text("SELECT set_config(:s, :v, false)"), {"s": setting, "v": value})
        got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": lock_key()}).scalar()
        if not got:
            pid = self._pg_holder(conn)
            conn.close()
            engine.dispose()
            raise RunnerActive(pid)
        self._engine, self._conn = engine, conn

    @staticmethod
    def _pg_holder(conn: Connection) -> int | None:
        names = conn.execute(
            text(
                "SELECT a.application_name FROM pg_locks l "
                "JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = :hi "
                "AND l.objid = :lo AND l.database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database())"
            ),
            _key_parts(),
        ).scalars()
        for app_name in names:
            found = _APP_NAME.search(app_name or "")
            if found:
                return int(found.group(1))
        return None


def _key_parts() -> dict[str, int]:
    key = lock_key()
    return {"hi": key >> 32, "lo": key & 0xFFFFFFFF}
