"""Messages to people after runs: a failed or postponed run, new rejects, approvals waiting, a
skipped run and, when asked, success. Sent through apprise to the URLs in ``[notify] urls``
(e-mail ``mailtos://``, WeCom ``wecombot://``, DingTalk ``dingtalk://``, a webhook ``json://``...).

A message is a title and two or three short lines of Simplified Chinese, written for a clerk
reading it on a phone: what happened and what to do, in the words the console uses for it
(:mod:`dealerbot.failure_text`), and a link to the console's page for it when the console's
address is configured (``[console] public_url``). It names no folder on the server, no command
to type and nothing in English: the technical detail is on the console's run page.

Only news is sent: a rejected record a message has named is not named again until its reject
changes (the store's ``reported_rejects``, :meth:`dealerbot.store.Store.unreported_rejects`);
a run whose rejects are all known sends no reject message. Customers the plan leaves out for
lack of consent (the law, nothing to do) are never announced.

Sending never fails a run: an error is logged (with the URL's secrets left out) and the run's
outcome stands. Personal data never goes into a message (reasons are masked).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from loguru import logger

from dealerbot.config import NotifySettings
from dealerbot.failure_text import explain

if TYPE_CHECKING:
    from loguru import Logger

    from dealerbot.running.runner import RunResult
    from dealerbot.store import Store

TITLES = {
    "calendar": "节假日安排尚未录入", "failed": "失败", "postponed": "已推迟", "rejects": "有新的被拒绝记录", "review": "有待审核的操作",
    "skipped": "未运行", "succeeded": "成功", "needs_person": "等待人工登录", "portal_changed": "门户页面改版，已停止写入",
    "all_rejected": "读取的记录全部被拒绝",
}
KINDS_LISTED = 3  # kinds of reject (or dropped approvals) named in a message's line; the rest counted
DROPPED_LISTED = 3


@dataclass(frozen=True)
class Message:
    """One notification: its event (a key of :data:`TITLES`), title and body."""

    event: str
    title: str
    body: str


def _where(url: str) -> str:
    """A notification URL without its credentials or tokens, for logs: ``scheme://host``."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}"


def console_link(console: str, path: str = "/") -> str:
    """The console page ``path`` at the configured address ``console`` (``[console]
    public_url``); "" when no address is configured (the message then carries no link)."""
    if not console:
        return ""
    return console.rstrip("/") + quote(path, safe="/")


def run_link(console: str, run_id: str) -> str:
    """The run's page on the console ("" without a configured address)."""
    return console_link(console, f"/runs/{run_id}")


_ENGLISH = re.compile(r"\s*\((?=[^()]*[A-Za-z])[^()\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]*\)")  # "中文 (english)"
_COMMAND = re.compile(r"dealerbot\s+[a-z]")
_MOBILE_OR_ID = re.compile(r"\d{6,}[\dXx]?")
_PATH = re.compile(r"(?<![:/\w.])(?:[A-Za-z]:)?(?:[\\/][^\\/\s（）()，,；;：:]+){2,}")  # a folder or file on the server


def in_chinese(text: str) -> str:
    """An operator-facing reason as a message says it: its English glosses and any
    clause naming a command to type left out, a path on the server shortened to the file's name, e.g. "oem-customers 正在为同一账号运行，本次不启动；
    等它结束，或用 dealerbot runs 查看 (… already running)" -> "oem-customers 正在为同一账号运行，
    本次不启动；等它结束"."""
    text = _PATH.sub(lambda m: re.split(r"[\\/]", m.group())[-1], " ".join(text.split()))
    while _ENGLISH.search(text):
        text = _ENGLISH.sub("", text)
    clauses = re.split(r"(?<=[；。])", text)
    kept = []
    for clause in clauses:
        if _COMMAND.search(clause):
            head = re.split(r"[，,]\s*(?=[^，,]*dealerbot\s+[a-z])", clause)[0]
            if head and not _COMMAND.search(head):
                kept.append(head.rstrip("，,：: "))
            continue
        kept.append(clause)
    return "".join(kept).strip().rstrip("；，,：:")


