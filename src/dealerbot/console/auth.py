"""The console's password (argon2), its signed session cookie and the login throttle.

The password is set at the first start (``dealerbot console`` asks for it) or comes from
``DEALERBOT_CONSOLE_PASSWORD``; only its argon2 hash is kept, in ``state/console-password``
(mode 0600). Sessions are cookies signed with a key kept in ``state/console-secret`` (0600):
HttpOnly, SameSite=Strict, holding the session's CSRF token.
"""

from __future__ import annotations

import os
import secrets
import time
from collections import deque
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from dealerbot.errors import ConfigError
from dealerbot.files import private_dir, write_private_text

PASSWORD_ENV = "DEALERBOT_CONSOLE_PASSWORD"
MIN_LENGTH = 8
MAX_FAILURES = 5  # per client address ...
FAILURE_WINDOW = 300.0  # ... within these seconds, then logins wait


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

    def verify(self, password: str) -> bool:
        """Whether ``password`` is the console's (from the environment first, else the file)."""
        env = os.environ.get(PASSWORD_ENV)
        if env:
            return secrets.compare_digest(env.encode(), password.encode())
        try:
            return self.hasher.verify(self.file.read_text(encoding="utf-8").strip(), password)
        except (OSError, VerificationError, InvalidHashError):
            return False


def session_secret(state_dir: Path) -> str:
    """The key that signs session cookies (made once, kept 0600)."""
    path = state_dir / "console-secret"
    if path.is_file():
        return path.read_text(encoding="utf-8").strip()
    private_dir(state_dir)
    key = secrets.token_urlsafe(32)
    write_private_text(path, key)
    return key


class LoginThrottle:
    """At most :data:`MAX_FAILURES` failed logins per client in :data:`FAILURE_WINDOW` seconds."""

    def __init__(self) -> None:
        self.failures: dict[str, deque[float]] = {}

    def wait_seconds(self, client: str) -> float:
        """How long ``client`` must wait before trying again (0: it may try now)."""
        now = time.monotonic()
        seen = self.failures.get(client)
        while seen and now - seen[0] > FAILURE_WINDOW:
            seen.popleft()
        if seen is not None and len(seen) >= MAX_FAILURES:
            return FAILURE_WINDOW - (now - seen[0])
        return 0.0

    def failed(self, client: str) -> None:
        self.failures.setdefault(client, deque()).append(time.monotonic())

    def succeeded(self, client: str) -> None:
        self.failures.pop(client, None)
