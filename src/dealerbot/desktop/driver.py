"""The desktop driver: keystrokes into the right window, text read back, evidence of the screen.

Every burst of keys is preceded by a focus check: a window that is not the one meant is never
typed into. When another window has the focus, a known nuisance (a 提示 modal, a 系统消息
window; ``nuisances`` in the screen file) is closed with its keys, then the target is focused
again; an unknown window is left alone and the step fails (with a screenshot), never typed over.

Text: ASCII is typed (pyautogui ``write``); anything else goes through the clipboard (copy,
paste), and the user's clipboard is restored afterwards. pyautogui's fail-safe (a mouse thrown
into a screen corner stops the run) stays on.

All calls block (keyboard and screen are one device): bots call them through
:func:`asyncio.to_thread`, one at a time.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dealerbot.desktop import clipboard
from dealerbot.desktop.spec import DesktopSpec
from dealerbot.desktop.windows import Window, Windows, system_windows
from dealerbot.errors import PageChanged, PortalUnavailable, StepTimeout

if TYPE_CHECKING:
    from loguru import Logger

POLL_SECONDS = 0.05
WAIT_SECONDS = 10.0
FOCUS_ATTEMPTS = 4
CLIPBOARD_WAIT_SECONDS = 5.0
SETTLE_SECONDS = 0.05
NUISANCE_TRIES = 5  # a pop-up still there after its closing keys were pressed this often: the step fails
_SENTINEL = "\u2063dealerbot-waiting\u2063"


def _pyautogui() -> Any:
    """pyautogui, imported on first use (it needs a display: ``DISPLAY`` on Linux).

    Raises:
        ConfigError: no display.
    """
    import os
    import sys

    from dealerbot.errors import ConfigError

    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
        raise ConfigError("没有图形显示（DISPLAY 未设置）：桌面机器人需要登录的桌面或 Xvfb (no display: DISPLAY is not set)")
    import pyautogui

    if sys.platform.startswith("linux"):
        _follow_display(os.environ["DISPLAY"])
    pyautogui.FAILSAFE = True
    pyautogui.PAUSE = 0.0
    return pyautogui


def _follow_display(name: str) -> None:
    """Point pyautogui at display ``name``: on X11 it connects once, at import, to the ``DISPLAY``
    of that moment, so a process whose display changed later (a restarted Xvfb, another display
    for the next client, which may reuse the old number) would type into a closed connection.
    Reconnects when the name differs or the connection no longer answers (pyautogui keeps it in
    its private ``_pyautogui_x11._display``)."""
    import contextlib

    from pyautogui import _pyautogui_x11 as x11  # type: ignore[attr-defined]
    from Xlib.display import Display

    current = x11._display
    try:
        current.sync()  # a round trip: raises when that server has gone
        alive = True
    except Exception:
        alive = False
    if alive and current.get_display_name() == name:
        return
    with contextlib.suppress(Exception):
        current.close()
    x11._display = Display(name)


class DesktopDriver:
    """Drives one desktop client described by ``spec``."""

    def __init__(self, spec: DesktopSpec, log: Logger, windows: Windows | None = None, key_delay: float = 0.01) -> None:
        self.spec = spec
        self.log = log
        self.windows = windows or system_windows()
        self.gui = _pyautogui()
        self.key_delay = key_delay
        self.steps: list[str] = []  # the step log kept with failure evidence
        self.nuisances_closed = 0
        self.refocused = 0
        self._closing: dict[str, int] = {}  # window id -> times its closing keys were pressed
        self._focused: dict[str, Window] = {}  # window name -> the window last focused under it

    # -- windows ------------------------------------------------------------------------------
    def step(self, text: str) -> None:
        self.steps.append(f"{time.strftime('%H:%M:%S')} {text}")
        self.log.debug("desktop: {}", text)

    def find(self, name: str, shown: list[Window] | None = None) -> Window | None:
        """The first visible window whose title matches window ``name`` of the spec (among
        ``shown``, a window list already taken, when given)."""
        pattern = re.compile(self.spec.window(name))
        return next((w for w in (self.windows.list() if shown is None else shown) if pattern.search(w.title)), None)

    def wait(self, name: str, timeout: float = WAIT_SECONDS, gone: bool = False) -> Window | None:
        """Wait until window ``name`` is there (or, with ``gone``, until it is not).

        Raises:
            StepTimeout: it did not appear (or go).
        """
        deadline = time.monotonic() + timeout
        while True:
            found = self.find(name)
            if (found is None) == gone:
                return found
            if time.monotonic() > deadline:
                raise StepTimeout(f"{self.spec.portal}: window '{name}' did not {'close' if gone else 'appear'} "
                                  f"within {timeout:.0f}s")
            self.close_nuisances()
            time.sleep(POLL_SECONDS)

    def first_of(self, names: tuple[str, ...], timeout: float = WAIT_SECONDS) -> str | None:
        """The first of windows ``names`` to be there within ``timeout`` (None: none was)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() <= deadline:
            titles = self.windows.list()
            for name in names:
                pattern = re.compile(self.spec.window(name))
                if any(pattern.search(w.title) for w in titles):
                    return name
            self.close_nuisances(titles)
            time.sleep(POLL_SECONDS)
        return None

    def close_nuisances(self, titles: list[Window] | None = None) -> bool:
        """Close every known nuisance window that is showing; whether one was."""
        closed = False
        for window in titles if titles is not None else self.windows.list():
            for pattern, keys in self.spec.nuisances:
                if re.search(pattern, window.title):
                    tries = self._closing[window.id] = self._closing.get(window.id, 0) + 1
                    if tries > NUISANCE_TRIES:
                        raise PortalUnavailable(f"{self.spec.portal}: the window 「{window.title}」 does not close "
                                                f"({', '.join(keys)} pressed {NUISANCE_TRIES} times): nothing typed over it")
                    self.step(f"closing the unexpected window 「{window.title}」")
                    self.windows.focus(window)
                    focused = self.windows.focused()
                    if focused is None or focused.id != window.id:
                        continue  # gone already, or it will not take the focus: its keys would land elsewhere
                    self._press(keys)
                    self.nuisances_closed += 1
                    closed = True
                    time.sleep(0.1)
        return closed

    def focus(self, name: str) -> Window:
        """Give window ``name`` the keyboard focus, and check it has it.

        Raises:
            StepTimeout: the window is not there.
            PortalUnavailable: another window keeps the focus (not typed into).
        """
        known = self._focused.get(name)
        if known is not None and self.windows.focused_id() == known.id:
            return known  # still the window focused last time: one question to the display, not a search
        target = self.wait(name)
        assert target is not None
        for _ in range(FOCUS_ATTEMPTS):
            focused = self.windows.focused()
            if focused is not None and focused.id == target.id:
                self._focused[name] = target
                return target
            if focused is not None and focused.title:
                self.step(f"focus was on 「{focused.title}」, not 「{target.title}」")
            self.close_nuisances()
            self.windows.focus(target)
            self.refocused += 1
            time.sleep(0.05)
        focused = self.windows.focused()
        if focused is not None and focused.id == target.id:
            self._focused[name] = target
            return target
        raise PortalUnavailable(f"{self.spec.portal}: window 「{target.title}」 could not get the keyboard focus "
                                f"(「{focused.title if focused else '?'}」 has it): nothing typed")

    # -- keys and text --------------------------------------------------------------------------
    def _press(self, keys: tuple[str, ...]) -> None:
        for key in keys:
            parts = key.split("+")
            if len(parts) > 1:
                self.gui.hotkey(*parts)
            else:
                self.gui.press(key)
            time.sleep(self.key_delay)

    def keys(self, window: str, hotkey: str) -> None:
        """Press hotkey ``hotkey`` of the spec in window ``window`` (focus checked first)."""
        self.focus(window)
        self.step(f"{window}: {hotkey}")
        self._press(self.spec.keys(hotkey))

    def press(self, window: str, *keys: str) -> None:
        """Press raw ``keys`` in window ``window`` (focus checked first)."""
        self.focus(window)
        self._press(tuple(keys))

    def type_text(self, text: str) -> None:
        """Type ``text`` where the focus is: ASCII by keys, anything else through the clipboard."""
        if text.isascii():
            self.gui.write(text, interval=0)
            return
        saved = self._clipboard()
        try:
            with clipboard.Offer(text) as offer:
                self.gui.hotkey("ctrl", "v")
                if not offer.wait_taken():  # never go on (or restore) before the paste took this text
                    raise PortalUnavailable(f"{self.spec.portal}: the pasted text was not taken within "
                                            f"{clipboard.TIMEOUT_SECONDS}s")
        finally:
            if saved:
                clipboard.copy(saved)

    def interruptions(self) -> int:
        """How many times something took the focus away so far (nuisances closed, re-focusing)."""
        return self.nuisances_closed + self.refocused

    def fill(self, window: str, form: str, values: dict[str, str], secret: frozenset[str] = frozenset()) -> bool:
        """Type ``values`` (field name -> text) into ``form`` through its tab order, from its
        first field; fields not in ``values`` are passed over. Each field's old text is cleared
        first (``clear_field`` hotkey). The focus is checked before every field.

        Returns False when something took the focus during the fill (a pop-up, another window):
        keys may then have gone elsewhere and the tab order is no longer known, so the caller
        closes the form and fills it again from the start. True: typed without interruption.

        Raises:
            StepTimeout / PortalUnavailable: see :meth:`focus`.
        """
        before = self.interruptions()
        spec = self.spec.form(form)
        clear = self.spec.keys("clear_field")
        unknown = set(values) - set(spec.fields)
        if unknown:
            raise PageChanged(f"{self.spec.portal}: form '{form}' has no field {sorted(unknown)}")
        last = max((spec.fields.index(f) for f in values), default=-1)
        for index, name in enumerate(spec.fields[: last + 1]):
            self.focus(window)
            if name in values:
                self._press(clear)
                self.type_text(values[name])
                self.step(f"{form}.{name} = {'***' if name in secret else '(typed)'}")
            if index < last:
                self._press(("tab",))
        time.sleep(SETTLE_SECONDS)  # a pop-up that came with the last keys shows by now
        self.close_nuisances()
        self.focus(window)
        return self.interruptions() == before

    # -- reading back ---------------------------------------------------------------------------
    def _clipboard(self) -> str:
        return clipboard.paste()

    def copy(self, window: str, hotkey: str = "copy", timeout: float = CLIPBOARD_WAIT_SECONDS) -> str:
        """Press the copy hotkey in ``window`` and return what the client put on the clipboard
        (the user's clipboard is restored afterwards).

        Raises:
            StepTimeout: nothing was copied within ``timeout``.
        """
        saved = self._clipboard()
        try:
            clipboard.copy(_SENTINEL)
            self.keys(window, hotkey)
            deadline = time.monotonic() + timeout
            while (text := self._clipboard()) == _SENTINEL:
                if time.monotonic() > deadline:
                    raise StepTimeout(f"{self.spec.portal}: {window}: nothing was copied within {timeout:.0f}s")
                time.sleep(POLL_SECONDS)
            return text
        finally:
            clipboard.copy(saved)

    # -- image anchors ----------------------------------------------------------------------------
    def click_anchor(self, name: str, timeout: float = WAIT_SECONDS) -> None:
        """Click the centre of anchor ``name`` (its PNG found on the screen at its confidence).

        Raises:
            PageChanged: not found on the screen within ``timeout``.
        """
        import pyscreeze
        from PIL import ImageGrab

        anchor = self.spec.anchors[name]
        deadline = time.monotonic() + timeout
        while True:
            try:
                box = pyscreeze.locate(str(anchor.image), ImageGrab.grab(), confidence=anchor.confidence)
            except pyscreeze.ImageNotFoundException:
                box = None
            if box is not None:
                x, y = box.left + box.width // 2, box.top + box.height // 2
                self.step(f"click {name} at {x},{y}")
                self.gui.click(x, y)
                return
            if time.monotonic() > deadline:
                raise PageChanged(f"{self.spec.portal}: '{name}' ({anchor.image.name}) not on the screen")
            time.sleep(0.2)

    # -- evidence ------------------------------------------------------------------------------
    def _ours(self, window: Window) -> bool:
        """Whether ``window`` is the client's (one of the spec's windows or known pop-ups)."""
        patterns = [*self.spec.windows.values(), *(p for p, _ in self.spec.nuisances)]
        return any(re.search(p, window.title) for p in patterns)

    def screenshot(self, path: Path, mask: Callable[[str], str] = lambda s: s) -> list[Path]:
        """A PNG of the client's windows only (the screen cropped to them: other applications'
        windows, a spreadsheet of customers say, never enter the evidence), the ``masks`` regions
        blacked out, and ``-windows.txt``: the client's windows (others counted, not named) and
        the step log (texts passed through ``mask``). Returns the files written."""
        from PIL import ImageDraw, ImageGrab

        screen = ImageGrab.grab()
        image = screen.copy()
        draw = ImageDraw.Draw(image)
        shown = self.windows.list()  # bottom first
        ours = [w for w in shown if self._ours(w)]
        boxes = []
        for window in ours:
            try:
                boxes.append((window, self.windows.geometry(window)))
            except PortalUnavailable:
                continue
        # Window by window from the bottom: its part of the screen, then its masks; a window above
        # puts back what it shows over a masked region of one below (a form over a masked list).
        for window, (wx, wy, ww, wh) in boxes:
            image.paste(screen.crop((wx, wy, wx + ww, wy + wh)), (wx, wy))
            for name, regions in self.spec.masks.items():
                if re.search(self.spec.window(name), window.title):
                    for x, y, w, h in regions:
                        draw.rectangle((wx + x, wy + y, wx + x + w, wy + y + h), fill="black")
        if boxes:
            left = max(0, min(b[0] for _, b in boxes))
            top = max(0, min(b[1] for _, b in boxes))
            right = min(image.width, max(b[0] + b[2] for _, b in boxes))
            bottom = min(image.height, max(b[1] + b[3] for _, b in boxes))
            image = image.crop((left, top, right, bottom))
        else:
            image = image.resize((1, 1))  # none of the client's windows is showing: nothing to keep
        image.save(path)
        listing = path.with_name(path.stem + "-windows.txt")
        focused = self.windows.focused_id()
        listing.write_text(mask("\n".join(
            ["windows:", *(f"  {w.id} {w.title}{'  (focus)' if focused == w.id else ''}" for w in ours),
             f"  (and {len(shown) - len(ours)} window(s) of other applications)",
             "steps:", *(f"  {s}" for s in self.steps[-200:])]
        )) + "\n", encoding="utf-8")
        return [path, listing]
