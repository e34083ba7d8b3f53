"""The outbox: stored work carried out in order per lane, lanes in parallel.

A lane is one conversation, so a customer's messages and an agent's replies keep
their order, while a slow or rate-limited conversation never holds up the others.
Failures are classified by the error tree: rate limits wait as told; transient
failures back off and are retried for as long as they last, so an outage of any
length delays work but never loses it; a permanent refusal parks the item with its
error (reported, and offered to be sent again) and the lane moves on. Only the head
of a lane can be in flight, so after a restart only lane heads need a look before
they are retried.

A lane runs only while this instance claims it (:mod:`skbridge.lanes`). On a shared
store it reads its rows from the database each time it starts or runs dry: work stored
by another instance joins it there, and a lane lost to another instance stops at once.
On a store only this instance uses, nobody else stores work: every row is handed to
:meth:`Outbox.submit` by the code that stored it (and at start by :meth:`Outbox.load`),
so the lanes' queues in memory are the whole truth and are never read back.
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
    Unstorable,
)
from skbridge.health import Health
from skbridge.ids import OutboxId
from skbridge.lanes import LaneClaims
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
        claims: LaneClaims,
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
        self._claims = claims
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._wanted: set[str] = set()
        """Lanes with work to start (their rows are read when they start)."""
        self._again: set[str] = set()
        """Running lanes that were given work since they last read their rows."""
        self._taken_over: set[str] = set()
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
        """Queue rows just stored (committed) in their lanes."""
        for row in rows:
            running = row.lane in self._running
            if running and self._db.shared:
                self._again.add(row.lane)  # read with whatever other instances stored
                continue
            _queue(self._lanes.setdefault(row.lane, deque()), row, running=running)
            if not running:
                self._wanted.add(row.lane)
        if rows:
            self.idle.clear()
            self._wake.set()

    def wake(self, lanes: set[str]) -> None:
        """Start ``lanes``: they have work in the database this instance may not know of."""
        self._wanted |= lanes - self._running
        self.idle.clear()
        self._wake.set()

    def lose(self, lanes: set[str]) -> None:
        """Another instance runs ``lanes`` now: stop them here, forget their rows."""
        for lane in lanes:
            rows = self._lanes.pop(lane, None)
            if task := self._tasks.get(lane):
                task.cancel()
                if rows:  # its head may be half done: whoever runs it next looks first
                    self._suspect.add(rows[0].id)
            self._wanted.discard(lane)

    def busy(self) -> set[str]:
        """Lanes running or about to."""
        return self._running | self._wanted

    @property
    def running(self) -> set[str]:
        return set(self._running)

    async def run(self) -> None:
        """Start lanes as work arrives, until cancelled."""
        async with asyncio.TaskGroup() as group:
            while True:
                await self._wake.wait()
                self._wake.clear()
                if self._stopping:
                    continue
                ready = sorted(self._wanted - self._running)
                self._wanted.clear()
                granted = await self._claim(ready)
                for lane in ready:
                    if lane not in granted:
                        self._lanes.pop(lane, None)  # its holder runs it
                        continue
                    if granted[lane]:
                        self._taken_over.add(lane)
                    self._running.add(lane)
                    self._tasks[lane] = group.create_task(self._lane(lane), name=f"lane {lane}")
                if not self._running:
                    self.idle.set()

    async def _claim(self, lanes: list[str]) -> dict[str, bool]:
        if not lanes:
            return {}
        try:
            return await self._claims.claim(lanes)
        except StoreUnavailable as exc:
            # Left for the claims keeper, which looks for lanes with work.
            log.error("lanes not claimed", extra={"lanes": len(lanes), "error": str(exc)})
            return {}

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
        rows = self._lanes.setdefault(lane, deque())
        shared = self._db.shared
        if shared:
            rows.clear()  # what was submitted is in the database, with anything stored elsewhere
        try:
            while not self._stopping:
                if not rows:
                    if not shared:
                        break
                    self._again.discard(lane)
                    rows.extend(await self._read(lane))
                    if not rows:
                        if lane in self._again:
                            continue
                        break
                if not self._claims.holds(lane):
                    break
                await self._deliver(rows[0])
                rows.popleft()
        finally:
            self._running.discard(lane)
            self._tasks.pop(lane, None)
            if not rows:
                self._lanes.pop(lane, None)
            self._wake.set()

    async def _read(self, lane: str) -> list[OutboxRow]:
        rows = await until_stored(lambda: q.unfinished_in_lane(self._db, lane), what="lane")
        if lane in self._taken_over:
            self._taken_over.discard(lane)
            if rows:  # its previous holder may have had the head in flight
                self._suspect.add(rows[0].id)
        return rows

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
            except Unstorable as exc:  # the item holds what the store refuses (NUL, on
                await self._park(row, _describe(exc))  # PostgreSQL): no retry helps
                return
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


def _queue(rows: deque[OutboxRow], row: OutboxRow, *, running: bool) -> None:
    """Add ``row`` to its lane in the order rows were stored (their ids), never before
    a head in flight (``running``), and only once."""
    if not rows or rows[-1].id < row.id:
        rows.append(row)
        return
    if any(queued.id == row.id for queued in rows):
        return
    first = 1 if running else 0
    at = next((i for i in range(first, len(rows)) if rows[i].id > row.id), len(rows))
    rows.insert(at, row)


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"
