"""The console's password (argon2), its sessions and the login throttle.

The password is set at the first start (``dealerbot console`` asks for it), comes from
``DEALERBOT_CONSOLE_PASSWORD``, or from a file (``--password-file`` /
``DEALERBOT_CONSOLE_PASSWORD_FILE``, :func:`read_password_file`: for a console started at logon
with nobody at a prompt; the file must be private to the user); only its argon2 hash is kept,
in ``state/console-password`` (mode 0600). Sessions are cookies signed with a key kept in ``state/console-secret`` (0600):
HttpOnly, SameSite=Strict, holding the session's id and CSRF token. The id is only good while
its row is in ``state/console-sessions.sqlite`` (0600; shared by every console process of the
folder): logout deletes it, a session unused for ``[console] idle_minutes`` or older than
``session_hours`` ends, and so does every session when the password changes (each row keeps a
keyed fingerprint of the password it was opened with).

Failed logins wait, per account (the console has one) and per client address: after n failures
in a row (beyond two typos) the next try waits ``min(2 ** (n - 3), 30)`` seconds, so guessing
gets two tries a minute while the operator, with the right password, is never kept out longer
than 30 seconds.
The client address is the connecting one: forwarding headers (``X-Forwarded-For``) are believed
only from ``[console] trusted_proxies``.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from dealerbot.errors import ConfigError
from dealerbot.private_files import private_dir, write_private_text

PASSWORD_ENV = "DEALERBOT_CONSOLE_PASSWORD"
PASSWORD_FILE_ENV = "DEALERBOT_CONSOLE_PASSWORD_FILE"
MAX_PASSWORD_FILE_BYTES = 4096
MIN_LENGTH = 8
FREE_FAILURES = 2  # a typo or two cost nothing; after more failures in a row logins wait ...
FIRST_DELAY = 1.0  # ... this many seconds, doubling with each further failure ...
MAX_DELAY = 30.0  # ... up to this
FORGET_AFTER = 900.0  # failures older than this (and no newer one) are forgotten


class ConsolePassword:
    """The console's password, as an argon2 hash in ``state/console-password``."""

    def __init__(self, state_dir: Path) -> None:
        self.file = state_dir / "console-password"
        self.hasher = PasswordHasher()

    @property
    def is_set(self) -> bool:
        return bool(os.environ.get(PASSWORD_ENV)) or self.file.is_file()

    def set(self, password: str) -> None:
        """Keep the hash of a new password.

        Raises:
            ConfigError: shorter than :data:`MIN_LENGTH`.
        """
        if len(password) < MIN_LENGTH:
            raise ConfigError(f"控制台密码至少 {MIN_LENGTH} 位 (the console password needs {MIN_LENGTH}+ characters)")
        private_dir(self.file.parent)
        write_private_text(self.file, self.hasher.hash(password))

    def adopt(self, password: str) -> bool:
        """Make ``password`` the console's (keeping the stored hash, and so the open sessions,
        when it already is); True when the hash changed.

        Raises:
            ConfigError: shorter than :data:`MIN_LENGTH`.
        """
        if self.file.is_file() and self.verify(password):
            return False
        self.set(password)
        return True

    def fingerprint(self, key: str) -> str:
        """A keyed digest of the current password (of its hash, when it is kept in the file):
        it changes when the password does, and tells nothing about it without ``key``."""
        env = os.environ.get(PASSWORD_ENV)
        try:
            material = ("env:" + env) if env else ("file:" + self.file.read_text(encoding="utf-8").strip())
        except OSError:
            material = "none:"
        return hmac.new(key.encode(), material.encode(), hashlib.sha256).hexdigest()[:32]

    def verify(self, password: str) -> bool:
        """Whether ``password`` is the console's (from the environment first, else the file)."""
        env = os.environ.get(PASSWORD_ENV)
        if env:
            return secrets.compare_digest(env.encode(), password.encode())
        try:
            return self.hasher.verify(self.file.read_text(encoding="utf-8").strip(), password)
        except (OSError, VerificationError, InvalidHashError):
            return False


