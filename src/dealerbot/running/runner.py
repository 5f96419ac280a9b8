"""One run's lifecycle. The only place that decides and writes a run's status.

    open run in store -> run folder + log sinks -> browser -> bot.run(ctx) -> flush records
      -> succeeded: move the bot's watermark
      -> every record read was rejected (nothing accepted): all_rejected, watermark moved
      -> ConfigError (bad setup, wrong password): failed, no retry
      -> NeedsPerson (a login code or captcha and nobody to type it): needs_person, no retry
      -> PortalChanged (the canary found the writing bot's selectors missing): portal_changed
      -> PortalMaintenance (the portal's maintenance notice): postponed until the window's end
      -> SystemFailure (after the retries inside): failed, evidence listed
      -> anything else: failed as an internal error, with the traceback in the run log
      -> Ctrl-C / cancellation: interrupted
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dealerbot.config import Settings
from dealerbot.credentials import password_source
from dealerbot.data.inputs import read_input
from dealerbot.errors import (
    AlreadyRunning,
    BrowserCrashed,
    ConfigError,
    DealerbotError,
    NeedsPerson,
    PortalChanged,
    PortalMaintenance,
    StopRequested,
    SystemFailure,
)
from dealerbot.logsetup import Masker, run_sinks
from dealerbot.running.bot import Bot, bot_portals
from dealerbot.running.context import COUNT_KEYS, BotContext
from dealerbot.running.fan_out import first_error
from dealerbot.running.login_help import LoginHelp, for_run
from dealerbot.running.notify import notify_run
from dealerbot.running.registry import get_bot, portal_app
from dealerbot.store import Store
from dealerbot.web.browser import BrowserLaunch, Evidence
from dealerbot.web.locators import check_selector_files
from dealerbot.web.pacing import Pace

if TYPE_CHECKING:
    from loguru import Logger

WATERMARK_OVERLAP = timedelta(seconds=1)
# A run cancelled under it (dealerbot closed, Ctrl-C): the operator reads this; the log says it in English.
INTERRUPTED_TEXT = "运行被中断（dealerbot 被关闭或按了 Ctrl-C）；已处理的记录都已保存，重新运行会继续其余的"


@dataclass
class RunResult:
    """What a run did."""

    run_id: str
    bot: str
    status: str
    counts: dict[str, int]
    error: str | None = None
    error_kind: str | None = None
    error_class: str | None = None  # the error's class name ("LoginRejected"), for explaining it
    run_dir: Path | None = None
    evidence: list[Path] = field(default_factory=list)
    resume_after: datetime | None = None  # a postponed run: not before this
    notes: list[str] = field(default_factory=list)
    # A "portal_changed" run: the canary's portal, screen, screen_title, missing names and news
    # (False: the same miss as the portal's last canary), for the integrator's message.
    changed: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """The run did its work: succeeded, or read records that were every one rejected (each
        with its reason, for a person): a chain goes on after either."""
        return self.status in ("succeeded", "all_rejected")


def new_run_id(bot: str, now: datetime | None = None) -> str:
    """E.g. ``20261125-083015-oem-orders-3fa2``."""
    now = now or datetime.now()
    return f"{now:%Y%m%d-%H%M%S}-{bot}-{secrets.token_hex(2)}"


def make_masker(
    settings: Settings, passwords: Mapping[str, str] | None, portals: Sequence[str] | None = None,
) -> Masker:
    """A masker that knows every password this process can use: those of ``portals`` (default:
    every configured portal; a run: the portals its bot opens, the only passwords it ever
    holds). Passwords in the environment are known at once; those in the OS keyring are looked
    up when the masker is first used."""
    from dealerbot.credentials import env_name, get_password

    masker = Masker(passwords.values() if passwords else ())
    for url in (*settings.notify.urls, *settings.notify.integrator_urls):  # URLs carry tokens and mail passwords
        masker.add_secret(url)
    if settings.store.url:  # a group's PostgreSQL password (decoded: %40 is the @ it stands for)
        from sqlalchemy.engine import make_url

        try:
            masker.add_secret(make_url(settings.store.url).password)
        except Exception:  # noqa: BLE001 - a malformed URL is refused when the store opens
            pass
    wanted = list(settings.portal_names if portals is None else portals)
    for proxy in [settings.browser.proxy, *(settings.portal(p).proxy for p in wanted if p in settings.portal_names)]:
        if proxy is not None:  # a proxy's password (from the environment only)
            masker.add_secret(proxy.password or None)
    wanted = [p for p in wanted if p not in settings.portal_names or settings.portal(p).needs_login]  # no login: no password
    store = settings.own_store
    own = [store] if store else list(settings.stores)  # a worker's or scheduler's: every store's
    for portal in wanted:
        masker.add_secret(os.environ.get(env_name(portal)))
        for code in own:
            masker.add_secret(os.environ.get(env_name(portal, code)))

    def from_keyring() -> list[str | None]:
        found: list[str | None] = []
        for portal in wanted:
            try:
                found.append(get_password(portal, settings.portal(portal).username, store))
            except DealerbotError:
                pass
        return found

    masker.add_secrets_later(from_keyring)
    return masker


async def run_bot(
    name: str,
    settings: Settings,
    *,
    full: bool = False,
    headed: bool = False,
    trigger: str = "manual",
    passwords: Mapping[str, str] | None = None,
    on_progress: Callable[[dict[str, int]], None] | None = None,
    on_start: Callable[[str, Path], None] | None = None,
    selectors_dir: Path | None = None,
    options: Mapping[str, Any] | None = None,
    job: str | None = None,
    stop: asyncio.Event | None = None,
    engine_job: int | None = None,
    login_help: LoginHelp | None = None,
) -> RunResult:
    """Run the bot ``name`` once and record the run (``engine_job``: the group's task engine job
    running it).

    Failures of the run are reported in the result (status ``failed``), not raised. ``trigger``
    says why it started (manual, schedule, catch-up, postponed, console, demo) and ``job`` which
    timetable job started it; when ``stop`` is set, a bot that checks it stops between records
    (status ``interrupted``). Notifications (``[notify]``) go out when the run has finished.
    ``login_help``: who answers a login's SMS code, captcha or new password (the console's box);
    None: a terminal prompt for a ``manual`` run on a TTY, else nobody (the run ends
    ``needs_person`` when the login needs a person).

    Raises:
        ConfigError: a group's settings with no store chosen (before any run is recorded).
        UnknownBot: no such bot (before any run is recorded).
        SelectorFileError: a selector file of the bot's portals is malformed (before any run is
            recorded; the message names file and line).
        AlreadyRunning: this bot is running for the same portal account (another process).
        ConfigError: the store cannot be opened.
        asyncio.CancelledError / KeyboardInterrupt: after recording the run as ``interrupted``.
    """
    if settings.is_group and settings.store_code not in settings.stores:
        raise ConfigError(f"这是集团配置：请指明门店，例如 dealerbot --store {next(iter(settings.stores))} run {name}，"
                          f"或用 dealerbot group run 排队 (a group's run is for one store: --store CODE)")
    bot_cls = get_bot(name, home=settings.home)
    options = dict(options or {})
    unknown = sorted(k for k, v in options.items() if v and k not in bot_cls.options)
    if unknown:
        raise ConfigError(f"bot '{name}' has no option {', '.join('--' + k.replace('_', '-') for k in unknown)}")
    if bot_cls.needs_input and not options.get("input"):
        raise ConfigError(f"机器人 {name} 需要输入文件：dealerbot run {name} --input 文件.xlsx（或 .csv） "
                          f"(bot '{name}' needs --input FILE)")
    if bot_cls.uses_browser:  # a broken selector file is said now: no run is recorded (or notified) for it
        check_selector_files(bot_portals(bot_cls), selectors_dir, settings.home)
    bot = bot_cls()
    input_rows = read_input(Path(options["input"])) if options.get("input") else None  # bad file: nothing starts
    with single_instance(settings, bot_cls):
        launch = BrowserLaunch(settings.launch_settings(bot_portals(bot_cls)), headed=headed,
                               wanted=bot.uses_browser)  # starts meanwhile
        try:
            store = await asyncio.to_thread(Store.open, settings.store_url, settings.store_code)
        except BaseException:
            await launch.discard()
            raise
        ctx: BotContext | None = None
        try:
            store.close_abandoned_runs()
            run_id = new_run_id(name)
            run_dir = settings.path("logs") / "runs" / run_id
            masker = make_masker(settings, passwords, bot_portals(bot_cls))
            evidence = Evidence(run_dir, masker)
            mark = watermark_key(settings, bot_cls)
            watermark = store.watermark(mark) if bot.incremental and not full else None
            since = datetime.fromisoformat(watermark) - WATERMARK_OVERLAP if watermark else None
            store.start_run(run_id, name, trigger, {"full": full, "since": since.isoformat() if since else None, **options},
                            job=job, engine_job=engine_job)
            result = RunResult(run_id, name, "running", {}, run_dir=run_dir)
            if on_start:
                on_start(run_id, run_dir)
            counts = dict.fromkeys(COUNT_KEYS, 0)
            writer = store.writer(run_id, counts=counts)
            with run_sinks(run_id, name, settings.path("logs"), run_dir, masker) as log:
                evidence.log = log
                log.info("run {} started ({}, {})", run_id, trigger, f"since {since:%Y-%m-%d %H:%M:%S}" if since else "full")
                try:
                    async with launch as browser:
                        ctx = BotContext(
                            run_id=run_id, bot=bot, settings=settings, browser=browser, writer=writer, store=store,
                            evidence=evidence, options=options, passwords=password_source(passwords, settings.own_store),
                            log=log, full=full,
                            since=since, selectors_dir=selectors_dir, on_progress=on_progress, counts=counts,
                            stop=stop or asyncio.Event(), input=input_rows,
                            portal_apps=lambda portal: portal_app(portal, settings.home),
                            shared_pace=_shared_pace(settings, store),
                            login_help=for_run(trigger, login_help),
                        )
                        try:
                            try:
                                async with _ledger(store, bot, run_id, log):
                                    await bot.run(ctx)
                            except BaseExceptionGroup as group:  # a bot's own TaskGroup: classify the cause
                                raise first_error(group) from None
                        except Exception as exc:
                            # The browser died under the run: whatever the bot tripped over (a page
                            # closed, a read refused), that is the cause to report, in plain words.
                            if browser is None or isinstance(exc, (BrowserCrashed, StopRequested)) or not browser.crashed:
                                raise
                            raise browser.crash_error(exc, log) from None
                    writer.flush()
                    result.status = "all_rejected" if every_record_rejected(ctx.counts) else "succeeded"
                    if bot.incremental and ctx.newest_change is not None:
                        store.set_watermark(mark, ctx.newest_change.isoformat(timespec="seconds"), run_id)
                    log.info("run {} succeeded: {}", run_id, _fmt_counts(ctx.counts))
                except (asyncio.CancelledError, KeyboardInterrupt):
                    result.status = "interrupted"
                    result.error = INTERRUPTED_TEXT
                    log.warning("run {} interrupted by the operator (cancelled or Ctrl-C)", run_id)
                    raise
                except ConfigError as exc:
                    result.status, result.error, result.error_kind = "failed", str(exc), "config"
                    result.error_class = type(exc).__name__
                    log.error("run {} failed (configuration): {}", run_id, exc)
                except NeedsPerson as exc:
                    result.status, result.error, result.error_kind = "needs_person", str(exc), "person"
                    result.error_class = type(exc).__name__
                    log.warning("run {} needs a person: {}", run_id, exc)
                except PortalChanged as exc:
                    result.status, result.error, result.error_kind = "portal_changed", str(exc), "portal_changed"
                    result.error_class = type(exc).__name__
                    result.changed = {"portal": exc.portal, "screen": exc.screen, "screen_title": exc.screen_title,
                                      "missing": list(exc.missing), "news": exc.news}
                    log.error("run {} stopped before writing, the portal changed: {}", run_id, exc)
                except StopRequested as exc:
                    result.status, result.error = "interrupted", str(exc)
                    log.warning("run {} stopped: {}", run_id, exc)
                except PortalMaintenance as exc:
                    result.status, result.error, result.error_kind = "postponed", str(exc), "postponed"
                    result.error_class = type(exc).__name__
                    result.resume_after = resume_time(exc.until) if exc.until else None
                    log.warning("run {} postponed: {}", run_id, exc)
                except SystemFailure as exc:
                    result.status, result.error, result.error_kind = "failed", str(exc), "system"
                    result.error_class = type(exc).__name__
                    log.error("run {} failed (system): {}", run_id, exc)
                except Exception as exc:  # noqa: BLE001 - an internal error still ends the run cleanly
                    result.status, result.error_kind = "failed", "internal"
                    result.error = f"dealerbot 内部错误，技术详情见运行日志：{type(exc).__name__}: {exc}"
                    result.error_class = "internal"
                    log.opt(exception=exc).error("run {} failed (internal error): {}", run_id, exc)
                finally:
                    try:
                        writer.flush()
                    except Exception as exc:  # noqa: BLE001
                        log.error("could not write the last records: {}", exc)
                    result.counts = dict(ctx.counts) if ctx else {}
                    result.notes = list(ctx.notes) if ctx else []
                    if result.error and result.error_kind in ("system", "internal") and counts.get("stored"):
                        result.error += (f"（失败前已保存 {counts['stored']} 条记录，重新运行会补全其余的）"
                                         f" ({counts['stored']} records were stored before it failed)")
                    if on_progress is not None and ctx is not None:
                        on_progress({**ctx.counts, "finished": 1})
                    result.evidence = list(evidence.files)
                    if result.error:
                        result.error = masker(result.error)
                    store.finish_run(
                        run_id, result.status if result.status != "running" else "failed", result.counts,
                        result.error, str(run_dir) if evidence.files else None, [str(p) for p in evidence.files],
                        resume_after=result.resume_after, notes=result.notes, error_class=result.error_class,
                    )
                await notify_run(settings.notify, settings.console.public_url, store, result, log)
        finally:
            await launch.discard()
            store.close()
        return result


def _ledger(store: Store, bot: Bot, run_id: str, log: Logger) -> contextlib.AbstractAsyncContextManager[Any]:
    """The store's ledger lock for a bot that writes the ledger (``ledger_writer``), for its whole
    run: a reconcile planning meanwhile waits for it, and it waits for a reconcile planning."""
    if not bot.ledger_writer:
        return contextlib.nullcontext()
    return store.ledger_lock_async(
        f"{bot.name} {run_id}", on_wait=lambda who: log.warning("waiting for {} to finish before writing", who))


def every_record_rejected(counts: Mapping[str, int]) -> bool:
    """A reading run that read records and rejected each one (none accepted or stored): not a
    plain success, though nothing failed. A run that read nothing, or a writing run, is not."""
    read = counts.get("read", 0)
    return read > 0 and "actions" not in counts and counts.get("rejected", 0) >= read \
        and not counts.get("accepted", 0) and not counts.get("stored", 0)


def resume_time(hhmm: str, now: datetime | None = None) -> datetime:
    """The next moment the clock shows ``hhmm`` ("04:00"): today, or tomorrow when that time
    has passed (a window announced as 02:00-04:00 seen at 03:10 ends today at 04:00)."""
    now = now or datetime.now()
    hour, minute = (int(x) for x in hhmm.split(":"))
    at = now.replace(hour=hour % 24, minute=minute % 60, second=0, microsecond=0)
    return at if at > now else at + timedelta(days=1)


def _account(settings: Settings, bot_cls: type[Any]) -> str:
    from dealerbot.running.context import account_key

    if bot_cls.portal not in settings.portal_names:
        return str(bot_cls.portal)
    return account_key(bot_cls.portal, settings.portal(bot_cls.portal))


def watermark_key(settings: Settings, bot_cls: type[Any]) -> str:
    """The watermark belongs to the bot *and* the portal account it read: pointed at another
    portal or dealer code, an incremental run starts from the beginning, not from this one's."""
    return f"{bot_cls.name}@{hashlib.sha1(_account(settings, bot_cls).encode()).hexdigest()[:16]}"