def _suggestion(action: str) -> str:
    """The sentence of a failure's 建议操作 that says what to do, as a message says it."""
    sentences = [s for s in re.split(r"(?<=。)", action) if s.strip()]
    last = sentences[-1] if sentences else action
    return last.replace("在这里", "在控制台").replace("本页", "控制台运行页")


def _tally(counts: Mapping[str, int]) -> str:
    if "actions" in counts:
        return (f"写入 {counts.get('actions', 0)} 条，已核对 {counts.get('verified', 0)}，"
                f"失败 {counts.get('failed', 0)}，未完成 {counts.get('unfinished', 0)}")
    return (f"读取 {counts.get('read', 0)} 条，接受 {counts.get('accepted', 0)}，"
            f"需核对 {counts.get('flagged', 0)}，拒绝 {counts.get('rejected', 0)}")


def _reason_kind(reason: str) -> str:
    """What kind of reject a reason is ("身份证校验码错误"), without the record's values."""
    head = re.split(r"[：:（(，,「\"']", reason, maxsplit=1)[0].strip()  # before any quoted value
    head = _MOBILE_OR_ID.sub("…", head)
    return head[:20] or "其他原因"


def _kinds(reasons: Iterable[str]) -> str:
    tally: dict[str, int] = {}
    for reason in reasons:
        kind = _reason_kind(reason)
        tally[kind] = tally.get(kind, 0) + 1
    ranked = sorted(tally.items(), key=lambda kv: -kv[1])
    said = "、".join(f"{kind} {n} 条" for kind, n in ranked[:KINDS_LISTED])
    return said + (f" 等 {len(ranked)} 类" if len(ranked) > KINDS_LISTED else "")


def _body(*lines: str) -> str:
    return "\n".join(line for line in lines if line)


def run_messages(result: RunResult, console: str = "",
                 new_rejects: Sequence[Mapping[str, Any]] | None = None) -> list[Message]:
    """The messages a finished run (a :class:`~dealerbot.running.runner.RunResult`) calls for.

    ``console`` is the console's address (``[console] public_url``: the messages link to the
    run's page; "" for none); ``new_rejects`` the run's rejects no message has named yet (see
    :meth:`dealerbot.store.Store.unreported_rejects`; None: every reject of the run is news).
    """
    counts = result.counts or {}
    link = run_link(console, result.run_id)
    where = f"详情：{link}" if link else ""
    out = []
    if result.status in ("failed", "postponed", "needs_person", "portal_changed", "all_rejected"):
        advice = explain(result.error_class, result.status, result.resume_after)
        if advice is not None:
            out.append(Message(result.status, f"dealerbot：{result.bot} {TITLES[result.status]}",
                               _body(_changed_screen(result) or advice.title, f"建议：{_suggestion(advice.action)}", where)))
    elif result.status == "skipped":
        reason = in_chinese(result.error or "")
        out.append(Message("skipped", f"dealerbot：{result.bot} {TITLES['skipped']}", _body(reason, where)))
    elif result.status == "succeeded":
        writer = "actions" in counts
        if writer and counts.get("failed", 0):
            out.append(Message("rejects", f"dealerbot：{result.bot} 有 {counts['failed']} 条操作写入失败",
                               _body("原因见审核工作簿的“写入结果”表", where)))
        elif not writer:
            fresh = list(new_rejects) if new_rejects is not None else None
            n = len(fresh) if fresh is not None else counts.get("rejected", 0)
            if n:
                kinds = _kinds(str(r.get("reason", "")) for r in fresh) if fresh else ""
                out.append(Message("rejects", f"dealerbot：{result.bot} 有 {n} 条新的被拒绝记录",
                                   _body(_masked(kinds), where or "原因见审核工作簿的“无法处理”表")))
        out.append(Message("succeeded", f"dealerbot：{result.bot} {TITLES['succeeded']}", _body(_tally(counts), where)))
    return out


def _changed_screen(result: RunResult) -> str:
    """The operator's line on a "portal_changed" run: which screen, in plain Chinese ("" else)."""
    changed = getattr(result, "changed", None) or {}
    if result.status != "portal_changed" or not changed.get("missing"):
        return ""
    shown = changed.get("screen_title") or changed.get("screen") or "写入"
    return f"「{_masked(str(shown))}」页面有 {len(changed['missing'])} 项找不到，本次没有写入任何数据，计划的操作留到下次"


