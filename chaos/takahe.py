"""A real, unmodified Takahe on loopback, started and stopped with the kit's own scripts.

``../shared/servers/takahe`` (see its README) builds Takahe once into a cache, then starts
PostgreSQL, the web server and its background worker with ready-made accounts and tokens,
and writes ``takahe.json``. Takahe ignores Idempotency-Key, takes images only, and names its
local accounts ``user@host:port``. ``STORYBOT_TAKAHE_JSON`` names a running server's
``takahe.json`` to reuse it (then it is not stopped here).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from chaos.remote import ApiServer, probe_idempotency
from chaos.world import FOLLOWERS

ROOT = Path(__file__).resolve().parents[1]
KIT = Path(os.environ.get("STORYBOT_TAKAHE_KIT", ROOT.parent / "shared" / "servers" / "takahe"))
REUSE_ENV = "STORYBOT_TAKAHE_JSON"
BOT = "storybot"
ACCOUNTS = (BOT, *FOLLOWERS)
START_TIMEOUT_S = 900  # a cold build downloads Takahe's dependencies once


class TakaheUnavailable(RuntimeError):
    """The kit is missing or the server would not start."""


def server_of(url: str, accounts: Mapping[str, Mapping[str, Any]]) -> ApiServer:
    """The harness's view of a Takahe server from its ``takahe.json`` accounts."""
    missing = [name for name in ACCOUNTS if name not in accounts]
    if missing:
        raise TakaheUnavailable(f"the Takahe server has no account(s) {', '.join(missing)}")
    tokens = {name: str(accounts[name]["token"]) for name in ACCOUNTS}
    accts = {name: str(accounts[name]["full_acct"]) for name in ACCOUNTS}
    probe = ApiServer("takahe", url, tokens, accts, BOT)
    honoured = probe_idempotency(probe)

    def notes() -> list[str]:
        said = "honoured" if honoured else "ignored (probe: one key, two posts, two statuses)"
        return [f"takahe: Idempotency-Key {said}"]

    return ApiServer("takahe", url, tokens, accts, BOT, notes)


def _load(path: Path) -> ApiServer:
    data = json.loads(path.read_text())
    return server_of(str(data["url"]), data["accounts"])


@contextmanager
def running_takahe(state: Path) -> Iterator[ApiServer]:
    """The server named by STORYBOT_TAKAHE_JSON, or a new one in ``state`` (stopped after)."""
    reuse = os.environ.get(REUSE_ENV)
    if reuse:
        yield _load(Path(reuse))
        return
    start = KIT / "start"
    if not start.is_file():
        raise TakaheUnavailable(f"the Takahe server kit is missing: {start}")
    began = time.monotonic()
    done = subprocess.run(
        [str(start), str(state), "--port", "0", "--accounts", ",".join(ACCOUNTS)],
        capture_output=True,
        text=True,
        env={**os.environ, "TAKAHE_TEST_QUIET": "1"},
        timeout=START_TIMEOUT_S,
        check=False,
    )
    try:
        if done.returncode != 0:
            tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise TakaheUnavailable(f"Takahe did not start: {tail}")
        server = _load(Path(done.stdout.strip().splitlines()[-1]))
        startup = f"takahe: started in {time.monotonic() - began:.0f}s"
        yield ApiServer(
            server.label,
            server.url,
            server.tokens,
            server.accts,
            server.bot,
            lambda: [startup, *server.notes()],
        )
    finally:
        subprocess.run([str(KIT / "stop"), str(state)], capture_output=True, timeout=120)
