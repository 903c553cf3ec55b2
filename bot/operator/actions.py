"""Operator actions on stored state: moderate suggestions and block accounts, never delete.

Each function works inside the caller's session (the web dashboard and the CLI open one per
action) and returns a line saying what it did. Only suggestions of an open round can change:
a closed round's decision is history and stays as it was decided.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.config import ModerationSettings
from bot.ideas.harvest import HTML_PLATFORMS, rules_for
from story_state.errors import StorybotError
from story_state.lifecycle import RoundStatus
from story_state.models import Contributor, LoreEntry, Round, Suggestion
from story_state.moderation import moderate

log = logging.getLogger(__name__)

BLOCKED = "blocked account"  # the reason harvest gives a blocked author's suggestions
MAX_REASON = 200  # Suggestion.reject_reason is String(200)
LORE_KINDS = ("character", "place", "fact")
LORE_STATUSES = ("canon", "proposed", "rejected")
MAX_LORE_NAME = 200  # LoreEntry.name is String(200)
MAX_LORE_TEXT = 4000  # description and visual: enough for a paragraph, not a novel


class OperatorError(StorybotError):
    """An operator action was refused (unknown id, closed round, empty reason, ...)."""


def _suggestion(session: Session, suggestion_id: int) -> Suggestion:
    found = session.get(Suggestion, suggestion_id)
    if found is None:
        raise OperatorError(f"there is no suggestion {suggestion_id}")
    if found.round.status is not RoundStatus.OPEN:
        raise OperatorError(f"suggestion {suggestion_id} belongs to a closed round")
    return found


def _contributor(session: Session, contributor_id: int) -> Contributor:
    found = session.get(Contributor, contributor_id)
    if found is None:
        raise OperatorError(f"there is no contributor {contributor_id}")
    return found


def _open_suggestions(session: Session, contributor_id: int) -> list[Suggestion]:
    return list(
        session.scalars(
            select(Suggestion)
            .join(Round, Suggestion.round_id == Round.id)
            .where(Suggestion.contributor_id == contributor_id, Round.status == RoundStatus.OPEN)
            .order_by(Suggestion.id)
        )
    )


def approve(session: Session, suggestion_id: int) -> str:
    """Count the suggestion after all (the operator overrides the automatic reason)."""
    s = _suggestion(session, suggestion_id)
    who = s.contributor.display_name
    if s.contributor.blocked:
        raise OperatorError(f"{who} is blocked; unblock the account first")
    was = s.reject_reason or s.flag or "accepted"
    s.accepted, s.pending, s.reject_reason = True, False, None
    log.info("operator approved suggestion %s by %s (was: %s)", s.id, who, was)
    return f"approved suggestion {s.id} by {who}"


def reject(session: Session, suggestion_id: int, reason: str) -> str:
    """Keep the suggestion but stop it counting; ``reason`` is shown to operators."""
    reason = " ".join(reason.split())
    if not reason:
        raise OperatorError("a rejection needs a reason")
    if len(reason) > MAX_REASON:
        raise OperatorError(f"a reason is at most {MAX_REASON} characters")
    s = _suggestion(session, suggestion_id)
    s.accepted, s.pending, s.reject_reason = False, False, reason
    log.info("operator rejected suggestion %s: %s", s.id, reason)
    return f"rejected suggestion {s.id} by {s.contributor.display_name}: {reason}"


def block(session: Session, contributor_id: int) -> str:
    """Block an account: its suggestions in open rounds stop counting, and so will new ones."""
    person = _contributor(session, contributor_id)
    person.blocked = True
    changed = 0
    for s in _open_suggestions(session, contributor_id):
        if s.accepted or s.pending:
            s.accepted, s.pending, s.reject_reason = False, False, BLOCKED
            changed += 1
    log.info("operator blocked %s:%s", person.platform, person.handle)
    return (
        f"blocked {person.display_name} ({person.platform}); {changed} open suggestion(s) rejected"
    )


def unblock(session: Session, contributor_id: int, settings: ModerationSettings) -> str:
    """Unblock an account; its open suggestions rejected for the block are judged again."""
    person = _contributor(session, contributor_id)
    person.blocked = False
    restored = 0
    for s in _open_suggestions(session, contributor_id):
        if s.reject_reason != BLOCKED:
            continue  # the operator's or the filter's own reason stays
        rules = rules_for(session, s.round.episode.story_id, settings)
        verdict = moderate(s.raw_text, person.handle, rules, is_html=s.platform in HTML_PLATFORMS)
        s.text, s.accepted, s.pending = verdict.text, verdict.accepted, verdict.pending
        s.reject_reason, s.flag = verdict.reason, verdict.flag
        restored += verdict.accepted
    log.info("operator unblocked %s:%s", person.platform, person.handle)
    return (
        f"unblocked {person.display_name} ({person.platform}); {restored} suggestion(s) count again"
    )


# -- the story bible ------------------------------------------------------------------


def _lore(session: Session, entry_id: int) -> LoreEntry:
    found = session.get(LoreEntry, entry_id)
    if found is None:
        raise OperatorError(f"there is no lore entry {entry_id}")
    return found


def _lore_text(what: str, value: str, required: bool) -> str:
    value = value.strip()
    if required and not value:
        raise OperatorError(f"a lore entry needs a {what}")
    if len(value) > MAX_LORE_TEXT:
        raise OperatorError(f"a {what} is at most {MAX_LORE_TEXT} characters")
    return value


def set_lore_status(session: Session, entry_id: int, status: str) -> str:
    """Accept (canon) or reject a lore entry; a rejected entry is kept but never used."""
    if status not in LORE_STATUSES:
        raise OperatorError(f"a lore status is one of {', '.join(LORE_STATUSES)}")
    entry = _lore(session, entry_id)
    entry.status = status
    log.info("operator set lore %s (%s %r) to %s", entry.id, entry.kind, entry.name, status)
    return f"{entry.kind} {entry.name!r} is now {status}"


def edit_lore(session: Session, entry_id: int, description: str, visual: str) -> str:
    """Rewrite an entry's description and (for characters) how it looks in pictures."""
    entry = _lore(session, entry_id)
    entry.description = _lore_text("description", description, required=True)
    entry.visual = _lore_text("visual", visual, required=False)
    log.info("operator edited lore %s (%s %r)", entry.id, entry.kind, entry.name)
    return f"edited {entry.kind} {entry.name!r}"


