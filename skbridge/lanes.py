"""Lane claims: one instance at a time carries out each outbox lane.

A lane (one conversation) is claimed in the ``lanes`` table before its rows run, timed
by the database's clock like a lease, and given back once it has been idle for a
renewal period with nothing left in it. Any instance may store work in any lane; the
one that stores it claims the lane when it is free, and otherwise the holder finds the
work: a lane reads its rows from the database whenever it starts or runs dry, and
:meth:`LaneClaims.keep` looks every renewal period for lanes with work that are free,
expired, or held here and idle. A lane whose holder died is taken over once its claim
expires; its head may have been in flight, so it is suspect, exactly like a lane head
after a crash on one machine.

On a store no other instance uses (SQLite) every claim is granted here without a
write: there is nobody to agree with, and a commit per lane would cost a disk flush.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection

from skbridge.errors import StoreUnavailable
from skbridge.store import Store, leasing

log = logging.getLogger(__name__)


class LaneClaims:
    def __init__(self, db: Store, holder: str, seconds: float) -> None:
        self.db = db
        self.holder = holder
        self.seconds = seconds
        self._valid_until: dict[str, float] = {}

    @property
    def held(self) -> set[str]:
        return set(self._valid_until)

    def holds(self, lane: str) -> bool:
        """Whether this instance may still run ``lane`` (by its own clock)."""
        return asyncio.get_running_loop().time() < self._valid_until.get(lane, 0.0)

    async def claim(self, lanes: Collection[str]) -> dict[str, bool]:
        """Claim what is free; returns each lane granted and whether it was taken over
        from an instance that did not give it back. Raises StoreUnavailable."""
        asked = asyncio.get_running_loop().time()
        if not self.db.shared:
            self._valid_until.update(dict.fromkeys(lanes, float("inf")))
            return dict.fromkeys(lanes, False)
        mine = [lane for lane in lanes if self.holds(lane)]
        wanted = sorted(set(lanes) - set(mine))
        granted = dict.fromkeys(mine, False)
        if not wanted:
            return granted
        async with self.db.write() as tx:
            before = await leasing.lane_holders(tx, wanted)
            for lane in wanted:
                holder, live = before.get(lane, (leasing.RELEASED, False))
                if live and holder != self.holder:
                    continue
                if await leasing.claim_lane(tx, lane, self.holder, self.seconds):
                    granted[lane] = holder not in (leasing.RELEASED, self.holder)
        for lane in granted:
            self._valid_until[lane] = asked + self.seconds
        return granted

    async def renew(self) -> set[str]:
        """Extend every claim; returns the lanes lost (taken over while this instance
        could not renew in time). Raises StoreUnavailable."""
        if not self.db.shared:
            return set()
        asked = asyncio.get_running_loop().time()
        async with self.db.write() as tx:
            kept = await leasing.renew_lanes(tx, self.holder, self.seconds)
        lost = self.held - kept
        for lane in lost:
            self._valid_until.pop(lane, None)
        for lane in kept & self.held:
            self._valid_until[lane] = asked + self.seconds
        return lost

    def expired(self) -> set[str]:
        """Claims this instance must consider lost: not renewed for a whole lease."""
        now = asyncio.get_running_loop().time()
        return {lane for lane, until in self._valid_until.items() if until <= now}

    async def release(self, lanes: Collection[str], *, only_empty: bool = True) -> set[str]:
        if not self.db.shared:
            self._valid_until = {k: v for k, v in self._valid_until.items() if k not in lanes}
            return set(lanes)
        if not lanes:
            return set()
        async with self.db.write() as tx:
            released = await leasing.release_lanes(
                tx, self.holder, sorted(lanes), only_empty=only_empty
            )
        for lane in released:
            self._valid_until.pop(lane, None)
        return released

    async def keep(
        self,
        busy: Callable[[], set[str]],
        lose: Callable[[set[str]], None],
        wake: Callable[[set[str]], None],
    ) -> None:
        """Forever: renew the claims, stop lanes lost (``lose``), give back idle ones, and
        start lanes with work nobody runs (``wake``). ``busy``: lanes running or queued."""
        if not self.db.shared:
            return  # only this instance stores work, and it starts its lanes itself
        idle_before: set[str] = set()
        while True:
            await asyncio.sleep(self.seconds / 3)
            try:
                lost = await self.renew()
                idle = self.held - busy()
                await self.release(idle & idle_before)
                idle_before = idle
                waiting = await leasing.lanes_with_work(self.db, self.holder)
            except StoreUnavailable as exc:
                log.warning("lane claims not renewed", extra={"error": str(exc)})
                lost, waiting = self.expired(), set()
                for lane in lost:
                    self._valid_until.pop(lane, None)
            if lost:
                log.warning("lanes taken over", extra={"lanes": len(lost)})
                lose(lost)
            if waiting - busy():
                wake(waiting - busy())
