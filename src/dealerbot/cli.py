"""The ``dealerbot`` command (Typer + rich). Thin: parses, calls the runner or a service, renders."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from dealerbot.config import Settings, load_settings
from dealerbot.errors import ConfigError, DealerbotError

app = typer.Typer(
    name="dealerbot",
    help="经销商RPA：在厂家门户（OEM）与DMS之间读取、核对、录入 (RPA bots between the OEM dealer portal and the DMS).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: flags without <bool>, readable in any terminal or log
)
selectors_app = typer.Typer(help="检查选择器文件与门户是否一致 (selector files against a live portal).", no_args_is_help=True)
credentials_app = typer.Typer(help="门户密码（保存在系统钥匙串）(portal passwords in the OS keyring).", no_args_is_help=True)
dictionary_app = typer.Typer(help="数据字典：厂家代码 -> DMS代码 (the data dictionary).", no_args_is_help=True)
app.add_typer(selectors_app, name="selectors")
app.add_typer(dictionary_app, name="dictionary")
app.add_typer(credentials_app, name="credentials")
schedule_app = typer.Typer(help="定时任务：schedules/*.yaml（检查、列出、运行调度程序）(timetables).", no_args_is_help=True)
app.add_typer(schedule_app, name="schedule")
group_app = typer.Typer(help="集团：多门店共用一个数据库、一个时间表 (a dealership group's stores).", no_args_is_help=True)
app.add_typer(group_app, name="group")

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="配置文件（默认 ./dealerbot.toml 或 $DEALERBOT_CONFIG）")]


def _console() -> Console:
    return _make_console()


def _make_console(stderr: bool = False) -> Console:
    """Rich output for people; outside a terminal (cron, a pipe, a log file) plain lines that
    are never wrapped, so that paths and messages stay whole."""
    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty() or os.environ.get("COLUMNS"):
        return Console(stderr=stderr, highlight=False)
    return Console(stderr=stderr, highlight=False, width=240, soft_wrap=True)


def _fail(message: str, code: int = 2) -> typer.Exit:
    _make_console(stderr=True).print(f"[bold red]错误 (error):[/] {escape(message)}")
    return typer.Exit(code)


def _settings(config: Path | None, *, store_needed: bool = False, **overrides: Any) -> Settings:
    """The settings; with ``store_needed`` (a command about one store's data or runs), a
    group's settings must name the store (``--store``).

    Raises:
        typer.Exit: 2 with the reason.
    """
    try:
        settings = load_settings(config, **overrides)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    if store_needed and settings.is_group and settings.store_code not in settings.stores:
        raise _fail(f"这是集团配置，此命令针对一家门店：请加 --store，例如 dealerbot --store {next(iter(settings.stores))} ..."
                    f"（门店：{', '.join(settings.stores)}）(a group's command for one store needs --store CODE)")
    return settings


def _say_where(settings: Settings) -> None:
    """Without a config file, say loudly which portals and accounts a run will use."""
    if settings.source is None:
        _make_console(stderr=True).print(
            f"[yellow]注意[/]：没有找到 dealerbot.toml，使用内置的演示设置：厂家门户 {settings.oem.url}"
            f"（{settings.oem.dealer_code} / {settings.oem.username}），DMS {settings.dms.url}（{settings.dms.username}）。"
            f"正式使用请 cp dealerbot.example.toml dealerbot.toml 并修改 (no config file: built-in sandbox defaults)"
        )


def _setup_console_logging(settings: Settings, verbose: bool) -> None:
    from dealerbot.logsetup import add_console_sink
    from dealerbot.running.runner import make_masker

    add_console_sink(make_masker(settings, None), "DEBUG" if verbose else "WARNING")


class RunProgress:
    """Rich progress bars fed by runs' counts: one line per bot (:meth:`track`)."""

    def __init__(self, console: Console) -> None:
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

    def track(self, label: str) -> Any:
        """A new bar for ``label``; returns the ``on_progress`` callback that feeds it."""
        task = self.progress.add_task(label, total=None, detail="")

        def update(counts: dict[str, int]) -> None:
            if "actions" in counts:  # a bot that writes
                detail = f"已核对 {counts.get('verified', 0)} · 失败 {counts.get('failed', 0)} · 新客户 {counts.get('customers_created', 0)}"
                done = counts.get("done", 0)
            else:
                detail = f"页 {counts.get('pages', 0)} · 拒绝 {counts.get('rejected', 0)} · 待复核 {counts.get('flagged', 0)}"
                done = counts.get("read", 0)
            total = done if counts.get("finished") else counts.get("expected")
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


def _summary_table(results: list[Any]) -> Table:
    table = Table(title="运行结果 (run summary)", min_width=60)
    table.add_column("机器人", no_wrap=True)
    table.add_column("状态", no_wrap=True)
    shown = [(k, h) for k, h in SUMMARY_COLUMNS if k == "read" or any(r.counts.get(k) for r in results)]
    for _, header in shown:
        table.add_column(header, justify="right", no_wrap=True)
    from dealerbot.running.status_text import STATUS_TEXT

    for r in results:
        colour = {"succeeded": "green", "postponed": "yellow"}.get(r.status, "red")
        table.add_row(r.bot, f"[{colour}]{STATUS_TEXT.get(r.status, r.status)}[/]", *(str(r.counts.get(k, 0)) for k, _ in shown))
    table.caption = "runs: " + ", ".join(r.run_id for r in results)
    return table


TRIGGER_TEXT = {"manual": "手动", "schedule": "定时", "catch-up": "补运行", "postponed": "推迟后", "console": "控制台",
                "demo": "演示"}
EXIT_POSTPONED = 75  # sysexits' EX_TEMPFAIL: try again later (the portal's maintenance window)


def _exit_code(results: list[Any]) -> int:
    """2 for a configuration problem, 1 for a failure, 75 when only postponed, 0 otherwise."""
    if any(r.error_kind == "config" for r in results):
        return 2
    if any(r.status == "failed" for r in results):
        return 1
    return EXIT_POSTPONED if any(r.status == "postponed" for r in results) else 0


def _print_notes(console: Console, results: list[Any]) -> None:
    for r in results:
        for note in r.notes:
            console.print(f"[yellow]注意 (note)[/] {r.bot}: {escape(note)}")


def _run_one(
    settings: Settings, bot: str, console: Console, *, full: bool = False, headed: bool = False,
    trigger: str = "manual", passwords: dict[str, str] | None = None, options: dict[str, Any] | None = None,
) -> Any:
    from dealerbot.running.runner import run_bot

    with RunProgress(console) as bar:
        return asyncio.run(
            run_bot(bot, settings, full=full, headed=headed, trigger=trigger, passwords=passwords,
                    on_progress=bar.track(bot), options=options)
        )


def _report_failure(console: Console, result: Any) -> None:
    if result.status == "postponed":
        when = f"，可在 {result.resume_after:%m-%d %H:%M} 后再运行" if result.resume_after else ""
        console.print(f"[bold yellow]{result.bot} 已推迟 (postponed){when}[/]：{escape(str(result.error))}")
        return
    console.print(f"[bold red]{result.bot} 失败 (failed)[/]：{escape(str(result.error))}")
    if result.evidence:
        console.print(f"失败证据 (evidence): {escape(str(result.run_dir))}")
        for p in result.evidence:
            console.print(f"  {escape(str(p))}")
    if result.run_dir:
        console.print(f"运行日志 (run log): {escape(str(result.run_dir / 'run.log'))}")


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
    was postponed (the portal's maintenance window: run again after the time printed).
    """
    from dealerbot.running.registry import get_bot

    settings = _settings(config, store_needed=True)
    _say_where(settings)
    _setup_console_logging(settings, verbose)
    console = _console()
    try:
        cls = get_bot(bot, home=settings.home)  # an unknown name is said before any progress bar is drawn
        if dry_run and "dry_run" not in cls.options:
            raise ConfigError(f"bot '{bot}' only reads: --dry-run is for bots that write (dms-rekey)")
        if input_file is not None and "input" not in cls.options:
            raise ConfigError(f"机器人 '{bot}' 不读取输入文件 (bot '{bot}' takes no --input)")
        options: dict[str, Any] = {"dry_run": dry_run, "input": str(input_file.resolve()) if input_file else None}
        result = _run_one(settings, bot, console, full=full, headed=headed, options=options)
    except DealerbotError as exc:
        raise _fail(str(exc)) from None
    console.print(_summary_table([result]))
    _print_notes(console, [result])
    if dry_run and result.ok:
        _print_planned(settings, console, "演练：以下操作将被写入DMS（dry run: what would be written）", ("approved",))
    if not result.ok:
        _report_failure(console, result)
        raise typer.Exit(_exit_code([result]))


@app.command()
def bots(config: ConfigOpt = None) -> None:
    """列出所有机器人。

    List the bots that exist (the shipped ones and the project folder's bots/)."""
    from dealerbot.running.bot import bot_entities, bot_portals
    from dealerbot.running.registry import discover

    settings = _settings(config)
    try:
        found = discover(home=settings.home)
    except DealerbotError as exc:
        raise _fail(str(exc)) from None
    table = Table(title="bots")
    for col in ("name", "portal", "records", "incremental"):
        table.add_column(col, no_wrap=True)
    table.add_column("description", overflow="fold")
    for name, cls in found.items():
        records = "、".join(e.title for e in bot_entities(cls)) or "（写入）"
        table.add_row(name, ", ".join(bot_portals(cls)), records, "yes" if cls.incremental else "no", cls.description)
    _console().print(table)


@app.command()
def runs(
    limit: Annotated[int, typer.Option("--limit", "-n", help="显示多少条")] = 20,
    bot: Annotated[str | None, typer.Option("--bot", help="只看这个机器人")] = None,
    config: ConfigOpt = None,
) -> None:
    """运行记录，最新的在前。

    Run history, newest first."""
    from dealerbot.store import Store

    settings = _settings(config, store_needed=True)
    try:
        with Store.open(settings.store_url, settings.store_code) as store:
            store.close_abandoned_runs()  # a killed run shows as such, not as 运行中
            history = store.runs(limit, bot)
    except DealerbotError as exc:
        raise _fail(str(exc)) from None
    from sqlalchemy.engine import make_url

    from dealerbot.running.status_text import STATUS_TEXT

    if not history:
        _console().print("还没有运行记录 (no runs yet): dealerbot run <bot>，或 dealerbot sync")
        return
    table = Table(title="运行记录 (runs)", caption=escape(make_url(settings.store_url).render_as_string(hide_password=True)))
    table.add_column("run", no_wrap=True)
    table.add_column("开始", no_wrap=True)
    table.add_column("秒", justify="right", no_wrap=True)
    table.add_column("状态", no_wrap=True)
    table.add_column("触发", no_wrap=True)
    table.add_column("读取/写入", justify="right", no_wrap=True)
    table.add_column("拒绝/失败", justify="right", no_wrap=True)
    for r in history:
        seconds = f"{(r.ended_at - r.started_at).total_seconds():.0f}" if r.ended_at else "-"
        colour = {"succeeded": "green", "failed": "red"}.get(r.status, "yellow")
        writer = "actions" in r.counts  # a bot that writes: what it wrote and what failed
        table.add_row(
            r.run_id, f"{r.started_at:%m-%d %H:%M}", seconds, f"[{colour}]{STATUS_TEXT.get(r.status, r.status)}[/]",
            TRIGGER_TEXT.get(r.trigger, r.trigger) + (f" {r.job}" if r.job else ""),
            str(r.counts.get("verified" if writer else "read", 0)), str(r.counts.get("failed" if writer else "rejected", 0)),
        )
    console = _console()
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


@app.command()
def export(
    run_id: Annotated[str | None, typer.Option("--run", help="运行编号（默认：每个机器人的最近一次运行）")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="工作簿路径（.xlsx）")] = None,
    all_records: Annotated[bool, typer.Option("--all", help="导出库中全部记录，而不只是本次运行读取的")] = False,
    config: ConfigOpt = None,
) -> None:
    """生成 Excel 审核工作簿并显示其路径。

    Write the Excel review workbook and print its path.

    By default each bot's latest run is exported with the records it read (after an
    incremental run: what changed since the run before); --all exports every stored record.
    """
    settings = _settings(config, store_needed=True)
    path = _export(settings, run_id, output, all_records=all_records)
    _console().print(f"审核工作簿 (review workbook): {escape(str(path))}")


def _export(settings: Settings, run_id: str | None, output: Path | None, runs: list[Any] | None = None, all_records: bool = False) -> Path:
    from dealerbot.review.export import default_workbook_path, entity_of_bots, export_runs, latest_runs
    from dealerbot.store import Store

    path = output
    try:
        with Store.open(settings.store_url, settings.store_code) as store:
            if runs is None:
                if run_id:
                    one = store.run(run_id)
                    if one is None:
                        raise ConfigError(f"no run with id {run_id!r} (see `dealerbot runs`)")
                    runs = [one]
                else:
                    runs = latest_runs(store)
            path = output or default_workbook_path(settings.path("out"), runs)
            stats = export_runs(store, runs, path, entity_of_bots(settings.home), all_records)
    except (DealerbotError, ValueError) as exc:
        raise _fail(str(exc)) from None
    except OSError as exc:  # a read-only or full disk, a folder that is a file, a file open in Excel
        where = exc.filename or path or settings.path("out")
        raise _fail(
            f"无法写入审核工作簿 {where}：{exc.strerror or exc}。请检查磁盘空间、文件夹权限，或文件是否在 Excel 中打开"
            f"（可用 -o 指定其他位置）；未生成工作簿，已有文件未被改动 "
            f"(could not write the review workbook: {exc})"
        ) from None
    return stats.path


def _open_store(settings: Settings) -> Any:
    from dealerbot.store import Store

    try:
        return Store.open(settings.store_url, settings.store_code)
    except DealerbotError as exc:
        raise _fail(str(exc)) from None


def _masker(settings: Settings) -> Callable[[str], str]:
    """Masks mobiles, ID numbers and secrets in operator output (it may be captured in logs)."""
    from dealerbot.running.runner import make_masker

    return make_masker(settings, None)


def _print_planned(settings: Settings, console: Console, title: str, states: tuple[str, ...], limit: int = 30) -> None:
    from dealerbot.data.mapping import CONTRACT_HEADERS
    from dealerbot.rekey.ledger import KIND_TEXT, STATE_TEXT

    with _open_store(settings) as store:
        actions = store.actions(states)
    if not actions:
        return
    table = Table(title=title)
    for col in ("厂家订单号", "操作", "状态", "合同号", "变更 / 客户", "说明"):
        table.add_column(col, overflow="fold")
    for a in actions[:limit]:
        if a.kind == "create_contract":
            what = {"existing": f"客户 {a.customer.customer_no}", "new": "新建客户"}.get(a.customer.mode, "客户待定")
        else:
            what = "；".join(f"{CONTRACT_HEADERS.get(f, f)} {o or '空'}→{n or '空'}" for f, (o, n) in a.changes.items())
        mask = _masker(settings)
        table.add_row(a.natural_key, KIND_TEXT[a.kind], STATE_TEXT[a.state], a.contract_no or "", escape(mask(what)),
                      escape(mask(a.failure_reason or a.note or "")))
    if len(actions) > limit:
        table.caption = f"另有 {len(actions) - limit} 条未列出 ({len(actions)} in all)"
    console.print(table)


def _load_dictionary(settings: Settings) -> Any:
    from dealerbot.data.dictionary import load_dictionary

    try:
        return load_dictionary(settings.dictionary_path, settings.dictionary_overlay)
    except DealerbotError as exc:
        raise _fail(str(exc)) from None


def _print_reconcile(
    console: Console, report: Any, mask: Callable[[str], str], show: str | None = None, limit: int = 20,
    title: str = "对账结果 (reconcile)",
) -> None:
    from dealerbot.rekey.reconcile import KLASS_TEXT, KLASSES

    table = Table(title=title)
    table.add_column("分类", no_wrap=True)
    table.add_column("订单数", justify="right", no_wrap=True)
    for k in KLASSES:
        table.add_row(f"{KLASS_TEXT[k]} ({k})", str(report.counts.get(k, 0)))
    console.print(table)
    console.print(f"账本 (ledger)：新计划 {report.planned} 条 · 作废 {report.superseded} 条 · 待审核 {report.awaiting_approval} 条 · "
                  f"可写入 {report.ready} 条 · 写入中 {report.in_progress} 条")
    if report.carried_over:
        console.print(f"沿用原审核 {report.carried_over} 条：新客户已在DMS中（证件号码相同），其余未变 "
                      f"(approvals kept: the new customer exists in the DMS now)")
    if report.dropped:
        console.print(f"[bold yellow]原已审核、因计划变化作废 {len(report.dropped)} 条 "
                      f"(approvals dropped: the plan changed)：[/]")
        for order_no, why in report.dropped[:limit]:
            console.print(f"  {escape(order_no)}：{escape(mask(why))}")
    wanted = [show] if show else ["conflict", "rejected"]
    rows = [o for o in report.outcomes if o.klass in wanted]
    if rows:
        detail = Table(title=f"{'、'.join(KLASS_TEXT[k] for k in wanted)}（前 {min(limit, len(rows))} 条）")
        for col in ("厂家订单号", "分类", "合同号", "原因 / 变更"):
            detail.add_column(col, overflow="fold")
        for o in rows[:limit]:
            detail.add_row(o.order_no, KLASS_TEXT[o.klass], o.contract_no, escape(mask(o.reason)))
        console.print(detail)


@app.command()
def reconcile(
    show: Annotated[str | None, typer.Option("--show", help="列出一类：create / update / in_sync / conflict / rejected")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="列出多少条订单")] = 20,
    config: ConfigOpt = None,
) -> None:
    """对账：逐条比对厂家订单与DMS合同，生成写入计划（此处不写入）。

    Classify every OEM order against the DMS and plan the writes (nothing is written here).

    Creations wait for approval in the review workbook (`dealerbot export`), status updates go
    straight through (see [rekey] in dealerbot.toml); `dealerbot run dms-rekey` writes them.
    """
    from dealerbot.rekey.reconcile import KLASSES
    from dealerbot.rekey.reconcile import reconcile as plan

    if show is not None and show not in KLASSES:
        raise _fail(f"--show 应为 {', '.join(KLASSES)} 之一 (unknown class {show!r})")
    settings = _settings(config, store_needed=True)
    dictionary = _load_dictionary(settings)
    try:
        policy = settings.rekey.policy()
    except DealerbotError as exc:
        raise _fail(str(exc)) from None
    console = _console()

    def waiting(who: str) -> None:
        console.print(f"正在等待 {escape(who)} 结束后再对账…… (waiting for {escape(who)} to finish)")

    with _open_store(settings) as store:
        report = plan(store, dictionary, policy, on_wait=waiting)
    _print_reconcile(console, report, _masker(settings), show, limit)
    if report.dropped:  # someone's approval was undone by this plan: they hear of it
        from dealerbot.running.notify import Notifier, review_message

        asyncio.run(Notifier(settings.notify).send([review_message(report.awaiting_approval, dropped=report.dropped)]))


@app.command("import-review")
def import_review(
    file: Annotated[Path, typer.Argument(help="已填写“审核”列的审核工作簿（.xlsx）")],
    reviewer: Annotated[str | None, typer.Option("--reviewer", help="记录在审批中的审核人（默认 [rekey] reviewer 或系统用户名）")] = None,
    apply_valid: Annotated[bool, typer.Option("--apply-valid", help="即使有行被拒，也应用其余有效的行")] = False,
    config: ConfigOpt = None,
) -> None:
    """导入审核后的工作簿：同意的行放行写入，跳过的行不写。

    Read a reviewed workbook back: approved rows are released for writing, skipped rows are
    set aside, edited values are checked again. Nothing is applied when any row is refused
    (unless --apply-valid); exit 2 then, naming each row.
    """
    import getpass

    from dealerbot.review.sheets import apply_review, read_review

    settings = _settings(config, store_needed=True)
    dictionary = _load_dictionary(settings)
    actor = reviewer or settings.rekey.reviewer or getpass.getuser()
    console = _console()
    with _open_store(settings) as store:
        try:
            review = read_review(file, store, dictionary)
        except DealerbotError as exc:
            raise _fail(str(exc)) from None
        for problem in review.problems:
            _make_console(stderr=True).print(f"[red]拒绝[/] {escape(problem)}")
        if review.problems and not apply_valid:
            raise _fail(f"{file}: {len(review.problems)} 行有问题，未导入任何内容；修改后重新导入，"
                        f"或用 --apply-valid 只导入没有问题的行 (nothing applied)")
        try:
            apply_review(store, review, actor)
        except DealerbotError as exc:
            raise _fail(str(exc)) from None
    c = review.counts
    console.print(f"已导入 (imported)：同意 {c['approve']} 条，修改后同意 {c['approve_edited']} 条，跳过 {c['skip']} 条，"
                  f"未审核 {review.undecided} 条；审核人 {escape(actor)}")
    if c["approve"] + c["approve_edited"]:
        console.print("运行 dealerbot run dms-rekey（或 dealerbot sync）把已同意的操作写入DMS。")
        from dealerbot.rekey.ledger import KIND_TEXT

        with _open_store(settings) as store:
            held = {a.kind for a in store.actions(["approved"]) if a.kind not in settings.rekey.enabled}
        for kind in sorted(held):
            console.print(f"[yellow]注意[/]：{KIND_TEXT[kind]}未启用，已同意的{KIND_TEXT[kind]}不会写入；"
                          f"需要时在 dealerbot.toml 的 [rekey] enabled 中加入 {kind}")
    if review.problems:
        raise typer.Exit(2)


@app.command()
def audit(
    order: Annotated[str | None, typer.Option("--order", help="只看一个厂家订单号（或合同号/客户编号）")] = None,
    run_id: Annotated[str | None, typer.Option("--run", help="只看一次运行")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="显示多少条")] = 50,
    config: ConfigOpt = None,
) -> None:
    """审计记录：每次写入和审核决定，最新的在前（只增不改）。

    The audit trail of every write and review decision, newest first (append-only)."""
    from dealerbot.data.mapping import CONTRACT_HEADERS, CUSTOMER_HEADERS

    settings = _settings(config, store_needed=True)
    with _open_store(settings) as store:
        rows = store.audit_rows(limit, order, run_id)
    if not rows:
        _console().print("还没有审计记录 (no audit entries yet)")
        return
    mask = _masker(settings)
    from dealerbot.logsetup import mask_personal_value
    from dealerbot.running.registry import discover, entities

    try:
        declared = entities(discover(home=settings.home))
    except DealerbotError:
        declared = {}
    events = {"create_customer": "新建客户", "found_customer": "找到客户", "create_contract": "新建合同",
              "update_contract": "更新合同", "cancel_contract": "取消合同", "approve": "审核同意",
              "approve_edited": "修改后同意", "skip": "审核跳过", "written": "已写入并回读", "found": "已存在，未写入",
              "refused": "门户拒绝", "unknown": "结果不明", "missing": "保存后未找到",
              "invalid": "校验未通过，未写入", "approval_dropped": "原审核作废（计划已变）"}
    table = Table(title="审计记录 (audit)")
    for col in ("时间", "事件", "厂家订单号/记录键", "对象", "操作人", "运行", "内容"):
        table.add_column(col, overflow="fold")
    for r in rows:
        entity = declared.get(r["target"]) if r["action_id"] is None else None  # a bot's write on its own portal
        names = {f.name: f.header for f in entity.fields} if entity else {**CONTRACT_HEADERS, **CUSTOMER_HEADERS}
        personal = set(entity.personal_fields) if entity else set()
        shown = {k: mask_personal_value(str(v)) if k in personal and v else v for k, v in r["new_values"].items()}
        changes = "；".join(
            f"{names.get(k, k)} {r['old_values'].get(k, '') or '空'}→{v or '空'}" if k in r["old_values"] else f"{names.get(k, k)}={v}"
            for k, v in shown.items()
        )
        table.add_row(f"{r['at']:%m-%d %H:%M:%S}", events.get(r["event"], r["event"]), r["natural_key"], r["target"],
                      escape(r["actor"]), r["run_id"] or "", escape(mask(" ".join(x for x in (changes, r["note"]) if x))))
    _console().print(table)


