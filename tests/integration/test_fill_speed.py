"""Form filling by label in one browser round-trip, in real Chromium: every kind of label
(``for=``, nested, ``aria-label``, ``aria-labelledby``, unlinked) resolved and filled by one
page-side script, the page's own listeners seeing the change; and the sandbox's moving form
(10 rounds, fields that move, a button that slides in) done right through :class:`Form`."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import httpx
import pytest

from dealerbot.api import Form, PortalSession
from dealerbot.config import BrowserSettings, PortalSettings, RunSettings
from dealerbot.sandbox.rounds import FIELDS, RECORDS
from dealerbot.web.browser import open_browser
from dealerbot.web.locators import load_selector_file

pytestmark = pytest.mark.browser


class Counted:
    """A Playwright page (or locator) that counts the calls that go to the browser: every
    awaited method of it, or of a locator made from it (each is at least one round-trip)."""

    def __init__(self, target: Any, calls: list[str]) -> None:
        self._target, self._calls = target, calls

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if not callable(value):
            return Counted(value, self._calls) if type(value).__name__ == "Locator" else value

        def call(*args: Any, **kwargs: Any) -> Any:
            out = value(*args, **kwargs)
            if inspect.isawaitable(out):
                self._calls.append(name)
            return Counted(out, self._calls) if type(out).__name__ == "Locator" else out

        return call


KINDS = """
<form>
  <label for="a-id">客户姓名</label><input id="a-id" name="by_for">
  <label>手机号码 <input name="nested"></label>
  <input name="aria" aria-label="车架号">
  <span id="m-l">意向车型</span><input name="labelledby" aria-labelledby="m-l">
  <div><label>车身颜色：</label><input name="unlinked"></div>
  <div><label>成交价格</label><span><textarea name="unlinked_area"></textarea></span></div>
  <label for="city">所在城市</label><select id="city" name="select"><option value="">--</option>
    <option value="sh">上海</option><option value="sz">苏州</option></select>
  <label for="d">备注（内部）</label><input id="d" name="decoy">
  <label for="x">备注</label><input id="x" name="exact">
</form>
<script>
  window.seen = [];
  for (const kind of ['input', 'change']) document.addEventListener(kind, e => seen.push(kind + ':' + e.target.name));
</script>
"""
KIND_FIELDS = {"by_for": "客户姓名", "nested": "手机号码", "aria": "车架号", "labelledby": "意向车型",
               "unlinked": "车身颜色", "unlinked_area": "成交价格", "select": "所在城市"}


def _selectors(tmp_path: Path, fields: dict[str, str], extra: str = "") -> Path:
    path = tmp_path / "drill.yaml"
    path.write_text("portal: drill\nselectors:\n" + "".join(f"  f.{k}:\n    - label: {t}\n" for k, t in fields.items())
                    + extra, encoding="utf-8")
    return path


async def test_every_kind_of_label_is_filled_in_one_round_trip_and_the_moving_form_comes_out_right(tmp_path, sandbox):
    async with open_browser(BrowserSettings()) as browser:
        assert browser is not None
        page = await browser.browser.new_page()
        try:
            # 1. every kind of label, filled in one round-trip; the page's listeners see each field
            await page.set_content(KINDS)
            calls: list[str] = []
            session = PortalSession("drill", PortalSettings(url=sandbox.usedcars_url), None,  # type: ignore[arg-type]
                                    Counted(page, calls), load_selector_file(_selectors(
                                        tmp_path, KIND_FIELDS, "  f.exact:\n    - label: 备注\n      exact: true\n")),
                                    RunSettings(timeout_seconds=3))
            values = {f"f.{k}": f"值{i}" for i, k in enumerate(KIND_FIELDS)} | {"f.select": "苏州", "f.exact": "精确"}
            await Form(session).fill(values, by_text=frozenset({"f.select"}))
            assert calls == ["evaluate"], calls  # one call to the browser, whatever the label's kind
            got = await page.evaluate("() => Object.fromEntries(Array.from(document.forms[0].elements, e => [e.name, e.value]))")
            assert {k: got[k] for k in KIND_FIELDS} == {k: ("sz" if k == "select" else f"值{i}")
                                                         for i, k in enumerate(KIND_FIELDS)}
            assert (got["exact"], got["decoy"]) == ("精确", "")  # exact: true: 备注 itself, not 备注（内部）
            seen = await page.evaluate("() => seen")
            assert all(f"{kind}:{k}" in seen for k in KIND_FIELDS for kind in ("input", "change")), seen

            # 2. the moving form: 10 rounds by label, the sliding button clicked without waiting for it
            admin = httpx.Client(base_url=sandbox.usedcars_url, headers={"X-Admin-Token": sandbox.admin_token}, timeout=10)
            admin.post("/__admin/rounds/reset").raise_for_status()
            names = dict(FIELDS)
            drill = PortalSession("drill", PortalSettings(url=sandbox.usedcars_url), None, page,  # type: ignore[arg-type]
                                  load_selector_file(_selectors(tmp_path, names, "  drill.submit:\n    - css: '#submit'\n"
                                                                "  drill.done:\n    - css: '#done'\n"
                                                                "  drill.elapsed:\n    - css: '#elapsed'\n")),
                                  RunSettings(timeout_seconds=10))
            await page.goto(f"{sandbox.usedcars_url}/rounds/")
            form = Form(drill)
            for record in RECORDS:
                await form.fill({f"f.{k}": record[k] for k in names})
                await form.click("drill.submit", settled=False)
            assert await form.first_of("drill.done") == "drill.done"
            shown = await form.read_text("drill.elapsed")
            [run] = admin.get("/__admin/rounds").raise_for_status().json()["runs"]
            admin.close()
            assert run["rounds"] == list(RECORDS)  # every round's values, in the fields they belong to
            assert shown == f"用时 {run['elapsed_ms']} 毫秒"
        finally:
            await page.close()
