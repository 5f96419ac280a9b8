"""Guarantees of the README that a wrong change could once break with every other default test
green, each pinned end to end against the real sandbox (docs/testing.md, "Deliberate breakages
and the tests that catch them", names the breakage each test catches)."""

from __future__ import annotations

import time

from dealerbot.runner import run_bot

from .conftest import PASSWORDS

# -- the portal's pace ----------------------------------------------------------------------------

PACE_PER_MINUTE = 480  # [run] requests_per_minute: one request every 0.1275 s (with the 2% margin)
PACE_WINDOW_SECONDS = 10.0  # the sandbox counts its limit in windows this long ...
PACE_LIMIT = PACE_PER_MINUTE * PACE_WINDOW_SECONDS / 60  # ... allowing exactly the bot's pace: 80 a window


async def test_a_run_at_the_portals_exact_limit_stays_within_it_and_draws_no_429(settings, store, clean_sandbox):
    """The bot's configured pace equals the portal's limit: every window holds at most the limit
    (the sandbox's own count of the fullest window), the whole run keeps the pace, no 429."""
    assert PACE_LIMIT == int(PACE_LIMIT)
    clean_sandbox.behave("oem", rate_limit_per_minute=int(PACE_LIMIT), rate_limit_window_seconds=PACE_WINDOW_SECONDS)
    paced = settings.model_copy(update={"run": settings.run.model_copy(
        update={"requests_per_minute": PACE_PER_MINUTE, "rate_limit_pause_seconds": 1})})
    started = time.monotonic()
    result = await run_bot("oem-orders", paced, passwords=PASSWORDS)
    elapsed = time.monotonic() - started
    counters = clean_sandbox.counters("oem")
    assert result.ok, result.error
    assert result.counts["read"] == len(clean_sandbox.orders())
    assert counters["rate_limited"] == 0, counters  # not one refusal
    # The fullest window, as the portal counted it: at the limit, never over it.
    assert PACE_LIMIT * 0.9 <= counters["rate_window_peak"] <= PACE_LIMIT, counters
    # Nearly two windows' worth of requests, and the whole run kept the pace.
    reads = counters["detail_views"] + counters["api_requests"]
    assert reads > 1.5 * PACE_LIMIT
    assert elapsed >= (reads - 1) * 60 / PACE_PER_MINUTE, (elapsed, reads)
