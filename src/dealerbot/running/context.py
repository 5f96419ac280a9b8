"""The context the runner hands a bot for one run (:class:`BotContext`): portals opened logged in,
the desktop client, records emitted through their pipeline, rejects, exactly-once writes,
evidence, counts and notes for the operator."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from dealerbot.config import PortalSettings, Settings
from dealerbot.credentials import PasswordSource, env_name
from dealerbot.data.pipeline import Pipeline, issue_dict, pipeline_for
from dealerbot.data.records import Entity, Item
from dealerbot.errors import ConfigError, DealerbotError, LoginRejected, RecordRejected, StopRequested
from dealerbot.logsetup import mask_personal_value
from dealerbot.web.locators import SelectorFile, load_portal_selectors
from dealerbot.web.pacing import Pace
from dealerbot.web.page_locators import build_locator
from dealerbot.web.portal import PortalSession

if TYPE_CHECKING:
    from loguru import Logger

    from dealerbot.desktop.driver import DesktopDriver
    from dealerbot.running.bot import Bot
    from dealerbot.running.login_help import LoginHelp
    from dealerbot.store import RecordWriter, Store
    from dealerbot.web.browser import Browser, Evidence


class PortalApp(Protocol):
    """A portal's top-level page object (:class:`dealerbot.pages.common.PortalApp` or alike)."""

    async def open(self) -> None: ...

    async def login(self) -> None: ...


AppFactory = Callable[[PortalSession, Callable[[], str]], PortalApp]  # (session, password) -> the portal's app


COUNT_KEYS = ("pages", "read", "accepted", "repaired", "flagged", "rejected", "retries", "relogins")


def account_key(portal: str, settings: PortalSettings) -> str:
    """Which account of which portal: the key of its remembered login refusal."""
    return "|".join((portal, settings.url.rstrip("/"), settings.dealer_code, settings.username))


