"""Pixel checks of failure screenshots: every place a personal value is drawn is covered by the
mask in the saved image, and the image is not one big mask.

The web side watches :meth:`playwright.async_api.Page.screenshot` (the real call is made,
unchanged: only observed, whichever code path takes it). Right before each screenshot saved to a
file, the page is searched for the personal values themselves, independently of the portals'
``evidence_mask`` selectors: every text node and form field holding one gives the box of exactly
those characters, in the screenshot's coordinates (page coordinates for a full-page shot).
:func:`uncovered` then reads the saved PNG with Pillow and lists the boxes whose inside (inset by
a little, for anti-aliased borders) is not the mask colour.

The desktop side watches :meth:`dealerbot.desktop.driver.DesktopDriver.screenshot` the same way
and asks the sandbox's Tkinter client itself, through Tk's ``send`` over the X display, where each
of its widgets is and what it shows (a list's cells one by one): independent of the screen file's
``masks`` regions. :func:`desktop_uncovered` checks those boxes in the saved image (the driver
paints masks black), leaving out what a window of the client above hides.
"""

from __future__ import annotations

import math
import re
import tkinter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw
from playwright.async_api import Page

PLAYWRIGHT_MASK = "#FF00FF"  # Playwright's default mask colour
TOLERANCE = 24  # per channel
INSET = 2.0  # CSS pixels left out at each edge of a box (anti-aliasing, sub-pixel positions)

_BOXES_JS = """codes => {
  const values = codes.map(c => String.fromCodePoint(...c));
  const out = [], sx = window.scrollX, sy = window.scrollY;
  const shown = el => el && (!el.checkVisibility || el.checkVisibility({visibilityProperty: true, opacityProperty: true}));
  const walker = document.createTreeWalker(document.documentElement, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode, text = node.nodeValue;
    if (!text || !text.trim() || !shown(node.parentElement)) continue;
    for (const v of values) {
      for (let i = text.indexOf(v); i >= 0; i = text.indexOf(v, i + v.length)) {
        const range = document.createRange();
        range.setStart(node, i);
        range.setEnd(node, i + v.length);
        for (const b of range.getClientRects())
          if (b.width > 0 && b.height > 0) out.push({value: values.indexOf(v), x: b.left, y: b.top, w: b.width, h: b.height, where: node.parentElement.tagName});
      }
    }
  }
  for (const el of document.querySelectorAll('input, textarea')) {
    const value = el.value || '';
    if (!value || el.type === 'hidden' || !shown(el)) continue;
    for (const v of values) {
      if (!value.includes(v)) continue;
      const b = el.getBoundingClientRect();
      if (b.width > 0 && b.height > 0) out.push({value: values.indexOf(v), x: b.left, y: b.top, w: b.width, h: b.height, where: el.tagName});
    }
  }
  const doc = document.documentElement;
  return {boxes: out, sx, sy, width: Math.max(doc.scrollWidth, document.body ? document.body.scrollWidth : 0),
          height: Math.max(doc.scrollHeight, document.body ? document.body.scrollHeight : 0),
          vw: window.innerWidth, vh: window.innerHeight, dpr: window.devicePixelRatio};
}"""


@dataclass(frozen=True)
class Box:
    """Where a personal value is drawn, in the saved image's CSS pixels."""

    value: str
    x: float
    y: float
    w: float
    h: float
    where: str = ""


@dataclass
class Shot:
    """One screenshot saved to a file, and what its page showed right before it was taken."""

    path: Path
    masked: bool  # a mask was asked for
    color: tuple[int, int, int]
    boxes: list[Box] = field(default_factory=list)
    size: tuple[float, float] = (0, 0)  # CSS pixels the image covers
    error: str = ""


def rgb(hex_colour: str) -> tuple[int, int, int]:
    h = hex_colour.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def personal_values(admin) -> list[str]:
    """Every personal value of the sandbox's ground truth, as the portals show it (mobiles both as
    stored, e.g. ``198 3266 1663``, and as digits): names, mobiles, ID numbers, addresses."""
    orders, oem_customers, dms_customers = admin.orders(), admin.rows("oem", "customers"), admin.customers()
    values: set[str] = set()
    for r in orders:
        values.add(r["customer_name"])
    for r in (*oem_customers, *dms_customers):
        values |= {r["name"], r.get("address") or ""}
    for r in (*orders, *oem_customers, *dms_customers):
        values |= {r["mobile"], re.sub(r"\D", "", r["mobile"]), r.get("id_number") or ""}
    values = {v.strip() for v in values}
    return sorted((v for v in values if len(v) >= 2), key=len, reverse=True)


