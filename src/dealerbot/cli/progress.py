"""A run's live progress bars, its summary table and its exit code (``run``, ``sync``, ``demo``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dealerbot.status_text import progress_of

if TYPE_CHECKING:
    from dealerbot.config import Settings
    from dealerbot.running.runner import RunResult


class RunProgress:
    """Rich progress bars fed by runs' counts: one line per bot (:meth:`track`)."""

    def __init__(self, console: Console) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )

    def track(self, label: str) -> Callable[[dict[str, int]], None]:
        """A new bar for ``label``; returns the ``on_progress`` callback that feeds it."""
        task = self.progress.add_task(label, total=None, detail="")

        def update(counts: dict[str, int]) -> None:
            if "actions" in counts:  # a bot that writes
                detail = f"已核对 {counts.get('verified', 0)} · 失败 {counts.get('failed', 0)} · 新客户 {counts.get('customers_created', 0)}"
            else:
                detail = f"页 {counts.get('pages', 0)} · 拒绝 {counts.get('rejected', 0)} · 需核对 {counts.get('flagged', 0)}"
            done, total = progress_of(counts)
            self.progress.update(task, completed=done, total=total, detail=detail)

        return update

    def __enter__(self) -> RunProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


SUMMARY_COLUMNS = (
    ("read", "读取"), ("accepted", "接受"), ("repaired", "修正"), ("flagged", "复核"),
    ("rejected", "拒绝"), ("pages", "页"), ("actions", "操作"), ("verified", "已核对"), ("found", "已存在"),
    ("customers_created", "新客户"), ("failed", "失败"), ("unfinished", "未完成"), ("rehearsed", "演练"),
    ("retries", "重试"), ("relogins", "重登"),
)


def summary_table(results: list[RunResult]) -> Table:
    table = Table(title="运行结果 (run summary)", min_width=60)
    table.add_column("机器人", no_wrap=True)
    table.add_column("状态", no_wrap=True)
    shown = [(k, h) for k, h in SUMMARY_COLUMNS if k == "read" or any(r.counts.get(k) for r in results)]
    for _, header in shown:
        table.add_column(header, justify="right", no_wrap=True)
    from dealerbot.status_text import STATUS_TEXT

    for r in results:
        colour = {"succeeded": "green", "postponed": "yellow", "needs_person": "yellow", "all_rejected": "yellow"}.get(r.status, "red")
        table.add_row(r.bot, f"[{colour}]{STATUS_TEXT.get(r.status, r.status)}[/]", *(str(r.counts.get(k, 0)) for k, _ in shown))
    table.caption = "runs: " + ", ".join(r.run_id for r in results)
    return table
EXIT_POSTPONED = 75  # sysexits' EX_TEMPFAIL: try again later (the portal's maintenance window)
EXIT_NEEDS_PERSON = 76  # a login waits for a person (an SMS code, a captcha, a new password)
EXIT_ALL_REJECTED = 65  # sysexits' EX_DATAERR: every record read was rejected (see the reasons)


def exit_code_for(results: list[RunResult]) -> int:
    """2 for a configuration problem, 1 for a failure (the portal changed included), 76 when a
    login waits for a person, 75 when postponed, 65 when every record was rejected, 0 otherwise."""
    if any(r.error_kind == "config" for r in results):
        return 2
    if any(r.status in ("failed", "portal_changed") for r in results):
        return 1
    for status, code in (("needs_person", EXIT_NEEDS_PERSON), ("postponed", EXIT_POSTPONED),
                         ("all_rejected", EXIT_ALL_REJECTED)):
        if any(r.status == status for r in results):
            return code
    return 0


def print_notes(console: Console, results: list[RunResult]) -> None:
    for r in results:
        for note in r.notes:
            console.print(f"[yellow]注意 (note)[/] {r.bot}: {escape(note)}")


def run_one(
    settings: Settings, bot: str, console: Console, *, full: bool = False, headed: bool = False,
    trigger: str = "manual", passwords: dict[str, str] | None = None, options: dict[str, Any] | None = None,
) -> RunResult:
    import asyncio

    from dealerbot.running.runner import run_bot

    with RunProgress(console) as bar:
        return asyncio.run(
            run_bot(bot, settings, full=full, headed=headed, trigger=trigger, passwords=passwords,
                    on_progress=bar.track(bot), options=options)
        )


def report_failure(console: Console, result: RunResult) -> None:
    if result.status == "postponed":
        when = f"，可在 {result.resume_after:%m-%d %H:%M} 后再运行" if result.resume_after else ""
        console.print(f"[bold yellow]{result.bot} 已推迟 (postponed){when}[/]：{escape(str(result.error))}")
        return
    if result.status == "all_rejected":
        from dealerbot.failure_text import ALL_REJECTED

        console.print(f"[bold yellow]{result.bot} {ALL_REJECTED.title} (every record rejected)[/]：{ALL_REJECTED.action}")
        return
    console.print(f"[bold red]{result.bot} 失败 (failed)[/]：{escape(str(result.error))}")
    if result.evidence:
        console.print(f"失败证据 (evidence): {escape(str(result.run_dir))}")
        for p in result.evidence:
            console.print(f"  {escape(str(p))}")
    if result.run_dir:
        console.print(f"运行日志 (run log): {escape(str(result.run_dir / 'run.log'))}")
