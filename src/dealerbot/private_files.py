"""Files that hold customer data or secrets are private to the user who runs dealerbot.

The CLI sets the process umask to 077 at start (:func:`private_by_default`), so that everything
a run creates (the store and its -wal/-shm files, logs, evidence, workbooks, saved logins) is
0600 and every folder 0700 on POSIX; the folders dealerbot uses are also made 0700 when it uses
them (:func:`private_dir`), in case they were created otherwise (a git checkout's ``logs/``).
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

PRIVATE_UMASK = 0o077


def private_by_default() -> None:
    """Make new files 0600 and new folders 0700 for the rest of this process (POSIX)."""
    if os.name == "posix":
        os.umask(PRIVATE_UMASK)


def private_dir(path: Path) -> Path:
    """Create ``path`` (and its parents) if needed and make it 0700 when this user owns it."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if os.name == "posix":
        with contextlib.suppress(OSError):  # not ours (a shared folder): leave it as it is
            if path.stat().st_uid == os.getuid():
                os.chmod(path, 0o700)
    return path


def write_private_json(path: Path, data: Any) -> None:
    """Write JSON readable by the owner only (mode 0600), atomically."""
    write_private_text(path, json.dumps(data))


def write_private_text(path: Path, text: str) -> None:
    """Write text readable by the owner only (mode 0600), atomically."""
    private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def make_private(path: Path) -> None:
    """Make an existing file 0600 (POSIX; a file of another user's is left as it is)."""
    if os.name == "posix":
        with contextlib.suppress(OSError):
            os.chmod(path, 0o600)


def private_file(path: Path) -> Path:
    """Create ``path`` empty if missing, 0600, in a 0700 folder: for files others append to."""
    private_dir(path.parent)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
    make_private(path)
    return path
