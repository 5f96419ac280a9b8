"""Files that hold customer data or secrets are private to the user who runs dealerbot.

The CLI sets the process umask to 077 at start (:func:`private_by_default`), so that everything
a run creates (the store and its -wal/-shm files, logs, evidence, workbooks, saved logins) is
0600 and every folder 0700 on POSIX; the folders dealerbot uses are also made 0700 when it uses
them (:func:`private_dir`), in case they were created otherwise (a git checkout's ``logs/``).

On Windows modes do nothing (a new folder inherits its parent's access list: under ``C:\\`` every
signed-in user may read it). There, :func:`private_dir` gives the topmost folder it creates an
access list of its own, inherited by everything created inside it: full control for the current
user, nobody else (``icacls /inheritance:r /grant:r``; :func:`restrict_to_user`). Folders that
already existed are left as they are; ``dealerbot doctor`` warns when the data folders lie
outside the user's profile folder (which only the user, SYSTEM and administrators may open), and
docs/windows.md puts the dealership folder there. The Windows branch cannot run on the Linux
machines the tests run on (docs/windows.md lists it among the code paths nothing here exercises).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

PRIVATE_UMASK = 0o077


def private_by_default() -> None:
    """Make new files 0600 and new folders 0700 for the rest of this process (POSIX)."""
    if os.name == "posix":
        os.umask(PRIVATE_UMASK)


def private_dir(path: Path) -> Path:
    """Create ``path`` (and its parents) if needed: the folders it creates are 0700, and
    ``path`` is made 0700 when this user owns it (on Windows: the topmost folder created gets
    an access list for this user alone)."""
    created = topmost_missing(path)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if os.name == "posix":
        # The parents made on the way got the umask's mode (mkdir's ``mode`` is the leaf's only).
        made = [] if created is None else [path, *path.parents[: len(path.parts) - len(created.parts)]]
        for folder in made[1:]:
            with contextlib.suppress(OSError):
                os.chmod(folder, 0o700)
        with contextlib.suppress(OSError):  # not ours (a shared folder): leave it as it is
            if path.stat().st_uid == os.getuid():
                os.chmod(path, 0o700)
    elif sys.platform == "win32" and created is not None:  # pragma: no cover - Windows only
        restrict_to_user(created)
    return path


def topmost_missing(path: Path) -> Path | None:
    """The highest folder of ``path`` that does not exist yet (``path`` itself when only it is
    missing; None when it exists): the one folder whose access list everything below inherits."""
    if path.exists():
        return None
    top = path
    while not top.parent.exists() and top.parent != top:
        top = top.parent
    return top


def restrict_to_user(path: Path) -> bool:  # pragma: no cover - Windows only
    """Windows: only the current user may open ``path`` (a folder: and what is created in it).

    Its inherited entries are removed and the user granted full control, inherited by files and
    folders inside (``(OI)(CI)F``); SYSTEM and administrators keep what their privileges give
    them (backup, taking ownership). Returns False when ``icacls`` refused (a FAT drive, a
    network share, a folder of another user's): the folder is left as it was.
    """
    user = os.environ.get("USERNAME") or os.getlogin()
    domain = os.environ.get("USERDOMAIN")
    who = f"{domain}\\{user}" if domain else user
    grant = f"{who}:(OI)(CI)F" if path.is_dir() else f"{who}:F"
    try:
        done = subprocess.run(
            ["icacls", str(path), "/inheritance:r", "/grant:r", grant, "/q"],
            capture_output=True, stdin=subprocess.DEVNULL, timeout=30,
            creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0),
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


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
