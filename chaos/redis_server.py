"""A throwaway Redis for tests and the worker bench: 127.0.0.1, a free port, then removed."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT_S = 20.0


class RedisUnavailable(RuntimeError):
    """redis-server is missing or would not start."""


@dataclass(frozen=True)
class RedisServer:
    host: str
    port: int

    def url(self, db: int = 0) -> str:
        return f"redis://{self.host}:{self.port}/{db}"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _pong(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log written)"


@contextmanager
def running_redis(timeout_s: float = START_TIMEOUT_S) -> Iterator[RedisServer]:
    """Start redis-server in a fresh temp folder (no persistence), stop it and delete it."""
    exe = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(exe).is_file():
        raise RedisUnavailable(
            "redis-server not found on PATH or at /usr/bin/redis-server; `make test` installs "
            "it (Debian package redis-server), or: apt-get install redis-server"
        )
    root = Path(tempfile.mkdtemp(prefix="storybot-redis-"))
    log = root / "redis.log"
    port = _free_port()
    proc = subprocess.Popen(
        [exe, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(root),
         "--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", str(log)],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, cwd=root,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + timeout_s
        while not _pong(port):
            if proc.poll() is not None:
                raise RedisUnavailable(
                    f"redis-server exited with {proc.returncode} while starting; log tail:\n"
                    + _tail(log)
                )
            if time.monotonic() > deadline:
                raise RedisUnavailable(
                    f"redis-server did not answer on 127.0.0.1:{port} within {timeout_s:.0f}s; "
                    f"log tail:\n{_tail(log)}"
                )
            time.sleep(0.05)
        yield RedisServer("127.0.0.1", port)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(root, ignore_errors=True)
