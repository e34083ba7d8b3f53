"""Waiting out an unavailable store, written once.

Some records must be kept however long the database stays full or locked: that a
reply went out, that an outage began. :func:`persist` runs a write transaction and,
when the store cannot take it, waits (``retry.STORE``) and runs it again, forever.
Callers whose work can be dropped and redone later (Slack envelopes, Telegram
batches that the source will serve again) do not use it: they stop acknowledging.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from skbridge import retry
from skbridge.errors import StoreUnavailable
from skbridge.store.db import Database, Tx

log = logging.getLogger(__name__)
T = TypeVar("T")


async def persist(
    db: Database,
    work: Callable[[Tx], Awaitable[T]],
    *,
    what: str,
    on_problem: Callable[[str | None], None] = lambda problem: None,
) -> T:
    """Run ``work`` in one write transaction, retrying until the store takes it."""
    failures = 0
    while True:
        try:
            async with db.write() as tx:
                result = await work(tx)
        except StoreUnavailable as exc:
            failures += 1
            on_problem(str(exc))
            log.error("database unavailable; waiting", extra={"what": what, "error": str(exc)})
            await retry.wait(retry.STORE.delay(failures))
            continue
        if failures:
            on_problem(None)
        return result