@app.command("sync")
def sync_command(
    full: Annotated[bool, typer.Option("--full", help="读取全部厂家订单，而不只是变化的")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="填写DMS表单但不保存（演练）")] = False,
    headed: Annotated[bool, typer.Option("--headed", help="显示浏览器窗口")] = False,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="工作簿路径（.xlsx）")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="在终端显示调试日志")] = False,
    config: ConfigOpt = None,
) -> None:
    """每日同步：读取厂家门户和DMS、对账、写入已批准的操作、生成审核工作簿。

    The daily chain: read the OEM portal and the DMS, reconcile, write what is approved or
    needs no approval into the DMS, and write the review workbook.

    Exit 0 when every step succeeded, 1 when a portal failed, 2 for configuration, 75 when
    postponed (a portal's maintenance window).
    """
    settings = _settings(config, store_needed=True)
    _say_where(settings)
    _setup_console_logging(settings, verbose)
    _load_dictionary(settings)  # a broken dictionary is said before anything runs
    _sync_and_report(settings, _console(), full=full, dry_run=dry_run, headed=headed, output=output)


def _sync_and_report(settings: Settings, console: Console, output: Path | None = None, **kwargs: Any) -> Any:
    from dealerbot.running.sync import sync

    try:
        with RunProgress(console) as bar:
            result = asyncio.run(sync(settings, progress=bar.track, on_step=lambda m: console.print(f"· {m}"), **kwargs))
    except DealerbotError as exc:
        raise _fail(str(exc)) from None
    console.print(_summary_table(result.runs))
    _print_notes(console, result.runs)
    for r in result.runs:
        if not r.ok:
            _report_failure(console, r)
    if result.plan is not None and result.runs and result.runs[-1].bot == "dms-rekey":
        p = result.plan
        console.print(f"写入前的计划 (planned before writing)：待新建 {p.counts.get('create', 0)} · 待更新 "
                      f"{p.counts.get('update', 0)} · 冲突 {p.counts.get('conflict', 0)} · 可写入 {p.ready} 条")
    if result.left is not None:
        _print_reconcile(console, result.left, _masker(settings), title="写入后仍待处理 (left after writing)")
    if kwargs.get("dry_run"):
        _print_planned(settings, console, "演练：以下操作将被写入DMS（dry run: what would be written）", ("approved",))
    result.workbook_path = path = _export(settings, None, output)
    console.print(f"[bold green]审核工作簿 (review workbook):[/] {escape(str(path))}")
    if result.stopped:
        console.print(f"[bold red]{escape(result.stopped)}[/]")
    if not result.ok:
        raise typer.Exit(_exit_code(result.runs) or 1)
    return result