@dataclass
class BotContext:
    """Everything a bot may use during one run."""

    run_id: str
    bot: Bot
    settings: Settings
    browser: Browser | None  # None for a bot that drives no browser (``uses_browser = False``)
    writer: RecordWriter
    store: Store
    evidence: Evidence
    passwords: PasswordSource
    log: Logger
    full: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    since: datetime | None = None
    selectors_dir: Path | None = None
    on_progress: Callable[[dict[str, int]], None] | None = None
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNT_KEYS, 0))
    newest_change: datetime | None = None
    notes: list[str] = field(default_factory=list)  # for the operator: the summary and `runs`
    stop: asyncio.Event = field(default_factory=asyncio.Event)  # set: stop at the next safe point
    input: list[dict[str, str]] | None = None  # rows of `run --input FILE` (a bot with the "input" option)
    # Handed in by the runner (this module reaches neither the registry nor the group):
    portal_apps: Callable[[str], AppFactory] | None = None  # portal -> its app (portals/ or the default)
    shared_pace: Callable[[str, int], Pace] | None = None  # (account, per minute) -> a pace shared across processes
    login_help: LoginHelp | None = None  # a person to ask for a login's code/captcha/new password (None: unattended)
    _new_passwords: dict[str, str] = field(default_factory=dict)  # portal -> the password a person chose this run
    _pipelines: dict[str, Pipeline] = field(default_factory=dict)

    # -- portals ----------------------------------------------------------------------------
    def selectors(self, portal: str) -> SelectorFile:
        """The portal's validated selector file."""
        return load_portal_selectors(portal, self.selectors_dir, self.settings.home)

    def state_file(self, portal: str) -> Path:
        """Where the portal's login is kept between runs (git-ignored, mode 0600)."""
        username = self.settings.portal(portal).username or "default"
        return self.settings.path("state") / f"{portal}-{username}.json"

    def portal_app(self, portal: str) -> AppFactory:
        """The app that opens ``portal``: its class in ``portals/`` (``name = portal``), else
        the default login app.

        Raises:
            ConfigError: a portals/ module fails to import.
        """
        if self.portal_apps is None:
            raise ConfigError("no portal apps were handed to this run's context (BotContext.portal_apps)")
        return self.portal_apps(portal)

    @asynccontextmanager
    async def portal(
        self, portal: str, app: Callable[[PortalSession, Callable[[], str]], PortalApp] | None = None,
        require: tuple[str, ...] = (),
    ) -> AsyncIterator[PortalSession]:
        """Open ``portal`` in a fresh browser context, logged in, on its landing page.

        Every selector name the app uses (its module's ``SELECTORS_USED``, its class's
        ``selectors_used(settings)``) and of ``require`` (what the bot's own steps use) must be in
        the portal's selector file: checked before the browser starts.

        ``app(session, password)`` builds the portal's top-level page object (default:
        :meth:`portal_app`); its ``open()`` logs in when the saved login no longer works, and its
        ``login()`` is used again when the session expires mid-run. Failure evidence is saved
        when the block raises.

        Raises:
            LoginRejected: the portal refused the password (never retried).
            CredentialsMissing: no password is configured.
            SystemFailure: the portal could not be opened.
        """
        settings = self.settings.portal(portal)
        if self.browser is None:
            raise ConfigError(f"机器人 {self.bot.name} 声明不使用浏览器 (uses_browser = False)，不能打开网页门户 {portal}")
        app = app or self.portal_app(portal)
        selectors = self.selectors(portal)
        own = app.selectors_used(settings) if hasattr(app, "selectors_used") else ()
        selectors.require((*getattr(sys.modules[app.__module__], "SELECTORS_USED", ()), *own, *require))
        self.log.info("{}: selectors from {}", portal, selectors.path)
        account = account_key(portal, settings)
        # a portal without a login (a public form, an intranet page): no password, nothing to refuse
        fingerprint = self._check_not_refused(portal, account, selectors.title) if settings.needs_login else ""

        def mask(page: Any) -> list[Any]:
            return [
                build_locator(page, c)
                for name in selectors.evidence_mask
                for c in selectors.spec(name).candidates
                if not c.fields()
            ]

        trace = self.settings.browser.trace
        async with self.browser.context(
            portal, self.evidence, self.state_file(portal), mask,
            timeout_ms=self.settings.run.timeout_seconds * 1000, trace=self.bot.trace if trace is None else trace,
            mask_css=[c.value for name in selectors.evidence_mask for c in selectors.spec(name).candidates
                      if c.kind == "css" and not c.fields() and not c.frame],
            proxy=self.settings.portal_proxy(portal), allowed_hosts=self.settings.allowed_hosts(portal),
        ) as pctx:
            page = await pctx.new_page()
            session = PortalSession(
                portal, settings, pctx, page, selectors, self.settings.run, self.log, self.counts
            )
            top = app(session, lambda: self.password(portal))
            session.login, session.app = top.login, top
            if self.login_help is not None:
                session.shared.ask_person = self._asker(portal, selectors.title)
            session.shared.keep_password = lambda new: self._keep_password(portal, selectors.title, new)
            if self.bot.recycles:
                session.recycle_when(self.settings.browser.recycle_requests, self.settings.browser.recycle_memory_mb)
            if self.settings.run.requests_per_minute:
                if self.shared_pace is not None:  # a group: every worker draws on one pace per account
                    session.shared.pace = self.shared_pace(account, self.settings.run.requests_per_minute)
                await session.count_every_request()
            try:
                await session.step(f"open {selectors.title}", top.open)
                if settings.needs_login:
                    self._saved_login_password(portal, selectors.title, fingerprint, typed=session.shared.logged_in)
                if portal in self.bot.writes_to:  # the names its steps use, else every name of the file's screens
                    await self._canary(session, require or tuple(selectors.selectors), getattr(top, "landing", "landing"))
                yield session
            except LoginRejected as exc:
                if not exc.remembered:  # never type this password again (portals lock accounts)
                    self.store.record_login_refusal(account, fingerprint, str(exc), self.run_id)
                raise
            except (StopRequested, asyncio.CancelledError, KeyboardInterrupt):
                raise  # stopping on purpose: nothing failed, no evidence to render
            except BaseException:
                if pctx.crashed:  # the browser is gone: nothing to render the answer with
                    raise
                try:
                    await self._save_failed_response(session)
                except Exception as exc:  # noqa: BLE001 - evidence never hides the failure itself
                    self.log.warning("could not keep the failing answer: {}", exc)
                raise
            finally:
                with suppress(Exception):
                    await session.close_reads()

    async def _canary(self, session: PortalSession, names: tuple[str, ...], landing: str) -> None:
        """The canary before writing (:mod:`dealerbot.web.canary`): the screens holding ``names``
        checked in ``session`` (logged in); its outcome kept for the console; the page back on
        ``landing`` after a pass. Not when ``[<portal>] canary = false`` (logged).

        Raises:
            PortalChanged: a name is on none of its screen's choices: nothing was written (the
                page is left on that screen for the evidence).
            SystemFailure: a screen could not be opened.
        """
        from dealerbot.errors import PortalChanged
        from dealerbot.web.canary import record_canary, run_canary

        portal, title = session.name, session.selectors.title
        if not self.settings.portal(portal).canary:
            self.log.info("{}: the canary before writing is off ([{}] canary = false)", portal, portal)
            return
        started = time.perf_counter()
        outcome = await session.step(f"canary {title}", lambda: run_canary(session, names))
        if outcome.ok and outcome.checked and landing in session.selectors.endpoints:
            await session.goto(landing)  # where the app left the page: part of the canary's cost
        outcome.seconds = time.perf_counter() - started
        if outcome.unchecked:
            self.log.warning("{}: the canary cannot check {} (on no screen of the selector file's 'screens')",
                             portal, ", ".join(outcome.unchecked))
        try:
            news = record_canary(self.settings.path("state"), outcome, self.run_id, self.bot.name)
        except OSError as exc:  # the console's record only: never hides the outcome itself
            self.log.warning("could not keep the canary's outcome: {}", exc)
            news = True
        if not outcome.ok:
            shown = outcome.screen_title or outcome.screen
            raise PortalChanged(
                f"{title}的「{shown}」页面与配置不符，找不到 {len(outcome.missing)} 项，本次没有写入任何数据 "
                f"(the canary before writing: on screen {outcome.screen} of {portal}, missing: "
                f"{', '.join(outcome.missing)})",
                portal, outcome.missing, outcome.screen, outcome.screen_title, news)
        self.log.info("{}: canary passed: {} name(s) on {} in {:.2f}s", portal, outcome.names,
                      ", ".join(outcome.checked) or "no screen", outcome.seconds)

    @asynccontextmanager
    async def portal_pages(
        self, portal: str, app: Callable[[PortalSession, Callable[[], str]], PortalApp] | None, pages: int,
        require: tuple[str, ...] = (),
    ) -> AsyncIterator[list[PortalSession]]:
        """Like :meth:`portal`, with ``pages`` pages in the one logged-in browser context, one
        session each (to work on several screens at once; they share the login, re-logins and
        the request budget, and a failure's evidence covers every page).

        Raises:
            as :meth:`portal`.
        """
        app = app or self.portal_app(portal)
        async with self.portal(portal, app, require) as first:
            sessions = [first]
            for _ in range(pages - 1):
                other = first.sibling(await first.pctx.new_page())
                other.login = app(other, lambda: self.password(portal)).login
                sessions.append(other)
            yield sessions

    def _check_not_refused(self, portal: str, account: str, title: str) -> str:
        """The fingerprint of the portal's password, after checking the portal has not refused
        that very password before (before any browser starts).

        Raises:
            CredentialsMissing: no password is configured.
            LoginRejected: this password was refused before (``remembered``; nothing typed).
        """
        fingerprint = self.store.password_fingerprint(self.password(portal))
        refused = self.store.login_refusal(account)
        if refused is not None:
            if refused["fingerprint"] == fingerprint:
                store = self.settings.own_store
                cmd = f"dealerbot --store {store}" if store else "dealerbot"
                raise LoginRejected(
                    f"{title}在 {refused['refused_at']:%Y-%m-%d %H:%M} 拒绝过这个密码，为免账号被锁定不再尝试。"
                    f"请设置新密码：{cmd} credentials set {portal}（或更新 {env_name(portal, store)}）；"
                    f"确认密码无误时运行 {cmd} credentials retry {portal} "
                    f"(the portal refused this password before: not tried again) — {refused['message']}",
                    remembered=True,
                )
            self.store.clear_login_refusal(account)
            self.log.info("{}: the password changed since the portal refused one: trying the new one", portal)
        return fingerprint

    def _saved_login_password(self, portal: str, title: str, fingerprint: str, typed: bool) -> None:
        """Keep which password the saved login was made with (its keyed fingerprint, beside the
        saved login: ``state/<portal>-<user>.password.json``, 0600); and when this run used the
        saved login while another password is configured now (it changed since: set anew after a
        refusal, or by the operator), say once that the new password is not tried until that
        login expires. A run on the saved login with the same password says nothing: the note
        is for when it matters, not every run."""
        from dealerbot.private_files import write_private_json

        known = self.state_file(portal).with_suffix(".password.json")
        if typed:
            write_private_json(known, {"password": fingerprint})
            return
        try:
            before = json.loads(known.read_text(encoding="utf-8")).get("password")
        except (OSError, ValueError, AttributeError):
            before = None  # a saved login from before dealerbot kept this: said once, then known
        if before == fingerprint:
            return
        write_private_json(known, {"password": fingerprint})  # said once, not on every run
        saved = self.state_file(portal)
        since = f"（{datetime.fromtimestamp(saved.stat().st_mtime):%m-%d %H:%M} 登录）" if saved.exists() else ""
        if before is None:  # the operator's note in Chinese only; the log says it in English too
            self.log.info("{}: used the saved login; a changed password shows only when it expires", portal)
            self.note(f"{title}：使用了保存的登录{since}，本次未输入密码；门户上的密码若已更改，要到该登录过期才会发现")
        else:
            self.log.info("{}: the password changed; the saved login was used, the new password is tried when it "
                          "expires", portal)
            self.note(f"{title}：密码已更换，但本次使用了保存的登录{since}，新密码尚未在门户上验证；该登录过期后"
                      f"才会用新密码登录")

    @asynccontextmanager
    async def desktop(self, portal: str, screens: str) -> AsyncIterator[Any]:
        """Drive the desktop client described by ``selectors/<screens>.yaml`` (``kind: desktop``)
        for the account of ``portal``: yields a :class:`~dealerbot.desktop.driver.DesktopDriver`.
        When the block raises, a full-screen screenshot (personal regions masked) with the window
        list and the step log is saved as evidence; a refused password is remembered, as on the web.

        Raises:
            ConfigError: no display, no xdotool, a malformed screen file; LoginRejected (and
                remembered); CredentialsMissing.
            SystemFailure: the client is not running or will not take the focus.
        """
        from dealerbot.desktop.driver import DesktopDriver
        from dealerbot.desktop.spec import load_desktop_spec
        from dealerbot.web.locators import portal_selectors_path

        spec = load_desktop_spec(portal_selectors_path(screens, self.selectors_dir, self.settings.home))
        account = account_key(portal, self.settings.portal(portal))
        fingerprint = self._check_not_refused(portal, account, spec.title)
        self.log.info("{}: desktop screens from {}", portal, spec.path)
        driver = await asyncio.to_thread(DesktopDriver, spec, self.log)
        try:
            yield driver
        except LoginRejected as exc:
            if not exc.remembered:
                self.store.record_login_refusal(account, fingerprint, str(exc), self.run_id)
            raise
        except (StopRequested, asyncio.CancelledError, KeyboardInterrupt):
            raise
        except BaseException:
            try:
                await asyncio.to_thread(self.desktop_evidence, driver, "failed")
            except Exception as exc:  # noqa: BLE001 - evidence never hides the failure itself
                self.log.warning("could not keep a screenshot: {}", exc)
            raise
        finally:
            if driver.nuisances_closed or driver.refocused:
                self.note(f"{spec.title}：关闭了 {driver.nuisances_closed} 个意外弹窗，重新聚焦窗口 {driver.refocused} 次 "
                          f"(closed {driver.nuisances_closed} unexpected window(s), re-focused {driver.refocused} time(s))")

    async def page_evidence(self, session: PortalSession, label: str) -> str:
        """Save a masked screenshot and the masked HTML of ``session``'s page; the folder."""
        await session.pctx.capture(label, [session.page])
        return str(self.evidence.folder)

    def desktop_evidence(self, driver: DesktopDriver, label: str) -> str:
        """Save a masked full-screen screenshot, the window list and the step log; the folder."""
        for path in driver.screenshot(self.evidence.next_name(label, ".png"), mask=self.evidence.masker):
            self.evidence.add(path)
        return str(self.evidence.folder)

    def check_stop(self) -> None:
        """Call between records: stop here when a shutdown (or the operator's 停止) asked for it.

        Raises:
            StopRequested: the scheduler is stopping dealerbot, or the operator stopped this run.
        """
        if self.stop.is_set():
            raise StopRequested("已按要求停止：当前记录已完成，其余留待下次运行 (stopped between records on request)")

    def download_dir(self) -> Path:
        """Where this run keeps the files it downloads: ``out/downloads/<run-id>/`` (0700)."""
        from dealerbot.private_files import private_dir

        return private_dir(self.settings.path("out") / "downloads" / self.run_id)

    def input_rows(self) -> list[dict[str, str]]:
        """The rows of this run's input file (``dealerbot run BOT --input FILE``), by column name.

        Raises:
            ConfigError: the run was started without ``--input`` (the bot needs one).
        """
        if self.input is None:
            raise ConfigError(f"机器人 {self.bot.name} 需要输入文件：dealerbot run {self.bot.name} --input 文件.xlsx "
                              f"(this bot needs --input FILE)")
        return self.input

    def personal(self, *values: Any) -> None:
        """Mark values as personal data (names, addresses...) so that every artifact of the run
        masks them: logs, page HTML, traces. Records' personal fields are marked by :meth:`emit`;
        a bot that types data it did not scrape this run marks it here."""
        self.evidence.masker.add_personal(*values)

    def note(self, text: str) -> None:
        """Tell the operator something the counts cannot (shown in the summary and `runs`)."""
        if text not in self.notes:
            self.notes.append(text)
            self.log.info("note: {}", text)

    async def _save_failed_response(self, session: PortalSession) -> None:
        """Keep the portal's failing answer to a read (masked): as text, and rendered into a
        screenshot of its own (the browser's page shows a healthy screen: the read failed
        behind it)."""
        if session.shared.failed_response is None:
            return
        url, status, body = session.shared.failed_response
        masked = self.evidence.masker(body)
        path = self.evidence.next_name(session.name, "-response.html")
        path.write_text(f"<!-- HTTP {status} {self.evidence.masker(url)} -->\n{masked}", encoding="utf-8")
        self.evidence.add(path)
        await session.pctx.render_answer(session.name, f"HTTP {status} {self.evidence.masker(url)}", masked)

    def password(self, portal: str) -> str:
        """The portal's password (one a person chose this run, environment, keyring or the
        runner's overrides).

        Raises:
            CredentialsMissing: there is none.
        """
        return self._new_passwords.get(portal) or self.passwords(portal, self.settings.portal(portal).username)

    def _asker(self, portal: str, title: str) -> Callable[[str, str, bytes | None], Awaitable[str]]:
        """``ask(need, prompt, image)`` for the portal's login: the run's person answers; the
        answer is a secret from then on (masked in the log, traces, saved pages)."""
        from dealerbot.running.login_help import Question, ask_unless_stopped

        help_ = self.login_help
        assert help_ is not None

        async def ask(need: str, prompt: str, image: bytes | None) -> str:
            self.log.info("{}: the login asks a person for the {}", portal, need)
            answer = await ask_unless_stopped(help_, Question(self.run_id, portal, title, need, prompt, image), self.stop)
            self.evidence.masker.add_secret(answer)
            self.log.info("{}: a person gave the {}", portal, need)
            return answer

        return ask

    def _keep_password(self, portal: str, title: str, new: str) -> None:
        """The portal took a new password a person chose (a forced change): keep it where
        ``dealerbot credentials set`` keeps it (the keyring, with an audit entry); an
        environment variable that still holds the old one is said in a note."""
        from dealerbot.credentials import replace_password

        self._new_passwords[portal] = new
        self.evidence.masker.add_secret(new)
        try:
            replace_password(self.settings, self.store, portal, new, f"run {self.run_id}")
        except DealerbotError as exc:
            self.log.error("{}: the new password could not be kept: {}", portal, exc)
            self.note(f"{title}：门户已改用新密码，但 dealerbot 无法保存它（{exc}）；请运行 dealerbot credentials set {portal} 保存新密码")
            return
        store = self.settings.own_store
        if os.environ.get(env_name(portal, store)) or os.environ.get(env_name(portal)):
            self.note(f"{title}：门户已改用新密码，已保存到系统钥匙串；环境变量 {env_name(portal, store)} 仍是旧密码，请更新或删除它")
        else:
            self.note(f"{title}：门户要求修改密码，新密码已保存到系统钥匙串")

    # -- records --------------------------------------------------------------------------
    def emit(self, entity: Entity, data: dict[str, Any], source: str = "") -> bool:
        """Process one scraped record and queue it for the store.

        Returns True when accepted (possibly repaired or flagged), False when rejected.
        """
        return self._emit(entity, data, source) is None

    def _emit(self, entity: Entity, data: dict[str, Any], source: str = "") -> str | None:
        """:meth:`emit`; None when accepted, else the reason it was rejected."""
        pipeline = self._pipelines.get(entity.name)
        if pipeline is None:
            pipeline = self._pipelines[entity.name] = pipeline_for(entity)
        raw = dict(data)
        self.personal(*(data.get(f) for f in entity.personal_fields))
        item = Item(entity, dict(data), source=source)
        self.counts["read"] += 1
        try:
            item = pipeline.process(item)
        except RecordRejected as rej:
            self.counts["rejected"] += 1
            self.writer.reject(entity, item.key, rej.code, rej.field, rej.reason, raw, [issue_dict(i) for i in item.issues])
            self.log.info("rejected {} {}: {}", entity.name, item.key or "(no key)", rej.reason)
            self.progress()
            return rej.reason
        self.personal(*(item.data.get(f) for f in entity.personal_fields))  # as cleaned
        severities = {i.severity for i in item.issues}
        if "flag" in severities:
            self.counts["flagged"] += 1
        elif "repaired" in severities:
            self.counts["repaired"] += 1
        self.counts["accepted"] += 1
        self.writer.add(entity, item.data, [issue_dict(i) for i in item.issues])
        self.progress()
        return None

    def reject(self, entity: Entity, data: dict[str, Any], code: str, reason: str, field: str = "") -> None:
        """Reject a record before it is read further (e.g. a listed key that cannot be a key)."""
        self.personal(*(data.get(f) for f in entity.personal_fields))
        self.counts["read"] += 1
        self.counts["rejected"] += 1
        key = str(data.get(entity.key) or "")
        self.writer.reject(entity, key, code, field, reason, dict(data))
        self.log.info("rejected {} {}: {}", entity.name, key or "(no key)", reason)
        self.progress()

    @contextmanager
    def rejecting(self, entity: Entity, data: dict[str, Any]) -> Iterator[None]:
        """Work on one record: a :class:`~dealerbot.errors.RecordRejected` raised in the block
        (a dropdown without the value, a check of the bot's own) rejects the record with its
        reason and the run goes on; system failures pass through."""
        try:
            yield
        except RecordRejected as rej:
            self.reject(entity, data, rej.code, rej.reason, rej.field or "")

    async def write_once(
        self,
        entity: Entity,
        record: dict[str, Any],
        find: Callable[[str], Awaitable[dict[str, Any] | None]],
        create: Callable[[dict[str, Any]], Awaitable[Any]],
    ) -> str:
        """Write one record into a portal exactly once, the way the re-key bot does.

        ``find(key)`` looks the record up on the portal: None when it is not there, else the
        record as the portal holds it, **by the record type's field names** (``{"vin": ...,
        "brand": ...}``, as :meth:`HeaderTable.finder <dealerbot.pages.common.HeaderTable.finder>`
        returns it for a table whose ``columns`` name the type's fields), the key field included.
        ``create(record)`` fills the form and submits it once, returning the
        :class:`~dealerbot.web.forms.SubmitOutcome`.
        The record is first checked by its type's pipeline (the key and required fields present,
        each field's check, types): a bad one is rejected with its reason and the portal is never
        touched; ``create`` gets the cleaned values as text (every field of the type present,
        "" when empty, dates as YYYY-MM-DD), with the record's other columns as given.
        A record the portal already holds is not typed again (``found``, counted as read); a
        refused submit, or one with no clear answer, is never repeated: the record is rejected
        with the portal's words (a later run searches first, so an unclear save is never
        doubled); a saved one is found again and what the portal now holds is emitted through
        the pipeline (``written``; when the pipeline rejects what the portal holds, the record
        is listed as rejected and the audit says so). Business errors on the way (a dropdown
        without the value) reject the record; every outcome is in the audit trail (``dealerbot
        audit``: the record type's fields only, its ``personal`` ones masked there). Returns
        ``found``, ``written`` or ``rejected``.

        Raises:
            ConfigError: ``find`` returned something other than the record type's fields (not a
                mapping, without the key field, or with names that are not fields): the message
                names what it returned and what it must (a bot's mistake: nothing more is written).
            SystemFailure: the portal failed while searching or opening the form (nothing was
                submitted, or the next run's search finds what was).
            StopRequested: a shutdown asked to stop (checked before the record is started).
        """
        self.check_stop()
        self.personal(*(record.get(f) for f in entity.personal_fields))
        actor = f"bot:{self.bot.name}"
        personal = set(entity.personal_fields)

        def audit(event: str, values: dict[str, Any], note: str = "") -> None:
            # the record type's fields only: an input file's other columns are not the record's
            # (personal ones masked as stored: the display may not know the type)
            kept = {f: mask_personal_value(str(values[f])) if f in personal and values[f] else values[f]
                    for f in entity.field_names if f in values}
            self.store.audit_write(self.run_id, actor, event, entity.name, key, kept, note)

        try:
            cleaned = pipeline_for(entity).process(Item(entity, {f: record.get(f) for f in entity.field_names})).data
        except RecordRejected as rej:
            key = str(record.get(entity.key) or "").strip()
            audit("invalid", {}, rej.reason)
            self.reject(entity, record, rej.code, rej.reason, rej.field or "")
            return "rejected"
        record = {**record, **{f: as_text(v) for f, v in cleaned.items()}}
        key = record[entity.key]
        with self.rejecting(entity, record):
            if _checked_find(entity, key, await find(key), find) is not None:
                audit("found", {})
                self.counts["read"] += 1  # a record of the run, not a reject: the run is no "all rejected"
                self.progress()
                self.note(f"{key} 已在{entity.title}中，未重复写入 (already there: not written again)")
                return "found"
            outcome = await create(record)
            if outcome.result != "saved":
                audit(outcome.result, record, outcome.message)
                reason = outcome.message or ("门户没有明确答复，下次运行会先查找再决定" if outcome.result == "unknown" else "门户拒绝保存")
                self.reject(entity, record, f"submit_{outcome.result}", reason)
                return "rejected"
            try:
                held = _checked_find(entity, key, await find(key), find)
            except ConfigError as exc:
                audit("unreadable", record, str(exc))
                raise
            if held is None:
                audit("missing", record, outcome.url)
                self.reject(entity, record, "not_found_after_save", "保存后在门户上查不到该记录 (saved, but not found again)")
                return "rejected"
            refused = self._emit(entity, held, source=outcome.url)
            if refused is None:
                audit("written", held, outcome.url)
                return "written"
            audit("written_rejected", held, refused)
            return "rejected"
        return "rejected"

    def observe_change(self, changed_at: datetime) -> None:
        """Note a change time the bot *listed* (not read later from a detail page).

        The run's watermark becomes the newest one noted, once the run succeeds. Taking it from
        the list walk means a change that happens between listing and reading is never skipped:
        it moves the record past the watermark, so the next run lists it again.
        """
        if self.newest_change is None or changed_at > self.newest_change:
            self.newest_change = changed_at

    def page_done(self) -> None:
        """Count a list page read."""
        self.counts["pages"] += 1
        self.progress()

    def progress(self) -> None:
        """Tell the progress display (if any) the current counts."""
        if self.on_progress is not None:
            self.on_progress(self.counts)


