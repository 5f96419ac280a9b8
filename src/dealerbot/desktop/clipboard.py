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