def add_lore(
    session: Session, story_id: int, kind: str, name: str, description: str, visual: str = ""
) -> str:
    """Add a canon entry; a kind and name already in the bible is refused."""
    if kind not in LORE_KINDS:
        raise OperatorError(f"a lore kind is one of {', '.join(LORE_KINDS)}")
    name = " ".join(name.split())
    if not name:
        raise OperatorError("a lore entry needs a name")
    if len(name) > MAX_LORE_NAME:
        raise OperatorError(f"a name is at most {MAX_LORE_NAME} characters")
    description = _lore_text("description", description, required=True)
    visual = _lore_text("visual", visual, required=False)
    exists = session.scalars(
        select(LoreEntry).where(
            LoreEntry.story_id == story_id, LoreEntry.kind == kind, LoreEntry.name == name
        )
    ).first()
    if exists is not None:
        raise OperatorError(f"a {kind} named {name!r} already exists (id {exists.id})")
    entry = LoreEntry(
        story_id=story_id,
        kind=kind,
        name=name,
        description=description,
        visual=visual,
        keywords=[],
        contradictions=[],
        status="canon",
    )
    session.add(entry)
    session.flush()
    log.info("operator added lore %s (%s %r)", entry.id, kind, name)
    return f"added {kind} {name!r} (id {entry.id})"