@app.command()
def sandbox(
    oem_port: Annotated[int | None, typer.Option(help="厂家门户端口（0 = 任意空闲端口）")] = None,
    dms_port: Annotated[int | None, typer.Option(help="DMS端口（0 = 任意空闲端口）")] = None,
    usedcars_port: Annotated[int | None, typer.Option(help="二手车置换平台端口（0 = 任意空闲端口）")] = None,
    orders: Annotated[int | None, typer.Option(help="生成的订单数")] = None,
    seed: Annotated[int | None, typer.Option(help="数据生成种子")] = None,
    allow_remote: Annotated[bool, typer.Option("--allow-remote", help="允许 [sandbox] host 使用非本机地址")] = False,
    desktop: Annotated[bool, typer.Option("--desktop", help="同时打开DMS桌面客户端（需要图形显示；Linux 上为 DISPLAY）")] = False,
    write_fault: Annotated[list[str] | None, typer.Option(
        "--write-fault", help="DMS保存时的数据错误，可多次给出：类型=比例 或 类型=记录1,记录2（类型：truncate、dropdown_first、"
                              "round_amount、date_shift、lost_save）")] = None,
    config: ConfigOpt = None,
) -> None:
    """启动练习用的厂家门户、DMS 和二手车置换平台（Ctrl-C 停止）；--desktop 同时打开DMS桌面客户端。

    Start the practice OEM portal, DMS and used-car trade-in platform in the foreground (Ctrl-C stops them). The admin
    token is written to state/sandbox-admin-token (readable by you only)."""
    from pydantic import ValidationError

    from dealerbot.config import describe_validation_error
    from dealerbot.sandbox.config import SandboxConfig, parse_write_fault
    from dealerbot.sandbox.server import run_forever

    settings = _settings(config)
    values = dict(settings.sandbox)
    if write_fault:
        try:
            values["write_faults"] = {**values.get("write_faults", {}), **dict(parse_write_fault(w) for w in write_fault)}
        except ValueError as exc:
            raise _fail(str(exc)) from None
    values.update({k: v for k, v in {"oem_port": oem_port, "dms_port": dms_port, "usedcars_port": usedcars_port, "orders": orders,
                                         "seed": seed}.items() if v is not None})
    if allow_remote:
        values["allow_remote"] = True
    try:
        cfg = SandboxConfig(**values)
    except ValidationError as exc:
        raise _fail(describe_validation_error(exc, "[sandbox]")) from None
    if desktop and sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
        raise _fail("--desktop 需要图形显示：请在桌面会话中运行，或先启动 Xvfb 并设置 DISPLAY (no display: DISPLAY is not set)")

    def client(dms_url: str) -> Any:  # the desktop DMS client, on the DMS just started
        import subprocess

        _console().print(f"DMS桌面客户端 (desktop DMS client): 连接 {dms_url}，账号同 DMS")
        return subprocess.Popen([sys.executable, "-m", "dealerbot.sandbox.desktop", "--dms-url", dms_url,
                                 "--export-dir", str(settings.path("out") / "desktop-exports")])

    raise typer.Exit(run_forever(cfg, echo=_console().print, token_file=settings.path("state") / "sandbox-admin-token",
                                 with_server=client if desktop else None))


