"""Retrying a step that may fail for a while: the one retry helper (portal steps and reads, a
re-key's write, a browser's start), and its blocking twin :func:`with_retries_sync` (the desktop
client's typing, in its worker thread). Exponential backoff (by default with jitter, at most
``MAX_BACKOFF_SECONDS``, longer after a rate limit); each caller may turn those off and say in its
own words what is retried."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from loguru import logger
from tenacity import AsyncRetrying, RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from dealerbot.errors import RateLimited, SystemFailure

if TYPE_CHECKING:
    from loguru import Logger

RATE_LIMIT_FACTOR = 5.0
T = TypeVar("T")
MAX_BACKOFF_SECONDS = 30.0


def retryable_failure(exc: BaseException) -> bool:
    """The default of what is retried: a :class:`SystemFailure` that says retrying may help."""
    return isinstance(exc, SystemFailure) and exc.retryable


def _delay(backoff: float, jitter: bool, max_backoff: float | None,
           rate_limit_factor: float) -> Callable[[int, BaseException | None], float]:
    """The wait before retry ``failed`` (from 1) after ``exc``: see :func:`with_retries`."""

    def delay(failed: int, exc: BaseException | None) -> float:
        seconds = backoff * 2 ** (failed - 1)
        if max_backoff is not None:
            seconds = min(max_backoff, seconds)
        seconds *= rate_limit_factor if isinstance(exc, RateLimited) else 1.0
        return seconds * (1 + random.random() * 0.25) if jitter else seconds

    return delay


def _retrying_after(what: str, attempts: int, on_retry: Callable[[SystemFailure], None] | None, log: Logger,
                    announce: Callable[[BaseException, int, float], None] | None,
                    ) -> Callable[[int, BaseException | None, float], None]:
    """What is said and counted before retry ``failed``: see :func:`with_retries`."""

    def retrying_after(failed: int, exc: BaseException | None, seconds: float) -> None:
        if announce is not None and exc is not None:
            announce(exc, failed, seconds)
        else:
            log.warning("{} failed: {}; retry {}/{} in {:.1f}s", what, exc, failed, attempts, seconds)
        if on_retry and isinstance(exc, SystemFailure):
            on_retry(exc)

    return retrying_after


async def with_retries(
    what: str,
    fn: Callable[[], Awaitable[T]],
    attempts: int,
    backoff: float,
    on_retry: Callable[[SystemFailure], None] | None = None,
    log: Logger = logger,
    *,
    retry_if: Callable[[BaseException], bool] = retryable_failure,
    jitter: bool = True,
    max_backoff: float | None = MAX_BACKOFF_SECONDS,
    rate_limit_factor: float = RATE_LIMIT_FACTOR,
    announce: Callable[[BaseException, int, float], None] | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """Run ``fn``; on a failure ``retry_if`` accepts (by default a retryable
    :class:`SystemFailure`), wait and try again, at most ``attempts`` more times (tenacity).

    Retry ``n`` (from 1) waits ``backoff * 2**(n-1)`` seconds, at most ``max_backoff`` (None: no
    limit), times ``rate_limit_factor`` after a :class:`RateLimited` answer, then with up to 25%
    jitter unless ``jitter`` is false. Before each wait ``announce(exc, n, seconds)`` is called;
    without one, ``log`` gets a warning naming ``what``. ``on_retry`` is told of each retried
    :class:`SystemFailure` (a counter). ``sleep`` waits (a test may pass its own). A first attempt
    that works costs one call: tenacity takes over only after a failure (it runs around every
    read of a run).

    Raises:
        Exception: the last failure once ``attempts`` retries are used up, or at once a failure
            that ``retry_if`` does not accept (an ``Exception``'s subclass; other exceptions,
            such as a cancellation, are never caught).
    """
    try:
        return await fn()
    except Exception as exc:
        if attempts < 1 or not retry_if(exc):
            raise
        first = exc

    delay = _delay(backoff, jitter, max_backoff, rate_limit_factor)
    retrying_after = _retrying_after(what, attempts, on_retry, log, announce)
    seconds = delay(1, first)
    retrying_after(1, first, seconds)
    await sleep(seconds)

    # tenacity counts from the second attempt: its attempt n is the run's n + 1
    def wait(state: RetryCallState) -> float:
        return delay(state.attempt_number + 1, state.outcome.exception() if state.outcome else None)

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        retrying_after(state.attempt_number + 1, exc, state.next_action.sleep if state.next_action else 0.0)

    async def call() -> T:  # a coroutine function: tenacity awaits it (a lambda it would not)
        return await fn()

    retrying = AsyncRetrying(
        sleep=sleep,
        stop=stop_after_attempt(attempts),
        wait=wait,
        retry=retry_if_exception(lambda exc: isinstance(exc, Exception) and retry_if(exc)),
        before_sleep=before_sleep,
        reraise=True,
    )
    return await retrying(call)


def with_retries_sync(
    what: str,
    fn: Callable[[], T],
    attempts: int,
    backoff: float,
    on_retry: Callable[[SystemFailure], None] | None = None,
    log: Logger = logger,
    *,
    retry_if: Callable[[BaseException], bool] = retryable_failure,
    jitter: bool = True,
    max_backoff: float | None = MAX_BACKOFF_SECONDS,
    rate_limit_factor: float = RATE_LIMIT_FACTOR,
    announce: Callable[[BaseException, int, float], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """:func:`with_retries` for a blocking step (the desktop client's keyboard, driven from its
    worker thread): the same tries, failures, waits, words and counts; ``sleep`` blocks.

    Raises:
        Exception: the last failure once ``attempts`` retries are used up, or at once a failure
            that ``retry_if`` does not accept (other exceptions, such as ``KeyboardInterrupt``,
            are never caught).
    """
    delay = _delay(backoff, jitter, max_backoff, rate_limit_factor)
    retrying_after = _retrying_after(what, attempts, on_retry, log, announce)

    def wait(state: RetryCallState) -> float:  # tenacity's attempt n is the n-th failure here
        return delay(state.attempt_number, state.outcome.exception() if state.outcome else None)

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        retrying_after(state.attempt_number, exc, state.next_action.sleep if state.next_action else 0.0)

    retrying = Retrying(
        sleep=sleep,
        stop=stop_after_attempt(max(attempts, 0) + 1),
        wait=wait,
        retry=retry_if_exception(lambda exc: isinstance(exc, Exception) and retry_if(exc)),
        before_sleep=before_sleep,
        reraise=True,
    )
    return retrying(fn)
