"""The daemon's periodic work: forgetting what is old, and archiving quiet channels.

Each chore has a ``*_once`` that does one round (the tests call those, on a controlled
clock) and the :meth:`Chores.run` loop that the service owns. Their state lives in the
store, so a restart loses no timer: a warning given before it still counts after.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from skbridge.config import SlackConfig
from skbridge.core import idle
from skbridge.core.idle import DAY, Idle
from skbridge.core.model import ArchiveIdle, Op, ReportDigest, WarnIdle
from skbridge.errors import StoreUnavailable
from skbridge.store import Store, Tx
from skbridge.store import queries as q
from skbridge.store.persist import persist
from skbridge.store.queries import OutboxRow

log = logging.getLogger(__name__)

HOUSEKEEPING_EVERY = 3600.0
KEEP_FINISHED = 7 * 24 * 3600.0
IDLE_EVERY = 300.0
"""How often quiet channels are looked for (a warning comes within this of being due)."""
DIGEST_EVERY = 60.0
DIGEST_SENT = "digest:last"
"""The settings key holding the day of the last digest (one a day, across restarts)."""


class Chores:
    def __init__(
        self,
        db: Store,
        submit: Callable[[list[OutboxRow]], None],
        config: Callable[[], SlackConfig],
        clock: Callable[[], float],
    ) -> None:
        self._db = db
        self._submit = submit
        self._config = config
        self._clock = clock

    async def run(self) -> None:
        """Every chore at its own pace, until cancelled."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._every(HOUSEKEEPING_EVERY, self.housekeeping_once))
            group.create_task(self._every(IDLE_EVERY, self.idle_once))
            group.create_task(self._every(DIGEST_EVERY, self.digest_once))

    async def _every(self, seconds: float, chore: Callable[[], object]) -> None:
        while True:
            try:
                await chore()  # type: ignore[misc]
            except StoreUnavailable as exc:
                log.warning("chore skipped", extra={"error": str(exc)})
            await asyncio.sleep(seconds)

    async def housekeeping_once(self) -> None:
        """Forget finished work and deduplication keys older than a week."""
        async with self._db.write() as tx:
            await q.prune(tx, self._clock(), KEEP_FINISHED)

    async def idle_once(self) -> int:
        """Warn quiet channels, archive those still quiet after the warning; how many acted."""
        config = self._config()
        after, grace = config.archive_after_days, config.archive_grace_days
        if after <= 0:
            return 0
        now = self._clock()
        decisions = [
            (channel.conversation_id, idle.decide(channel.quiet, now, after, grace))
            for channel in await q.quiet_channels(self._db, now - after * DAY)
        ]
        due = [(conv, action) for conv, action in decisions if action is not Idle.NOTHING]
        if not due:
            return 0

        async def record(tx: Tx) -> list[OutboxRow]:
            rows: list[OutboxRow] = []
            for conv, action in due:
                ops: list[Op] = []
                if action in (Idle.WARN, Idle.UNANSWERED):
                    await q.set_idle(tx, conv, now, action)
                    ops.append(WarnIdle(after, grace, unanswered=action is Idle.UNANSWERED))
                else:
                    await q.set_idle(tx, conv, None, None)
                    if action is Idle.ARCHIVE:
                        ops.append(ArchiveIdle(quiet_since=now))
                rows += await q.enqueue(tx, conv, ops, now)
            return rows

        self._submit(await persist(self._db, record, what="idle channels"))
        log.info("quiet channels", extra={"acted": len(due)})
        return len(due)

    async def digest_once(self) -> bool:
        """Queue the daily digest if its time of day has come and today's is not out yet."""
        at = self._config().digest_at
        if at is None:
            return False
        now = datetime.fromtimestamp(self._clock()).astimezone()
        today = now.date().isoformat()
        if now.strftime("%H:%M") < at or await q.get_setting(self._db, DIGEST_SENT) == today:
            return False

        async def record(tx: Tx) -> list[OutboxRow]:
            await q.set_setting(tx, DIGEST_SENT, today)
            return await q.enqueue(tx, None, [ReportDigest(day=today)], self._clock())

        self._submit(await persist(self._db, record, what="digest"))
        log.info("daily digest", extra={"day": today})
        return True
