"""Pacing shared by every instance on one database: rate limits are per app, not per
instance, so two instances together never send faster than one may.

Each call reserves the next slot of its key in the ``pacing`` table (one write, on the
database's clock), then waits until that slot, allowing the same short bursts as the
local :class:`~skbridge.pacing.Pacer` (a generic cell rate algorithm: the ``next_at``
stored per key is the theoretical time of the next call). A server's ``Retry-After``
(``hold``) is written with the next reservation on that key, so every instance waits
it out.

A key that only one lane ever uses needs none of this: a customer's channel and a
customer's chat belong to one conversation, whose lane runs on one instance at a
time, so their pacing stays local (a database round trip per post would cost more
than the post). Keys that many lanes share (the dispatch channel, Telegram's 30
messages a second, channel creation) go through the database.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from skbridge import retry
from skbridge.errors import StoreUnavailable
from skbridge.pacing import Pace, PaceFactory, Pacer
from skbridge.store import Store, leasing

log = logging.getLogger(__name__)


class SharedPacer:
    """``rate`` calls a second per key, ``burst`` at once, across every instance."""

    def __init__(
        self,
        db: Store,
        name: str,
        rate: float | None,
        burst: int,
        shared: Callable[[str], bool] = lambda key: True,
    ) -> None:
        self._db = db
        self._shared = shared
        self._name = name
        self.rate = rate
        self.burst = burst
        self._holds: dict[str, float] = {}
        self._fallback = Pacer(rate, burst)
        """Used while the database cannot be reached: pacing must not stop the sends."""

    async def acquire(self, key: str = "") -> None:
        if self.rate is None:
            return
        if not self._shared(key):
            await self._fallback.acquire(key)
            return
        interval = 1.0 / self.rate
        tolerance = (self.burst - 1) * interval
        hold = self._holds.pop(key, None)
        try:
            ahead = await leasing.take_slot(
                self._db, f"{self._name}:{key}", interval, 0.0 if hold is None else hold + tolerance
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


PER_LANE = frozenset({"slack:post", "telegram:chat"})
"""Pacers keyed by a customer's channel or chat: used by that conversation's lane only."""


def pacer_for(db: Store, shared_channel: Callable[[str], bool]) -> PaceFactory:
    """Pacers for ``db``: shared through it when other instances may use it too.
    ``shared_channel``: whether a Slack channel is one many lanes post to (dispatch)."""

    def make(name: str, rate: float | None, burst: int) -> Pace:
        if not db.shared:
            return Pacer(rate, burst)
        if name == "slack:post":
            return SharedPacer(db, name, rate, burst, shared=shared_channel)
        if name in PER_LANE:
            return Pacer(rate, burst)
        return SharedPacer(db, name, rate, burst)

    return make