DEMO_APPROVALS = 10


@app.command()
def demo(
    orders: Annotated[int, typer.Option(help="练习门户中的订单数")] = 300,
    headed: Annotated[bool, typer.Option("--headed", help="显示浏览器窗口")] = False,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="工作簿路径（.xlsx）")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """演示：在练习环境中走完整个流程（读取、对账、审核、写入）。

    The whole chain on the sandbox: read both portals, reconcile, write status updates into
    the DMS, review (a staff member's approval of some new contracts, simulated in the
    workbook), write those, and leave the review workbook."""
    from dealerbot.sandbox.config import SandboxConfig
    from dealerbot.sandbox.server import SandboxServer

    console = _console()
    base = _settings(None)
    demo_store = base.path("var") / "demo.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{demo_store}{suffix}").unlink(missing_ok=True)
    with SandboxServer(SandboxConfig(oem_port=0, dms_port=0, usedcars_port=0, orders=orders)) as sb:
        console.print(f"练习环境 (sandbox)：厂家门户 {sb.oem_url} · DMS {sb.dms_url}", markup=False)
        settings = _settings(
            None,
            oem__url=sb.oem_url, dms__url=sb.dms_url, store__url=f"sqlite:///{demo_store}",
            paths__state=str(base.path("state") / "demo"), rekey__dictionary=str(_sandbox_dictionary(base)),
        )
        _setup_console_logging(settings, verbose)
        passwords = _demo_passwords()
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        out = settings.path("out")
        console.rule("1. 读取两边、对账、自动写入状态更新 (sync)")
        first = _sync_and_report(settings, console, out / f"demo-review-{stamp}.xlsx", headed=headed, passwords=passwords,
                                 trigger="demo")
        console.rule(f"2. 审核：模拟员工在“待处理”表中同意前 {DEMO_APPROVALS} 条新建合同")
        reviewed = _demo_review(settings, console, first.workbook_path, out / f"demo-reviewed-{stamp}.xlsx")
        console.rule("3. 写入已同意的合同 (dms-rekey)")
        try:
            result = _run_one(settings, "dms-rekey", console, headed=headed, passwords=passwords, trigger="demo")
        except DealerbotError as exc:
            raise _fail(str(exc)) from None
        console.print(_summary_table([result]))
        if not result.ok:
            _report_failure(console, result)
            raise typer.Exit(1)
    path = _export(settings, None, output or out / f"demo-final-{stamp}.xlsx")
    console.rule("完成")
    console.print(f"[bold green]审核工作簿 (review workbook):[/] {escape(str(path))}")
    console.print(f"员工填写过的工作簿: {escape(str(reviewed))}")
    console.print("请用 Excel 打开：“待处理”表列出等待审核的操作（在“审核”列选择 同意 / 跳过 / 修改后同意，"
                  "再运行 dealerbot import-review 文件名）；“无法处理”表列出被拒绝的订单及原因；"
                  "“写入结果”表列出刚写入DMS并核对过的合同。")
    console.print(f"审计记录 (audit trail): DEALERBOT_STORE__URL=sqlite:///{demo_store} dealerbot audit", markup=False)


