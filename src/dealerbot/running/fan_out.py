"""Running many reads at once: a producer fills a bounded queue, workers consume it, and what failed
is requeued for further rounds (:func:`fan_out`); :func:`first_error` unwraps a task group's failure."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from dealerbot.errors import SystemFailure

if TYPE_CHECKING:
    from loguru import Logger

T = TypeVar("T")
_DONE = object()


def first_error(group: BaseExceptionGroup) -> BaseException:
    """The first real error inside a (nested) exception group."""
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return first_error(exc)
        if not isinstance(exc, asyncio.CancelledError):
            return exc
    return group.exceptions[0]


async def fan_out(
    produce: Callable[[Callable[[T], Awaitable[None]]], Awaitable[None]],
    consume: Callable[[T], Awaitable[None]],
    workers: int,
    buffer: int,
    requeue_rounds: int = 0,
    pause: float = 1.0,
    log: Logger | None = None,
) -> None:
    """Run ``produce(put)`` and ``workers`` copies of ``consume(item)`` over a bounded queue.

    Memory stays bounded by ``buffer`` items. An item whose ``consume`` fails with a retryable
    :class:`SystemFailure` (its own retries used up) is set aside and tried again after the
    others, up to ``requeue_rounds`` more rounds (waiting ``pause * 2**round`` seconds first):
    one unlucky read never ends a run. Any other failure, or a set-aside item failing in the
    last round, cancels everything else and is raised as itself (not wrapped in an
    ExceptionGroup), so the runner can classify it.

    Raises:
        SystemFailure: see above (also :class:`~dealerbot.errors.CircuitOpen` from the reads).
    """
    deferred: list[T] = []

    async def one_pass(fill: Callable[[asyncio.Queue[Any]], Awaitable[None]], last: bool) -> None:
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=buffer)

        async def producer() -> None:
            await fill(queue)
            for _ in range(workers):
                await queue.put(_DONE)  # only after a normal end: on failure the group cancels all

        async def worker() -> None:
            while (item := await queue.get()) is not _DONE:
                try:
                    await consume(item)
                except SystemFailure as exc:
                    if last or not exc.retryable:
                        raise
                    deferred.append(item)
                    if log is not None:
                        log.warning("{}: {}; tried again after the others", item, exc)

        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(producer())
                for _ in range(workers):
                    tg.create_task(worker())
        except BaseExceptionGroup as group:
            raise first_error(group) from None

    await one_pass(lambda q: produce(q.put), last=requeue_rounds == 0)
    for round_no in range(1, requeue_rounds + 1):
        if not deferred:
            return
        items, deferred[:] = list(deferred), []
        if log is not None:
            log.warning("reading {} failed record(s) again (round {}/{})", len(items), round_no, requeue_rounds)
        await asyncio.sleep(pause * 2**round_no)

        async def refill(queue: asyncio.Queue[Any], items: list[T] = items) -> None:
            for item in items:
                await queue.put(item)

        await one_pass(refill, last=round_no == requeue_rounds)

