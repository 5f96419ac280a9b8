"""The clipboard, for typing non-ASCII text and reading copied text back.

On Linux (X11) through ``xclip`` directly: pyperclip's own call lets xclip's background
process (which serves the selection until something else is copied) inherit the standard
output and error, so anything waiting for dealerbot's output to end (a scheduler, a test,
``subprocess.run(..., capture_output=True)``) would wait for that process too. Elsewhere
(Windows, macOS) through pyperclip.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

from dealerbot.errors import ConfigError, PortalUnavailable

TIMEOUT_SECONDS = 5


def _xclip() -> str:
    exe = shutil.which("xclip")
    if exe is None:
        raise ConfigError("找不到 xclip：请安装（Debian/Ubuntu: apt install xclip），桌面机器人用它输入中文 "
                          "(xclip is needed to type non-ASCII text on Linux)")
    return exe


def copy(text: str) -> None:
    """Put ``text`` on the clipboard.

    Raises:
        ConfigError: no clipboard tool. PortalUnavailable: it did not answer.
    """
    if not sys.platform.startswith("linux"):  # pragma: no cover - Windows and macOS
        import pyperclip

        pyperclip.copy(text)
        return
    try:
        subprocess.run([_xclip(), "-selection", "clipboard"], input=text.encode("utf-8"), stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, start_new_session=True, timeout=TIMEOUT_SECONDS, check=True)
    except (subprocess.TimeoutExpired, subprocess.CalledProcessError) as exc:
        raise PortalUnavailable(f"the clipboard did not take the text ({exc})") from None


class Offer:
    """Text offered on the clipboard for one paste, with a way to know the paste took it.

    On X11 the pasting application asks the clipboard's owner for the text when it handles the
    paste key, which may be later than the key was sent; restoring the user's clipboard (or
    offering the next field's text) before then pastes the wrong text. Here xclip owns the
    clipboard in the foreground and reports every request it serves: :meth:`wait_taken`
    returns once the application has asked (and nothing more came for a moment).
    """

    QUIET_SECONDS = 0.06

    def __init__(self, text: str) -> None:
        import threading

        self.text = text
        self.served = 0
        self._changed = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        if sys.platform.startswith("linux"):
            self._proc = subprocess.Popen(
                [_xclip(), "-selection", "clipboard", "-verbose", "-loops", "1000"], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
            )
            assert self._proc.stdin is not None and self._proc.stdout is not None
            self._proc.stdin.write(text.encode("utf-8"))
            self._proc.stdin.close()
            stdout = self._proc.stdout
            ready = threading.Event()

            def read() -> None:
                for line in stdout:
                    if b"Waiting for selection request" in line:
                        ready.set()
                        number = int(line.split(b"request", 1)[1].split()[0])
                        if number > 1:
                            self.served = number - 1
                            self._changed.set()

            threading.Thread(target=read, daemon=True).start()
            if not ready.wait(TIMEOUT_SECONDS):
                self.close()
                raise PortalUnavailable("the clipboard did not take the text (xclip did not start)")
        else:  # pragma: no cover - Windows and macOS: the paste reads the clipboard at once
            import pyperclip

            pyperclip.copy(text)

    def wait_taken(self, timeout: float = TIMEOUT_SECONDS) -> bool:
        """Whether the application took the text within ``timeout`` seconds."""
        import time

        if self._proc is None:  # pragma: no cover
            time.sleep(self.QUIET_SECONDS)
            return True
        if not self._changed.wait(timeout):
            return False
        while True:  # some applications ask twice (the formats first): wait until it is quiet
            self._changed.clear()
            if not self._changed.wait(self.QUIET_SECONDS):
                return True

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self._proc.kill()

    def __enter__(self) -> Offer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def paste() -> str:
    """The clipboard's text ("" when it holds none).

    Raises:
        ConfigError: no clipboard tool.
    """
    if not sys.platform.startswith("linux"):  # pragma: no cover
        import pyperclip

        return pyperclip.paste() or ""
    try:
        done = subprocess.run([_xclip(), "-selection", "clipboard", "-o"], capture_output=True, timeout=TIMEOUT_SECONDS,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return ""
    return done.stdout.decode("utf-8", errors="replace") if done.returncode == 0 else ""
