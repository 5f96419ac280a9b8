"""The ``dealerbot`` command (Typer + rich). Thin: parses, calls the runner or a service, renders."""

from __future__ import annotations

import asyncio
import os
import sys
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
    help="RPA bots between the car maker's dealer portal (OEM) and the dealership's DMS.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
selectors_app = typer.Typer(help="Check selector files against a live portal.", no_args_is_help=True)
credentials_app = typer.Typer(help="Store portal passwords in the OS keyring.", no_args_is_help=True)
app.add_typer(selectors_app, name="selectors")
app.add_typer(credentials_app, name="credentials")

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="dealerbot.toml to use (default: ./dealerbot.toml or $DEALERBOT_CONFIG)")]


def _console() -> Console:
    return Console(stderr=False, highlight=False)


def _fail(message: str, code: int = 2) -> typer.Exit:
    Console(stderr=True, highlight=False).print(f"[bold red]error:[/] {escape(message)}")
    return typer.Exit(code)


def _settings(config: Path | None, **overrides: Any) -> Settings:
    try:
        return load_settings(config, **overrides)
    except ConfigError as exc:
        raise _fail(str(exc)) from None


def _setup_console_logging(settings: Settings, verbose: bool) -> None:
    from dealerbot.logsetup import add_console_sink
    from dealerbot.runner import make_masker

    add_console_sink(make_masker(settings, None), "DEBUG" if verbose else "WARNING")


class RunProgress:
    """A rich progress bar fed by a run's counts."""

    def __init__(self, console: Console, label: str) -> None:
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("页 {task.fields[pages]} · 拒绝 {task.fields[rejected]} · 待复核 {task.fields[flagged]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self.task = self.progress.add_task(label, total=None, pages=0, rejected=0, flagged=0)

    def update(self, counts: dict[str, int]) -> None:
        self.progress.update(
            self.task, completed=counts.get("read", 0), total=counts.get("expected"),
            pages=counts.get("pages", 0), rejected=counts.get("rejected", 0), flagged=counts.get("flagged", 0),
        )

    def __enter__(self) -> RunProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


SUMMARY_COLUMNS = (
    ("read", "读取"), ("accepted", "接受"), ("repaired", "修正"), ("flagged", "复核"),
    ("rejected", "拒绝"), ("pages", "页"), ("retries", "重试"), ("relogins", "重登"),
)


def _summary_table(results: list[Any]) -> Table:
    table = Table(title="运行结果 (run summary)", min_width=60)
    table.add_column("机器人", no_wrap=True)
    table.add_column("状态", no_wrap=True)
    for _, header in SUMMARY_COLUMNS:
        table.add_column(header, justify="right", no_wrap=True)
    for r in results:
        colour = "green" if r.ok else "red"
        table.add_row(r.bot, f"[{colour}]{'成功' if r.ok else '失败'}[/]", *(str(r.counts.get(k, 0)) for k, _ in SUMMARY_COLUMNS))
    table.caption = "runs: " + ", ".join(r.run_id for r in results)
    return table


def _run_one(
    settings: Settings, bot: str, console: Console, *, full: bool = False, headed: bool = False,
    trigger: str = "manual", passwords: dict[str, str] | None = None,
) -> Any:
    from dealerbot.runner import run_bot

    with RunProgress(console, bot) as bar:
        return asyncio.run(
            run_bot(bot, settings, full=full, headed=headed, trigger=trigger, passwords=passwords, on_progress=bar.update)
        )


def _report_failure(console: Console, result: Any) -> None:
    console.print(f"[bold red]{result.bot} failed[/]: {escape(str(result.error))}")
    if result.evidence:
        console.print(f"evidence: {escape(str(result.run_dir))}")
        for p in result.evidence:
            console.print(f"  {escape(str(p))}")
    if result.run_dir:
        console.print(f"run log:  {escape(str(result.run_dir / 'run.log'))}")


@app.command()
def run(
    bot: Annotated[str, typer.Argument(help="bot name (see `dealerbot bots`)")],
    full: Annotated[bool, typer.Option("--full", help="read everything, not only what changed since the last run")] = False,
    headed: Annotated[bool, typer.Option("--headed", help="show the browser window")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="debug logs on the console")] = False,
    config: ConfigOpt = None,
) -> None:
    """Run one bot now, with a live progress bar.

    Exit 0 on success; 1 when the portal or network failed (evidence folder printed); 2 when the
    configuration is wrong (wrong password, selector file, missing credentials).
    """
    from dealerbot.registry import get_bot

    settings = _settings(config)
    _setup_console_logging(settings, verbose)
    console = _console()
    try:
        get_bot(bot)  # an unknown name is said before any progress bar is drawn
        result = _run_one(settings, bot, console, full=full, headed=headed)
    except DealerbotError as exc:
        raise _fail(str(exc)) from None
    console.print(_summary_table([result]))
    if not result.ok:
        _report_failure(console, result)
        raise typer.Exit(2 if result.error_kind == "config" else 1)


