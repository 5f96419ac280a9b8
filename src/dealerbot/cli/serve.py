"""``dealerbot console`` and ``serve``: the operator console, alone or with the scheduler."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dealerbot.cli.common import ConfigOpt, app, fail, log_to_console, make_console, say_where, settings_from
from dealerbot.cli.schedule import load_jobs, run_service, scheduler_for
from dealerbot.errors import DealerbotError

if TYPE_CHECKING:
    from dealerbot.config import Settings
    from dealerbot.schedule.scheduler import Scheduler

# -- the operator console --------------------------------------------------------------------

HostOpt = Annotated[str, typer.Option("--host", help="监听地址（默认只有本机可访问）")]
PortOpt = Annotated[int, typer.Option("--port", help="端口")]
RemoteOpt = Annotated[bool, typer.Option("--allow-remote", help="允许监听非本机地址（局域网可访问）")]
PasswordFileOpt = Annotated[Path | None, typer.Option(
    "--password-file", envvar="DEALERBOT_CONSOLE_PASSWORD_FILE",
    help="控制台密码文件（第一行是密码；仅本用户可读）：开机/登录时自动启动、无人输入时使用",
)]


def _console_ready(settings: Settings, host: str, allow_remote: bool, password_file: Path | None = None) -> None:
    """Refuse a non-loopback address without --allow-remote; take the password from
    ``password_file`` when given, else ask for one at the first start.

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
        raise fail(f"控制台默认只监听本机地址；要在 {host} 上监听（局域网可访问），请加 --allow-remote "
                    f"(the console binds to loopback unless --allow-remote)")
    password = ConsolePassword(settings.path("state"))
    if password_file is not None:
        from dealerbot.console.auth import read_password_file

        if os.environ.get(PASSWORD_ENV):
            raise fail(f"同时设置了 {PASSWORD_ENV} 和密码文件 {password_file}：只能用一个 (one console password source only)")
        try:
            password.adopt(read_password_file(password_file))
        except DealerbotError as exc:
            raise fail(str(exc)) from None
        return
    if password.is_set:
        return
    if not sys.stdin.isatty():
        raise fail(f"控制台还没有密码：在终端运行一次 dealerbot console 设置，或设置环境变量 {PASSWORD_ENV}，"
                   f"或用 --password-file 指定密码文件 (no console password yet)")
    first = typer.prompt("设置控制台密码（至少 8 位）", hide_input=True, confirmation_prompt="再输入一次")
    try:
        password.set(first)
    except DealerbotError as exc:
        raise fail(str(exc)) from None


async def _serve_console(settings: Settings, host: str, port: int, scheduler: Scheduler | None = None) -> None:
    """Serve the console (and run ``scheduler``) until a signal; then let runs reach a safe
    point. A second Ctrl-C or SIGTERM stops at once.

    Raises:
        DealerbotError: the scheduler could not start (its error, after the console stopped).
    """
    import asyncio

    import uvicorn

    from dealerbot.console.app import create_app, server_config
    from dealerbot.schedule.scheduler import STOP_GRACE_SECONDS

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:  # ours stop the scheduler first
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
    make_console().print(f"控制台 (console)：http://{host}:{port}/  按 Ctrl-C 停止")
    scheduling = None
    if scheduler is not None:
        scheduling = asyncio.create_task(scheduler.serve())

        def scheduling_ended(task: asyncio.Task[None]) -> None:
            if not task.cancelled() and task.exception() is not None:
                stop()

        scheduling.add_done_callback(scheduling_ended)
    await server.serve()
    stop()
    await app.state.console.drain(STOP_GRACE_SECONDS)
    if scheduling is not None:
        await scheduling  # raises what stopped it, if anything did


@app.command("console")
def console_command(
    host: HostOpt = "127.0.0.1", port: PortOpt = 8750, allow_remote: RemoteOpt = False, config: ConfigOpt = None,
    password_file: PasswordFileOpt = None,
) -> None:
    """运行操作控制台（网页）：启动机器人、查看运行和失败证据、下载和上传审核工作簿。

    The operator console, a local web app (http://127.0.0.1:8750/ by default). The first start
    asks for its password (or set DEALERBOT_CONSOLE_PASSWORD, or give --password-file)."""
    settings = settings_from(config)
    _console_ready(settings, host, allow_remote, password_file)
    log_to_console(settings, False)
    run_service(_serve_console(settings, host, port), "控制台已停止 (console stopped)")


@app.command("serve")
def serve_command(
    host: HostOpt = "127.0.0.1", port: PortOpt = 8750, allow_remote: RemoteOpt = False, config: ConfigOpt = None,
    password_file: PasswordFileOpt = None,
) -> None:
    """同时运行控制台和调度程序：在办公室电脑上一直运行的方式。

    The console and the scheduler in one process: how a dealership leaves dealerbot running
    (Ctrl-C or SIGTERM stops both; running bots finish their current record first)."""
    settings = settings_from(config)
    say_where(settings)
    _console_ready(settings, host, allow_remote, password_file)
    log_to_console(settings, False)
    jobs = load_jobs(settings)

    async def both() -> None:
        async with scheduler_for(settings, jobs) as scheduler:
            await _serve_console(settings, host, port, scheduler)

    run_service(both(), "已停止 (stopped)")
