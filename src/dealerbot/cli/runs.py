"""``dealerbot run``, ``bots`` and ``runs``: one bot now, the bots there are, the runs there were."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from dealerbot.cli.common import ConfigOpt, app, fail, log_to_console, make_console, say_where, settings_from
from dealerbot.cli.progress import exit_code_for, print_notes, report_failure, run_one, summary_table
from dealerbot.cli.review import print_planned
from dealerbot.errors import ConfigError, DealerbotError

TRIGGER_TEXT = {"manual": "手动", "schedule": "定时", "catch-up": "补运行", "postponed": "推迟后", "console": "控制台",
                "demo": "演示"}


@app.command()
def run(
    bot: Annotated[str, typer.Argument(help="机器人名称（见 dealerbot bots）")],
    full: Annotated[bool, typer.Option("--full", help="全量读取，而不只读取上次运行后的变化")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="dms-rekey：填写表单但不保存，报告将写入的内容（演练）")] = False,
    headed: Annotated[bool, typer.Option("--headed", help="显示浏览器窗口")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="在终端显示调试日志")] = False,
    input_file: Annotated[Path | None, typer.Option("--input", help="本次运行的输入数据（CSV 或 XLSX，首行为列名），供需要输入的机器人使用")] = None,
    config: ConfigOpt = None,
) -> None:
    """立即运行一个机器人，显示进度。

    Run one bot now, with a live progress bar.

    Exit 0 on success; 1 when the portal or network failed (evidence folder printed); 2 when the
    configuration is wrong (wrong password, selector file, missing credentials); 75 when the run
    was postponed (the portal's maintenance window: run again after the time printed); 65 when
    every record it read was rejected (全部被拒绝: the reasons are in the review workbook).
    """
    from dealerbot.running.registry import get_bot

    settings = settings_from(config, store_needed=True)
    say_where(settings)
    log_to_console(settings, verbose)
    console = make_console()
    try:
        cls = get_bot(bot, home=settings.home)  # an unknown name is said before any progress bar is drawn
        if dry_run and "dry_run" not in cls.options:
            raise ConfigError(f"bot '{bot}' only reads: --dry-run is for bots that write (dms-rekey)")
        if input_file is not None and "input" not in cls.options:
            raise ConfigError(f"机器人 '{bot}' 不读取输入文件 (bot '{bot}' takes no --input)")
        options: dict[str, Any] = {"dry_run": dry_run, "input": str(input_file.resolve()) if input_file else None}
        result = run_one(settings, bot, console, full=full, headed=headed, options=options)
    except DealerbotError as exc:
        raise fail(str(exc)) from None
    console.print(summary_table([result]))
    print_notes(console, [result])
    if dry_run and result.ok:
        print_planned(settings, console, "演练：以下操作将被写入DMS（dry run: what would be written）", ("approved",))
    if not result.ok or result.status == "all_rejected":  # all_rejected: finished, not a plain success
        report_failure(console, result)
        raise typer.Exit(exit_code_for([result]))


@app.command()
def bots(config: ConfigOpt = None) -> None:
    """列出所有机器人。

    List the bots that exist (the shipped ones and the project folder's bots/)."""
    from dealerbot.project_folder import project_home
    from dealerbot.running.bot_list import bot_summaries

    try:  # the project folder only: the settings are not needed to list its bots (`doctor` checks them)
        found = bot_summaries(project_home(config))  # from the cache while no bot changed: none imported
    except DealerbotError as exc:
        raise fail(str(exc)) from None
    table = Table(title="机器人 (bots)")
    for col in ("名称 (name)", "门户 (portal)", "记录类型 (records)", "增量 (incremental)"):
        table.add_column(col, no_wrap=True)
    table.add_column("说明 (description)", overflow="fold")
    for name, bot in found.items():
        records = "、".join(bot.records) or "（写入）"
        table.add_row(name, ", ".join(bot.portals), records, "是" if bot.incremental else "否", bot.description)
    make_console().print(table)


@app.command()
def flows(config: ConfigOpt = None) -> None:
    """列出所有流程（sync 运行 [flows] enabled 中的流程）。

    List the declared flows (the shipped orders and the project folder's bots/ Flows), whether
    each is switched on, its bots and its approvals from the settings."""
    from dealerbot.flows.registry import discover_flows, flow_policy

    settings = settings_from(config)
    try:
        found = discover_flows(settings.home)
        policies = {name: flow_policy(flow, settings) for name, flow in found.items()}
    except DealerbotError as exc:
        raise fail(str(exc)) from None
    table = Table(title="流程 (flows)")
    for col in ("名称 (name)", "流程", "已开启", "读取 (read bots)", "写入 (writer)"):
        table.add_column(col, no_wrap=True)
    table.add_column("操作（*需审核）", overflow="fold")
    for name, flow in found.items():
        policy = policies[name]
        kinds = "、".join(f"{flow.kind_text(k)}{'*' if k in policy.approval_required else ''}"
                         + ("" if k in policy.enabled else "（未启用）") for k in flow.kinds)
        table.add_row(name, flow.title, "是" if name in settings.flows.enabled else "否", ", ".join(flow.read_bots),
                      flow.writer_bot, kinds)
    make_console().print(table)


@app.command()
def runs(
    limit: Annotated[int, typer.Option("--limit", "-n", help="显示多少条")] = 20,
    bot: Annotated[str | None, typer.Option("--bot", help="只看这个机器人")] = None,
    config: ConfigOpt = None,
) -> None:
    """运行记录，最新的在前。

    Run history, newest first."""
    from dealerbot.store import Store

    settings = settings_from(config, store_needed=True)
    try:
        with Store.open(settings.store_url, settings.store_code) as store:
            store.close_abandoned_runs()  # a killed run shows as such, not as 运行中
            history = store.runs(limit, bot)
    except DealerbotError as exc:
        raise fail(str(exc)) from None
    from sqlalchemy.engine import make_url

    from dealerbot.status_text import STATUS_TEXT

    if not history:
        make_console().print("还没有运行记录 (no runs yet): dealerbot run <bot>，或 dealerbot sync")
        return
    # Fits 80 columns (issue #22): no vertical rules, the trigger under the run id, two-line count
    # headers; the run id and start time never cut (the id folds rather than loses its end).
    table = Table(title="运行记录 (runs)", caption=escape(make_url(settings.store_url).render_as_string(hide_password=True)),
                  box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0))
    table.add_column("运行编号 / 触发", overflow="fold")
    table.add_column("开始", no_wrap=True)
    table.add_column("秒", justify="right", no_wrap=True)
    table.add_column("状态", no_wrap=True)
    table.add_column("读取/\n写入", justify="right", no_wrap=True)
    table.add_column("拒绝/\n失败", justify="right", no_wrap=True)
    for r in history:
        seconds = f"{(r.ended_at - r.started_at).total_seconds():.0f}" if r.ended_at else "-"
        colour = {"succeeded": "green", "failed": "red", "portal_changed": "red"}.get(r.status, "yellow")
        writer = "actions" in r.counts  # a bot that writes: what it wrote and what failed
        trigger = TRIGGER_TEXT.get(r.trigger, r.trigger) + (f" {r.job}" if r.job else "")
        table.add_row(
            f"{r.run_id}\n[dim]{escape(trigger)}[/]", f"{r.started_at:%m-%d %H:%M}", seconds,
            f"[{colour}]{STATUS_TEXT.get(r.status, r.status)}[/]",
            str(r.counts.get("verified" if writer else "read", 0)), str(r.counts.get("failed" if writer else "rejected", 0)),
        )
    console = make_console()
    console.print(table)
    for r in history:
        if r.error:
            console.print(f"[{'yellow' if r.status == 'postponed' else 'red'}]{r.run_id}[/] {escape(r.error)}")
            if r.resume_after:
                console.print(f"  可在 {r.resume_after:%m-%d %H:%M} 后再运行 (resume after)")
            if r.evidence_dir:
                console.print(f"  失败证据 (evidence): {escape(r.evidence_dir)}")
    for note in history[0].notes:  # the newest run's notes (every run would repeat them)
        console.print(f"[yellow]注意 (note)[/] {history[0].run_id}: {escape(note)}")
