"""The ``dealerbot`` entry point: the global options, every command group registered, a quick exit."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

# Importing a command module registers its commands on ``app`` (the order is set below).
from dealerbot.cli import demo, doctor, group, review, rollback, runs, serve  # noqa: F401  (top-level commands)
from dealerbot.cli.common import ConfigOpt, app
from dealerbot.cli.credentials import credentials_app
from dealerbot.cli.dictionary import dictionary_app
from dealerbot.cli.group import group_app
from dealerbot.cli.schedule import schedule_app
from dealerbot.cli.selectors import selectors_app

# The order ``dealerbot --help`` lists the commands in: a day's work first, then the services.
COMMAND_ORDER = ("run", "bots", "flows", "runs", "export", "reconcile", "import-review", "audit", "rollback", "sync", "sandbox",
                 "demo", "console", "serve", "doctor", "worker", "init", "record")


# -- a new portal: init and record (the work is in cli/init.py and cli/record.py, imported when run)
@app.command("init")
def init_command(
    portal: Annotated[str, typer.Argument(help="新门户名（小写字母、数字、下划线），如 usedcars2")],
    url: Annotated[str, typer.Option("--url", help="门户地址（默认：沙箱二手车置换平台）")] = "http://127.0.0.1:8703",
    username: Annotated[str, typer.Option("--username", help="登录用户名")] = "zhihuan01",
    title: Annotated[str, typer.Option("--title", help="门户的中文名（默认同门户名）")] = "",
    login_path: Annotated[str, typer.Option("--login-path", help="登录页路径")] = "/accounts/login/",
    list_path: Annotated[str, typer.Option("--list-path", help="列表页路径")] = "/cars/",
    expired_path: Annotated[str, typer.Option(
        "--expired-path", help="登录失效时门户跳转到的路径（不是登录页时填写；空字符串表示无）")] = "/404",
    columns: Annotated[str | None, typer.Option(
        "--columns", help="列表的列：字段=列标题，逗号分隔，按页面上的顺序，第一列为主键（默认：沙箱置换车辆列表的九列）")] = None,
    personal: Annotated[str | None, typer.Option(
        "--personal", help="含个人信息的字段（姓名、手机等），逗号分隔：在日志和证据中遮盖")] = None,
    username_label: Annotated[str, typer.Option("--username-label", help="登录页用户名框的标签文字")] = "用户名",
    password_label: Annotated[str, typer.Option("--password-label", help="登录页密码框的标签文字")] = "密码",
    submit: Annotated[str, typer.Option("--submit", help="登录按钮的文字")] = "登录",
    table_css: Annotated[str, typer.Option("--table-css", help="列表表格的 CSS")] = "table",
    next_css: Annotated[str, typer.Option("--next-css", help="“下一页”链接的 CSS")] = ".pagination .next a",
    force: Annotated[bool, typer.Option("--force", help="覆盖已存在的文件")] = False,
) -> None:
    """在项目文件夹中新建一个门户：设置、选择器文件、页面对象、读取列表的机器人和一个测试。

    Scaffold a portal in the project folder (the working folder): a [portals.<name>] section in
    dealerbot.toml, selectors/<name>.yaml, portals/<name>.py, bots/<name>_list.py and
    tests/test_<name>.py with a saved page. Refuses to overwrite a file (exit 2) unless --force."""
    from dealerbot.cli.common import fail, make_console
    from dealerbot.cli.init import DEFAULT_COLUMNS, DEFAULT_PERSONAL, PortalSpec, scaffold
    from dealerbot.errors import ConfigError

    spec = PortalSpec(portal, url=url, username=username, title=title, login_path=login_path, list_path=list_path, expired_path=expired_path,
                      columns=DEFAULT_COLUMNS if columns is None else columns,
                      personal=(DEFAULT_PERSONAL if columns is None else "") if personal is None else personal,
                      username_label=username_label, password_label=password_label, submit_name=submit,
                      table_css=table_css, next_css=next_css)
    folder = Path.cwd()
    try:
        done = scaffold(folder, spec, force=force)
    except ConfigError as exc:
        raise fail(str(exc)) from None
    out = make_console()
    for path, what in done:
        out.print(f"{what}  {path.relative_to(folder)}", markup=False)
    bot = f"{portal.replace('_', '-')}-list"
    out.print(f"\n门户 {portal} 已建好。下一步：\n"
              f"  export DEALERBOT_{portal.upper()}_PASSWORD='...'   # 或 dealerbot credentials set {portal}\n"
              f"  dealerbot selectors check {portal}\n"
              f"  dealerbot run {bot}\n"
              f"  python -m pytest tests/test_{portal}.py\n"
              f"  dealerbot record {portal} --screen <屏幕名> --path <页面路径>   # 点一遍某个页面，记录选择器", markup=False)


@app.command("record")
def record_command(
    portal: Annotated[str, typer.Argument(help="门户名（selectors/<门户>.yaml 须已存在，可先 dealerbot init）")],
    screen: Annotated[str, typer.Option("--screen", help="屏幕名：新选择器命名为 <屏幕名>.<字段>，如 car")],
    path: Annotated[str, typer.Option("--path", help="屏幕的路径或端点名，如 /cars/add/")],
    script: Annotated[Path | None, typer.Option(
        "--script", help="代替人工操作的脚本（定义 async def drive(page)），如在 CI 中")] = None,
    headless: Annotated[bool, typer.Option("--headless", help="不显示浏览器窗口（仅与 --script 一起）")] = False,
    config: ConfigOpt = None,
) -> None:
    """打开门户（已登录），录制在某个屏幕上的操作，把用到的元素写入选择器文件。

    Record the elements clicked through on a screen (Playwright's recorder, the engine behind
    codegen, in the browser dealerbot finds) and merge them into selectors/<portal>.yaml as named
    entries with fallbacks (role + name, label, CSS), comments and order kept."""
    import asyncio

    from dealerbot.cli.common import fail, log_to_console, make_console, settings_from
    from dealerbot.cli.record import SCREEN_NAME, load_script, merge_entries, record_screen
    from dealerbot.errors import DealerbotError
    from dealerbot.web.locators import portal_selectors_path

    settings = settings_from(config)
    log_to_console(settings, False)
    if not SCREEN_NAME.fullmatch(screen):
        raise fail(f"屏幕名 '{screen}' 无效：只能用小写字母、数字和下划线，以字母开头 (screen name)")
    if headless and script is None:
        raise fail("--headless 只能与 --script 一起使用：人工录制需要看得见的浏览器 (--headless needs --script)")
    if not headless and sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise fail("没有图形界面（DISPLAY 未设置），无法显示浏览器：请在桌面上运行，或用 xvfb-run，或 --script 加 --headless "
                   "(no display for the browser's window)")
    target = portal_selectors_path(portal, home=settings.home)
    if not target.resolve().is_relative_to(settings.home.resolve()):
        raise fail(f"项目文件夹中没有 selectors/{portal}.yaml：先运行 dealerbot init {portal} (no selector file of the project's own)")
    out = make_console()
    try:
        settings.portal(portal)
        drive = load_script(script) if script is not None else None
        entries = asyncio.run(record_screen(settings, portal, screen, path, drive, headed=not headless,
                                            say=lambda line: out.print(line, markup=False)))
        if not entries:
            raise fail("没有录制到任何操作，选择器文件未改动 (nothing recorded; file unchanged)")
        merged, said = merge_entries(target, screen, path, entries)
    except DealerbotError as exc:
        raise fail(str(exc)) from None
    if merged == target.read_text(encoding="utf-8"):
        for line in said:
            out.print(f"  {line}", markup=False)
        out.print(f"没有新的选择器，{target} 未改动 (nothing new)", markup=False)
        return
    target.write_text(merged, encoding="utf-8")
    for line in said:
        out.print(f"  {line}", markup=False)
    out.print(f"已写入 {target}。检查：dealerbot selectors check {portal}", markup=False)


app.registered_commands.sort(key=lambda c: COMMAND_ORDER.index(c.name or c.callback.__name__))  # type: ignore[union-attr]
app.add_typer(selectors_app, name="selectors")
app.add_typer(dictionary_app, name="dictionary")
app.add_typer(credentials_app, name="credentials")
app.add_typer(schedule_app, name="schedule")
app.add_typer(group_app, name="group")


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
    if "loguru" in sys.modules:  # every sink closed: queued lines written
        sys.modules["loguru"].logger.remove()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)