def integrator_message(result: RunResult, console: str = "") -> Message | None:
    """The integrator's message on a "portal_changed" run (``[notify] integrator_urls``): the
    portal, the screen, the missing selector names and where the masked screenshot is; None for
    any other run, and for a miss the portal's previous canary found the same (already told)."""
    changed = getattr(result, "changed", None) or {}
    if result.status != "portal_changed" or not changed.get("missing") or not changed.get("news", True):
        return None
    link = run_link(console, result.run_id)
    portal, screen = changed.get("portal", ""), changed.get("screen", "")
    title = changed.get("screen_title", "")
    return Message("portal_changed", f"dealerbot：门户 {portal} 页面改版，{result.bot} 已停止写入",
                   _masked(_body(
                       f"页面：{screen}" + (f"（{title}）" if title else ""),
                       f"找不到的选择器：{'、'.join(changed['missing'])}",
                       f"运行：{result.run_id}（截图和页面已遮盖个人信息，见运行页）",
                       f"请更新 selectors/{portal}.yaml，再运行 dealerbot selectors check {portal}",
                       f"详情：{link}" if link else "")))


def _masked(text: str) -> str:
    from dealerbot.logsetup import Masker

    return Masker()(text) if text else text


def review_message(waiting: int, workbook: str | None = None, dropped: Sequence[tuple[str, str]] = (),
                   console: str = "") -> Message:
    """Actions that wait for a person's approval in the review workbook (``workbook``: its file
    name, as the console's 今日 page offers it for download); ``dropped``: approvals a person
    gave that a changed plan superseded, as (OEM order no, what changed), named so that nobody's
    decision is undone without their knowing; ``console``: the console's address."""
    if waiting:
        title = f"dealerbot：{waiting} 条操作等待审核"
    else:
        title = f"dealerbot：{len(dropped)} 条已审核的操作因计划变化作废"
    name = f" {workbook}" if workbook else ""
    lines = [f"请在控制台下载审核工作簿{name}，在“审核”列选择后上传" if waiting else ""]
    if dropped:
        listed = "、".join(f"{order_no}（{_masked(why)[:60]}）" for order_no, why in dropped[:DROPPED_LISTED])
        more = f" 等 {len(dropped)} 条" if len(dropped) > DROPPED_LISTED else ""
        lines.append(f"原已审核、因计划变化作废 {len(dropped)} 条，需重新审核：{listed}{more}")
    link = console_link(console, "/review" if dropped else "/")
    if link:
        lines.append(f"控制台：{link}")
    return Message("review", title, _body(*lines))


ATTENTION_LISTED = 10  # the keys a message names per flow (the workbook's 需人工 sheet has them all)


def attention_message(message: Message, listed: Mapping[str, Sequence[tuple[str, str]]], waiting: bool) -> Message:
    """``message`` (:func:`review_message`) with what each flow lists for a person besides approvals
    (by flow title: (key, why): the why's first clause, e.g. leads past their deadline), first; its title says so when
    nothing waits for approval. Keys and reasons only: a flow never lists personal data here."""
    total = sum(len(rows) for rows in listed.values())
    parts = []
    for title, rows in listed.items():
        named = "；".join(f"{key}（{_masked(why).split('，', 1)[0][:40]}）" for key, why in rows[:ATTENTION_LISTED])
        more = f" 等 {len(rows)} 条" if len(rows) > ATTENTION_LISTED else ""
        parts.append(f"{title}需人工处理 {len(rows)} 条：{named}{more}")
    title = message.title if waiting else f"dealerbot：{total} 条需人工处理"
    body = _body("　".join(parts), message.body if waiting else "")  # one line, however many flows
    return replace(message, title=title, body=body)


