"""``dealerbot doctor``: what this PC has and lacks for a run, said in Chinese."""

from __future__ import annotations

import typer

from dealerbot.cli.common import ConfigOpt, app
from dealerbot.cli.serve import HostOpt, PortOpt
from dealerbot.errors import ConfigError


@app.command("doctor")
def doctor_command(host: HostOpt = "127.0.0.1", port: PortOpt = 8750, config: ConfigOpt = None) -> None:
    """检查这台电脑能否运行 dealerbot：浏览器、中文字体、钥匙串、桌面、端口、存储、节假日数据。

    Check what a run needs and say, in Chinese, what to do about what is missing. Exit 0 when
    nothing a run needs is missing (warnings allowed), 2 otherwise."""
    from dealerbot.config import load_settings
    from dealerbot.doctor import render, run_checks

    try:
        settings, error = load_settings(config), ""
    except ConfigError as exc:
        settings, error = None, str(exc)
    raise typer.Exit(render(run_checks(settings, error, host, port), lambda line: print(line, flush=True)))