def watch_page_screenshots(monkeypatch, values: Iterable[str]) -> dict[Path, Shot]:
    """Observe every ``Page.screenshot(path=...)`` of the test: the boxes of ``values`` on the page
    measured right before the call, in the image's coordinates. Returns the shots by path (filled
    as they are taken)."""
    shots: dict[Path, Shot] = {}
    wanted = list(dict.fromkeys(values))
    # Handed to the page as code points, and answered as indexes: a trace records the call's
    # arguments and result, and must not learn the values from the test.
    codes = [[ord(c) for c in v] for v in wanted]
    original = Page.screenshot

    async def screenshot(self: Page, **kwargs):  # the real call, with the same arguments
        path = kwargs.get("path")
        shot = None
        if path is not None:
            shot = Shot(Path(path).resolve(), bool(kwargs.get("mask")), rgb(kwargs.get("mask_color") or PLAYWRIGHT_MASK))
            try:
                seen = await self.evaluate(_BOXES_JS, codes)
            except Exception as exc:  # noqa: BLE001 - noted: the check then fails for this image
                shot.error = f"could not measure the page: {exc}"
            else:
                full = bool(kwargs.get("full_page"))
                dx, dy = (seen["sx"], seen["sy"]) if full else (0, 0)
                shot.boxes = [Box(wanted[b["value"]], b["x"] + dx, b["y"] + dy, b["w"], b["h"], b["where"]) for b in seen["boxes"]]
                shot.size = (max(seen["width"], seen["vw"]), max(seen["height"], seen["vh"])) if full else (seen["vw"], seen["vh"])
        data = await original(self, **kwargs)
        if shot is not None:
            shots[shot.path] = shot
        return data

    monkeypatch.setattr(Page, "screenshot", screenshot)
    return shots


def unmasked_share(image: Image.Image, box: tuple[int, int, int, int], colour: tuple[int, int, int]) -> float:
    """The share of the pixels inside ``box`` (left, top, right, bottom; image pixels) that are
    not ``colour``: 0.0 when the box is wholly masked."""
    region = image.crop(box)
    pixels = region.width * region.height
    if not pixels:
        return 0.0
    r, g, b = ImageChops.difference(region, Image.new("RGB", region.size, colour)).split()
    farthest = ImageChops.lighter(ImageChops.lighter(r, g), b)  # the largest channel difference
    return farthest.point(lambda v: 255 if v > TOLERANCE else 0).histogram()[255] / pixels


def inset_box(b: Box, scale: float, inset: float = INSET) -> tuple[int, int, int, int]:
    """``b`` in image pixels, ``inset`` CSS pixels in from each edge (the centre pixel of a box too
    small for that)."""
    left, top = math.ceil((b.x + inset) * scale), math.ceil((b.y + inset) * scale)
    right, bottom = math.floor((b.x + b.w - inset) * scale), math.floor((b.y + b.h - inset) * scale)
    if right <= left or bottom <= top:
        cx, cy = int((b.x + b.w / 2) * scale), int((b.y + b.h / 2) * scale)
        return cx, cy, cx + 1, cy + 1
    return left, top, right, bottom


def masked_share(image: Image.Image, colour: tuple[int, int, int]) -> float:
    """The share of the image's pixels that are the mask colour."""
    return 1 - unmasked_share(image, (0, 0, image.width, image.height), colour)


def uncovered(shot: Shot) -> list[str]:
    """What is wrong with the saved image of ``shot``: every personal value's box not covered by
    the mask (with how much of it shows), a geometry that does not match the page measured, an
    image that is all mask. Empty when the image is sound."""
    if shot.error:
        return [f"{shot.path.name}: {shot.error}"]
    image = Image.open(shot.path).convert("RGB")
    scale = image.width / shot.size[0]
    problems = []
    if abs(image.height - shot.size[1] * scale) > 2:
        problems.append(f"{shot.path.name}: image {image.width}x{image.height} is not the page measured "
                        f"({shot.size[0]}x{shot.size[1]} CSS px)")
    for b in shot.boxes:
        showing = unmasked_share(image, inset_box(b, scale), shot.color)
        if showing > 0:
            problems.append(f"{shot.path.name}: {mask_value(b.value)} in <{b.where.lower()}> at "
                            f"({b.x:.0f},{b.y:.0f} {b.w:.0f}x{b.h:.0f}) is {showing:.0%} unmasked")
    if masked_share(image, shot.color) > 0.9:
        problems.append(f"{shot.path.name}: the image is all mask ({masked_share(image, shot.color):.0%})")
    return problems