def _demo_review(settings: Settings, console: Console, workbook: Path, reviewed: Path) -> Path:
    """What a staff member does in Excel, done with openpyxl: 同意 on the first new contracts."""
    from openpyxl import load_workbook

    from dealerbot.review.sheets import APPROVE, PENDING_HEADERS, PENDING_TITLE, apply_review, read_review

    wb = load_workbook(workbook)
    ws = wb[PENDING_TITLE]
    decision_col = PENDING_HEADERS.index("审核") + 1
    kind_col = PENDING_HEADERS.index("操作") + 1
    customer_col = PENDING_HEADERS.index("客户编号") + 1
    approved = 0
    for row in range(2, ws.max_row + 1):
        if approved < DEMO_APPROVALS and ws.cell(row, kind_col).value == "新建合同" and ws.cell(row, customer_col).value:
            ws.cell(row, decision_col).value = APPROVE
            approved += 1
    wb.save(reviewed)
    with _open_store(settings) as store:
        review = read_review(reviewed, store, _load_dictionary(settings))
        apply_review(store, review, "演示审核员")
    console.print(f"已同意 {review.counts['approve']} 条；其余 {review.undecided} 条仍待审核 ({escape(str(reviewed))})")
    return reviewed


def _sandbox_dictionary(settings: Settings) -> Path:
    """The data dictionary for the sandbox: the working folder's, else dealerbot's own."""
    if settings.dictionary_path.is_file():
        return settings.dictionary_path
    shipped = Path(__file__).resolve().parents[2] / "dictionary.yaml"  # a source checkout
    return shipped if shipped.is_file() else settings.dictionary_path


