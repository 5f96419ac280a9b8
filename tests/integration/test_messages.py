"""Messages as people receive them: real runs against the sandbox, real apprise posting to a
webhook on loopback (json://), the store's memory of what was reported in a real SQLite file.

A message is a title and at most three short Chinese lines, with a link to the run's page on the
console when its address is configured, and never a folder on the server, a command to type or
English; a reject is named once, and again only when it changes."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from dealerbot.running.runner import run_bot
from dealerbot.running.sync import sync
from dealerbot.store import Store

from .conftest import PASSWORDS
from .test_console import _login, console  # noqa: F401 - the console fixture: the link is followed
from .test_scheduler import Receiver

CONSOLE = "http://192.168.1.20:8750"
HOLD = ["create_contract", "update_contract", "cancel_contract"]  # every write waits for a person: no re-key run
ALLOWED_LATIN = {"dealerbot", "VIN", "DMS", "xlsx", "review"}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def assert_readable(message: dict, settings, bots: tuple[str, ...] = ()) -> list[str]:
    """A message a clerk can read on a phone: at most three lines under the title, Chinese, no
    folder on the server, no command, no English beyond names; its body's lines."""
    title, body = message["title"], message["message"]
    lines = body.splitlines()
    assert 1 <= len(lines) <= 3, body
    text = f"{title}\n{body}"
    assert re.search(r"[\u4e00-\u9fff]", text), text
    for folder in ("/tmp", str(settings.home), "logs/runs", "run.log", "\\"):
        assert folder not in text, (folder, text)
    assert not re.search(r"dealerbot\s+[a-z]", text), text  # no `dealerbot credentials set ...`
    words = set(re.findall(r"[A-Za-z][A-Za-z_]+", re.sub(r"https?://\S+", "", text)))
    names = {w for bot in bots for w in re.findall(r"[A-Za-z]+", bot)}
    assert words <= ALLOWED_LATIN | names, (words - ALLOWED_LATIN - names, text)
    assert len(set(lines)) == len(lines), body  # nothing said twice
    return lines


async def test_a_refused_password_is_a_short_chinese_message_with_the_run_page_and_no_server_path(
        settings, clean_sandbox, receiver, console):  # noqa: F811
    settings.notify.urls = [receiver.url]
    # No console address configured: no link, and still no folder on the server.
    failed = await run_bot("oem-orders", settings, passwords={"oem": "Wrong-Pass-5", "dms": PASSWORDS["dms"]})
    assert failed.status == "failed" and failed.error_class == "LoginRejected"
    [message] = receiver.messages
    assert message["title"] == "dealerbot：oem-orders 失败"
    lines = assert_readable(message, settings, ("oem-orders",))
    assert lines[0] == "门户拒绝了密码" and lines[1].startswith("建议：") and "设置新密码" in lines[1], lines
    assert "http" not in message["message"] and str(failed.run_dir) not in message["message"]
    assert "Wrong-Pass-5" not in message["title"] + message["message"]
    assert len(message["title"]) + len(message["message"]) < 100, message

    # With the console's address: the last line links to this run's page, which the console shows.
    receiver.messages.clear()
    settings.console.public_url = console + "/"
    again = await run_bot("oem-orders", settings, passwords={"oem": "Wrong-Pass-5", "dms": PASSWORDS["dms"]})
    assert again.status == "failed" and again.error_class == "LoginRejected"
    [message] = receiver.messages
    lines = assert_readable(message, settings, ("oem-orders",))
    assert lines[-1] == f"详情：{console}/runs/{again.run_id}", lines
    link = lines[-1].removeprefix("详情：")
    with httpx.Client(base_url=console, timeout=30) as web:
        assert _login(web).status_code == 303
        page = web.get(link)
        assert page.status_code == 200 and again.run_id in page.text, page.status_code


def _rejects(settings, run_id: str) -> list[dict]:
    with Store.open(settings.store_url) as store:
        return list(store.iter_rejects(run_id))


async def test_a_reject_is_reported_once_and_again_only_when_a_new_one_appears(settings, clean_sandbox, receiver):
    """Two daily syncs against the unchanged sandbox: the first names the rejects, the second
    none (oem-customers reads every customer again and rejects the same ones); then one order
    gets a wrong VIN at the OEM: the next message names that one alone. No message announces
    the customers the plan leaves out for lack of consent."""
    settings.notify.urls = [receiver.url]
    settings.console.public_url = CONSOLE
    settings.rekey.approval_required = HOLD
    first = await sync(settings, passwords=PASSWORDS, workbook=True)
    assert first.ok, first.stopped
    said = {m["title"]: m for m in receiver.messages}
    for bot in ("oem-orders", "oem-customers"):
        [run] = [r for r in first.runs if r.bot == bot]
        rejected = _rejects(settings, run.run_id)
        assert rejected, (bot, "the sandbox's data has records a read rejects")
        message = said[f"dealerbot：{bot} 有 {len(rejected)} 条新的被拒绝记录"]
        lines = assert_readable(message, settings, (bot,))
        assert lines[-1] == f"详情：{CONSOLE}/runs/{run.run_id}"
    [review] = [m for m in receiver.messages if "等待审核" in m["title"]]
    lines = assert_readable(review, settings)
    assert first.workbook_path is not None and first.workbook_path.name in lines[0], lines
    assert lines[-1] == f"控制台：{CONSOLE}/"
    assert not any("未授权" in m["title"] + m["message"] for m in receiver.messages)  # consent: the law, no news

    receiver.messages.clear()
    second = await sync(settings, passwords=PASSWORDS, workbook=True)
    assert second.ok, second.stopped
    [customers] = [r for r in second.runs if r.bot == "oem-customers"]
    assert customers.counts["rejected"] and _rejects(settings, customers.run_id)  # rejected again, the same ones
    assert not [m for m in receiver.messages if "被拒绝" in m["title"] + m["message"]], receiver.messages
    assert [m["title"] for m in receiver.messages] == [review["title"]]  # approvals still wait: that is said

    # The OEM changes one order: its VIN's check digit is now wrong.
    order = next(o for o in clean_sandbox.orders() if o["vin"] and o["vin"][8].isdigit())
    vin = order["vin"][:8] + str((int(order["vin"][8]) + 1) % 10) + order["vin"][9:]
    clean_sandbox.oem.patch(f"/__admin/orders/{order['order_no']}", json={"vin": vin}).raise_for_status()
    receiver.messages.clear()
    third = await run_bot("oem-orders", settings, passwords=PASSWORDS, full=True)  # every order read again
    assert third.ok, third.error
    assert len(_rejects(settings, third.run_id)) > 1  # the old rejects again, and the new one
    [message] = receiver.messages
    assert message["title"] == "dealerbot：oem-orders 有 1 条新的被拒绝记录", message
    lines = assert_readable(message, settings, ("oem-orders",))
    assert lines[0] == "VIN校验位错误 1 条" and lines[-1] == f"详情：{CONSOLE}/runs/{third.run_id}", lines