def _checked_find(entity: Entity, key: str, found: Any, find: Callable[..., Any]) -> dict[str, Any] | None:
    """What a ``write_once`` ``find`` returned, checked: None, or a mapping by the record type's
    field names holding the key field.

    Raises:
        ConfigError: anything else (names what came back and what must).
    """
    if found is None:
        return None
    what = getattr(find, "__qualname__", repr(find))
    fields = "、".join(entity.field_names)
    if not isinstance(found, dict):
        raise ConfigError(f"write_once：查找函数 {what} 返回了 {type(found).__name__}，应返回 None 或以{entity.title}字段名"
                          f"为键的字典（{fields}）(find() must return None or a dict by the record type's field names)")
    strange = [str(k) for k in found if k not in entity.field_names]
    if entity.key not in found or strange:
        got = "、".join(str(k) for k in found) or "（空）"
        raise ConfigError(
            f"write_once：查找函数 {what} 为 {key} 返回的字段是 {got}，应为{entity.title}（{entity.name}）的字段名："
            f"{fields}（须含键字段 {entity.key}）"
            + (f"；不是字段名的：{'、'.join(strange)}" if strange else "")
            + f" (find() for {entity.name} must return the record type's field names, the key '{entity.key}' included; "
              f"a HeaderTable's columns: should be named by them)")
    return found


def as_text(value: Any) -> str:
    """A cleaned value as it is typed into a form ("" for none, dates as YYYY-MM-DD)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    if isinstance(value, bool):
        return "是" if value else "否"
    return str(value)

