"""``dealerbot worker`` and ``group status|run``: a dealership group's task engine."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.markup import escape
from rich.table import Table

from dealerbot.cli.common import ConfigOpt, app, fail, log_to_console, make_console, settings_from
from dealerbot.errors import DealerbotError

if TYPE_CHECKING:
    from dealerbot.config import Settings

T = TypeVar("T")

group_app = typer.Typer(help="集团：多门店共用一个数据库、一个时间表 (a dealership group's stores).", no_args_is_help=True)


# -- a dealership group ----------------------------------------------------------------------

def _group_settings(config: Path | None) -> Settings:
    from dealerbot.group.engine import require_group

    settings = settings_from(config)
    try:
        require_group(settings)
    except DealerbotError as exc:
        raise fail(str(exc)) from None
    return settings


def _group_call(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` (a coroutine); a group that cannot work exits 2 with the reason (1 when
    it failed while working: a supervisor should start it again)."""
    import asyncio

    from dealerbot.errors import SystemFailure

    try:
        return asyncio.run(main)
    except SystemFailure as exc:
        raise fail(str(exc), 1) from None
    except DealerbotError as exc:
        raise fail(str(exc)) from None


@app.command("worker")
def worker_command(
    queues: Annotated[str | None, typer.Option(
        "--queues", "-q", help="逗号分隔的队列，例如 store.S01,shared（默认：本店队列和共享队列；未指定门店时为全部队列）",
    )] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, max=16, help="同时运行的任务数")] = 1,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="在终端显示调试日志")] = False,
    config: ConfigOpt = None,
) -> None:
    """集团：运行工作进程，执行排队的任务（Ctrl-C 或 SIGTERM 停止：正在运行的机器人先完成当前记录）。

    A dealership group's worker: runs the jobs of its queues (its store's and the shared one by
    default) until Ctrl-C or SIGTERM; then running bots stop at their next safe point, and a job
    cut short runs again on another worker. Jobs of a worker that died are taken over."""
    from dealerbot.group.engine import GroupEngine, default_queues

    settings = _group_settings(config)
    log_to_console(settings, verbose)
    wanted = [q.strip() for q in queues.split(",") if q.strip()] if queues else default_queues(settings)
    known = [settings.store_queue(code) for code in settings.stores] + [settings.group.shared_queue]
    unknown = [q for q in wanted or [] if q not in known]
    if unknown:
        raise fail(f"没有队列 {', '.join(unknown)}：可用的队列有 {', '.join(known)} (no such queue)")

    async def serve() -> None:
        import asyncio

        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, AttributeError):
                loop.add_signal_handler(sig, stopping.set)
        async with GroupEngine(settings, report=lambda line: make_console().print(escape(line))) as engine:
            make_console().print(f"工作进程已启动：队列 {', '.join(wanted) if wanted else '全部'}；按 Ctrl-C 停止 (worker running)")
            await engine.serve(wanted, concurrency, stopping=stopping)

    _group_call(serve())
    make_console().print("工作进程已停止 (worker stopped)")


@group_app.command("status")
def group_status(config: ConfigOpt = None) -> None:
    """集团各门店状态：最近同步、失败、待审核、队列中的任务、在线的工作进程。

    Every store of the group: last run and last success, failures in the last 24 hours,
    actions waiting for review, jobs queued and running; and the workers alive."""
    from dealerbot.group.status import group_status as collect
    from dealerbot.status_text import STATUS_TEXT

    settings = _group_settings(config)
    status = _group_call(collect(settings))
    table = Table(title=f"集团门店 (stores){'：' + escape(settings.group.name) if settings.group.name else ''}")
    for col in ("门店", "名称", "队列", "最近运行", "结果", "最近成功", "24小时失败", "待审核", "排队", "运行中"):
        table.add_column(col, no_wrap=col in ("最近运行", "最近成功"))
    for row in status.stores:
        table.add_row(
            escape(row.code), escape(row.name), escape(row.queue),
            f"{row.last_run:%m-%d %H:%M}" if row.last_run else "-",
            STATUS_TEXT.get(row.last_status or "", row.last_status or "-"),
            f"{row.last_success:%m-%d %H:%M}" if row.last_success else "从未 (never)",
            str(row.failed_24h) if row.failed_24h else "0", str(row.awaiting_review),
            str(row.queued), str(row.running),
        )
    console = make_console()
    console.print(table)
    console.print(f"工作进程 (workers alive): {len(status.workers)}；共享队列 {escape(settings.group.shared_queue)} "
                  f"排队 {status.shared_queued}，运行中 {status.shared_running}")


@group_app.command("run")
def group_run(
    store: Annotated[str, typer.Argument(help="门店代码；all 表示全部门店")],
    bot: Annotated[str, typer.Argument(help="机器人名称，或 sync（整条同步）")] = "sync",
    full: Annotated[bool, typer.Option("--full", help="全量读取（忽略上次读到的位置）")] = False,
    config: ConfigOpt = None,
) -> None:
    """集团：把一次运行放入门店的队列，由工作进程执行。

    Queue a run of BOT (default: the whole sync) for STORE (or all); a worker runs it."""
    from dealerbot.group.engine import GroupEngine

    settings = _group_settings(config)
    stores = list(settings.stores) if store == "all" else [store]

    async def defer() -> list[tuple[str, int | None]]:
        async with GroupEngine(settings) as engine:
            return [(code, await engine.defer(code, bot, job=f"manual-{bot}", options={"full": full} if full else {}))
                    for code in stores]

    console = make_console()
    for code, job_id in _group_call(defer()):
        if job_id is None:
            console.print(f"{escape(code)}: 已有同样的任务在排队，未重复加入 (already queued)")
        else:
            console.print(f"{escape(code)}: 已排队，任务 {job_id} (queued as job {job_id})")
