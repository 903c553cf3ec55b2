"""What `make test` installs is required, not optional: a missing backend fails its tests.

A skip would hide a broken install (the suite would go green having tested nothing), so these
helpers fail with the command that installs the missing piece.
"""

from __future__ import annotations

import importlib
import shutil
from types import ModuleType

import pytest


def module(name: str, install: str) -> ModuleType:
    """Import ``name`` or fail the test, naming how to install it."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        pytest.fail(f"{name} is missing ({exc}); `make test` installs it: {install}", pytrace=False)


def tool(name: str, install: str) -> str:
    """The path of executable ``name`` or fail the test, naming how to install it."""
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not on PATH; `make test` installs it: {install}", pytrace=False)
    return found