def _demo_passwords() -> dict[str, str]:
    from dealerbot.sandbox.dms import DEMO_PASSWORD as DMS_PASSWORD
    from dealerbot.sandbox.oem import DEMO_PASSWORD as OEM_PASSWORD

    return {"oem": OEM_PASSWORD, "dms": DMS_PASSWORD}


@dictionary_app.command("check")
def dictionary_check(config: ConfigOpt = None) -> None:
    """列出数据字典缺少的厂家代码及涉及的记录数。

    List every OEM code in the store that the data dictionary lacks, with how many records
    carry it. Exit 0 when nothing is missing, 2 when codes are missing or the file is broken."""
    from dealerbot.data.records import OEM_ORDER

    settings = _settings(config, store_needed=True)
    d = _load_dictionary(settings)
    with _open_store(settings) as store:
        seen = {table: store.value_counts(OEM_ORDER, field) for table, field in
                (("models", "model_code"), ("colors", "color"), ("statuses", "status"))}
    from dealerbot.data.dictionary import TABLE_TEXT

    table = Table(title=f"{d.path} 缺少的代码 (codes the dictionary lacks)")
    for col in ("表", "OEM代码", "订单数"):
        table.add_column(col)
    missing = 0
    for name, counts in seen.items():
        for code, n in sorted(counts.items(), key=lambda kv: -kv[1]):
            if code and d.lookup(name, code) is None:
                table.add_row(f"{name}（{TABLE_TEXT[name]}）", escape(code), str(n))
                missing += 1
    console = _console()
    if not missing:
        console.print(f"字典完整：库中所有车型、颜色、状态都已映射 ({d.path}: nothing missing)")
        return
    console.print(table)
    console.print(f"在 {escape(str(d.path))} 中补上这些代码后重新运行 dealerbot reconcile。")
    raise typer.Exit(2)


@selectors_app.command("check")
def selectors_check(
    portal: Annotated[str, typer.Argument(help="门户名：oem、dms 或 [portals.<名称>] 中配置的门户")],
    headed: Annotated[bool, typer.Option("--headed")] = False,
    config: ConfigOpt = None,
) -> None:
    """在门户上逐个检查选择器：匹配、备用或缺失。

    Resolve every selector on the live portal: which match, which fall back, which are missing."""
    from dealerbot.web.selectors_check import check_selectors

    settings = _settings(config)
    _setup_console_logging(settings, False)
    try:
        report = asyncio.run(check_selectors(settings, portal, headed=headed))
    except DealerbotError as exc:
        raise _fail(str(exc)) from None
    from dealerbot.web.locators import portal_selectors_path

    table = Table(title=f"{portal_selectors_path(portal, home=settings.home)} on {settings.portal(portal).url}")
    for col in ("name", "result", "matched"):
        table.add_column(col)
    colours = {"ok": "green", "fallback": "yellow", "missing": "red", "optional": "dim", "unchecked": "dim"}
    for row in report:
        table.add_row(row.name, f"[{colours[row.result]}]{row.result}[/]", escape(row.detail))
    _console().print(table)
    from collections import Counter

    from dealerbot.private_files import write_private_json

    results = Counter(r.result for r in report)  # for the console's 状态 page
    write_private_json(settings.path("state") / f"selectors-check-{portal}.json",
                       {"at": datetime.now().isoformat(timespec="seconds"), **results})
    if results["missing"]:
        raise typer.Exit(1)


@credentials_app.command("set")
def credentials_set(
    portal: Annotated[str, typer.Argument(help="门户名：oem、dms 或 [portals.<名称>] 中配置的门户")],
    config: ConfigOpt = None,
) -> None:
    """输入门户密码并保存到系统钥匙串。

    Prompt for a portal's password and store it in the OS keyring."""
    from dealerbot.credentials import set_password

    settings = _settings(config)
    try:
        username = settings.portal(portal).username
    except DealerbotError as exc:
        raise _fail(str(exc)) from None
    password = typer.prompt(f"password for {portal} user {username}", hide_input=True, confirmation_prompt=True)
    try:
        backend = set_password(portal, username, password, settings.own_store)
    except DealerbotError as exc:
        raise _fail(str(exc)) from None
    _console().print(f"已保存到系统钥匙串 (stored in the OS keyring: {backend})")
    _forget_refusal(settings, portal)


def _forget_refusal(settings: Settings, portal: str) -> bool:
    from dealerbot.running.bot import account_key

    with _open_store(settings) as store:
        return store.clear_login_refusal(account_key(portal, settings.portal(portal)))


@credentials_app.command("retry")
def credentials_retry(
    portal: Annotated[str, typer.Argument(help="门户名：oem、dms 或 [portals.<名称>] 中配置的门户")],
    config: ConfigOpt = None,
) -> None:
    """允许下次运行再试一次门户上次拒绝的密码（确认密码无误时）。

    Let the next run try the password the portal refused last time (when you are sure it is
    right, e.g. the account was unlocked). dealerbot never retries a refused password by itself."""
    settings = _settings(config, store_needed=True)
    try:
        settings.portal(portal)
    except DealerbotError as exc:
        raise _fail(str(exc)) from None
    if _forget_refusal(settings, portal):
        _console().print(f"下次运行将再次尝试 {portal} 的密码 (the next run will try the password again)")
    else:
        _console().print(f"{portal} 没有被拒绝的密码记录 (no refusal on record)")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        print(f"dealerbot {version('dealerbot')}")
        raise typer.Exit()


@app.callback()
def _options(
    show_version: Annotated[bool, typer.Option("--version", help="显示版本号", is_eager=True,
                                               callback=_version)] = False,
    store: Annotated[str | None, typer.Option(
        "--store", envvar="DEALERBOT_STORE_CODE", help="集团门店代码（[stores.<代码>]）：命令针对该门店 (a group's store)",
    )] = None,
) -> None:
    """RPA bots between the car maker's dealer portal (OEM) and the dealership's DMS."""
    if store:
        from dealerbot.config import STORE_ENV

        os.environ[STORE_ENV] = store  # every command of this process works for that store


# -- timetables -------------------------------------------------------------------------------

