"""A real, unmodified Takahe (a Mastodon-API server) on loopback, for whole-story tests.

The kit in ``../shared/servers/takahe`` builds and starts it (see its README): PostgreSQL, the
web server and its background worker, and ready-made accounts with API tokens. A test session
starts one server and shares it; ``STORYBOT_TAKAHE_JSON`` names the ``takahe.json`` of a server
that is already running, to reuse it while developing. A missing kit fails the tests: Takahe is
how `make test` proves the bot against a Mastodon-API server that is not Mastodon.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mastodon import Mastodon, MastodonNotFoundError

from tests.bot.mastodon_fixtures import reading_session

ROOT = Path(__file__).resolve().parents[2]
KIT = Path(os.environ.get("STORYBOT_TAKAHE_KIT", ROOT.parent / "shared" / "servers" / "takahe"))
REUSE_ENV = "STORYBOT_TAKAHE_JSON"
START_TIMEOUT_S = 900  # a cold build downloads Takahe's dependencies once


@dataclass(frozen=True)
class Takahe:
    url: str
    domain: str
    accounts: dict[str, dict[str, Any]]

    def token(self, name: str) -> str:
        return str(self.accounts[name]["token"])

    def acct(self, name: str) -> str:
        """How statuses and mentions name a local account on Takahe: ``name@host:port``."""
        return str(self.accounts[name]["full_acct"])

    def client(self, name: str) -> Mastodon:
        # Mastodon.py's own version probing recurses on Takahe's 404s: name a version.
        return Mastodon(
            access_token=self.token(name),
            api_base_url=self.url,
            version_check_mode="none",
            mastodon_version="4.0.0",
            request_timeout=30,
            session=reading_session(),
        )

    def delete(self, name: str, status_id: str, *, settle_s: float = 1.5) -> None:
        """``name`` deletes a status, and it stays deleted.

        Takahe's background worker fans a new post out and then forces its state to
        ``fanned_out``; a delete that lands while it works is overwritten, and the post comes
        back. So the delete is repeated until the post has been gone for ``settle_s``."""
        client = self.client(name)
        deadline = time.monotonic() + 60
        gone_since: float | None = None
        while time.monotonic() < deadline:
            try:
                client.status(status_id)
            except MastodonNotFoundError:
                gone_since = gone_since or time.monotonic()
                if time.monotonic() - gone_since >= settle_s:
                    return
            else:
                gone_since = None
                with suppress(MastodonNotFoundError):  # gone meanwhile
                    client.status_delete(status_id)
            time.sleep(0.25)
        raise AssertionError(f"Takahe status {status_id} keeps coming back after deletion")

    def delete_all(self, name: str, *, settle_s: float = 1.5) -> None:
        """Every status of ``name`` deleted, and none back after ``settle_s`` (see ``delete``)."""
        client = self.client(name)
        deadline = time.monotonic() + 120
        deleted = False
        while time.monotonic() < deadline:
            left = self.statuses_of(name)
            for status in left:
                with suppress(MastodonNotFoundError):
                    client.status_delete(status["id"])
            if not left and not deleted:
                return  # nothing was there: nothing can come back
            if not left:
                time.sleep(settle_s)
                if not self.statuses_of(name):
                    return
            deleted = True
        raise AssertionError(f"{name}'s statuses keep coming back after deletion")

    def statuses_of(self, name: str) -> list[dict[str, Any]]:
        """Every status the account has on the server, newest first (all pages)."""
        client = self.client(name)
        me = client.account_verify_credentials()["id"]
        found: list[dict[str, Any]] = []
        page = client.account_statuses(me, limit=40)
        while page:
            found += page
            page = client.fetch_next(page)
        return found


def _load(path: Path) -> Takahe:
    data = json.loads(path.read_text())
    return Takahe(data["url"], data["domain"], data["accounts"])


@contextmanager
def running_takahe(state: Path) -> Iterator[Takahe]:
    """The server named by STORYBOT_TAKAHE_JSON, or a new one in ``state`` (stopped after)."""
    reuse = os.environ.get(REUSE_ENV)
    if reuse:
        yield _load(Path(reuse))
        return
    start = KIT / "start"
    if not start.is_file():
        pytest.fail(f"the Takahe test server kit is missing: {start}", pytrace=False)
    env = {**os.environ, "TAKAHE_TEST_QUIET": "1"}
    began = time.monotonic()
    done = subprocess.run(
        [str(start), str(state), "--port", "0", "--accounts", "storybot,ana,ben,cy,bob,carol"],
        capture_output=True,
        text=True,
        env=env,
        timeout=START_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        pytest.fail(f"Takahe did not start: {tail}", pytrace=False)
    print(f"Takahe started in {time.monotonic() - began:.0f} s")  # shown with -s
    try:
        yield _load(Path(done.stdout.strip().splitlines()[-1]))
    finally:
        subprocess.run([str(KIT / "stop"), str(state)], capture_output=True, timeout=120)
