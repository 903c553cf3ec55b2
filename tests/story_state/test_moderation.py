"""Moderation rules, as a table of cases."""

from __future__ import annotations

import re

import pytest

from story_state.moderation import CanonRule, Rules, moderate
from story_state.text import compile_blocklist

RULES = Rules(
    blocklist=compile_blocklist(["darn", "re:kill\\s+all"]),
    blocked_accounts=frozenset({"troll@bad.example", "spammer"}),
    blocked_domains=frozenset({"spam.example"}),
    max_length=80,
    canon=(CanonRule("Mara is dead", (re.compile(r"\bmara\b.*\b(alive|returns)\b", re.I),)),),
)


@pytest.mark.parametrize(
    ("raw", "handle", "html", "accepted", "pending", "reason", "flag"),
    [
        ("The miners rebel", "ana@ok.example", False, True, False, None, None),
        ("<p>The <b>miners</b> rebel</p>", "ana@ok.example", True, True, False, None, None),
        ("nice", "@Troll@BAD.example", False, False, False, "blocked account", None),
        ("nice", "spammer", False, False, False, "blocked account", None),
        ("nice", "x@spam.example", False, False, False, "blocked domain", None),
        ("nice", "x@eu.spam.example", False, False, False, "blocked domain", None),
        ("nice", "x@notspam.example", False, True, False, None, None),
        ("well darn", "ana", False, False, False, "blocked word", None),
        ("we should KILL   all of them", "ana", False, False, False, "blocked word", None),
        (
            "buy http://a.example http://b.example",
            "ana",
            False,
            False,
            False,
            "link or mention spam",
            None,
        ),
        ("@a @b @c @d hi", "ana", False, False, False, "link or mention spam", None),
        ("\u202e\u200b", "ana", False, False, False, "empty after cleaning", None),
        ("<script>alert(1)</script>", "ana", True, False, False, "empty after cleaning", None),
        ("the ship sails on " * 40, "ana", False, False, False, "too long", None),
        (
            "Mara returns from the dead",
            "ana",
            False,
            False,
            True,
            None,
            "contradicts canon: Mara is dead",
        ),
    ],
)
def test_moderate(
    raw: str,
    handle: str,
    html: bool,
    accepted: bool,
    pending: bool,
    reason: str | None,
    flag: str | None,
) -> None:
    verdict = moderate(raw, handle, RULES, is_html=html)
    assert (verdict.accepted, verdict.pending, verdict.reason, verdict.flag) == (
        accepted,
        pending,
        reason,
        flag,
    )
    assert len(verdict.text) <= RULES.max_length


def test_approval_mode_holds_everything_clean() -> None:
    rules = Rules(approval_mode=True)
    verdict = moderate("The miners rebel", "ana", rules)
    assert not verdict.accepted and verdict.pending and verdict.flag == "awaiting approval"
    assert moderate("", "ana", rules).reason == "empty after cleaning"  # rejected, not queued


def test_a_remembered_verdict_follows_the_rules_and_the_author() -> None:
    """Short replies' verdicts are cached by text and rules: a new blocklist, approval mode or
    a blocked author must still change the verdict on the very same text."""
    text = "<p>The miners sell the moon</p>"
    assert moderate(text, "ana", Rules(), is_html=True).accepted
    stricter = Rules(blocklist=compile_blocklist(["sell"]))
    assert moderate(text, "ana", stricter, is_html=True).reason == "blocked word"
    assert moderate(text, "ana", Rules(approval_mode=True), is_html=True).pending
    banned = Rules(blocked_accounts=frozenset({"troll"}))
    assert moderate(text, "troll", banned, is_html=True).reason == "blocked account"
    assert moderate(text, "ana", banned, is_html=True).accepted
    # A long reply is judged afresh each time (not kept in memory), by the same rules.
    long = "<p>" + "The miners sell the moon, crater by crater. " * 60 + "</p>"
    roomy = Rules(max_length=5000)
    assert moderate(long, "ana", roomy, is_html=True).accepted
    roomy_and_strict = Rules(blocklist=stricter.blocklist, max_length=5000)
    assert moderate(long, "ana", roomy_and_strict, is_html=True).reason == "blocked word"
