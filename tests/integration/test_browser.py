"""The browser dealerbot launches: its switches and its processes (real Chromium)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import psutil

from dealerbot.config import BrowserSettings
from dealerbot.web.browser import open_browser


def _chromium_processes() -> list[list[str]]:
    cmds = []
    for p in psutil.Process().children(recursive=True):
        try:
            cmd = p.cmdline()
        except psutil.Error:
            continue
        if cmd and "chrom" in cmd[0].rsplit("/", 1)[-1]:
            cmds.append(cmd)
    return cmds


async def test_playwrights_feature_switches_stand_and_headless_runs_in_few_processes():
    async with open_browser(BrowserSettings()) as browser:
        page = await browser.browser.new_page()
        await page.set_content("<p>你好</p>")
        cmds = _chromium_processes()
        await page.close()
    main = next(c for c in cmds if not any(a.startswith("--type=") for a in c))
    # Chromium honours only the last --disable-features: a list of ours after Playwright's once
    # switched Playwright's back on (paint holding, the before-unload check...).
    disabled = [a for a in main if a.startswith("--disable-features=")][-1]
    assert "PaintHolding" in disabled and "AvoidUnnecessaryBeforeUnloadCheckSync" in disabled
    kinds = {a[len("--type="):] for c in cmds for a in c if a.startswith("--type=")}
    assert "renderer" in kinds
    assert "gpu-process" not in kinds  # composited in the browser process
    if sys.platform.startswith("linux"):
        assert "zygote" not in kinds


async def test_a_page_still_renders_and_screenshots_without_a_gpu_process(tmp_path):
    async with open_browser(BrowserSettings()) as browser:
        page = await browser.browser.new_page()
        await page.set_content("<div style='width:200px;height:100px;background:#c00'>保存失败</div>")
        shot = tmp_path / "shot.png"
        await page.screenshot(path=str(shot))
        await page.close()
    from PIL import Image  # noqa: PLC0415 - pyscreeze's dependency, present with pyautogui

    with Image.open(shot) as img:
        assert img.getpixel((150, 80))[:3] == (204, 0, 0)  # the box, away from its text


async def test_a_traced_run_leaves_no_tracing_session_behind(settings, clean_sandbox):
    from dealerbot.running.runner import run_bot

    from .conftest import PASSWORDS

    def leftovers() -> set[str]:
        return {p.name for p in Path(tempfile.gettempdir()).glob("playwright-tracing-*")}

    before = leftovers()
    settings.browser.trace = True
    result = await run_bot("oem-customers", settings, passwords=PASSWORDS)
    assert result.ok, result.error
    # A second stack session, opened and never closed, kept every call's stack in the driver
    # (its memory grew with every read) and its folder after the run.
    assert leftovers() <= before


async def test_a_browser_that_dies_as_it_starts_is_started_again(tmp_path):
    """A busy machine now and then loses a browser in its first second: the run starts it again
    instead of failing as if the browser were missing."""
    from dealerbot.web.browser import find_browser

    real = find_browser(BrowserSettings(), None, True).executable
    marker = tmp_path / "died-once"
    wrapper = tmp_path / "flaky-chromium"
    wrapper.write_text(f"#!/bin/sh\nif [ ! -e {marker} ]; then touch {marker}; exit 1; fi\nexec {real} \"$@\"\n")
    wrapper.chmod(0o755)
    async with open_browser(BrowserSettings(executable=str(wrapper))) as browser:
        page = await browser.browser.new_page()
        await page.set_content("<p>ok</p>")
        assert await page.inner_text("p") == "ok"
    assert marker.exists()  # it did die the first time


async def test_a_run_whose_store_cannot_open_leaves_no_browser_behind(settings, tmp_path):
    """The browser starts while the store opens: a store that fails to open ends the run with
    its message, and the browser started meanwhile is closed, not left running."""
    import pytest

    from dealerbot.errors import ConfigError
    from dealerbot.running.runner import run_bot

    from .conftest import PASSWORDS

    broken = tmp_path / "broken.sqlite"
    broken.write_bytes(b"this is not a database" * 100)
    settings.store.url = f"sqlite:///{broken}"
    with pytest.raises(ConfigError, match="broken.sqlite"):
        await run_bot("oem-orders", settings, passwords=PASSWORDS)
    assert _chromium_processes() == []
    assert [p for p in psutil.Process().children(recursive=True) if "node" in p.name()] == []