@app.command()
def bots() -> None:
    """List the bots that exist."""
    from dealerbot.registry import discover

    try:
        found = discover()
    except DealerbotError as exc:
        raise _fail(str(exc)) from None
    table = Table(title="bots")
    for col in ("name", "portal", "records", "incremental"):
        table.add_column(col, no_wrap=True)
    table.add_column("description", overflow="fold")
    for name, cls in found.items():
        table.add_row(name, cls.portal, cls.entity.title, "yes" if cls.incremental else "no", cls.description)
    _console().print(table)


@app.command()
def runs(
    limit: Annotated[int, typer.Option("--limit", "-n", help="how many runs")] = 20,
    bot: Annotated[str | None, typer.Option("--bot", help="only this bot")] = None,
    config: ConfigOpt = None,
) -> None:
    """Run history, newest first."""
    from dealerbot.store import Store

    settings = _settings(config)
    try:
        with Store.open(settings.store_url) as store:
            history = store.runs(limit, bot)
    except DealerbotError as exc:
        raise _fail(str(exc)) from None
    from sqlalchemy.engine import make_url

    from dealerbot.export import STATUS_TEXT

    table = Table(title="运行记录 (runs)", caption=escape(make_url(settings.store_url).render_as_string(hide_password=True)))
    table.add_column("run", no_wrap=True)
    table.add_column("开始", no_wrap=True)
    table.add_column("秒", justify="right", no_wrap=True)
    table.add_column("状态", no_wrap=True)
    table.add_column("读取", justify="right", no_wrap=True)
    table.add_column("拒绝", justify="right", no_wrap=True)
    for r in history:
        seconds = f"{(r.ended_at - r.started_at).total_seconds():.0f}" if r.ended_at else "-"
        colour = {"succeeded": "green", "failed": "red"}.get(r.status, "yellow")
        table.add_row(
            r.run_id, f"{r.started_at:%m-%d %H:%M}", seconds, f"[{colour}]{STATUS_TEXT.get(r.status, r.status)}[/]",
            str(r.counts.get("read", 0)), str(r.counts.get("rejected", 0)),
        )
    console = _console()
    console.print(table)
    for r in history:
        if r.error:
            console.print(f"[red]{r.run_id}[/] {escape(r.error)}")
            if r.evidence_dir:
                console.print(f"  evidence: {escape(r.evidence_dir)}")


@app.command()
def export(
    run_id: Annotated[str | None, typer.Option("--run", help="run id (default: the latest run of every bot)")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="workbook path (.xlsx)")] = None,
    all_records: Annotated[bool, typer.Option("--all", help="every record in the store, not only what the runs read")] = False,
    config: ConfigOpt = None,
) -> None:
    """Write the Excel review workbook and print its path.

    By default each bot's latest run is exported with the records it read (after an
    incremental run: what changed since the run before); --all exports every stored record.
    """
    settings = _settings(config)
    path = _export(settings, run_id, output, all_records=all_records)
    _console().print(f"review workbook: {escape(str(path))}")


def _export(settings: Settings, run_id: str | None, output: Path | None, runs: list[Any] | None = None, all_records: bool = False) -> Path:
    from dealerbot.export import default_workbook_path, entity_of_bots, export_runs, latest_runs
    from dealerbot.store import Store

    try:
        with Store.open(settings.store_url) as store:
            if runs is None:
                if run_id:
                    one = store.run(run_id)
                    if one is None:
                        raise ConfigError(f"no run with id {run_id!r} (see `dealerbot runs`)")
                    runs = [one]
                else:
                    runs = latest_runs(store)
            path = output or default_workbook_path(settings.path("out"), runs)
            stats = export_runs(store, runs, path, entity_of_bots(), all_records)
    except (DealerbotError, ValueError) as exc:
        raise _fail(str(exc)) from None
    return stats.path


@app.command()
def sandbox(
    oem_port: Annotated[int | None, typer.Option(help="OEM portal port (0 = any free port)")] = None,
    dms_port: Annotated[int | None, typer.Option(help="DMS port (0 = any free port)")] = None,
    orders: Annotated[int | None, typer.Option(help="orders to generate")] = None,
    seed: Annotated[int | None, typer.Option(help="data generator seed")] = None,
    config: ConfigOpt = None,
) -> None:
    """Start the practice OEM portal and DMS in the foreground (Ctrl-C stops them)."""
    from pydantic import ValidationError

    from dealerbot.config import describe_validation_error
    from dealerbot.sandbox.config import SandboxConfig
    from dealerbot.sandbox.server import run_forever

    settings = _settings(config)
    values = dict(settings.sandbox)
    values.update({k: v for k, v in {"oem_port": oem_port, "dms_port": dms_port, "orders": orders, "seed": seed}.items() if v is not None})
    try:
        cfg = SandboxConfig(**values)
    except ValidationError as exc:
        raise _fail(describe_validation_error(exc, "[sandbox]")) from None
    raise typer.Exit(run_forever(cfg, echo=_console().print))


