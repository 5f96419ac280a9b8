"""Crash points for the exactly-once tests: kill the process for real at a named step.

``DEALERBOT_FAILPOINTS="rekey.after_submit:3"`` makes the third pass through the point
``rekey.after_submit`` send SIGKILL to its own process (a real kill, nothing is cleaned up);
several points are separated by commas. Without the variable nothing happens. The tests use it
to prove that a run killed at each step of a write loses nothing and writes nothing twice.
"""

from __future__ import annotations

import os
import signal
import sys
from collections import Counter

ENV = "DEALERBOT_FAILPOINTS"


class Failpoints:
    """The crash points of one run (read from the environment when the run starts)."""

    def __init__(self, spec: str | None = None) -> None:
        self._at: dict[str, int] = {}
        for part in (spec or "").split(","):
            name, _, nth = part.strip().partition(":")
            if name:
                self._at[name] = int(nth or 1)
        self._seen: Counter[str] = Counter()

    @classmethod
    def from_env(cls) -> Failpoints:
        return cls(os.environ.get(ENV))

    def hit(self, name: str) -> None:
        """Pass the point ``name``; the configured pass kills this process with SIGKILL."""
        if name not in self._at:
            return
        self._seen[name] += 1
        if self._seen[name] == self._at[name]:
            sys.stderr.write(f"failpoint {name}: killing process {os.getpid()}\n")
            sys.stderr.flush()
            os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))
