"""The ``dealerbot`` entry point: the global options, every command group registered, a quick exit."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Annotated

import typer

# Importing a command module registers its commands on ``app`` (the order is set below).
from dealerbot.cli import demo, doctor, group, review, runs, serve  # noqa: F401  (top-level commands)
from dealerbot.cli.common import app
from dealerbot.cli.credentials import credentials_app
from dealerbot.cli.dictionary import dictionary_app
from dealerbot.cli.group import group_app
from dealerbot.cli.schedule import schedule_app
from dealerbot.cli.selectors import selectors_app

# The order ``dealerbot --help`` lists the commands in: a day's work first, then the services.
COMMAND_ORDER = ("run", "bots", "runs", "export", "reconcile", "import-review", "audit", "sync", "sandbox", "demo",
                 "console", "serve", "doctor", "worker")
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
    from loguru import logger

    logger.remove()  # every sink closed: queued lines written
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)
