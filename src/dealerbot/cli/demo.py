"""``dealerbot sandbox`` and ``demo``: the practice portals, and the whole chain run against them."""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from dealerbot.cli.common import ConfigOpt, app, dictionary_for, fail, log_to_console, make_console, open_store, settings_from
from dealerbot.cli.progress import report_failure, run_one, summary_table
from dealerbot.cli.review import export_workbook, sync_and_report
from dealerbot.errors import DealerbotError

if TYPE_CHECKING:
    from dealerbot.config import Settings


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

    settings = settings_from(config)
    values = dict(settings.sandbox)
    if write_fault:
        try:
            values["write_faults"] = {**values.get("write_faults", {}), **dict(parse_write_fault(w) for w in write_fault)}
        except ValueError as exc:
            raise fail(str(exc)) from None
    values.update({k: v for k, v in {"oem_port": oem_port, "dms_port": dms_port, "usedcars_port": usedcars_port, "orders": orders,
                                         "seed": seed}.items() if v is not None})
    if allow_remote:
        values["allow_remote"] = True
    try:
        cfg = SandboxConfig(**values)
    except ValidationError as exc:
        raise fail(describe_validation_error(exc, "[sandbox]")) from None
    if desktop and sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
        raise fail("--desktop 需要图形显示：请在桌面会话中运行，或先启动 Xvfb 并设置 DISPLAY (no display: DISPLAY is not set)")

    def client(dms_url: str) -> Any:  # the desktop DMS client, on the DMS just started
        import subprocess

        make_console().print(f"DMS桌面客户端 (desktop DMS client): 连接 {dms_url}，账号同 DMS")
        return subprocess.Popen([sys.executable, "-m", "dealerbot.sandbox.desktop", "--dms-url", dms_url,
                                 "--export-dir", str(settings.path("out") / "desktop-exports")])

    raise typer.Exit(run_forever(cfg, echo=make_console().print, token_file=settings.path("state") / "sandbox-admin-token",
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

    console = make_console()
    base = settings_from(None)
    demo_store = base.path("var") / "demo.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{demo_store}{suffix}").unlink(missing_ok=True)
    with SandboxServer(SandboxConfig(oem_port=0, dms_port=0, usedcars_port=0, orders=orders)) as sandbox_server:
        console.print(f"练习环境 (sandbox)：厂家门户 {sandbox_server.oem_url} · DMS {sandbox_server.dms_url}", markup=False)
        settings = settings_from(
            None,
            oem__url=sandbox_server.oem_url, dms__url=sandbox_server.dms_url, store__url=f"sqlite:///{demo_store}",
            paths__state=str(base.path("state") / "demo"), rekey__dictionary=str(_sandbox_dictionary(base)),
            flows__enabled=_demo_flows(),
        )
        log_to_console(settings, verbose)
        passwords = _demo_passwords()
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        out = settings.path("out")
        console.rule("1. 读取两边、对账、自动写入状态更新 (sync)")
        first = sync_and_report(settings, console, out / f"demo-review-{stamp}.xlsx", headed=headed, passwords=passwords,
                                 trigger="demo")
        _demo_deliveries(console, first)
        console.rule(f"2. 审核：模拟员工在“待处理”表中同意前 {DEMO_APPROVALS} 条新建合同")
        assert first.workbook_path is not None  # _sync_and_report always writes the workbook
        reviewed = _demo_review(settings, console, first.workbook_path, out / f"demo-reviewed-{stamp}.xlsx")
        console.rule("3. 写入已同意的合同 (dms-rekey)")
        try:
            result = run_one(settings, "dms-rekey", console, headed=headed, passwords=passwords, trigger="demo")
        except DealerbotError as exc:
            raise fail(str(exc)) from None
        console.print(summary_table([result]))
        if not result.ok:
            report_failure(console, result)
            raise typer.Exit(1)
        _demo_leads(settings, console, first.workbook_path, out / f"demo-leads-reviewed-{stamp}.xlsx", headed, passwords)
    path = export_workbook(settings, None, output or out / f"demo-final-{stamp}.xlsx")
    console.rule("完成")
    console.print(f"[bold green]审核工作簿 (review workbook):[/] {escape(str(path))}")
    console.print(f"员工填写过的工作簿: {escape(str(reviewed))}")
    console.print("请用 Excel 打开：“待处理”表列出等待审核的操作（在“审核”列选择 同意 / 跳过 / 修改后同意，"
                  "再运行 dealerbot import-review 文件名）；“无法处理”表列出被拒绝的订单及原因；"
                  "“写入结果”表列出刚写入DMS并核对过的合同；“需人工-厂家线索建潜客”表列出回访已超时的厂家线索。")
    console.print(f"审计记录 (audit trail): DEALERBOT_STORE__URL=sqlite:///{demo_store} dealerbot audit", markup=False)


def _demo_flows() -> list[str]:
    """The flows the demo runs: every shipped flow (a dealership's default is orders alone)."""
    return ["orders", "deliveries", *DEMO_LEAD_FLOWS]


def _demo_deliveries(console: Console, result: Any) -> None:
    """The delivery reports' part of the demo's summary: what the sync planned and what is left."""
    plan, left = result.plans.get("deliveries"), result.lefts.get("deliveries")
    if plan is None or left is None:
        return
    counts = plan.counts
    console.print(f"交车上报：待上报 {counts.get('create', 0)} 条，已上报 {counts.get('in_sync', 0)} 条，"
                  f"与厂家不符 {counts.get('conflict', 0)} 条，无法上报 {counts.get('rejected', 0)} 条；"
                  f"写入后仍待审核 {left.awaiting_approval} 条（见工作簿“待处理-交车上报”表）", markup=False)
    for line in result.waiting.get("deliveries", []):
        console.print(f"  - {line}", markup=False)


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
    with open_store(settings) as store:
        review = read_review(reviewed, store, dictionary_for(settings))
        apply_review(store, review, "演示审核员")
    console.print(f"已同意 {review.counts['approve']} 条；其余 {review.undecided} 条仍待审核 ({escape(str(reviewed))})")
    return reviewed


DEMO_LEAD_FLOWS = ("leads", "followups")  # OEM leads -> DMS prospects, DMS follow-ups -> OEM 回访登记


def _demo_leads(settings: Settings, console: Console, workbook: Path, reviewed: Path, headed: bool,
                passwords: dict[str, str]) -> None:
    """The leads flows: a staff member approves every new prospect and follow-up in their 待处理
    sheets of the first sync's workbook, then leads-write and followups-write write them once.

    Raises:
        typer.Exit: 1 when a writer fails (its failure shown).
    """
    from openpyxl import load_workbook

    from dealerbot.flows.registry import discover_flows
    from dealerbot.review.sheets import APPROVE, FLOW_PENDING_PREFIX, apply_review, read_review

    flows = discover_flows(settings.home)
    titles = [f"{FLOW_PENDING_PREFIX}{flows[name].title}"[:31] for name in DEMO_LEAD_FLOWS]
    console.rule("4. 线索：同意新建潜客和回访登记，写入DMS和厂家门户 (leads-write, followups-write)")
    wb = load_workbook(workbook)
    for title in (t for t in titles if t in wb.sheetnames):
        ws = wb[title]
        decision = [c.value for c in ws[1]].index("审核") + 1
        for row in range(2, ws.max_row + 1):
            ws.cell(row, decision).value = APPROVE
    wb.save(reviewed)
    with open_store(settings) as store:
        review = read_review(reviewed, store, dictionary_for(settings), flows)
        apply_review(store, review, "演示审核员")
    console.print(f"已同意 {review.counts['approve']} 条线索操作 ({escape(str(reviewed))})")
    results = []
    for bot in (flows[name].writer_bot for name in DEMO_LEAD_FLOWS):
        try:
            results.append(run_one(settings, bot, console, headed=headed, passwords=passwords, trigger="demo"))
        except DealerbotError as exc:
            raise fail(str(exc)) from None
    console.print(summary_table(results))
    for r in results:
        if not r.ok:
            report_failure(console, r)
            raise typer.Exit(1)


def _sandbox_dictionary(settings: Settings) -> Path:
    """The data dictionary for the sandbox: the working folder's, else dealerbot's own."""
    if settings.dictionary_path.is_file():
        return settings.dictionary_path
    from dealerbot.resources import shipped_dir

    shipped = shipped_dir() / "dictionary.yaml"  # the checkout's, or the wheel's dealerbot/shipped/
    return shipped if shipped.is_file() else settings.dictionary_path


def _demo_passwords() -> dict[str, str]:
    from dealerbot.sandbox.dms import DEMO_PASSWORD as DMS_PASSWORD
    from dealerbot.sandbox.oem import DEMO_PASSWORD as OEM_PASSWORD

    return {"oem": OEM_PASSWORD, "dms": DMS_PASSWORD}
