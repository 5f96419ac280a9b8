"""``dealerbot export``, ``reconcile``, ``import-review``, ``audit`` and ``sync``: the ledger and its review workbook."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.padding import Padding
from rich.table import Table

from dealerbot.cli.common import (
    ConfigOpt,
    app,
    dictionary_for,
    fail,
    log_to_console,
    make_console,
    masker_for,
    open_store,
    say_where,
    settings_from,
)
from dealerbot.cli.progress import RunProgress, exit_code_for, print_notes, report_failure, summary_table
from dealerbot.errors import ConfigError, DealerbotError

if TYPE_CHECKING:
    from dealerbot.config import Settings
    from dealerbot.rekey.reconcile import ReconcileReport
    from dealerbot.running.sync import SyncResult


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
    settings = settings_from(config, store_needed=True)
    path = export_workbook(settings, run_id, output, all_records=all_records)
    make_console().print(f"审核工作簿 (review workbook): {escape(str(path))}")


def export_workbook(settings: Settings, run_id: str | None, output: Path | None, runs: list[Any] | None = None, all_records: bool = False) -> Path:
    from dealerbot.review.export import default_workbook_path, export_runs, latest_runs
    from dealerbot.running.registry import entity_of_bots
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
            from dealerbot.flows.registry import discover_flows

            stats = export_runs(store, runs, path, entity_of_bots(settings.home), all_records,
                                flows=discover_flows(settings.home))
    except (DealerbotError, ValueError) as exc:
        raise fail(str(exc)) from None
    except OSError as exc:  # a read-only or full disk, a folder that is a file, a file open in Excel
        where = exc.filename or path or settings.path("out")
        raise fail(
            f"无法写入审核工作簿 {where}：{exc.strerror or exc}。请检查磁盘空间、文件夹权限，或文件是否在 Excel 中打开"
            f"（可用 -o 指定其他位置）；未生成工作簿，已有文件未被改动 "
            f"(could not write the review workbook: {exc})"
        ) from None
    return stats.path


def print_planned(settings: Settings, console: Console, title: str, states: tuple[str, ...], limit: int = 30) -> None:
    from dealerbot.data.mapping import CONTRACT_HEADERS
    from dealerbot.rekey.ledger import KIND_TEXT, STATE_TEXT

    with open_store(settings) as store:
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
        mask = masker_for(settings)
        table.add_row(a.natural_key, KIND_TEXT.get(a.kind, a.kind), STATE_TEXT[a.state], a.contract_no or "", escape(mask(what)),
                      escape(mask(a.failure_reason or a.note or "")))
    if len(actions) > limit:
        table.caption = f"另有 {len(actions) - limit} 条未列出 ({len(actions)} in all)"
    console.print(table)


def print_reconcile(
    console: Console, report: ReconcileReport, mask: Callable[[str], str], show: str | None = None, limit: int = 20,
    title: str = "对账结果 (reconcile)",
) -> None:
    from dealerbot.rekey.reconcile import RECONCILE_CLASS_TEXT, RECONCILE_CLASSES

    table = Table(title=title)
    table.add_column("分类", no_wrap=True)
    table.add_column("订单数", justify="right", no_wrap=True)
    for k in RECONCILE_CLASSES:
        table.add_row(f"{RECONCILE_CLASS_TEXT[k]} ({k})", str(report.counts.get(k, 0)))
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
    rows = [o for o in report.outcomes if o.reconcile_class in wanted]
    if rows:
        detail = Table(title=f"{'、'.join(RECONCILE_CLASS_TEXT[k] for k in wanted)}（前 {min(limit, len(rows))} 条）")
        for col in ("厂家订单号", "分类", "合同号", "原因 / 变更"):
            detail.add_column(col, overflow="fold")
        for o in rows[:limit]:
            detail.add_row(o.order_no, RECONCILE_CLASS_TEXT[o.reconcile_class], o.contract_no, escape(mask(o.reason)))
        console.print(detail)


@app.command()
def reconcile(
    show: Annotated[str | None, typer.Option("--show", help="列出一类：create / update / in_sync / conflict / rejected")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="列出多少条订单")] = 20,
    flow: Annotated[str | None, typer.Option("--flow", help="只对账一个流程（默认 orders：厂家订单录入DMS）")] = None,
    config: ConfigOpt = None,
) -> None:
    """对账：逐条比对厂家订单与DMS合同，生成写入计划（此处不写入）。

    Classify every OEM order against the DMS and plan the writes (nothing is written here).

    Creations wait for approval in the review workbook (`dealerbot export`), status updates go
    straight through (see [rekey] in dealerbot.toml); `dealerbot run dms-rekey` writes them.
    """
    from dealerbot.rekey.reconcile import RECONCILE_CLASSES
    from dealerbot.rekey.reconcile import reconcile as plan

    if show is not None and show not in RECONCILE_CLASSES:
        raise fail(f"--show 应为 {', '.join(RECONCILE_CLASSES)} 之一 (unknown class {show!r})")
    settings = settings_from(config, store_needed=True)
    if flow is not None and flow != "orders":
        report = reconcile_one_flow(settings, flow)
        print_reconcile(make_console(), report, masker_for(settings), show, limit, title=f"对账结果：流程 {flow} (reconcile)")
        return
    dictionary = dictionary_for(settings)
    try:
        policy = settings.rekey.policy()
        if flow is not None:
            from dealerbot.flows.registry import flow_policy, get_flow

            policy = flow_policy(get_flow(flow, settings), settings)
    except DealerbotError as exc:
        raise fail(str(exc)) from None
    console = make_console()

    def waiting(who: str) -> None:
        console.print(f"正在等待 {escape(who)} 结束后再对账…… (waiting for {escape(who)} to finish)")

    with open_store(settings) as store:
        report = plan(store, dictionary, policy, on_wait=waiting)
    print_reconcile(console, report, masker_for(settings), show, limit)
    if report.dropped:  # someone's approval was undone by this plan: they hear of it
        import asyncio

        from dealerbot.running.notify import Notifier, review_message

        asyncio.run(Notifier(settings.notify).send([review_message(
            report.awaiting_approval, dropped=report.dropped, console=settings.console.public_url)]))


def reconcile_one_flow(settings: Settings, name: str) -> ReconcileReport:
    """Plan the flow ``name`` (not orders) over the store, holding the ledger lock.

    Raises:
        typer.Exit: (2) an unknown flow, a bad policy or dictionary (the message names it).
    """
    from dealerbot.data.dictionary import load_dictionary
    from dealerbot.flows.plan import plan_flow
    from dealerbot.flows.registry import flow_policy, get_flow

    try:
        chosen = get_flow(name, settings)
        policy = flow_policy(chosen, settings)
        dictionary = (load_dictionary(settings.dictionary_path, settings.dictionary_overlay)
                      if settings.dictionary_path.is_file() else None)
    except DealerbotError as exc:
        raise fail(str(exc)) from None
    with open_store(settings) as store, store.ledger_lock("reconcile"):
        return plan_flow(store, chosen, dictionary, policy)


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

    from dealerbot.flows.registry import discover_flows
    from dealerbot.review.sheets import apply_review, read_review

    settings = settings_from(config, store_needed=True)
    orders = "orders" in settings.flows.enabled or settings.dictionary_path.is_file()
    dictionary = dictionary_for(settings) if orders else None  # a project of its own flows may have none
    actor = reviewer or settings.rekey.reviewer or getpass.getuser()
    console = make_console()
    with open_store(settings) as store:
        try:
            review = read_review(file, store, dictionary, discover_flows(settings.home))
        except DealerbotError as exc:
            raise fail(str(exc)) from None
        for problem in review.problems:
            make_console(stderr=True).print(f"[red]拒绝[/] {escape(problem)}")
        if review.problems and not apply_valid:
            raise fail(f"{file}: {len(review.problems)} 行有问题，未导入任何内容；修改后重新导入，"
                        f"或用 --apply-valid 只导入没有问题的行 (nothing applied)")
        try:
            apply_review(store, review, actor)
        except DealerbotError as exc:
            raise fail(str(exc)) from None
    c = review.counts
    console.print(f"已导入 (imported)：同意 {c['approve']} 条，修改后同意 {c['approve_edited']} 条，跳过 {c['skip']} 条，"
                  f"未审核 {review.undecided} 条；审核人 {escape(actor)}")
    if c["approve"] + c["approve_edited"]:
        console.print("运行 dealerbot run dms-rekey（或 dealerbot sync）把已同意的操作写入DMS。")
        from dealerbot.rekey.ledger import KIND_TEXT

        with open_store(settings) as store:
            held = {a.kind for a in store.actions(["approved"], flow="orders") if a.kind not in settings.rekey.enabled}
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
    flow: Annotated[str | None, typer.Option("--flow", help="只看一个流程的操作（如 orders）")] = None,
    config: ConfigOpt = None,
) -> None:
    """审计记录：每次写入和审核决定，最新的在前（只增不改）。

    The audit trail of every write and review decision, newest first (append-only)."""
    from dealerbot.data.mapping import CONTRACT_HEADERS, CUSTOMER_HEADERS

    settings = settings_from(config, store_needed=True)
    with open_store(settings) as store:
        rows = store.audit_rows(limit, order, run_id, flow=flow)
        flows_of = store.action_flows({r["action_id"] for r in rows if r["action_id"] is not None})
    if not rows:
        make_console().print("还没有审计记录 (no audit entries yet)")
        return
    mask = masker_for(settings)
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
              "written_rejected": "已写入，回读的记录被拒绝", "unreadable": "已保存，查找结果无法读取",
              "invalid": "校验未通过，未写入", "approval_dropped": "原审核作废（计划已变）",
              "rollback_planned": "计划回滚", "rollback_conflict": "回滚冲突（人工处理）",
              "password_set": "更换门户密码", "job_paused": "暂停定时任务", "job_resumed": "恢复定时任务"}
    # One record per block (issue #22: a table row wrapped to 13 lines at 100 columns): a heading
    # line, then labelled lines whose values wrap under themselves, at any terminal width.
    console = make_console()
    console.print("[bold]审计记录 (audit)[/]，最新的在前")
    for r in rows:
        entity = declared.get(r["target"]) if r["action_id"] is None else None  # a bot's write on its own portal
        names = {f.name: f.header for f in entity.fields} if entity else {**CONTRACT_HEADERS, **CUSTOMER_HEADERS}
        personal = set(entity.personal_fields) if entity else set()
        shown = {k: mask_personal_value(str(v)) if k in personal and v else v for k, v in r["new_values"].items()}
        changes = "； ".join(  # the space lets a long line wrap between fields, not inside a value
            f"{names.get(k, k)} {r['old_values'].get(k, '') or '空'}→{v or '空'}" if k in r["old_values"] else f"{names.get(k, k)}={v}"
            for k, v in shown.items()
        )
        block = Table.grid(padding=(0, 1, 0, 0))
        block.add_column(no_wrap=True, style="dim")
        block.add_column(overflow="fold")
        key_label = "厂家订单号" if r["action_id"] is not None else "记录键"  # a ledger action's key is the OEM order
        for label, value in (("流程", flows_of.get(r["action_id"], "")), ("操作人", r["actor"]), ("运行", r["run_id"]),
                             ("内容", mask(" ".join(x for x in (changes, r["note"]) if x)))):
            if value:
                block.add_row(label, escape(str(value)))
        console.print()
        console.print(f"[bold]{r['at']:%m-%d %H:%M:%S}  {events.get(r['event'], r['event'])}[/]  "
                      f"[dim]{key_label}[/] {escape(r['natural_key'])}"
                      + (f"  [dim]对象[/] {escape(r['target'])}" if r["target"] else ""))
        console.print(Padding(block, (0, 0, 0, 2)))


@app.command("sync")
def sync_command(
    full: Annotated[bool, typer.Option("--full", help="读取全部厂家订单，而不只是变化的")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="填写DMS表单但不保存（演练）")] = False,
    headed: Annotated[bool, typer.Option("--headed", help="显示浏览器窗口")] = False,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="工作簿路径（.xlsx）")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="在终端显示调试日志")] = False,
    flow: Annotated[str | None, typer.Option("--flow", help="只同步一个流程（默认：[flows] enabled 中的每个流程）")] = None,
    config: ConfigOpt = None,
) -> None:
    """每日同步：读取厂家门户和DMS、对账、写入已批准的操作、生成审核工作簿。

    The daily chain: read the OEM portal and the DMS, reconcile, write what is approved or
    needs no approval into the DMS, and write the review workbook.

    Exit 0 when every step succeeded, 1 when a portal failed, 2 for configuration, 75 when
    postponed (a portal's maintenance window).
    """
    settings = settings_from(config, store_needed=True)
    say_where(settings)
    log_to_console(settings, verbose)
    from dealerbot.flows.registry import enabled_flows, flow_policy

    try:
        flows = enabled_flows(settings, only=flow)
        for f in flows:
            flow_policy(f, settings)
    except DealerbotError as exc:
        raise fail(str(exc)) from None
    if any(f.name == "orders" for f in flows):
        dictionary_for(settings)  # a broken dictionary is said before anything runs
    options: dict[str, Any] = {"flow": flow} if flow else {}
    sync_and_report(settings, make_console(), full=full, dry_run=dry_run, headed=headed, output=output, **options)


def sync_and_report(settings: Settings, console: Console, output: Path | None = None, **kwargs: Any) -> SyncResult:
    import asyncio

    from dealerbot.running.sync import sync

    try:
        with RunProgress(console) as bar:
            # The default workbook is written by the sync itself, before its message names it.
            result = asyncio.run(sync(settings, progress=bar.track, on_step=lambda m: console.print(f"· {m}"),
                                      workbook=output is None, **kwargs))
    except DealerbotError as exc:
        raise fail(str(exc)) from None
    console.print(summary_table(result.runs))
    print_notes(console, result.runs)
    for r in result.runs:
        if not r.ok:
            report_failure(console, r)
    if result.plan is not None and result.runs and result.runs[-1].bot == "dms-rekey":
        p = result.plan
        console.print(f"写入前的计划 (planned before writing)：待新建 {p.counts.get('create', 0)} · 待更新 "
                      f"{p.counts.get('update', 0)} · 冲突 {p.counts.get('conflict', 0)} · 可写入 {p.ready} 条")
    for name, left in result.lefts.items():
        title = "写入后仍待处理 (left after writing)"
        if len(result.lefts) > 1 or name != "orders":
            title = f"{result.titles.get(name, name)}（{name}）：写入后仍待处理 (left after writing)"
        print_reconcile(console, left, masker_for(settings), title=title)
    if kwargs.get("dry_run"):
        print_planned(settings, console, "演练：以下操作将被写入DMS（dry run: what would be written）", ("approved",))
    result.workbook_path = path = result.workbook_path or export_workbook(settings, None, output)
    console.print(f"[bold green]审核工作簿 (review workbook):[/] {escape(str(path))}")
    if result.stopped:
        console.print(f"[bold red]{escape(result.stopped)}[/]")
    if not result.ok:
        raise typer.Exit(exit_code_for(result.runs) or 1)
    return result