def _load_jobs(settings: Settings) -> list[Any]:
    from dealerbot.schedule.timetable import timetables_of

    folder = settings.path("schedules")
    try:
        jobs = timetables_of(settings)
    except DealerbotError as exc:
        raise _fail(str(exc)) from None
    if not jobs:
        raise _fail(f"{folder} 中没有定时任务：参考 schedules/README.md 写一个 .yaml 文件 (no jobs in {folder})")
    return jobs


@schedule_app.command("check")
def schedule_check(
    count: Annotated[int, typer.Option("--count", "-n", help="每个任务显示几次运行时间")] = 5,
    config: ConfigOpt = None,
) -> None:
    """检查所有定时任务文件，并显示每个任务接下来的运行时间（已计入节假日和停用时段）。

    Validate every schedules/*.yaml (unknown bot, bad cron, bad time zone: file and line) and
    print each job's next fire times, China's holidays, make-up working days and blackout
    windows applied. Exit 2 when a file is wrong or a date lies beyond the holiday data."""
    from dealerbot.schedule.timetable import fire_times, scheduler_trigger

    settings = _settings(config)
    console = _console()
    failed = False
    for job in _load_jobs(settings):
        trigger = scheduler_trigger(job, settings)  # as the scheduler will fire it
        try:
            times = fire_times(job, count, trigger=trigger)
        except DealerbotError as exc:
            console.print(f"[red]{escape(job.describe())}[/] ({escape(job.source)})：{escape(str(exc))}")
            failed = True
            continue
        console.print(f"[bold]{escape(job.describe())}[/] ({escape(job.source)}, {job.tz})")
        for t in times:
            console.print(f"  {t:%Y-%m-%d %a %H:%M}")
        for note in trigger.moved:
            console.print(f"  [yellow]{escape(note)}[/]")
    if failed:
        raise typer.Exit(2)


@schedule_app.command("list")
def schedule_list(config: ConfigOpt = None) -> None:
    """列出定时任务：下次运行时间和上次结果。

    The jobs with their next fire time and the last run each started."""
    from dealerbot.running.status_text import STATUS_TEXT
    from dealerbot.schedule.timetable import next_fire

    settings = _settings(config)
    jobs = _load_jobs(settings)
    table = Table(title="定时任务 (schedules)")
    for col in ("任务", "运行", "时间", "下次", "上次", "上次结果"):
        table.add_column(col, no_wrap=col in ("下次", "上次"))
    if settings.is_group:
        table.add_column("门店")
    with _open_store(settings) as store:
        for job in jobs:
            try:
                nxt = next_fire(job, settings)
                next_text = f"{nxt[0]:%m-%d %H:%M}" if nxt else "-"
            except DealerbotError:
                next_text = "节假日数据过期"
            when = job.cron and f"cron {job.cron}" or f"every {job.every}"
            # A group's job: a line per store it runs for, with that store's last run.
            for code in (job.stores or list(settings.stores)) if settings.is_group else [None]:
                last = (store.for_code(code) if code else store).last_job_run(job.name)
                table.add_row(
                    escape(job.name) + ("" if job.enabled else "（停用）"), escape(job.run),
                    escape(when) + ("，工作日" if job.days == "workdays" else ""), next_text,
                    f"{last.started_at:%m-%d %H:%M}" if last else "-",
                    STATUS_TEXT.get(last.status, last.status) if last else "-",
                    *([code] if code else []),
                )
    _console().print(table)


@schedule_app.command("start")
def schedule_start(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="在终端显示调试日志")] = False,
    config: ConfigOpt = None,
) -> None:
    """在前台运行调度程序（Ctrl-C 或 SIGTERM 停止：正在运行的机器人先完成当前记录）。

    Run the scheduler in the foreground until Ctrl-C or SIGTERM; a running re-key finishes its
    current record first. Exit 0 after a clean stop."""

    settings = _settings(config)
    _say_where(settings)
    _setup_console_logging(settings, verbose)
    jobs = _load_jobs(settings)

    async def serve() -> None:
        async with _scheduler(settings, jobs) as scheduler:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, AttributeError):  # Windows: Ctrl-C raises instead
                    loop.add_signal_handler(sig, scheduler.request_stop)
            where = f"，为 {len(settings.stores)} 家门店排队 (deferring for the group's stores)" if settings.is_group else ""
            _console().print(f"调度程序已启动：{len(jobs)} 个任务{where}；按 Ctrl-C 停止 (scheduler running)")
            await scheduler.serve()

    _run_service(serve(), "调度程序已停止 (scheduler stopped)")


@contextlib.asynccontextmanager
async def _scheduler(settings: Settings, jobs: list[Any]) -> Any:
    """The scheduler these settings call for: a single dealership's runs its bots here (one
    per folder); a group's defers them into its task engine (workers run them).

    Raises:
        AlreadyRunning: a scheduler already runs for this dealership's folder.
        ConfigError: a group whose PostgreSQL cannot be reached.
    """
    from dealerbot.schedule.scheduler import Scheduler, one_scheduler

    if not settings.is_group:
        with one_scheduler(settings):  # a second one here would record every firing again, skipped
            yield Scheduler(settings, jobs)
        return
    from dealerbot.group.engine import GroupEngine
    from dealerbot.group.scheduler import GroupScheduler

    async with GroupEngine(settings) as engine:
        yield GroupScheduler(settings, jobs, engine)


def _run_service(main: Any, stopped: str) -> None:
    """Run a long-lived service (the scheduler, the console) until it stops; say so.

    Raises:
        typer.Exit: 2 when it could not run (the store, the timetable), with the reason.
    """
    try:
        asyncio.run(main)
    except KeyboardInterrupt:
        pass
    except DealerbotError as exc:
        raise _fail(f"调度程序无法运行 (the scheduler stopped): {exc}") from None
    _console().print(stopped)


# -- the operator console --------------------------------------------------------------------

HostOpt = Annotated[str, typer.Option("--host", help="监听地址（默认只有本机可访问）")]
PortOpt = Annotated[int, typer.Option("--port", help="端口")]
RemoteOpt = Annotated[bool, typer.Option("--allow-remote", help="允许监听非本机地址（局域网可访问）")]


def _console_ready(settings: Settings, host: str, allow_remote: bool) -> None:
    """Refuse a non-loopback address without --allow-remote; ask for a password at the first start.

    Raises:
        typer.Exit: 2 when the console cannot start safely.
    """
    import ipaddress

    from dealerbot.console.auth import PASSWORD_ENV, ConsolePassword

    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and not allow_remote:
        raise _fail(f"控制台默认只监听本机地址；要在 {host} 上监听（局域网可访问），请加 --allow-remote "
                    f"(the console binds to loopback unless --allow-remote)")
    password = ConsolePassword(settings.path("state"))
    if password.is_set:
        return
    if not sys.stdin.isatty():
        raise _fail(f"控制台还没有密码：在终端运行一次 dealerbot console 设置，或设置环境变量 {PASSWORD_ENV} "
                    f"(no console password yet)")
    first = typer.prompt("设置控制台密码（至少 8 位）", hide_input=True, confirmation_prompt="再输入一次")
    try:
        password.set(first)
    except DealerbotError as exc:
        raise _fail(str(exc)) from None


