"""Writing media atomically: a half-written file never sits where a finished one belongs."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_output(out: Path) -> Iterator[Path]:
    """Yield a temp path beside ``out`` (same suffix); on success it replaces ``out``.

    The file is made world-readable (mkstemp makes it private) because media are shared with
    the web server and the platforms. On any error the temp file is removed and ``out`` is
    left as it was.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=out.suffix, dir=out.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
