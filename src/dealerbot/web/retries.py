"""Retrying a portal step or read: exponential backoff with jitter, a longer pause after a rate limit."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from loguru import logger
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from dealerbot.errors import RateLimited, SystemFailure

if TYPE_CHECKING:
    from loguru import Logger

RATE_LIMIT_FACTOR = 5.0
T = TypeVar("T")
MAX_BACKOFF_SECONDS = 30.0


async def with_retries(
    what: str,
    fn: Callable[[], Awaitable[T]],
    attempts: int,
    backoff: float,
    on_retry: Callable[[SystemFailure], None] | None = None,
    log: Logger = logger,
) -> T:
    """Run ``fn``; on a retryable :class:`SystemFailure`, wait and try again (tenacity).

    Waits ``backoff * 2**n`` seconds (times 5 after a rate-limit answer, at most
    ``MAX_BACKOFF_SECONDS``) with jitter. A first attempt that works costs one call: tenacity
    takes over only after a failure (it runs around every read of a run).

    Raises:
        SystemFailure: the last failure once ``attempts`` retries are used up, or at once
            for a failure that is not retryable.
    """
    try:
        return await fn()
    except SystemFailure as exc:
        if not exc.retryable or attempts < 1:
            raise
        first = exc

    def delay(failed: int, exc: BaseException | None) -> float:
        seconds = min(MAX_BACKOFF_SECONDS, backoff * 2 ** (failed - 1))
        seconds *= RATE_LIMIT_FACTOR if isinstance(exc, RateLimited) else 1.0
        return seconds * (1 + random.random() * 0.25)

    def retrying_after(failed: int, exc: BaseException | None, sleep: float) -> None:
        log.warning("{} failed: {}; retry {}/{} in {:.1f}s", what, exc, failed, attempts, sleep)
        if on_retry and isinstance(exc, SystemFailure):
            on_retry(exc)

    sleep = delay(1, first)
    retrying_after(1, first, sleep)
    await asyncio.sleep(sleep)

    # tenacity counts from the second attempt: its attempt n is the run's n + 1
    def wait(state: RetryCallState) -> float:
        return delay(state.attempt_number + 1, state.outcome.exception() if state.outcome else None)

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        retrying_after(state.attempt_number + 1, exc, state.next_action.sleep if state.next_action else 0.0)

    async def call() -> T:  # a coroutine function: tenacity awaits it (a lambda it would not)
        return await fn()

    retrying = AsyncRetrying(
        stop=stop_after_attempt(attempts),
        wait=wait,
        retry=retry_if_exception(lambda e: isinstance(e, SystemFailure) and e.retryable),
        before_sleep=before_sleep,
        reraise=True,
    )
    return await retrying(call)


