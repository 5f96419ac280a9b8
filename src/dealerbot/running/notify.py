"""Messages to people after runs: a failed or postponed run, rejects, approvals waiting, a
skipped run and, when asked, success. Sent through apprise to the URLs in ``[notify] urls``
(e-mail ``mailtos://``, WeCom ``wecombot://``, DingTalk ``dingtalk://``, a webhook ``json://``...).

A message is short Simplified Chinese: the bot, what happened, the counts, the reason and where
the evidence is. Sending never fails a run: an error is logged (with the URL's secrets left
out) and the run's outcome stands. Personal data never goes into a message (the run's masker
has already masked the reason).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from loguru import logger

from dealerbot.config import NotifySettings

if TYPE_CHECKING:
    from pathlib import Path

    from loguru import Logger

    from dealerbot.running.runner import RunResult

TITLES = {
    "calendar": "节假日安排尚未录入", "failed": "失败", "postponed": "已推迟", "rejects": "有被拒绝的记录", "review": "有待审核的操作",
    "skipped": "未运行", "succeeded": "成功",
}


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


def run_messages(result: RunResult) -> list[Message]:
    """The messages a finished run (a :class:`~dealerbot.running.runner.RunResult`) calls for."""
    counts = result.counts or {}
    writer = "actions" in counts
    if writer:
        tally = (f"操作 {counts.get('actions', 0)}，已核对 {counts.get('verified', 0)}，"
                 f"失败 {counts.get('failed', 0)}，未完成 {counts.get('unfinished', 0)}")
    else:
        tally = (f"读取 {counts.get('read', 0)}，接受 {counts.get('accepted', 0)}，"
                 f"复核 {counts.get('flagged', 0)}，拒绝 {counts.get('rejected', 0)}")
    head = f"dealerbot {result.bot}"
    lines = [f"运行 {result.run_id}", tally]
    if result.error:
        lines.append(f"原因：{result.error}")
    if result.status == "postponed" and getattr(result, "resume_after", None):
        lines.append(f"可在 {result.resume_after:%m-%d %H:%M} 后再运行")
    if result.evidence and result.run_dir:
        lines.append(f"失败证据：{result.run_dir}")
    elif result.run_dir:
        lines.append(f"运行日志：{result.run_dir / 'run.log'}")
    body = "\n".join(lines)
    out = []
    if result.status in ("failed", "postponed", "skipped"):
        out.append(Message(result.status, f"{head} {TITLES[result.status]}", body))
    elif result.status == "succeeded":
        rejected = counts.get("failed", 0) if writer else counts.get("rejected", 0)
        if rejected:
            out.append(Message("rejects", f"{head}：{rejected} 条{TITLES['rejects'][1:]}",
                               body + "\n请打开审核工作簿的“无法处理”表查看原因（dealerbot export）"))
        out.append(Message("succeeded", f"{head} {TITLES['succeeded']}", body))
    return out


DROPPED_LISTED = 10  # approvals dropped named one by one in a message; the rest counted


def review_message(waiting: int, workbook: Path | None = None, dropped: Sequence[tuple[str, str]] = ()) -> Message:
    """Actions that wait for a person's approval in the review workbook; ``dropped``: approvals
    a person gave that a changed plan superseded, as (OEM order no, what changed), named so
    that nobody's decision is undone without their knowing."""
    where = f"\n审核工作簿：{workbook}" if workbook else "\n生成审核工作簿：dealerbot export"
    title = f"dealerbot：{waiting} 条操作等待审核"
    lines = [f"{waiting} 条写入DMS的操作需要人工审核：在“待处理”表的“审核”列选择 同意 / 跳过 / 修改后同意，"
             f"再运行 dealerbot import-review 文件名{where}"]
    if dropped:
        title += f"（其中原已审核、因计划变化作废 {len(dropped)} 条）"
        lines.append(f"以下 {len(dropped)} 条原已审核的操作因计划变化已作废（需要时请重新审核）：")
        from dealerbot.logsetup import Masker

        mask = Masker()  # a reason may quote a mobile or an ID number (a reject at reading)
        lines += [f"· {order_no}：{mask(why)}" for order_no, why in dropped[:DROPPED_LISTED]]
        if len(dropped) > DROPPED_LISTED:
            lines.append(f"· 另有 {len(dropped) - DROPPED_LISTED} 条，见审核工作簿“待处理”表的“问题说明”")
    return Message("review", title, "\n".join(lines))


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