def firing_message(status: str, title: str, reason: str, run_id: str | None = None, console: str = "") -> Message:
    """A timetable's message that is not about a run's outcome (a firing ``skipped``, a job or
    the store that cannot start: ``failed``): ``title``, why in Chinese (no command, no folder),
    and the console's page of the recorded run (else its timetable page) when configured."""
    link = run_link(console, run_id) if run_id else console_link(console, "/schedules")
    return Message(status, title, _body(in_chinese(reason), f"详情：{link}" if link else ""))


async def notify_run(settings: NotifySettings, console: str, store: Store | None, result: RunResult,
                     log: Logger = logger) -> int:
    """Send the messages ``result`` calls for; a reading run's reject message names only the
    rejects no earlier message named (``store``), and those are remembered once it was sent; a
    "portal_changed" run's screen and missing names also go to ``integrator_urls`` (once per miss).
    How many messages went out. Never raises (a failure to send or to remember is logged)."""
    notifier = Notifier(settings, log)
    fresh: list[dict[str, Any]] | None = None
    wants_rejects = notifier.enabled and "rejects" in settings.on and result.ok and "actions" not in result.counts
    if store is not None and wants_rejects and result.counts.get("rejected", 0):
        try:
            fresh = await asyncio.to_thread(store.unreported_rejects, result.bot, result.run_id)
        except Exception as exc:  # noqa: BLE001 - a message never fails a run
            log.error("could not tell new rejects from reported ones: {}", type(exc).__name__)
    elif wants_rejects:
        fresh = []
    messages = run_messages(result, console, fresh)
    rejects = [m for m in messages if m.event == "rejects"]
    sent = await notifier.send([m for m in messages if m.event != "rejects"])
    for_integrator = integrator_message(result, console)  # a changed portal: the names, for who maintains them
    if for_integrator is not None and settings.integrator_urls:
        sent += await Notifier(settings.model_copy(update={"urls": settings.integrator_urls}), log).send([for_integrator])
    if rejects:
        told = await notifier.send(rejects)
        sent += told
        if told and store is not None and fresh:  # not sent: named again next time
            try:
                await asyncio.to_thread(store.mark_rejects_reported, result.bot, result.run_id, fresh)
            except Exception as exc:  # noqa: BLE001 - a message never fails a run
                log.error("could not remember the rejects reported: {}", type(exc).__name__)
    return sent


class Notifier:
    """Sends :class:`Message` s to ``[notify] urls`` for the events in ``[notify] on``."""

    def __init__(self, settings: NotifySettings, log: Logger = logger) -> None:
        self.settings = settings
        self.log = log

    @property
    def enabled(self) -> bool:
        return bool(self.settings.urls)

    def wanted(self, messages: Iterable[Message]) -> list[Message]:
        return [m for m in messages if m.event in self.settings.on]

    async def send(self, messages: Sequence[Message]) -> int:
        """Send the wanted ``messages``; how many went out. Never raises: a message that could
        not be sent is logged as an error."""
        wanted = self.wanted(messages)
        if not wanted or not self.enabled:
            return 0
        sent = 0
        for message in wanted:
            try:
                ok = await asyncio.wait_for(
                    asyncio.to_thread(self._send_now, message), timeout=self.settings.timeout_seconds + 5,
                )
            except Exception as exc:  # noqa: BLE001 - a message never fails a run
                self.log.error("notification '{}' not sent: {}", message.title, type(exc).__name__)
                continue
            if ok:
                sent += 1
            else:
                self.log.error("notification '{}' not sent to {}", message.title,
                               ", ".join(_where(u) for u in self.settings.urls))
        return sent

    def _send_now(self, message: Message) -> bool:
        import logging

        import apprise  # heavy: only when a message goes out

        logging.getLogger("apprise").setLevel(logging.CRITICAL)  # its own lines may carry a URL; ours do not
        apobj = apprise.Apprise(asset=apprise.AppriseAsset(async_mode=False))
        for url in self.settings.urls:
            if not apobj.add(url):
                self.log.error("notification URL not understood: {}", _where(url))
        if not len(apobj):
            return False
        kind = apprise.NotifyType.FAILURE if message.event in ("failed", "skipped") else (
            apprise.NotifyType.SUCCESS if message.event == "succeeded" else apprise.NotifyType.WARNING)
        return bool(apobj.notify(title=message.title, body=message.body, notify_type=kind))
