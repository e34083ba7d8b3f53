"""The outbox: stored work carried out in order per lane, lanes in parallel.

A lane is one conversation, so a customer's messages and an agent's replies keep
their order, while a slow or rate-limited conversation never holds up the others.
Failures are classified by the error tree: rate limits wait as told; transient
failures back off and are retried for as long as they last, so an outage of any
length delays work but never loses it; a permanent refusal parks the item with its
error (reported, and offered to be sent again) and the lane moves on. Only the head
of a lane can be in flight, so after a restart only lane heads need a look before
they are retried.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Protocol

from skbridge import retry
from skbridge.errors import (
    MaybeSent,
    NotSent,
    RateLimited,
    Refused,
    StoreUnavailable,
    StoreUnusable,
)
from skbridge.health import Health
from skbridge.ids import OutboxId
from skbridge.store import Store
from skbridge.store import queries as q
from skbridge.store.persist import persist, until_stored
from skbridge.store.queries import OutboxRow

log = logging.getLogger(__name__)


class Executor(Protocol):
    async def execute(self, row: OutboxRow, suspect: bool) -> list[OutboxRow]:
        """Carry out ``row`` and mark it finished; returns follow-up rows it stored.

        ``suspect`` means the row may already have taken effect (it was in flight when
        the daemon stopped, or its last attempt failed ambiguously): look before acting.
        """

    async def park(self, row: OutboxRow, error: str) -> list[OutboxRow]:
        """Set ``row`` aside with ``error``; returns follow-up rows (reports) it stored."""


class Outbox:
    def __init__(
        self,
        db: Store,
        executor: Executor,
        *,
        policy: retry.Policy = retry.OUTBOX,
        health: Health | None = None,
    ) -> None:
        self._db = db
        self._health = health or Health()
        self._executor = executor
        self._policy = policy
        self._lanes: dict[str, deque[OutboxRow]] = {}
        self._running: set[str] = set()
        self._suspect: set[OutboxId] = set()
        self._wake = asyncio.Event()
        self._stopping = False
        self.idle = asyncio.Event()
        self.idle.set()
        self.store_problem: str | None = None

    @property
    def backlog(self) -> int:
        return sum(len(lane) for lane in self._lanes.values())

    async def load(self) -> int:
        """Queue the work left unfinished by the previous run.

        Lanes run one row at a time, so only the head of each lane can have been in
        flight when the previous run stopped: those rows are suspect.
        """
        rows = await q.unfinished(self._db)
        heads = {row.lane: row.id for row in reversed(rows)}
        self._suspect.update(heads.values())
        self.submit(rows)
        return len(rows)

    def submit(self, rows: list[OutboxRow]) -> None:
        for row in rows:
            self._lanes.setdefault(row.lane, deque()).append(row)
        if rows:
            self.idle.clear()
            self._wake.set()

    async def run(self) -> None:
        """Start lanes as work arrives, until cancelled."""
        async with asyncio.TaskGroup() as group:
            while True:
                await self._wake.wait()
                self._wake.clear()
                if self._stopping:
                    continue
                for lane, rows in self._lanes.items():
                    if rows and lane not in self._running:
                        self._running.add(lane)
                        group.create_task(self._lane(lane), name=f"lane {lane}")
                if not self._running:
                    self.idle.set()

    async def drain(self, deadline: float) -> bool:
        """Stop starting work; wait for work in flight. True if everything in flight finished."""
        self._stopping = True
        self._wake.set()
        try:
            async with asyncio.timeout(deadline):
                while self._running:
                    self._wake.clear()
                    await self._wake.wait()
        except TimeoutError:
            return False
        return True

    async def _lane(self, lane: str) -> None:
        rows = self._lanes[lane]
        try:
            while rows and not self._stopping:
                row = rows[0]
                await self._deliver(row)
                rows.popleft()
        finally:
            self._running.discard(lane)
            if not rows:
                self._lanes.pop(lane, None)
            self._wake.set()

    async def _deliver(self, row: OutboxRow) -> None:
        """Carry out one row, retrying as its failures deserve, until it is finished.

        Transient failures are retried for as long as they last: the lane waits, the
        other lanes go on, and an outage's end wakes it at once. Only a permanent
        refusal, or a failure nothing explains that keeps coming back, parks the row.
        """
        failures = 0
        while True:
            suspect = row.id in self._suspect
            try:
                follow_ups = await self._executor.execute(row, suspect)
            except RateLimited as exc:
                log.info("rate limited", extra={"row": row.id, "retry_after": exc.retry_after})
                await retry.wait(exc.retry_after)
                continue
            except StoreUnavailable as exc:
                # The row's effect may have happened before its commit failed: look first.
                self._suspect.add(row.id)
                failures += 1
                self.store_problem = str(exc)
                log.error("database unavailable", extra={"row": row.id, "error": str(exc)})
                await retry.wait(retry.STORE.delay(failures))
                continue
            except StoreUnusable:
                raise  # a damaged database is no item's fault: the daemon stops for the operator
            except Refused as exc:
                await self._park(row, _describe(exc))
                return
            except (NotSent, MaybeSent) as exc:
                if isinstance(exc, MaybeSent):
                    self._suspect.add(row.id)
                failures += 1
                await self._back_off(row, _describe(exc), failures)
                continue
            except Exception as exc:  # a bug in one item must not stop the others
                log.exception("delivery crashed", extra={"row": row.id, "kind": row.kind})
                self._suspect.add(row.id)
                if await self._exhausted(row, _describe(exc)):
                    await self._park(row, _describe(exc))
                    return
                failures += 1
                await self._back_off(row, _describe(exc), failures)
                continue
            self.store_problem = None
            self._suspect.discard(row.id)
            self.submit(follow_ups)
            return

    async def _back_off(self, row: OutboxRow, error: str, failures: int) -> None:
        delay = self._policy.delay(failures)
        log.warning(
            "delivery failed; will retry",
            extra={"row": row.id, "kind": row.kind, "error": error, "retry_in": round(delay, 2)},
        )
        await retry.wait(delay, wake=self._health.recovered)

    async def _exhausted(self, row: OutboxRow, error: str) -> bool:
        attempts = await persist(
            self._db, lambda tx: q.record_attempt(tx, row.id, error), what="failed attempt"
        )
        return self._policy.exhausted(attempts)

    async def _park(self, row: OutboxRow, error: str) -> None:
        log.error("delivery parked", extra={"row": row.id, "kind": row.kind, "error": error})
        follow_ups = await until_stored(lambda: self._executor.park(row, error), what="parking")
        self._suspect.discard(row.id)
        self.submit(follow_ups)


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"