def mask_value(value: str) -> str:
    """A personal value as a failure message may show it: first and last character only."""
    return value[0] + "*" * (len(value) - 2) + value[-1] if len(value) > 2 else value[0] + "*"


# -- the desktop client ----------------------------------------------------------------------------
# Run inside the sandbox client's Tk interpreter (Tk's ``send``, over the X display): every shown
# widget's text with its screen box (a list's cells one by one, a field's whole box), and the
# client's windows bottom first (their outer box: where the window manager placed it, down to the
# bottom of its inside; a menu bar sits between the two).
_TK_WIDGETS = r"""apply {{} {
  set out {}
  set stack [list .]
  while {[llength $stack]} {
    set w [lindex $stack end]
    set stack [lrange $stack 0 end-1]
    foreach c [winfo children $w] { lappend stack $c }
    if {![winfo viewable $w]} continue
    set top [winfo toplevel $w]
    set x [winfo rootx $w]
    set y [winfo rooty $w]
    set ww [winfo width $w]
    set wh [winfo height $w]
    switch -- [winfo class $w] {
      Treeview {
        foreach item [$w children {}] {
          set values [$w item $item -values]
          for {set i 0} {$i < [llength $values]} {incr i} {
            set b [$w bbox $item #[expr {$i + 1}]]
            if {[llength $b] != 4} continue
            set bx [expr {max(0, [lindex $b 0])}]
            set by [expr {max(0, [lindex $b 1])}]
            set bw [expr {min($ww, [lindex $b 0] + [lindex $b 2]) - $bx}]
            set bh [expr {min($wh, [lindex $b 1] + [lindex $b 3]) - $by}]
            if {$bw > 0 && $bh > 0} { lappend out [list $top cell [lindex $values $i] [expr {$x + $bx}] [expr {$y + $by}] $bw $bh] }
          }
        }
      }
      TEntry - Entry - TCombobox - Spinbox - TSpinbox { lappend out [list $top field [$w get] $x $y $ww $wh] }
      TLabel - Label - Message - TButton - Button {
        set text [$w cget -text]
        set var [$w cget -textvariable]
        if {$var ne ""} { set text [uplevel #0 [list set $var]] }
        lappend out [list $top label $text $x $y $ww $wh]
      }
    }
  }
  set tops {}
  foreach t [wm stackorder .] {
    scan [wm geometry $t] "%dx%d+%d+%d" gw gh gx gy
    lappend tops [list $t [wm title $t] $gx $gy [winfo width $t] [expr {[winfo rooty $t] + [winfo height $t] - $gy}]]
  }
  list $out $tops
}}"""


@dataclass(frozen=True)
class ScreenBox:
    """A box on the screen (left, top, width, height) in a window of the client."""

    window: str
    kind: str
    text: str
    x: int
    y: int
    w: int
    h: int


@dataclass
class DesktopShot:
    """A desktop screenshot, and where the client drew what right before it was taken."""

    path: Path
    boxes: list[ScreenBox]  # personal values only
    windows: list[tuple[str, str, tuple[int, int, int, int]]]  # (Tk path, title, outer box) bottom first
    texts: int = 0  # widgets with a text seen in all
    error: str = ""


def client_screen(values: Iterable[str]) -> tuple[list[ScreenBox], list[tuple[str, str, tuple[int, int, int, int]]], int]:
    """Ask the running sandbox desktop client (through Tk's ``send``) where it draws what: the
    boxes of its widgets showing any of ``values``, its windows bottom first, the number of
    texts seen. Call from the thread that will use the answer (a Tk interpreter of its own).

    Raises:
        LookupError: no DMS client on the display.
    """
    wanted = [v for v in values if v]
    probe = tkinter.Tk()
    probe.withdraw()
    try:
        me = probe.tk.call("tk", "appname")
        client = None
        for name in probe.tk.splitlist(probe.tk.call("winfo", "interps")):
            if name == me:
                continue
            try:
                if str(probe.tk.call("send", name, "wm title .")).startswith("DMS客户端"):
                    client = name
                    break
            except tkinter.TclError:
                continue
        if client is None:
            raise LookupError("no DMS客户端 interpreter on the display")
        widgets, tops = probe.tk.splitlist(probe.tk.call("send", client, _TK_WIDGETS))
        boxes, seen = [], 0
        for item in probe.tk.splitlist(widgets):
            top, kind, text, x, y, w, h = probe.tk.splitlist(item)
            text = str(text)
            seen += bool(text.strip())
            if any(v in text for v in wanted):
                boxes.append(ScreenBox(str(top), str(kind), text, int(x), int(y), int(w), int(h)))
        windows = []
        for item in probe.tk.splitlist(tops):
            path, title, *box = (str(v) for v in probe.tk.splitlist(item))
            windows.append((path, title, tuple(int(v) for v in box)))
        return boxes, windows, seen
    finally:
        probe.destroy()


