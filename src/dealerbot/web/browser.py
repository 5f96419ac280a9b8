"""Finding a browser, launching it, portal contexts with saved logins, evidence on failure.

Resources are async context managers, as robocorp's ``browser`` package does it::

    async with open_browser(settings.browser, masker) as browser:
        async with browser.context("oem", state_file, evidence) as ctx:
            page = await ctx.new_page()
            ...

When the ``context`` block exits with an exception, every open page gets a full-page
screenshot (password inputs and ``evidence_mask`` selectors masked) and its HTML (mobiles, ID
numbers and secrets masked), and the Playwright trace is saved, all under the run's evidence
folder (``logs/runs/<run-id>/``). :class:`Evidence` keeps the list of files for the run record.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from html import escape as html_escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loguru import logger
from playwright.async_api import Browser as PwBrowser
from playwright.async_api import BrowserContext, Page, Playwright, async_playwright

from dealerbot.config import BrowserSettings, ProxySettings
from dealerbot.errors import BrowserCrashed, BrowserNotFound, StopRequested
from dealerbot.logsetup import Masker
from dealerbot.private_files import make_private, private_dir, write_private_json
from dealerbot.retries import with_retries
from dealerbot.web.trace_masking import learn_personal_from_trace, mask_trace

if TYPE_CHECKING:
    from loguru import Logger

BROWSER_ENV = "DEALERBOT_BROWSER"
LAUNCH_ATTEMPTS = 3  # a browser that dies as it starts is started again (twice at most)
LAUNCH_BACKOFF_SECONDS = 0.5  # the pause before the first start again, doubled before the next
CHROMIUM_ARGS = [
    "--disable-background-networking",
    # Pages working side by side in one context must not be slowed as background tabs.
    "--disable-background-timer-throttling",
    "--disable-backgrounding-occluded-windows",
    "--disable-renderer-backgrounding",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-default-apps",
    # No --disable-features / --enable-features here: Chromium honours only the last of each, and
    # Playwright's own lists (PaintHolding, MediaRouter, OptimizationHints... off) must stand.
]
CHANNELS = {"chrome", "chrome-beta", "msedge", "msedge-beta", "msedge-dev", "chromium"}


@dataclass(frozen=True)
class LaunchSpec:
    """How to launch: an executable path or a Playwright channel, and where it came from."""

    executable: str | None
    channel: str | None
    source: str

    def describe(self) -> str:
        """E.g. ``/usr/bin/chromium (system browser)``."""
        what = self.executable or (f"channel {self.channel}" if self.channel else "Playwright's Chromium")
        return f"{what} ({self.source})"


HEADLESS_SHELLS = ["chromium-headless-shell", "chrome-headless-shell"]


def _system_candidates(headless: bool) -> list[str]:
    names = ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "microsoft-edge", "msedge"]
    if headless:
        # The old headless shell: same engine, about a third less memory than a full browser.
        names = HEADLESS_SHELLS + names
    found = [p for n in names if (p := shutil.which(n))]
    if sys.platform == "win32":
        for base in (os.environ.get("PROGRAMFILES(X86)", ""), os.environ.get("PROGRAMFILES", ""), os.environ.get("LOCALAPPDATA", "")):
            if base:
                found += [
                    str(Path(base) / "Microsoft/Edge/Application/msedge.exe"),
                    str(Path(base) / "Google/Chrome/Application/chrome.exe"),
                ]
    elif sys.platform == "darwin":
        found += [
            "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
            "/Applications/Microsoft Edge.app/Contents/MacOS/Microsoft Edge",
            "/Applications/Chromium.app/Contents/MacOS/Chromium",
        ]
    return found


def find_browser(settings: BrowserSettings, bundled: str | None = None, headless: bool = True) -> LaunchSpec:
    """Pick the browser to drive.

    Order: ``DEALERBOT_BROWSER`` (a path or a channel name), then ``[browser] executable`` /
    ``channel`` in the config, then Playwright's own Chromium when installed (``bundled``: its
    executable path), then a system browser: for headless runs a Chromium headless shell
    first (Debian's ``chromium-headless-shell``), then Chromium, Chrome or Edge.

    Raises:
        BrowserNotFound: nothing usable; the message lists what was tried and how to fix it.
    """
    tried: list[str] = []
    env = os.environ.get(BROWSER_ENV, "").strip()
    for value, source in ((env, f"${BROWSER_ENV}"), (settings.executable, "[browser] executable")):
        if not value:
            continue
        if value in CHANNELS:
            return LaunchSpec(None, value, source)
        if Path(value).is_file() and os.access(value, os.X_OK):
            return LaunchSpec(value, None, source)
        tried.append(f"{value} from {source}: not an executable file or a channel name ({', '.join(sorted(CHANNELS))})")
        raise BrowserNotFound("no usable browser:\n  " + "\n  ".join(tried))
    if settings.channel:
        return LaunchSpec(None, settings.channel, "[browser] channel")
    if bundled:
        if Path(bundled).is_file():
            # No path given: Playwright picks its own headless shell or full Chromium.
            return LaunchSpec(None, None, f"Playwright's bundled Chromium ({Path(bundled).parent.name})")
        tried.append(f"Playwright's bundled Chromium: not installed ({bundled})")
    for path in _system_candidates(headless):
        if Path(path).is_file():
            return LaunchSpec(path, None, "system browser")
        tried.append(f"{path}: not found")
    tried.append("chromium / google-chrome / microsoft-edge on PATH: not found")
    hint = (
        "Install one: on Debian/Ubuntu `sudo apt-get install chromium`; on Windows Edge is built in; "
        "or `playwright install chromium` where downloads are allowed; or point "
        f"${BROWSER_ENV} (or [browser] executable in dealerbot.toml) at a Chrome/Edge/Chromium binary."
    )
    raise BrowserNotFound("no usable browser found. Tried:\n  " + "\n  ".join(tried) + "\n" + hint)


@dataclass
class Evidence:
    """Failure evidence of one run: the folder and the files saved into it."""

    folder: Path
    masker: Masker
    files: list[Path] = field(default_factory=list)
    log: Logger = logger  # the run's bound logger, so that the lines land in the run's log

    def next_name(self, label: str, suffix: str) -> Path:
        """A fresh file name in the folder, e.g. ``oem-1-screenshot.png``."""
        private_dir(self.folder)
        n = 1
        while (p := self.folder / f"{label}-{n}{suffix}").exists():
            n += 1
        return p

    def add(self, path: Path) -> None:
        """Record a saved file (made private to the user) and log it."""
        make_private(path)
        self.files.append(path)
        self.log.error("evidence saved: {}", path)


# Stars every text and input value inside the matched elements, keeping the page's structure.
_STAR_TEXT_JS = """els => {
  for (const el of els) {
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    const texts = [];
    while (walker.nextNode()) texts.push(walker.currentNode);
    for (const t of texts) if (t.nodeValue.trim()) t.nodeValue = '***';
    for (const input of [el, ...el.querySelectorAll('input, textarea')]) {
      if (input.tagName === 'INPUT' || input.tagName === 'TEXTAREA') {
        input.value = '';
        if (input.hasAttribute('value')) input.setAttribute('value', '***');
      }
    }
  }
}"""


# The texts of matched elements that hold text only (cells, not whole tables: their headers
# are no personal data).
_LEAF_TEXTS_JS = "els => els.filter(e => !e.children.length).map(e => e.innerText || e.value || '')"


class PortalContext:
    """A browser context for one portal: saved login state, tracing, evidence on failure."""

    def __init__(
        self,
        context: BrowserContext,
        portal: str,
        state_file: Path | None,
        evidence: Evidence,
        mask_locators: Callable[[Page], list[Any]] | None,
        trace: bool,
        mask_css: Sequence[str] = (),
        renew: Callable[[Any], Awaitable[BrowserContext]] | None = None,
        owner: Browser | None = None,
    ) -> None:
        self.context = context
        self._renew = renew
        self._owner = owner
        self.portal = portal
        self.state_file = state_file
        self.evidence = evidence
        self._mask_locators = mask_locators
        self._mask_css = tuple(mask_css)
        self._trace = trace
        self._tracing = False
        self.proxy: ProxySettings | None = None  # the proxy the context reaches the web through (plain reads too)
        self.blocked = 0  # requests to hosts outside allowed_hosts, aborted
        self._blocked_hosts: set[str] = set()

    def count_blocked(self, url: str) -> None:
        """Count a request aborted for its host (each host logged once)."""
        from urllib.parse import urlparse

        self.blocked += 1
        host = urlparse(url).hostname or url
        if host not in self._blocked_hosts:
            self._blocked_hosts.add(host)
            self.evidence.log.info("{}: requests to {} are aborted (not in allowed_hosts)", self.portal, host)

    async def new_page(self) -> Page:
        """Open a page in this context."""
        return await self.context.new_page()

    @property
    def crashed(self) -> bool:
        """Whether the browser of this context ended under the run (see :attr:`Browser.crashed`)."""
        return self._owner is not None and self._owner.crashed

    async def recycle(self) -> BrowserContext:
        """Go on in a fresh browser context holding this one's login (cookies, local storage): a
        context that served thousands of requests keeps memory it never gives back. What the
        trace recorded so far is dropped (nothing failed). Returns the old context, still open:
        the caller opens its pages anew in this one, then closes it.

        Raises:
            RuntimeError: this context was made without a way to renew it.
        """
        if self._renew is None:
            raise RuntimeError(f"{self.portal}: this browser context cannot be renewed")
        state = await self.context.storage_state()
        old = self.context
        if self._tracing:
            await old.tracing.stop()
            self._tracing = False
        self.context = await self._renew(state)
        await self.start_tracing()
        return old

    async def save_state(self) -> None:
        """Save cookies and local storage for the next run (file mode 0600)."""
        if self.state_file is not None:
            write_private_json(self.state_file, await self.context.storage_state())

    def forget_state(self) -> None:
        """Delete the saved login (it no longer works)."""
        if self.state_file is not None and self.state_file.exists():
            self.state_file.unlink()

    # -- tracing: off while a password is typed, so traces never hold it ------------------
    async def start_tracing(self) -> None:
        """Start recording (screenshots and DOM snapshots) for the failure evidence."""
        if self._trace and not self._tracing:
            # start() opens the first chunk itself: a start_chunk() after it would open a second
            # stack session in the driver, never closed, collecting the call stack of every
            # request until the driver exits (2 MB per 1,000 reads, and a temp folder a run).
            await self.context.tracing.start(screenshots=False, snapshots=True, sources=False, title=self.portal)
            self._tracing = True

    async def pause_tracing(self) -> None:
        """Stop recording and drop what was recorded (call before typing a password).

        Stopping outright, not just ending a chunk: a chunk boundary still lets the login
        request's form data into the trace's network log.
        """
        if self._tracing:
            await self.context.tracing.stop()
            self._tracing = False

    async def resume_tracing(self) -> None:
        """Record again after :meth:`pause_tracing`."""
        await self.start_tracing()

    async def render_answer(self, label: str, title: str, masked_body: str) -> Path | None:
        """Screenshot a failing answer the browser never showed (a read made through the
        session): rendered offline in a page of its own, every network request refused.
        ``masked_body`` must already be masked. Best effort: None when it cannot be rendered."""
        page = None
        try:
            page = await self.context.new_page()
            await page.route("**/*", lambda route: route.abort())
            looks_html = "<" in masked_body[:2000] and ">" in masked_body[:2000]
            content = masked_body if looks_html else f"<pre>{html_escape(masked_body)}</pre>"
            banner = (f"<div style='background:#fee;border:2px solid #c00;padding:6px;font:14px sans-serif'>"
                      f"dealerbot: 门户对这次读取的回答 (the portal's answer to the failed read): {html_escape(title)}</div>")
            await page.set_content(banner + content, wait_until="domcontentloaded", timeout=5000)
            shot = self.evidence.next_name(label, "-response.png")
            await page.screenshot(path=str(shot), full_page=True, timeout=10_000)
            self.evidence.add(shot)
            return shot
        except Exception as exc:  # noqa: BLE001 - evidence is best effort, never the failure
            self.evidence.log.warning("could not render the failing answer: {}", exc)
            return None
        finally:
            if page is not None:
                with contextlib.suppress(Exception):
                    await page.close()

    async def _learn_personal(self, page: Page) -> None:
        """Teach the masker the personal values shown on ``page`` (the texts of the portal's
        ``evidence_mask`` cells), so that the trace and the logs mask them too, also where they
        appeared earlier in the run."""
        for locator in self._mask_locators(page) if self._mask_locators else ():
            with contextlib.suppress(Exception):
                self.evidence.masker.add_personal(*await locator.evaluate_all(_LEAF_TEXTS_JS))

    async def capture(self, label: str | None = None, pages: list[Page] | None = None) -> list[Path]:
        """Save a masked full-page screenshot and the masked HTML of ``pages`` (default: every
        open page of the context)."""
        saved: list[Path] = []
        label = label or self.portal
        for page in self.context.pages if pages is None else pages:
            if page.is_closed():
                continue
            if page.url in ("about:blank", "") or page.url.startswith("chrome-error:"):
                # Nothing the portal sent was ever shown (a refused connection): the headless
                # browser's error page is blank, a picture that would mislead.
                self.evidence.log.warning("{}: no screen to capture (no page of the portal loaded: {})", label, page.url)
                continue
            await self._learn_personal(page)
            try:
                shot = self.evidence.next_name(label, "-screenshot.png")
                mask = [page.locator("input[type=password]")]
                if self._mask_locators:
                    mask += self._mask_locators(page)
                await page.screenshot(path=str(shot), full_page=True, mask=mask, timeout=10_000)
                self.evidence.add(shot)
                saved.append(shot)
            except Exception as exc:  # noqa: BLE001 - evidence is best effort, never the failure
                self.evidence.log.warning("could not take a screenshot: {}", exc)
            try:
                html_path = self.evidence.next_name(label, "-page.html")
                if self._mask_locators:  # the screenshot's masked areas are starred in the HTML too
                    for locator in self._mask_locators(page):
                        with contextlib.suppress(Exception):
                            await locator.evaluate_all(_STAR_TEXT_JS)
                html = await page.content()
                html_path.write_text(
                    f"<!-- {self.evidence.masker(page.url)} -->\n" + self.evidence.masker(html),
                    encoding="utf-8",
                )
                self.evidence.add(html_path)
                saved.append(html_path)
            except Exception as exc:  # noqa: BLE001
                self.evidence.log.warning("could not save the page HTML: {}", exc)
        return saved

    async def finish(self, failed: bool) -> None:
        """Stop tracing; on failure keep the trace (masked) as evidence."""
        if not self._tracing:
            return
        try:
            if failed:
                path = self.evidence.next_name(self.portal, "-trace.zip")
                await self.context.tracing.stop_chunk(path=str(path))
                learn_personal_from_trace(path, self._mask_css, self.evidence.masker)
                mask_trace(path, self.evidence.masker)
                self.evidence.add(path)
            await self.context.tracing.stop()
            self._tracing = False
        except Exception as exc:  # noqa: BLE001
            self.evidence.log.warning("could not save the trace: {}", exc)


def _host_regex(pattern: str) -> str:
    if pattern.startswith("*."):
        return r"(?:[^/?#:@]+\.)+" + pattern[2:].replace(".", r"\.")
    return pattern.replace(".", r"\.").replace("[", r"\[").replace("]", r"\]")


def blocked_hosts_pattern(allowed_hosts: Sequence[str]) -> re.Pattern[str]:
    """A URL pattern matching web requests to every host *not* in ``allowed_hosts`` (host names
    or addresses, ``*.example.com`` for every host under example.com; any port). Playwright's
    driver matches it, so requests to allowed hosts never reach Python."""
    hosts = "|".join(_host_regex(h.lower()) for h in allowed_hosts)
    return re.compile(rf"^(?:https?|wss?)://(?!(?:{hosts})(?::\d+)?(?:[/?#]|$))", re.IGNORECASE)


class Browser:
    """One launched browser for a run."""

    def __init__(self, playwright: Playwright, browser: PwBrowser, spec: LaunchSpec, settings: BrowserSettings) -> None:
        self.playwright = playwright
        self.browser = browser
        self.spec = spec
        self.settings = settings
        self.closing = False  # set before dealerbot closes it: an end that is no crash
        browser.on("disconnected", self._disconnected)

    @property
    def crashed(self) -> bool:
        """Whether the browser ended without dealerbot closing it (killed, out of memory): every
        page, context and login of the run went with it."""
        return not self.closing and not self.browser.is_connected()

    def _disconnected(self, _browser: PwBrowser) -> None:
        if not self.closing:
            logger.warning("the browser ended unexpectedly ({})", self.spec.describe())

    def crash_error(self, exc: BaseException | None = None, log: Logger = logger) -> BrowserCrashed:
        """The error to raise for a browser that crashed; what Playwright said about it (its
        launch command line, a stack) goes to the debug log only (``log``, the run's)."""
        if exc is not None:
            log.debug("after the browser ended: {}: {}", type(exc).__name__, exc)
        return BrowserCrashed()

    @asynccontextmanager
    async def context(
        self,
        portal: str,
        evidence: Evidence,
        state_file: Path | None = None,
        mask_locators: Callable[[Page], list[Any]] | None = None,
        timeout_ms: float = 30_000,
        trace: bool = True,
        mask_css: Sequence[str] = (),
        proxy: ProxySettings | None = None,
        allowed_hosts: Sequence[str] = (),
    ) -> AsyncIterator[PortalContext]:
        """A fresh context for ``portal``, reusing ``state_file``'s saved login if present,
        reaching the web through ``proxy`` (None: directly); with ``allowed_hosts`` (host
        patterns, see :func:`blocked_hosts_pattern`) every request to another host is aborted at
        once (counted in :attr:`PortalContext.blocked`).

        On an exception inside the block, evidence is saved before the context closes (with a
        Playwright trace when ``trace``) and the exception propagates unchanged.
        """
        kwargs: dict[str, Any] = {
            "locale": "zh-CN",
            "timezone_id": "Asia/Shanghai",
            "viewport": {"width": 1366, "height": 900},
            "accept_downloads": True,
        }
        if proxy is not None:
            kwargs["proxy"] = {"server": proxy.server, "bypass": proxy.bypass or None,
                               "username": proxy.username or None, "password": proxy.password or None}
        blocked = blocked_hosts_pattern(allowed_hosts) if allowed_hosts else None
        pctx_box: list[PortalContext] = []

        async def abort(route: Any) -> None:
            if pctx_box:
                pctx_box[0].count_blocked(route.request.url)
            with contextlib.suppress(Exception):  # the page went away meanwhile
                await route.abort("blockedbyclient")
        state: Any = None
        if state_file is not None and state_file.is_file():
            try:
                json.loads(state_file.read_text(encoding="utf-8"))
                state = str(state_file)
            except (OSError, ValueError):
                logger.warning("saved login {} is unreadable; logging in afresh", state_file)

        async def new_context(state: Any) -> BrowserContext:
            ctx = await self.browser.new_context(**kwargs, **({"storage_state": state} if state else {}))
            ctx.set_default_timeout(timeout_ms)
            if blocked is not None:
                # Only requests to other hosts match: the allowed ones are let through by
                # Playwright's driver, never handed to Python (bench/allowed_hosts.py).
                await ctx.route(blocked, abort)
            return ctx

        pctx = PortalContext(await new_context(state), portal, state_file, evidence, mask_locators, trace, mask_css,
                             renew=new_context, owner=self)
        pctx_box.append(pctx)
        pctx.proxy = proxy
        await pctx.start_tracing()
        failed = False
        try:
            yield pctx
        except StopRequested:
            raise  # stopped on purpose between records (停止, a shutdown): nothing failed, no evidence
        except BaseException:
            failed = True
            if not self.crashed:  # a dead browser has no screen, no HTML, no trace to give
                await pctx.capture()
            raise
        finally:
            if pctx.blocked:
                evidence.log.info("{}: aborted {} request{} to hosts not in allowed_hosts", portal, pctx.blocked,
                                  "" if pctx.blocked == 1 else "s")
            if self.crashed:
                evidence.log.warning("{}: the browser ended under the run: no screenshot, HTML or trace", portal)
            else:
                await pctx.finish(failed)
                await pctx.context.close()


# Playwright's driver (Node.js) keeps a large young generation it never gives back: a small one
# holds its memory near 150 MB over a long run instead of 230 MB and more, at no measurable CPU
# cost (bench/rekey.py).
DRIVER_NODE_OPTIONS = "--max-semi-space-size=2"
TEMP_VARS = ("TMPDIR", "TEMP", "TMP")  # where Node.js (os.tmpdir()) and Chromium put temporary files


# The environment is the process's: a driver starting with its own temporary folder changes it
# until the driver has copied it, so drivers start one at a time (runs side by side in the
# console or beside the scheduler). A lock per event loop (an asyncio lock is bound to one).
_DRIVER_STARTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()


def _driver_start_lock() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    lock = _DRIVER_STARTS.get(loop)
    if lock is None:
        lock = _DRIVER_STARTS[loop] = asyncio.Lock()
    return lock


@contextmanager
def _driver_options(temp: Path) -> Iterator[None]:
    """NODE_OPTIONS for the driver while it starts (it reads them once), then as they were; and
    ``temp`` as its temporary folder (and, inherited, the browser's): the browser's profile and
    Playwright's artifacts land there, in one folder that :func:`open_browser` removes whatever
    happened (a browser killed under the run leaves its profile behind otherwise)."""
    saved = {k: os.environ.get(k) for k in ("NODE_OPTIONS", "NODE_COMPILE_CACHE", *TEMP_VARS)}
    old = saved["NODE_OPTIONS"]
    os.environ["NODE_OPTIONS"] = f"{old} {DRIVER_NODE_OPTIONS}" if old else DRIVER_NODE_OPTIONS
    if saved["NODE_COMPILE_CACHE"] is None:
        # Node keeps the driver's compiled code between runs: it starts in about 0.19 s, not 0.25
        os.environ["NODE_COMPILE_CACHE"] = str(driver_cache_dir())
    for var in TEMP_VARS:
        os.environ[var] = str(temp)
    try:
        yield
    finally:
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


def driver_cache_dir() -> Path:
    """Where Node.js keeps the Playwright driver's compiled code (the user's cache folder: no
    customer data)."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "dealerbot" / "node-compile-cache"


@asynccontextmanager
async def open_browser(settings: BrowserSettings, headed: bool = False, wanted: bool = True) -> AsyncIterator[Browser | None]:
    """Start Playwright and launch the discovered browser; close both at exit. Not ``wanted``
    (a desktop bot's run): nothing starts and the block gets None.

    Raises:
        BrowserNotFound: no browser (see :func:`find_browser`), or it failed to start.
    """
    if not wanted:
        yield None
        return
    temp = Path(tempfile.mkdtemp(prefix="dealerbot-browser-"))  # 0700; removed below, whatever happens
    launched: Browser | None = None
    try:
        async with AsyncExitStack() as stack:
            async with _driver_start_lock():
                with _driver_options(temp):
                    pw = await stack.enter_async_context(async_playwright())
            launched = await _launch(pw, settings, headed)
            try:
                yield launched
            finally:
                launched.closing = launched.browser.is_connected()  # else it crashed: said so
                with contextlib.suppress(Exception):  # a browser that died: nothing left to close
                    await launched.browser.close()
    finally:
        if launched is not None and not launched.closing:
            _end_orphans(temp)
        shutil.rmtree(temp, ignore_errors=True)


def _end_orphans(temp: Path) -> None:
    """End what is left of a browser that crashed (its helper processes may outlive its main
    one): the processes of this user whose temporary folder is ``temp``."""
    import psutil

    me = psutil.Process().username()
    for proc in psutil.process_iter(["username"]):
        try:
            if proc.info["username"] != me:
                continue
            env = proc.environ()
            if any(env.get(var) == str(temp) for var in TEMP_VARS):
                proc.kill()
        except psutil.Error:
            continue


async def _launch(pw: Playwright, settings: BrowserSettings, headed: bool) -> Browser:
    """Launch the browser :func:`find_browser` picks (a start that dies at once is tried again).

    Raises:
        BrowserNotFound: no browser, or it failed to start.
    """
    try:
        bundled = pw.chromium.executable_path
    except Exception:  # noqa: BLE001 - no bundled build registered
        bundled = None
    headless = settings.headless and not headed
    spec = find_browser(settings, bundled, headless)
    args = list(CHROMIUM_ARGS)
    extra = list(settings.args)  # [browser] args (and the run's portals' browser_args): last, so they win
    if headless:
        # Nobody looks at the pixels: smaller caches and tiles (about 40% less renderer memory
        # over a long run of page loads) and one renderer process for the pages of a portal
        # worked side by side (each would hold 100-200 MB); measured at no cost in speed
        # on 2 cores, where rendering is CPU-bound anyway (bench/rekey.py).
        args += ["--enable-low-end-device-mode", "--renderer-process-limit=1"]
        # Fewer processes, each with its own copy of Chromium's code and heaps: compositing in
        # the browser process, and no zygote (Playwright launches without Chromium's sandbox
        # unless told otherwise, and only the sandbox needs it): 30-40 MB less (bench/rekey.py).
        args.append("--in-process-gpu")
        if sys.platform.startswith("linux"):
            args.append("--no-zygote")
    if platform.system() == "Linux" and hasattr(os, "geteuid") and os.geteuid() == 0:
        args.append("--no-sandbox")  # Chromium refuses to run as root with its sandbox
    args += [a for a in extra if a not in args]

    async def launch() -> PwBrowser:
        return await pw.chromium.launch(
            executable_path=spec.executable,
            channel=spec.channel,
            headless=headless,
            slow_mo=settings.slow_mo_ms or None,
            args=args,
        )

    def first_line(exc: BaseException) -> str:
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__

    def died_as_it_started(exc: BaseException) -> bool:
        return any(word in first_line(exc) for word in ("closed", "crashed"))

    def starting_again(exc: BaseException, _retry: int, _seconds: float) -> None:
        logger.warning("the browser ended as it started ({}); starting it again", first_line(exc))

    # A browser that started and died at once (a busy machine, a full /dev/shm) is started again
    # after a pause (0.5 s, then 1 s); one that cannot be started at all is a setup error.
    try:
        browser = await with_retries("starting the browser", launch, LAUNCH_ATTEMPTS - 1, LAUNCH_BACKOFF_SECONDS,
                                     retry_if=died_as_it_started, jitter=False, rate_limit_factor=1.0,
                                     announce=starting_again)
    except Exception as exc:
        raise BrowserNotFound(f"could not start {spec.describe()}: {first_line(exc)}") from exc
    logger.debug("browser: {} {}", spec.describe(), browser.version)
    return Browser(pw, browser, spec, settings)


class BrowserLaunch:
    """The browser of a run, started at once in the background (:func:`open_browser`) so that it
    comes up while the run gets ready (its store opened, maybe upgraded, its logs set up): on a
    small machine the two together took about a fifth of a short run (``bench/scrape_orders.py``).

    Use it as ``async with launch as browser`` where the browser is needed; a run that ends before
    that calls :meth:`discard`, which closes the browser it started. Not ``wanted``: nothing starts.
    """

    def __init__(self, settings: BrowserSettings, headed: bool = False, wanted: bool = True) -> None:
        self._cm = open_browser(settings, headed=headed, wanted=wanted)
        self._task: asyncio.Task[Browser | None] = asyncio.ensure_future(self._cm.__aenter__())
        self._used = False

    async def __aenter__(self) -> Browser | None:
        """Wait for the browser.

        Raises:
            BrowserNotFound: no browser, or it failed to start.
        """
        self._used = True
        return await self._task

    async def __aexit__(self, *exc: Any) -> bool | None:
        return await self._cm.__aexit__(*exc)

    async def discard(self) -> None:
        """Close the browser if the run never used it (a launch under way is let finish first:
        cancelled halfway, it would leave Playwright's driver running)."""
        if self._used:
            return
        self._used = True
        try:
            await asyncio.shield(self._task)
        except BaseException:  # noqa: BLE001 - it failed to start: nothing to close
            return
        await self._cm.__aexit__(None, None, None)
