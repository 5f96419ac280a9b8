"""Retrying a step or read: how many tries, which failures, what is counted."""

from __future__ import annotations

import asyncio

import pytest

from dealerbot.errors import PageChanged, PortalUnavailable, RateLimited
from dealerbot.web.retries import with_retries


def _failing(times: int, exc: Exception) -> tuple[list[int], object]:
    calls: list[int] = []

    async def fn() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise exc
        return "ok"

    return calls, fn


def test_a_read_that_works_at_once_is_called_once_and_counts_no_retry():
    calls, fn = _failing(0, PortalUnavailable("down"))
    retried: list[Exception] = []
    assert asyncio.run(with_retries("GET /x", fn, 3, 0.0, retried.append)) == "ok"
    assert len(calls) == 1 and retried == []


def test_failures_are_retried_until_it_works_each_counted_once():
    calls, fn = _failing(2, RateLimited("429"))
    retried: list[Exception] = []
    assert asyncio.run(with_retries("GET /x", fn, 3, 0.0, retried.append)) == "ok"
    assert len(calls) == 3 and len(retried) == 2


def test_the_last_failure_is_raised_after_the_retries_and_a_page_change_at_once():
    calls, fn = _failing(99, PortalUnavailable("down"))
    retried: list[Exception] = []
    with pytest.raises(PortalUnavailable):
        asyncio.run(with_retries("GET /x", fn, 2, 0.0, retried.append))
    assert len(calls) == 3 and len(retried) == 2
    calls, fn = _failing(99, PageChanged("moved"))
    with pytest.raises(PageChanged):
        asyncio.run(with_retries("GET /x", fn, 5, 0.0))
    assert len(calls) == 1
    calls, fn = _failing(99, PortalUnavailable("down"))
    with pytest.raises(PortalUnavailable):
        asyncio.run(with_retries("GET /x", fn, 0, 0.0))
    assert len(calls) == 1
