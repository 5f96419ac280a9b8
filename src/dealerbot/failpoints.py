"""Crash and pause points for the exactly-once tests: stop the process for real at a named step.

``DEALERBOT_FAILPOINTS="rekey.after_submit:3"`` makes the third pass through the point
``rekey.after_submit`` send SIGKILL to its own process (a real kill, nothing is cleaned up);
several points are separated by commas. Without the variable nothing happens. The tests use it
to prove that a run killed at each step of a write loses nothing and writes nothing twice.

``name:N:pause`` pauses the process instead (the whole process: its event loop is held) at the
N-th pass until the file named by ``DEALERBOT_FAILPOINTS_RESUME`` exists (at most
:data:`PAUSE_LIMIT` seconds), after writing ``failpoint NAME: paused`` to stderr: a test runs
something else at that exact moment (a reconcile while a re-key has just created a customer).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path

ENV = "DEALERBOT_FAILPOINTS"
RESUME_ENV = "DEALERBOT_FAILPOINTS_RESUME"
PAUSE_LIMIT = 300.0


class Failpoints:
    """The crash points of one run (read from the environment when the run starts)."""

    def __init__(self, spec: str | None = None, resume_file: str | None = None) -> None:
        self._at: dict[str, tuple[int, str]] = {}
        for part in (spec or "").split(","):
            name, _, rest = part.strip().partition(":")
            nth, _, what = rest.partition(":")
            if name:
                self._at[name] = (int(nth or 1), what or "kill")
        self._resume = Path(resume_file) if resume_file else None
        self._seen: Counter[str] = Counter()

    @classmethod
    def from_env(cls) -> Failpoints:
        return cls(os.environ.get(ENV), os.environ.get(RESUME_ENV))

    def hit(self, name: str) -> None:
        """Pass the point ``name``; the configured pass kills this process with SIGKILL, or
        pauses it (``pause``) until the resume file exists."""
        if name not in self._at:
            return
        self._seen[name] += 1
        nth, what = self._at[name]
        if self._seen[name] != nth:
            return
        if what == "pause":
            sys.stderr.write(f"failpoint {name}: paused in process {os.getpid()}\n")
            sys.stderr.flush()
            until = time.monotonic() + PAUSE_LIMIT
            while self._resume is not None and not self._resume.exists() and time.monotonic() < until:
                time.sleep(0.05)
            return
        sys.stderr.write(f"failpoint {name}: killing process {os.getpid()}\n")
        sys.stderr.flush()
        os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))
