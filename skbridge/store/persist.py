"""Waiting out an unavailable store, written once.

Some records must be kept however long the database stays full or locked: that a
reply went out, that an outage began, a batch Telegram will otherwise serve again.
:func:`until_stored` runs a piece of storing work and, when the store cannot take it,
waits (``retry.STORE``) and runs it again, forever; :func:`persist` does so for one
write transaction. Work that may instead be dropped and redone by its sender (a Slack
envelope, which is simply not acked) does not use it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from skbridge import retry
from skbridge.errors import StoreUnavailable
from skbridge.store import Store, Tx

log = logging.getLogger(__name__)
T = TypeVar("T")


def _quiet(problem: str | None) -> None:
    """The default listener: nobody outside needs to hear of the wait."""


async def until_stored(
    attempt: Callable[[], Awaitable[T]],
    *,
    what: str,
    on_problem: Callable[[str | None], None] = _quiet,
) -> T:
    """Run ``attempt`` until the store takes it; ``on_problem`` hears the wait and its end."""
    failures = 0
    while True:
        try:
            result = await attempt()
        except StoreUnavailable as exc:
            failures += 1
            on_problem(str(exc))
            log.error("database unavailable; waiting", extra={"what": what, "error": str(exc)})
            await retry.wait(retry.STORE.delay(failures))
            continue
        if failures:
            on_problem(None)
        return result


async def persist(
    db: Store,
    work: Callable[[Tx], Awaitable[T]],
    *,
    what: str,
    on_problem: Callable[[str | None], None] = _quiet,
) -> T:
    """Run ``work`` in one write transaction, retrying until the store takes it."""

    async def attempt() -> T:
        async with db.write() as tx:
            return await work(tx)

    return await until_stored(attempt, what=what, on_problem=on_problem)