@contextmanager
def single_instance(settings: Settings, bot_cls: type[Any]) -> Iterator[None]:
    """Hold the lock of ``bot_cls`` for its portal account (a file lock under ``state/locks``),
    so that two processes never run one bot against one account at once.

    Raises:
        AlreadyRunning: another process holds it.
    """
    from filelock import FileLock, Timeout

    from dealerbot.private_files import private_dir

    digest = hashlib.sha1(_account(settings, bot_cls).encode()).hexdigest()[:12]
    lock = FileLock(private_dir(settings.path("state") / "locks") / f"{bot_cls.name}-{digest}.lock", timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise AlreadyRunning(
            f"{bot_cls.name} 正在为同一账号运行，本次不启动；等它结束，或用 dealerbot runs 查看 "
            f"({bot_cls.name} is already running for this portal account)"
        ) from None
    try:
        yield
    finally:
        lock.release()


def _fmt_counts(counts: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in counts.items() if v)


def _shared_pace(settings: Settings, store: Store) -> Callable[[str, int], Pace] | None:
    """A group's workers share each portal account's pace through the group's PostgreSQL
    (:class:`~dealerbot.group.budget.SharedPace`); a single dealership paces in its one process
    (None: the session's own limiter)."""
    if not (settings.is_group and store.engine.dialect.name == "postgresql"):
        return None
    from dealerbot.group.budget import SharedPace

    return lambda account, per_minute: SharedPace(store, account, per_minute)
