"""A browser that dies in the middle of a run (only Chromium killed, dealerbot left alone): a
system failure with a plain message, and nothing left behind (real processes, real Chromium)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from dealerbot.store import Store

from .conftest import OEM_PASSWORD
from .test_cli import _config


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE  # a zombie is gone, not yet reaped
    except psutil.Error:
        return False


def _cmdline(p: psutil.Process) -> list[str]:
    """The process's command line; empty once it ended (a helper may exit, or linger as a
    zombie, between the listing and this look)."""
    try:
        return p.cmdline()
    except psutil.Error:
        return []


def _is_chromium(p: psutil.Process) -> bool:
    cmd = _cmdline(p)
    return bool(cmd) and any(k in cmd[0].rsplit("/", 1)[-1] for k in ("chrom", "headless_shell"))


@pytest.mark.parametrize(("when", "after"), [
    ("selectors from", 0.5),  # opening the portal: a page waiting on the browser
    ("logged in as", 1.5),  # reading orders through the session (the browser's cookies)
], ids=["opening", "reading"])
def test_chromium_killed_mid_run_is_a_system_failure_with_a_plain_message_and_nothing_left(
    tmp_path, sandbox, clean_sandbox, when, after,
):
    _config(tmp_path, sandbox, "retries = 1\n")
    tmp = tmp_path / "tmp"  # the run's system temporary folder: what it leaves there is seen exactly
    tmp.mkdir()
    clean_sandbox.behave("oem", slow_rate=1.0, slow_ms=400)  # a run that takes a while
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEALERBOT_")}
    env.update(DEALERBOT_OEM_PASSWORD=OEM_PASSWORD, TMPDIR=str(tmp), COLUMNS="160", NO_COLOR="1")
    proc = subprocess.Popen([sys.executable, "-m", "dealerbot.cli", "run", "oem-orders", "--full"], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    store_url = f"sqlite:///{tmp_path / 'var' / 'dealerbot.sqlite'}"
    seen: list[psutil.Process] = []  # every Chromium process of the run when the browser was killed
    try:
        deadline = time.monotonic() + 90
        while not seen:
            assert time.monotonic() < deadline and proc.poll() is None, proc.stdout.read() if proc.poll() is not None else "no read"
            logs = list((tmp_path / "logs" / "runs").glob("*/run.log")) if (tmp_path / "logs" / "runs").is_dir() else []
            if logs and when in logs[0].read_text("utf-8"):
                time.sleep(after)
                seen = [p for p in _descendants(proc.pid) if _is_chromium(p)]
                # The browser process only (its helpers, renderer and network service, are left
                # running): as the system's out-of-memory killer would end it.
                for p in seen:
                    cmd = _cmdline(p)
                    if cmd and not any(a.startswith("--type=") for a in cmd):
                        p.kill()
            time.sleep(0.2)
        out, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
        clean_sandbox.behave("oem", slow_rate=0.0)
    print(out)
    assert proc.returncode == 1, out  # a failure of the system, not of the configuration
    with Store.open(store_url) as store:
        (run,) = store.runs(5)
    assert run.status == "failed"
    assert "浏览器意外退出" in run.error and "浏览器意外退出" in out
    assert "Traceback" not in out and "--disable-background-networking" not in out and "internal" not in out
    assert len(seen) >= 3  # the browser process and its helpers
    assert not list(tmp.iterdir())  # no browser profile, no Playwright artifacts left behind
    assert not [p for p in seen if _alive(p)]  # and no process of that browser


async def test_browsers_started_side_by_side_each_get_a_temporary_folder_of_their_own_removed_at_the_end():
    """Runs side by side (the console, the scheduler beside it) start their drivers in one process:
    each browser's temporary folder is its own, the process's environment is left as it was."""
    import asyncio

    from dealerbot.config import BrowserSettings
    from dealerbot.web.browser import open_browser

    before = {k: os.environ.get(k) for k in ("TMPDIR", "TEMP", "TMP", "NODE_OPTIONS")}
    folders: set[str] = set()
    all_open = asyncio.Barrier(3)

    async def one() -> None:
        async with open_browser(BrowserSettings()) as browser:
            page = await browser.browser.new_page()
            await page.set_content("<p>你好</p>")
            if await all_open.wait() == 0:  # once, while all three are open
                folders.update(p.environ().get("TMPDIR", "") for p in _descendants(os.getpid()) if _is_chromium(p))
            await all_open.wait()

    await asyncio.gather(one(), one(), one())
    folders.discard("")  # a process that ended meanwhile
    assert len(folders) == 3 and all("dealerbot-browser-" in f for f in folders), folders  # one each
    assert not [f for f in folders if Path(f).exists()]  # removed
    assert {k: os.environ.get(k) for k in before} == before
