"""One runner per database: the lock itself on SQLite and PostgreSQL, and `run`/`tick` using it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from bot.loop.runlock import RunLock, RunnerActive, lock_key
from tests.bot.conftest import small_config, write_config

ROOT = Path(__file__).resolve().parents[2]
HOLD = (
    "import sys, time\n"
    "from bot.loop.runlock import RunLock\n"
    "RunLock(sys.argv[1]).acquire()\n"
    "print('held', flush=True)\n"
    "time.sleep(120)\n"
)


@pytest.fixture
def holder() -> Iterator[Callable[[str], subprocess.Popen[str]]]:
    """Another process that takes the lock and keeps it until killed."""
    procs: list[subprocess.Popen[str]] = []

    def start(url: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", HOLD, url], stdout=subprocess.PIPE, text=True, cwd=ROOT
        )
        procs.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


def until_free(url: str, timeout: float = 20.0) -> float:
    """Seconds until the lock can be taken again; fails after ``timeout``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        lock = RunLock(url)
        if lock.try_acquire():
            lock.release()
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"the lock was still held {timeout:.0f}s after its holder died")


def test_sqlite_lock_file_names_the_holder_and_is_freed_on_release(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    first, second = RunLock(url), RunLock(url)
    first.acquire()
    assert (tmp_path / "bot.db.lock").read_text().strip() == str(os.getpid())
    with pytest.raises(RunnerActive) as refused:
        second.acquire()
    assert str(refused.value) == (
        f"another storybot run holds the lock for this database (pid {os.getpid()})"
    )
    assert not second.try_acquire() and first.still_held()
    first.release()
    with second:
        assert second.held and not first.try_acquire()
    assert not second.held and first.try_acquire()
    first.release()


def test_each_sqlite_file_has_its_own_lock_and_memory_needs_none(tmp_path: Path) -> None:
    with RunLock(f"sqlite:///{tmp_path / 'a.db'}"), RunLock(f"sqlite:///{tmp_path / 'b.db'}"):
        pass
    memory = RunLock("sqlite:///:memory:")
    assert memory.try_acquire() and RunLock("sqlite:///:memory:").try_acquire()


def test_postgres_advisory_lock_names_the_holder(pg_url: str) -> None:
    first, second = RunLock(pg_url), RunLock(pg_url)
    first.acquire()
    try:
        with pytest.raises(RunnerActive, match=rf"\(pid {os.getpid()}\)$"):
            second.acquire()
        assert first.still_held()
    finally:
        first.release()
    assert second.try_acquire()
    second.release()


def test_postgres_lock_is_lost_with_its_session(pg_url: str) -> None:
    lock = RunLock(pg_url)
    lock.acquire()
    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
                    "AND objid = :lo"
                ),
                {"lo": lock_key() & 0xFFFFFFFF},
            )
            conn.commit()
    finally:
        engine.dispose()
    assert not lock.still_held()  # a runner can notice and stop acting
    lock.release()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_sigkill_frees_the_lock(
    backend: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    holder: Callable[[str], subprocess.Popen[str]],
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'bot.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    proc = holder(url)
    with pytest.raises(RunnerActive, match=rf"\(pid {proc.pid}\)"):
        RunLock(url).acquire()
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert until_free(url) < 10


def storybot(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [sys.executable, "-m", "bot", "--config", str(config), *args],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"storybot {' '.join(args)} kept running: it did not check the runner lock")


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_second_run_refuses_and_tick_steps_aside(
    backend: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    holder: Callable[[str], subprocess.Popen[str]],
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'bot.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    config = write_config(tmp_path, small_config(tmp_path, url))
    proc = holder(url)  # stands in for a `storybot run` that holds the lock

    second = storybot(config, "run", "--no-web")
    assert second.returncode == 1
    assert second.stderr.strip().splitlines() == [
        f"Error: another storybot run holds the lock for this database (pid {proc.pid})"
    ]
    tick = storybot(config, "tick")
    assert (tick.returncode, tick.stdout.strip()) == (0, "another runner is active"), tick.stderr

    proc.kill()
    proc.wait(timeout=10)
    until_free(url)
    assert "opened the round after episode 1" in storybot(config, "tick").stdout
