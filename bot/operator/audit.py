"""The operator's log: every dashboard button and operator command, who and what came of it."""

from __future__ import annotations

import getpass
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from bot.redact import scrub
from story_state.clock import Clock, utcnow
from story_state.db import session_scope
from story_state.errors import StorybotError
from story_state.models import OperatorAction

log = logging.getLogger(__name__)

_MAX_OUTCOME = 2000


def record(
    factory: sessionmaker[Session],
    source: str,
    actor: str,
    action: str,
    ok: bool,
    outcome: str,
    clock: Clock = utcnow,
) -> None:
    """Store one action. A failure to store it is logged, never raised: the action happened."""
    try:
        with session_scope(factory) as session:
            session.add(
                OperatorAction(
                    at=clock(),
                    source=source[:16],
                    actor=scrub(actor)[:200],
                    action=scrub(action)[:200],
                    ok=ok,
                    outcome=scrub(outcome)[:_MAX_OUTCOME],
                )
            )
    except SQLAlchemyError as exc:
        log.warning("could not log the operator action %r: %s", action, exc)


def cli_actor() -> str:
    """The OS user running the command (what a shared server's operator log wants to know)."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no user name for this uid, e.g. in a bare container
        return "unknown"


def recent(factory: sessionmaker[Session], limit: int = 20) -> list[dict[str, Any]]:
    """The latest actions, newest first."""
    with session_scope(factory) as session:
        rows = session.scalars(
            select(OperatorAction).order_by(OperatorAction.id.desc()).limit(limit)
        ).all()
        return [
            {
                "at": row.at,
                "source": row.source,
                "actor": row.actor,
                "action": row.action,
                "ok": row.ok,
                "outcome": row.outcome,
            }
            for row in rows
        ]


def logged(
    factory: sessionmaker[Session],
    action: str,
    work: Callable[[], str],
    clock: Clock = utcnow,
) -> str:
    """Run a command-line operator action and log it, failed or not; its line is returned."""
    try:
        line = work()
    except StorybotError as exc:
        record(factory, "cli", cli_actor(), action, False, str(exc), clock)
        raise
    record(factory, "cli", cli_actor(), action, True, line, clock)
    return line