def read_password_file(path: Path) -> str:
    """The console password kept in ``path``: its first line (a BOM and the line end left by
    Notepad are not part of it).

    Raises:
        ConfigError: the file is missing or unreadable, larger than a password file can be,
            not UTF-8, empty, or (POSIX) readable or writable by the group or others: the message
            names the file and says what to do.
    """
    try:
        mode = path.stat().st_mode
        with path.open("rb") as fh:
            raw = fh.read(MAX_PASSWORD_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: 无法读取控制台密码文件（{exc.strerror or exc}）(cannot read the console password file)") from None
    if os.name == "posix" and mode & 0o077:
        raise ConfigError(
            f"{path}: 控制台密码文件其他用户也可以访问（权限 {oct(mode & 0o777)[2:]}），不予使用："
            f"请运行 chmod 600 {path} (the console password file must be private to its owner: mode 600)"
        )
    if len(raw) > MAX_PASSWORD_FILE_BYTES:
        raise ConfigError(f"{path}: 控制台密码文件过大：文件中只应有一行密码 (the console password file holds one line)")
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: 控制台密码文件不是 UTF-8 编码，请另存为 UTF-8 (the file is not UTF-8)") from None
    lines = text.splitlines()
    if not lines or not lines[0]:
        raise ConfigError(f"{path}: 控制台密码文件的第一行是空的：请写入密码（至少 {MIN_LENGTH} 位）(the first line is empty)")
    return lines[0]


def session_secret(state_dir: Path) -> str:
    """The key that signs session cookies (made once, kept 0600)."""
    path = state_dir / "console-secret"
    if path.is_file():
        return path.read_text(encoding="utf-8").strip()
    private_dir(state_dir)
    key = secrets.token_urlsafe(32)
    write_private_text(path, key)
    return key


def proxy_options(trusted_proxies: list[str]) -> dict[str, Any]:
    """uvicorn's settings for forwarding headers: believed only from ``trusted_proxies``
    (uvicorn's own default believes them from 127.0.0.1, which is every local program)."""
    if not trusted_proxies:
        return {"proxy_headers": False, "forwarded_allow_ips": ""}
    return {"proxy_headers": True, "forwarded_allow_ips": ",".join(trusted_proxies)}


class LoginThrottle:
    """Logins after failures wait, per account and per client: after n failures in a row (n >
    :data:`FREE_FAILURES`), ``min(FIRST_DELAY * 2 ** (n - FREE_FAILURES - 1), MAX_DELAY)``
    seconds from the last one.

    :meth:`attempt` reserves the try before the password is checked (as if it failed), so
    tries sent at the same moment gain nothing; :meth:`succeeded` clears the account's and the
    client's counts.
    """

    ACCOUNT = "account:operator"

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.failures: dict[str, tuple[int, float]] = {}  # key -> (failures in a row, time of the last)

    def _keys(self, client: str) -> tuple[str, str]:
        return self.ACCOUNT, f"client:{client}"

    def _wait(self, key: str, now: float) -> float:
        count, last = self.failures.get(key, (0, 0.0))
        if count and now - last > FORGET_AFTER:
            self.failures.pop(key, None)
            return 0.0
        if count <= FREE_FAILURES:
            return 0.0
        return max(0.0, last + min(FIRST_DELAY * 2 ** (count - FREE_FAILURES - 1), MAX_DELAY) - now)

    def wait_seconds(self, client: str) -> float:
        """How long ``client`` must wait before trying again (0: it may try now)."""
        now = self.clock()
        return max(self._wait(key, now) for key in self._keys(client))

    def attempt(self, client: str) -> float:
        """A login try by ``client``: 0 and the try is counted as a failure until
        :meth:`succeeded` says otherwise; else the seconds it must wait (nothing counted)."""
        now = self.clock()
        wait = max(self._wait(key, now) for key in self._keys(client))
        if wait:
            return wait
        for key in self._keys(client):
            count, _ = self.failures.get(key, (0, 0.0))
            self.failures[key] = (count + 1, now)
        return 0.0

    def failures_in_a_row(self, client: str) -> int:
        return max(self.failures.get(key, (0, 0.0))[0] for key in self._keys(client))

    def succeeded(self, client: str) -> None:
        for key in self._keys(client):
            self.failures.pop(key, None)


class Sessions:
    """The console's live sessions, in ``state/console-sessions.sqlite`` (0600): every console
    process of the folder sees a logout at once. Times are wall-clock seconds."""

    def __init__(self, state_dir: Path) -> None:
        self.file = state_dir / "console-sessions.sqlite"

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        if not self.file.exists():
            private_dir(self.file.parent)
            os.close(os.open(self.file, os.O_WRONLY | os.O_CREAT, 0o600))
        db = sqlite3.connect(self.file, timeout=10, isolation_level=None)
        try:
            db.execute("CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, created REAL NOT NULL, "
                       "seen REAL NOT NULL, password TEXT NOT NULL)")
            yield db
        finally:
            db.close()

    def open(self, password: str, lifetime: float) -> str:
        """A new session for the password whose fingerprint is ``password``: its id. Sessions
        past ``lifetime`` are cleared away."""
        sid, now = secrets.token_urlsafe(32), time.time()
        with self._db() as db:
            db.execute("DELETE FROM sessions WHERE created < ?", (now - lifetime,))
            db.execute("INSERT INTO sessions VALUES (?, ?, ?, ?)", (sid, now, now, password))
        return sid

    def check(self, sid: str, password: str, idle: float, lifetime: float) -> bool:
        """Whether session ``sid`` is live: not logged out, used within ``idle`` seconds, begun
        within ``lifetime`` and opened with the current password. A live one is marked used
        now; a dead one is removed."""
        now = time.time()
        with self._db() as db:
            row = db.execute("SELECT created, seen, password FROM sessions WHERE id = ?", (sid,)).fetchone()
            if row is None:
                return False
            created, seen, opened_with = row
            if now - seen > idle or now - created > lifetime or not hmac.compare_digest(opened_with, password):
                db.execute("DELETE FROM sessions WHERE id = ?", (sid,))
                return False
            if now - seen > min(5.0, idle / 10):  # not a write for every request
                db.execute("UPDATE sessions SET seen = ? WHERE id = ?", (now, sid))
        return True

    def close(self, sid: str) -> None:
        """End session ``sid`` (logout): its cookie, wherever copied, is good for nothing."""
        with self._db() as db:
            db.execute("DELETE FROM sessions WHERE id = ?", (sid,))
