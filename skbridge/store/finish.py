"""Group commit for finished outbox rows.

Every delivered row is marked done before its lane moves on (so after a crash only
lane heads can be in doubt). Marking each in its own transaction would cost a commit
per message; instead the marks of all lanes that finish while a commit is under way
share the next one. The first caller to arrive commits for everyone waiting; no task
is spawned.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from skbridge.core.states import OutboxState
from skbridge.ids import ConversationId, OutboxId
from skbridge.store import Store, figures
from skbridge.store import queries as q
from skbridge.store.figures import DELIVERY_BUCKETS


@dataclass(slots=True)
class _Mark:
    row_id: OutboxId
    state: OutboxState
    touch: ConversationId | None
    delivered: Delivered | None
    posted: q.Posted | None
    done: asyncio.Future[None]


@dataclass(frozen=True, slots=True)
class Delivered:
    """A customer's message reached Slack: observed for monitoring in the same commit."""

    source: str
    seconds: float


class FinishMarks:
    def __init__(self, db: Store, clock: Callable[[], float]) -> None:
        self._db = db
        self._clock = clock
        self._waiting: list[_Mark] = []
        self._committing = False

    async def finish(
        self,
        row_id: OutboxId,
        state: OutboxState = OutboxState.DONE,
        touch: ConversationId | None = None,
        delivered: Delivered | None = None,
        posted: q.Posted | None = None,
    ) -> None:
        """Return once the row's new state (and the post it made) is durable; raises what
        the commit raised."""
        done = asyncio.get_running_loop().create_future()
        mark = _Mark(row_id, state, touch, delivered, posted, done)
        self._waiting.append(mark)
        if not self._committing:
            self._committing = True
            try:
                while self._waiting:
                    batch, self._waiting = self._waiting, []
                    await self._commit(batch)
            finally:
                self._committing = False
        await mark.done

    async def _commit(self, batch: list[_Mark]) -> None:
        now = self._clock()
        try:
            # In id order: two instances' commits never lock rows in opposite orders.
            touched = sorted({m.touch for m in batch if m.touch is not None})
            posted = {m.row_id: m.posted for m in batch if m.posted is not None}
            async with self._db.write() as tx:
                for state in {m.state for m in batch}:
                    rows = sorted(m.row_id for m in batch if m.state == state)
                    await q.finish_many(tx, rows, state, touched, now, posted)
                    touched = []
                for source in {m.delivered.source for m in batch if m.delivered}:
                    seconds = [
                        m.delivered.seconds
                        for m in batch
                        if m.delivered and m.delivered.source == source
                    ]
                    labels = {"direction": "in", "source": source}
                    await figures.observe(
                        tx, "skbridge_delivery_seconds", labels, seconds, DELIVERY_BUCKETS
                    )
        except BaseException as exc:
            for mark in batch:
                if not mark.done.done():
                    mark.done.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for mark in batch:
            mark.done.set_result(None)