async def _serve_console(settings: Settings, host: str, port: int, scheduler: Any = None) -> None:
    """Serve the console (and run ``scheduler``) until a signal; then let runs reach a safe
    point. A second Ctrl-C or SIGTERM stops at once.

    Raises:
        DealerbotError: the scheduler could not start (its error, after the console stopped).
    """
    import uvicorn

    from dealerbot.console.app import create_app, server_config
    from dealerbot.schedule.scheduler import STOP_GRACE_SECONDS

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self):  # type: ignore[no-untyped-def]  # ours stop the scheduler first
            yield

    app = create_app(settings, scheduler)
    server = Server(server_config(app, settings, host, port, log_level="warning", timeout_graceful_shutdown=5))
    signals: list[bool] = []

    def stop() -> None:
        if signals:  # asked twice: no more waiting
            server.force_exit = True
            for task in app.state.console.tasks:
                task.cancel()
        signals.append(True)
        server.should_exit = True
        app.state.console.stop.set()  # live pages end, runs stop at their next safe point
        if scheduler is not None:
            scheduler.request_stop()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, AttributeError):
            loop.add_signal_handler(sig, stop)
    _console().print(f"控制台 (console)：http://{host}:{port}/  按 Ctrl-C 停止")
    scheduling = None
    if scheduler is not None:
        scheduling = asyncio.create_task(scheduler.serve())
        scheduling.add_done_callback(lambda t: t.cancelled() or t.exception() is None or stop())
    await server.serve()
    stop()
    await app.state.console.drain(STOP_GRACE_SECONDS)
    if scheduling is not None:
        await scheduling  # raises what stopped it, if anything did


@app.command("console")
def console_command(
    host: HostOpt = "127.0.0.1", port: PortOpt = 8750, allow_remote: RemoteOpt = False, config: ConfigOpt = None,
) -> None:
    """运行操作控制台（网页）：启动机器人、查看运行和失败证据、下载和上传审核工作簿。

    The operator console, a local web app (http://127.0.0.1:8750/ by default). The first start
    asks for its password (or set DEALERBOT_CONSOLE_PASSWORD)."""
    settings = _settings(config)
    _console_ready(settings, host, allow_remote)
    _setup_console_logging(settings, False)
    _run_service(_serve_console(settings, host, port), "控制台已停止 (console stopped)")


@app.command("serve")
def serve_command(
    host: HostOpt = "127.0.0.1", port: PortOpt = 8750, allow_remote: RemoteOpt = False, config: ConfigOpt = None,
) -> None:
    """同时运行控制台和调度程序：在办公室电脑上一直运行的方式。

    The console and the scheduler in one process: how a dealership leaves dealerbot running
    (Ctrl-C or SIGTERM stops both; running bots finish their current record first)."""
    settings = _settings(config)
    _say_where(settings)
    _console_ready(settings, host, allow_remote)
    _setup_console_logging(settings, False)
    jobs = _load_jobs(settings)

    async def both() -> None:
        async with _scheduler(settings, jobs) as scheduler:
            await _serve_console(settings, host, port, scheduler)

    _run_service(both(), "已停止 (stopped)")


# -- a dealership group ----------------------------------------------------------------------

def _group_settings(config: Path | None) -> Settings:
    from dealerbot.group.engine import require_group

    settings = _settings(config)
    try:
        require_group(settings)
    except DealerbotError as exc:
        raise _fail(str(exc)) from None
    return settings


def _group_call(main: Any) -> Any:
    """Run ``main`` (a coroutine); a group that cannot work exits 2 with the reason (1 when
    it failed while working: a supervisor should start it again)."""
    from dealerbot.errors import SystemFailure

    try:
        return asyncio.run(main)
    except SystemFailure as exc:
        raise _fail(str(exc), 1) from None
    except DealerbotError as exc:
        raise _fail(str(exc)) from None


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
    _setup_console_logging(settings, verbose)
    wanted = [q.strip() for q in queues.split(",") if q.strip()] if queues else default_queues(settings)
    known = [settings.store_queue(code) for code in settings.stores] + [settings.group.shared_queue]
    unknown = [q for q in wanted or [] if q not in known]
    if unknown:
        raise _fail(f"没有队列 {', '.join(unknown)}：可用的队列有 {', '.join(known)} (no such queue)")

    async def serve() -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, AttributeError):
                loop.add_signal_handler(sig, stopping.set)
        async with GroupEngine(settings, report=lambda line: _console().print(escape(line))) as engine:
            _console().print(f"工作进程已启动：队列 {', '.join(wanted) if wanted else '全部'}；按 Ctrl-C 停止 (worker running)")
            await engine.serve(wanted, concurrency, stopping=stopping)

    _group_call(serve())
    _console().print("工作进程已停止 (worker stopped)")


@group_app.command("status")
def group_status(config: ConfigOpt = None) -> None:
    """集团各门店状态：最近同步、失败、待审核、队列中的任务、在线的工作进程。

    Every store of the group: last run and last success, failures in the last 24 hours,
    actions waiting for review, jobs queued and running; and the workers alive."""
    from dealerbot.group.status import group_status as collect
    from dealerbot.running.status_text import STATUS_TEXT

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
    console = _console()
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

    console = _console()
    for code, job_id in _group_call(defer()):
        if job_id is None:
            console.print(f"{escape(code)}: 已有同样的任务在排队，未重复加入 (already queued)")
        else:
            console.print(f"{escape(code)}: 已排队，任务 {job_id} (queued as job {job_id})")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point. Ends the process (see :func:`_quick_exit`)."""
    from dealerbot.private_files import private_by_default

    if sys.platform == "win32":
        os.environ.setdefault("PYTHONIOENCODING", "utf-8")
    private_by_default()  # the store, logs, evidence and workbooks hold customers' data
    try:
        app(args=argv, prog_name="dealerbot")
    except SystemExit as exc:
        _quick_exit(exc.code)
        raise
    _quick_exit(0)


def _quick_exit(code: object) -> None:
    """End the process once the command is done, without tearing down every loaded module: with
    the browser, database and web libraries loaded that teardown took 0.1-0.15 s, on every
    command (a 2,000-order read takes 4 s in all). The exit handlers still run (log files are
    closed, pending log lines written) and the output is flushed, as mypy does for the same
    reason. Returns (the caller exits as usual) when threads are still running, whose end a
    normal exit would wait for, under a profiler or debugger (which write their results after the
    command returns), or when the exit code is not a number."""
    import atexit
    import threading

    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    if run_exit_handlers is None or threading.active_count() > 1 or sys.getprofile() or sys.gettrace():
        return
    if code is None:
        code = 0
    if not isinstance(code, int):
        return  # a message: SystemExit prints it
    run_exit_handlers()
    from loguru import logger

    logger.remove()  # every sink closed: queued lines written
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
