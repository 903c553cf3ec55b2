"""Secrets never leave the process in clear: log records and error texts are scrubbed.

A secret is the value of any environment variable the config names with a ``*_env`` key,
of any variable whose name ends in TOKEN, SECRET, KEY or PASSWORD (``..._API_KEY`` too),
and the password of the database URL. Each is replaced by ``****`` wherever it appears:
in log messages and their arguments, tracebacks, and any text passed to :func:`scrub`
(stored failure reasons, ``status`` output). The values are looked up on every use, so a
secret set after start-up is still caught.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

MASK = "****"
SUFFIXES = ("TOKEN", "SECRET", "KEY", "PASSWORD")
MIN_LENGTH = 6  # shorter values would mask ordinary words all over the log

_named: set[str] = set()  # environment variables the loaded config names
_extra: set[str] = set()  # other secret values (a database password)
_installed: dict[str, Any] = {}


def config_env_names(config: BaseModel) -> set[str]:
    """Every environment variable named by a ``*_env`` key anywhere in ``config``."""
    names: set[str] = set()
    for field, value in config:
        if isinstance(value, BaseModel):
            names |= config_env_names(value)
        elif field.endswith("_env") and isinstance(value, str) and value:
            names.add(value)
    return names


def register(config: BaseModel | None = None, *values: str) -> None:
    """Add the secrets a config names (and any explicit ``values``) to what is masked."""
    if config is not None:
        _named.update(config_env_names(config))
        database = getattr(config, "database", None)
        url = getattr(database, "url", "")
        try:
            password = make_url(url).password if url else None
        except ArgumentError:
            password = None
        if password:
            _extra.add(str(password))
    _extra.update(v for v in values if v)


def secret_values(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The values to mask, longest first (a secret containing another is masked whole)."""
    env = os.environ if environ is None else environ
    found = set(_extra)
    for name, value in env.items():
        if name in _named or name.upper().endswith(SUFFIXES):
            found.add(value)
    variants = {quote(v, safe="") for v in found} | found  # as it appears in a URL or form
    return tuple(sorted((v for v in variants if len(v) >= MIN_LENGTH), key=len, reverse=True))


def scrub(text: str, secrets: Iterable[str] | None = None) -> str:
    """``text`` with every known secret replaced by ``****``."""
    for secret in secret_values() if secrets is None else secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class RedactingFilter(logging.Filter):
    """Scrubs a record's message, arguments, traceback and stack text in place; never drops."""

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = secret_values()
        if not secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: the handler reports it as usual
            return True
        clean = scrub(message, secrets)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text, secrets)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info, secrets)
        return True


def install(config: BaseModel | None = None) -> None:
    """Mask secrets in every log record from now on, whichever handler writes it.

    The filter runs in the record factory, so records routed to handlers configured later
    (uvicorn's own, a test's capture) are scrubbed as well. Calling it again only adds the
    secrets a newly loaded ``config`` names.
    """
    register(config)
    if "factory" in _installed:
        return
    previous: Callable[..., logging.LogRecord] = logging.getLogRecordFactory()
    redacting = RedactingFilter()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        redacting.filter(record)
        return record

    _installed["factory"], _installed["previous"] = factory, previous
    logging.setLogRecordFactory(factory)


def uninstall() -> None:
    """Undo :func:`install` and forget registered secrets (for tests)."""
    if _installed.get("factory") is logging.getLogRecordFactory():
        logging.setLogRecordFactory(_installed["previous"])
    _installed.clear()
    _named.clear()
    _extra.clear()
