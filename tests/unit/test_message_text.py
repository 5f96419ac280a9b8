"""Every message's wording, for each failure kind the console explains (dealerbot.failure_text)."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import pytest

from dealerbot.failure_text import ADVICE
from dealerbot.running.notify import firing_message, in_chinese, review_message, run_messages
from dealerbot.running.runner import RunResult

CONSOLE = "http://192.168.1.20:8750"
LATIN_OK = {"dealerbot", "DMS", "toml", "selectors", "schedules", "yaml", "Chrome", "Edge", "Chromium", "oem", "orders", "dms",
            "contracts", "xlsx", "review", "XS"}  # bots, files and products by name; no English sentence


def _check(title: str, body: str) -> list[str]:
    lines = body.splitlines()
    assert 1 <= len(lines) <= 3 and len(set(lines)) == len(lines), body
    text = re.sub(r"https?://\S+", "", f"{title}\n{body}")
    assert "/tmp" not in text and "logs/runs" not in text and not re.search(r"dealerbot\s+[a-z]", text), text
    assert set(re.findall(r"[A-Za-z]+", text)) <= LATIN_OK, text
    return lines


@pytest.mark.parametrize("error_class", sorted(ADVICE))
def test_a_failure_of_every_kind_is_three_chinese_lines_with_the_consoles_words(error_class):
    result = RunResult("20261207-074512-oem-orders-3fa2", "oem-orders", "failed", {"read": 3}, error=(
        "厂家门户出错：HTTP 500 (oem: server error HTTP 500 on /orders); 证据 /srv/dealer/logs/runs/x"),
        error_class=error_class, run_dir=Path("/srv/dealer/logs/runs/x"), evidence=[Path("/srv/dealer/logs/runs/x/a.png")])
    [message] = run_messages(result, CONSOLE)
    lines = _check(message.title, message.body)
    assert message.title == "dealerbot：oem-orders 失败"
    assert lines[0] == ADVICE[error_class].title and lines[1].startswith("建议：")
    assert lines[2] == f"详情：{CONSOLE}/runs/{result.run_id}"
    [without] = run_messages(result, "")
    assert without.body.splitlines() == lines[:2]  # no address configured: no link, nothing else instead


def test_a_postponed_run_says_until_when_and_approvals_name_the_workbook():
    result = RunResult("r1", "dms-contracts", "postponed", {}, error_class="PortalMaintenance",
                       resume_after=datetime(2026, 12, 7, 4, 0))
    [message] = run_messages(result, CONSOLE)
    assert _check(message.title, message.body)[:2] == ["门户正在维护", "建议：维护预计到 04:00 结束，届时会自动重新运行。"]
    waiting = review_message(12, "review-20261207-073512.xlsx", [("XS2026000001", "颜色 曜石黑→星空灰")], CONSOLE)
    lines = _check(waiting.title, waiting.body)
    assert waiting.title == "dealerbot：12 条操作等待审核"
    assert "review-20261207-073512.xlsx" in lines[0] and "XS2026000001（颜色 曜石黑→星空灰）" in lines[1]
    assert lines[2] == f"控制台：{CONSOLE}/review"


def test_a_timetables_reason_loses_its_english_its_commands_and_its_folders():
    said = in_chinese("oem-customers 正在为同一账号运行，本次不启动；等它结束，或用 dealerbot runs 查看 "
                      "(oem-customers is already running for this portal account)")
    assert said == "oem-customers 正在为同一账号运行，本次不启动；等它结束"
    message = firing_message("failed", "dealerbot 定时任务暂停：无法打开数据库",
                             "数据库文件已损坏，未读写任何内容：/srv/dealer/var/dealerbot.sqlite（请从备份恢复） "
                             "(the store is damaged: file is not a database)")
    assert message.body == "数据库文件已损坏，未读写任何内容：dealerbot.sqlite（请从备份恢复）"