def watch_desktop_screenshots(monkeypatch, values: Iterable[str]) -> dict[Path, DesktopShot]:
    """Observe every ``DesktopDriver.screenshot`` of the test: what the client showed where,
    asked right before and right after (the same, or the shot is marked unsure). Returns the shots
    by path (filled as they are taken)."""
    from dealerbot.desktop.driver import DesktopDriver

    shots: dict[Path, DesktopShot] = {}
    wanted = list(dict.fromkeys(values))
    original = DesktopDriver.screenshot

    def screenshot(self, path, *args, **kwargs):  # the real call, with the same arguments
        shot = DesktopShot(Path(path).resolve(), [], [])
        try:
            before = client_screen(wanted)
        except Exception as exc:  # noqa: BLE001 - noted: the check then fails for this image
            before, shot.error = None, f"could not ask the client: {exc}"
        written = original(self, path, *args, **kwargs)
        if before is not None:
            after = client_screen(wanted)
            shot.boxes, shot.windows, shot.texts = before
            if after != before:
                shot.error = "the client's screen changed while the screenshot was taken"
        shots[shot.path] = shot
        return written

    monkeypatch.setattr(DesktopDriver, "screenshot", screenshot)
    return shots


def desktop_uncovered(shot: DesktopShot, colour: tuple[int, int, int] = (0, 0, 0), inset: int = 2) -> list[str]:
    """What is wrong with the saved image of ``shot``: every personal value's box, where no window
    of the client above its own covers it, not painted ``colour`` in the image (cropped to the
    client's windows); an image whose size is not the windows' span; an image all mask."""
    if shot.error:
        return [f"{shot.path.name}: {shot.error}"]
    image = Image.open(shot.path).convert("RGB")
    boxes = [b for _, _, b in shot.windows]
    left, top = max(0, min(b[0] for b in boxes)), max(0, min(b[1] for b in boxes))
    right, bottom = max(b[0] + b[2] for b in boxes), max(b[1] + b[3] for b in boxes)
    problems = []
    if (image.width, image.height) != (right - left, bottom - top):
        problems.append(f"{shot.path.name}: image {image.width}x{image.height} is not the client's windows' span "
                        f"{right - left}x{bottom - top}")
    order = [path for path, _, _ in shot.windows]
    for b in shot.boxes:
        above = [g for path, _, g in shot.windows[order.index(b.window) + 1:]] if b.window in order else []
        region = (b.x + inset - left, b.y + inset - top, b.x + b.w - inset - left, b.y + b.h - inset - top)
        visible = Image.new("L", (max(1, region[2] - region[0]), max(1, region[3] - region[1])), 255)
        for gx, gy, gw, gh in above:  # what a window above shows there is that window's business
            ImageDraw.Draw(visible).rectangle((gx - left - region[0], gy - top - region[1],
                                               gx - left - region[0] + gw - 1, gy - top - region[1] + gh - 1), fill=0)
        shown = visible.histogram()[255]
        if not shown:
            continue
        r, g, bl = ImageChops.difference(image.crop(region), Image.new("RGB", visible.size, colour)).split()
        off = ImageChops.lighter(ImageChops.lighter(r, g), bl).point(lambda v: 255 if v > TOLERANCE else 0)
        leaking = ImageChops.multiply(off, visible).histogram()[255]
        if leaking:
            title = next((t for path, t, _ in shot.windows if path == b.window), b.window)
            problems.append(f"{shot.path.name}: {b.kind} showing {mask_value(b.text)} in 「{title}」 at "
                            f"({b.x},{b.y} {b.w}x{b.h}) is {leaking / shown:.0%} unmasked")
    if masked_share(image, colour) > 0.9:
        problems.append(f"{shot.path.name}: the image is all mask ({masked_share(image, colour):.0%})")
    return problems