DEMO_BOTS = ("oem-orders", "oem-customers", "dms-customers", "dms-contracts")


@app.command()
def demo(
    orders: Annotated[int, typer.Option(help="orders in the practice portal")] = 300,
    headed: Annotated[bool, typer.Option("--headed", help="show the browser window")] = False,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="workbook path (.xlsx)")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Start the sandbox, run every scraping bot against it, write the review workbook."""
    from dealerbot.sandbox.config import SandboxConfig
    from dealerbot.sandbox.server import SandboxServer

    console = _console()
    base = _settings(None)
    demo_store = base.path("var") / "demo.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{demo_store}{suffix}").unlink(missing_ok=True)
    with SandboxServer(SandboxConfig(oem_port=0, dms_port=0, orders=orders)) as sb:
        console.print(f"sandbox: OEM portal {sb.oem_url} · DMS {sb.dms_url}", markup=False)
        settings = _settings(
            None,
            oem__url=sb.oem_url, dms__url=sb.dms_url, store__url=f"sqlite:///{demo_store}",
            paths__state=str(base.path("state") / "demo"),
        )
        _setup_console_logging(settings, verbose)
        passwords = _demo_passwords()
        results = []
        for bot in DEMO_BOTS:
            try:
                results.append(_run_one(settings, bot, console, headed=headed, trigger="demo", passwords=passwords))
            except DealerbotError as exc:
                raise _fail(str(exc)) from None
    console.print(_summary_table(results))
    failed = [r for r in results if not r.ok]
    for r in failed:
        _report_failure(console, r)
    path = _export(settings, None, output or settings.path("out") / f"demo-review-{results[0].run_id[:15]}.xlsx")
    console.print(f"[bold green]审核工作簿 (review workbook):[/] {escape(str(path))}")
    console.print("请用 Excel 打开审核：红色 = 已拒绝（未入库），黄色 = 待复核，绿色 = 已自动修正；原因见“问题说明”列。")
    if failed:
        raise typer.Exit(1)


def _demo_passwords() -> dict[str, str]:
    from dealerbot.sandbox.dms import DEMO_PASSWORD as DMS_PASSWORD
    from dealerbot.sandbox.oem import DEMO_PASSWORD as OEM_PASSWORD

    return {"oem": OEM_PASSWORD, "dms": DMS_PASSWORD}


@selectors_app.command("check")
def selectors_check(
    portal: Annotated[str, typer.Argument(help="portal name: oem or dms")],
    headed: Annotated[bool, typer.Option("--headed")] = False,
    config: ConfigOpt = None,
) -> None:
    """Resolve every selector on the live portal: which match, which fall back, which are missing."""
    from dealerbot.checks import check_selectors

    settings = _settings(config)
    _setup_console_logging(settings, False)
    try:
        report = asyncio.run(check_selectors(settings, portal, headed=headed))
    except DealerbotError as exc:
        raise _fail(str(exc)) from None
    table = Table(title=f"selectors/{portal}.yaml on {getattr(settings, portal).url}")
    for col in ("name", "result", "matched"):
        table.add_column(col)
    colours = {"ok": "green", "fallback": "yellow", "missing": "red", "optional": "dim", "unchecked": "dim"}
    for row in report:
        table.add_row(row.name, f"[{colours[row.result]}]{row.result}[/]", escape(row.detail))
    _console().print(table)
    if any(r.result == "missing" for r in report):
        raise typer.Exit(1)


@credentials_app.command("set")
def credentials_set(
    portal: Annotated[str, typer.Argument(help="oem or dms")],
    config: ConfigOpt = None,
) -> None:
    """Prompt for a portal's password and store it in the OS keyring."""
    from dealerbot.credentials import set_password

    settings = _settings(config)
    if portal not in ("oem", "dms"):
        raise _fail(f"unknown portal {portal!r}: use oem or dms")
    username = getattr(settings, portal).username
    password = typer.prompt(f"password for {portal} user {username}", hide_input=True, confirmation_prompt=True)
    try:
        backend = set_password(portal, username, password)
    except DealerbotError as exc:
        raise _fail(str(exc)) from None
    _console().print(f"stored in the OS keyring ({backend})")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    if sys.platform == "win32":
        os.environ.setdefault("PYTHONIOENCODING", "utf-8")
    app(args=argv, prog_name="dealerbot")


if __name__ == "__main__":  # pragma: no cover
    main()

