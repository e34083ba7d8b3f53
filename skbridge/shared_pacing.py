"""Pacing shared by every instance on one database: rate limits are per app, not per
instance, so two instances together never send faster than one may.

Each call reserves the next slot of its key in the ``pacing`` table (one write, on the
database's clock), then waits until that slot, allowing the same short bursts as the
local :class:`~skbridge.pacing.Pacer` (a generic cell rate algorithm: the ``next_at``
stored per key is the theoretical time of the next call). A server's ``Retry-After``
(``hold``) is written with the next reservation on that key, so every instance waits
it out.
"""

from __future__ import annotations

import logging

from skbridge import retry
from skbridge.errors import StoreUnavailable
from skbridge.pacing import Pace, PaceFactory, Pacer
from skbridge.store import Store, leasing

log = logging.getLogger(__name__)


class SharedPacer:
    """``rate`` calls a second per key, ``burst`` at once, across every instance."""

    def __init__(self, db: Store, name: str, rate: float | None, burst: int) -> None:
        self._db = db
        self._name = name
        self.rate = rate
        self.burst = burst
        self._holds: dict[str, float] = {}
        self._fallback = Pacer(rate, burst)
        """Used while the database cannot be reached: pacing must not stop the sends."""

    async def acquire(self, key: str = "") -> None:
        if self.rate is None:
            return
        interval = 1.0 / self.rate
        tolerance = (self.burst - 1) * interval
        hold = self._holds.pop(key, None)
        try:
            async with self._db.write() as tx:
                ahead = await leasing.take_slot(
                    tx,
                    f"{self._name}:{key}",
                    interval,
                    None if hold is None else hold + tolerance,
                )
        except StoreUnavailable as exc:
            log.warning("shared pacing unavailable; pacing here", extra={"error": str(exc)})
            await self._fallback.acquire(key)
            return
        wait = ahead - interval - tolerance
        if wait > 0:
            await retry.wait(wait)

    def hold(self, key: str, seconds: float) -> None:
        """The server said wait: every instance waits, from the next call on ``key``."""
        self._holds[key] = max(self._holds.get(key, 0.0), seconds)
        self._fallback.hold(key, seconds)


def pacer_for(db: Store) -> PaceFactory:
    """Pacers for ``db``: shared through it when other instances may use it too."""

    def make(name: str, rate: float | None, burst: int) -> Pace:
        if db.shared:
            return SharedPacer(db, name, rate, burst)
        return Pacer(rate, burst)

    return make
