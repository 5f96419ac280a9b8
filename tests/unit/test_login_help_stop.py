"""A console run whose login waits for a person stops when asked to (停止), typing nothing; an
answer given first is what the login gets."""

from __future__ import annotations

import asyncio

import pytest

from dealerbot.errors import StopRequested
from dealerbot.running.login_help import ConsoleHelp, Question, ask_unless_stopped


def _question() -> Question:
    return Question("r1", "oem", "厂家门户", "sms_code", "请输入手机收到的短信验证码")


async def test_a_stop_withdraws_the_question_and_ends_the_wait() -> None:
    help_, stop = ConsoleHelp(wait_seconds=30), asyncio.Event()
    waiting = asyncio.ensure_future(ask_unless_stopped(help_, _question(), stop))
    await asyncio.sleep(0.05)
    assert help_.waiting("r1") is not None  # the run page shows the box
    stop.set()  # the console's 停止
    with pytest.raises(StopRequested):
        await asyncio.wait_for(waiting, 2)  # at once, not after the 30 s wait
    assert help_.waiting("r1") is None and not help_.answer("r1", "123456")  # the box is gone


async def test_an_answer_before_any_stop_is_the_login_s() -> None:
    help_, stop = ConsoleHelp(wait_seconds=30), asyncio.Event()
    waiting = asyncio.ensure_future(ask_unless_stopped(help_, _question(), stop))
    await asyncio.sleep(0.05)
    assert help_.answer("r1", " 654321 ")
    assert await asyncio.wait_for(waiting, 2) == "654321"
