"""A throwaway PostgreSQL cluster on loopback for the harvest bench: a copy of chaos/pg.py,
since the import contracts keep bench and chaos independent of each other."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

SUPERUSER = "storybot"
NO_PG_ENV = "STORYBOT_TEST_NO_PG"
START_TIMEOUT_S = 60.0


class PgUnavailable(RuntimeError):
    """The PostgreSQL server binaries or the user to run them as are missing."""


@dataclass(frozen=True)
class PgServer:
    host: str
    port: int
    startup_s: float  # initdb plus start until the first accepted connection

    def url(self, dbname: str, driver: str = "postgresql+psycopg") -> str:
        return f"{driver}://{SUPERUSER}@{self.host}:{self.port}/{dbname}"

    def admin_conninfo(self) -> str:
        return f"host={self.host} port={self.port} user={SUPERUSER} dbname=postgres"

    @contextmanager
    def database(self) -> Iterator[str]:
        """A fresh, empty database for one test; its URL is yielded, then it is dropped."""
        name = f"test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_conninfo(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            yield self.url(name)
        finally:
            with psycopg.connect(self.admin_conninfo(), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def find_bindir() -> Path:
    """The folder holding initdb and postgres: ``pg_config --bindir``, else the newest
    ``/usr/lib/postgresql/*/bin``."""
    candidates: list[Path] = []
    if pg_config := shutil.which("pg_config"):
        result = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        )
        if result.returncode == 0 and result.stdout.strip():
            candidates.append(Path(result.stdout.strip()))

    def version(path: str) -> tuple[int, ...]:
        raw = Path(path).parent.name
        return tuple(int(p) for p in raw.split(".") if p.isdigit())

    candidates += [
        Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)
    ]
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "postgres").is_file():
            return bindir
    raise PgUnavailable(
        "PostgreSQL server binaries (initdb, postgres) not found via `pg_config --bindir` "
        "or /usr/lib/postgresql/*/bin; run `make test`, which installs them "
        f"(or set {NO_PG_ENV}=1 to skip the PostgreSQL tests)"
    )


def _run_as() -> pwd.struct_passwd | None:
    """The account to run PostgreSQL as: ``postgres`` when we are root, else ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise PgUnavailable(
            "running as root, and PostgreSQL refuses to run as root, but there is no "
            "`postgres` user to run it as; create one (`make test` installs the server "
            "package, which does) or run the tests as an unprivileged user"
        ) from None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log written)"


@contextmanager
def running_server(timeout_s: float = START_TIMEOUT_S) -> Iterator[PgServer]:
    """initdb a cluster in a fresh temp folder, start it on loopback, stop and delete it."""
    bindir = find_bindir()
    account = _run_as()
    started = time.monotonic()
    # Not pytest's tmp_path: that lives under a 0700 folder the postgres user cannot enter.
    root = Path(tempfile.mkdtemp(prefix="storybot-pg-"))
    proc: subprocess.Popen[bytes] | None = None
    log = root / "server.log"
    try:
        data = root / "data"
        user = group = None
        if account is not None:
            os.chown(root, account.pw_uid, account.pw_gid)
            user, group = account.pw_uid, account.pw_gid
        env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
        init = subprocess.run(
            [str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", SUPERUSER,
             "--no-sync", "-E", "UTF8", "--locale=C"],
            capture_output=True, text=True, user=user, group=group, env=env, cwd=root,
            check=False,
        )  # fmt: skip
        if init.returncode != 0:
            raise PgUnavailable(f"initdb failed ({init.returncode}):\n{init.stderr[-3000:]}")
        port = _free_port()
        with open(log, "wb") as log_file:
            proc = subprocess.Popen(
                [str(bindir / "postgres"), "-D", str(data), "-p", str(port),
                 "-c", "listen_addresses=127.0.0.1", "-k", str(root),
                 "-c", "fsync=off", "-c", "synchronous_commit=off",
                 "-c", "full_page_writes=off"],
                stdout=log_file, stderr=subprocess.STDOUT, user=user, group=group,
                env=env, cwd=root,
            )  # fmt: skip
        server = PgServer("127.0.0.1", port, 0.0)
        deadline = started + timeout_s
        while True:
            if proc.poll() is not None:
                raise PgUnavailable(
                    f"postgres exited with {proc.returncode} while starting; log tail:\n"
                    + _tail(log)
                )
            try:
                psycopg.connect(server.admin_conninfo(), connect_timeout=2).close()
                break
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise PgUnavailable(
                        f"postgres did not accept connections on 127.0.0.1:{port} within "
                        f"{timeout_s:.0f}s ({exc}); log tail:\n{_tail(log)}"
                    ) from exc
                time.sleep(0.05)
        yield PgServer("127.0.0.1", port, time.monotonic() - started)
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # "fast" shutdown, as pg_ctl stop -m fast
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(root, ignore_errors=True)
