"""Sandbox display names, each bound to the browser that claimed it by a signed cookie.

The cookie holds the name, the browser's random id and an HMAC of both under a secret made
once per install and kept in the database (never in the config). A name is claimed in the
database the first time a browser asks for it; another browser asking for the same name, or
for a name someone already used in the thread, is refused. The claiming browser keeps the
name: it may switch away and come back.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from bot.platforms.local import LocalActionError, check_name
from story_state.clock import utcnow
from story_state.db import session_scope
from story_state.models import InstallSecret, LocalLike, LocalName, LocalPost, LocalVote
from story_state.text import skeleton

NAME_COOKIE = "storybot_name"
SECRET_NAME = "sandbox-name-cookie"
_CONTEXT = b"storybot-name-v1"


class NameTaken(LocalActionError):
    """Another follower holds that name."""


@dataclass(frozen=True)
class Identity:
    name: str
    browser: str  # random, made when this browser first claimed a name


def name_key(name: str) -> str:
    """How names are compared: "Ana", "ana" and "аna" (a Cyrillic а) are one name."""
    return " ".join(skeleton(name).split())


def new_browser_id() -> str:
    return secrets.token_urlsafe(18)


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _unb64(text: str) -> str:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()


class NameBook:
    """Claims names and signs and reads the cookies that prove them."""

    def __init__(self, factory: sessionmaker[Session], bot_name: str) -> None:
        self._factory = factory
        self._bot_key = name_key(bot_name)
        self._secret: bytes | None = None
        self._lock = threading.Lock()

    def _key(self) -> bytes:
        with self._lock:
            if self._secret is None:
                self._secret = bytes.fromhex(self._load_secret())
            return self._secret

    def _load_secret(self) -> str:
        for _ in range(2):  # a second try reads what a concurrent first start wrote
            try:
                with session_scope(self._factory) as session:
                    row = session.get(InstallSecret, SECRET_NAME)
                    if row is not None:
                        return row.value
                    value = secrets.token_hex(32)
                    session.add(InstallSecret(name=SECRET_NAME, value=value, created_at=utcnow()))
                    return value
            except IntegrityError:
                continue
        raise RuntimeError("could not store the sandbox's cookie secret")

    def _sign(self, name: str, browser: str) -> str:
        message = b"\x00".join((_CONTEXT, browser.encode(), name.encode()))
        return hmac.new(self._key(), message, hashlib.sha256).hexdigest()

    def cookie(self, identity: Identity) -> str:
        sig = self._sign(identity.name, identity.browser)
        return f"{_b64(identity.name)}.{identity.browser}.{sig}"

    def read(self, value: str | None) -> Identity | None:
        """The identity a cookie proves, or None for a missing, old or forged one."""
        if not value or value.count(".") != 2:
            return None
        encoded, browser, sig = value.split(".")
        try:
            name = check_name(_unb64(encoded))
        except (binascii.Error, UnicodeDecodeError, ValueError, LocalActionError):
            return None
        if not browser or not hmac.compare_digest(sig.encode(), self._sign(name, browser).encode()):
            return None
        return Identity(name, browser)

    def claim(self, wanted: str, browser: str) -> Identity:
        """Bind ``wanted`` to ``browser``; NameTaken if another browser or follower has it."""
        name = check_name(wanted)
        key = name_key(name)
        if not key or key == self._bot_key:
            raise LocalActionError("That name belongs to the bot; choose another.")
        taken = NameTaken(f"The name “{name}” is taken by another follower; choose another.")
        try:
            with session_scope(self._factory) as session:
                row = session.scalars(select(LocalName).where(LocalName.name_key == key)).first()
                if row is not None:
                    if row.owner != browser:
                        raise taken
                    row.name = name  # the owner may change how it is written
                    return Identity(name, browser)
                if key in _used_keys(session):  # from before names were claimed, or the CLI
                    raise taken
                session.add(LocalName(name_key=key, name=name, owner=browser, claimed_at=utcnow()))
        except IntegrityError:  # another browser claimed it a moment ago
            raise taken from None
        return Identity(name, browser)


def _used_keys(session: Session) -> set[str]:
    names: set[str] = set()
    names.update(
        session.scalars(select(LocalPost.author).where(LocalPost.is_bot.is_(False)).distinct())
    )
    names.update(session.scalars(select(LocalVote.voter).distinct()))
    names.update(session.scalars(select(LocalLike.liker).distinct()))
    return {name_key(n) for n in names}
