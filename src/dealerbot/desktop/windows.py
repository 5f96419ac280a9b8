"""Top-level windows: list them with their titles, focus one, tell which has the focus.

Linux (X11) goes through ``xdotool``, which also works without a window manager (Xvfb); it
cannot match non-ASCII titles itself, so titles are read one by one and matched here. Windows
goes through pygetwindow. Nothing here is POSIX-only on the Windows path.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import Protocol

from dealerbot.errors import ConfigError, PortalUnavailable


@dataclass(frozen=True)
class Window:
    id: str
    title: str


class Windows(Protocol):
    def list(self) -> list[Window]: ...  # visible top-level windows with a title, bottom of the stack first

    def focus(self, window: Window) -> None: ...

    def focused(self) -> Window | None: ...

    def focused_id(self) -> str | None: ...

    def geometry(self, window: Window) -> tuple[int, int, int, int]: ...


class XdotoolWindows:
    """X11 through xdotool."""

    def __init__(self) -> None:
        exe = shutil.which("xdotool")
        if exe is None:
            raise ConfigError("找不到 xdotool：请安装（Debian/Ubuntu: apt install xdotool） (xdotool is needed on Linux)")
        self.exe = exe

    def _run(self, *args: str, check: bool = True) -> str:
        try:
            done = subprocess.run([self.exe, *args], capture_output=True, text=True, timeout=10)
        except subprocess.TimeoutExpired:
            raise PortalUnavailable(f"xdotool {args[0]} did not answer (is the display alive?)") from None
        if check and done.returncode != 0:
            raise PortalUnavailable(f"xdotool {' '.join(args)} failed: {done.stderr.strip()[:200]}")
        return done.stdout

    def list(self) -> list[Window]:
        out = []
        for wid in self._run("search", "--onlyvisible", "--name", ".", check=False).split():
            title = self._run("getwindowname", wid, check=False).strip()
            if title:
                out.append(Window(wid, title))
        return out

    def focus(self, window: Window) -> None:
        self._run("windowraise", window.id, check=False)
        self._run("windowfocus", "--sync", window.id)

    def focused(self) -> Window | None:
        wid = self.focused_id()
        return Window(wid, self._run("getwindowname", wid, check=False).strip()) if wid else None

    def focused_id(self) -> str | None:
        wid = self._run("getwindowfocus", check=False).strip()
        return wid if wid.isdigit() else None

    def geometry(self, window: Window) -> tuple[int, int, int, int]:
        values = dict(line.split("=", 1) for line in self._run("getwindowgeometry", "--shell", window.id).split())
        return int(values["X"]), int(values["Y"]), int(values["WIDTH"]), int(values["HEIGHT"])


class PyGetWindowWindows:  # pragma: no cover - Windows only; the tests run the Linux path
    """Windows through pygetwindow."""

    def __init__(self) -> None:
        import pygetwindow

        self.gw = pygetwindow

    def list(self) -> list[Window]:  # Windows lists the top window first: bottom first here, as on X11
        return [Window(str(w._hWnd), w.title) for w in reversed(self.gw.getAllWindows()) if w.title and w.visible]

    def _find(self, window: Window):  # noqa: ANN202
        for w in self.gw.getAllWindows():
            if str(w._hWnd) == window.id:
                return w
        raise PortalUnavailable(f"window {window.title!r} is gone")

    def focus(self, window: Window) -> None:
        w = self._find(window)
        try:
            if w.isMinimized:
                w.restore()
            w.activate()
        except Exception as exc:  # noqa: BLE001 - PyGetWindowException: Windows refused to bring it forward
            raise PortalUnavailable(f"window {window.title!r} could not be brought forward: {exc}") from None

    def focused(self) -> Window | None:
        w = self.gw.getActiveWindow()
        return Window(str(w._hWnd), w.title) if w is not None else None

    def focused_id(self) -> str | None:
        w = self.gw.getActiveWindow()
        return str(w._hWnd) if w is not None else None

    def geometry(self, window: Window) -> tuple[int, int, int, int]:
        w = self._find(window)
        return w.left, w.top, w.width, w.height


def system_windows() -> Windows:
    """The window layer of this operating system.

    Raises:
        ConfigError: its tool is missing.
    """
    if sys.platform == "win32":  # pragma: no cover
        return PyGetWindowWindows()
    return XdotoolWindows()
