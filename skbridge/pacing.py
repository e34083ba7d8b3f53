"""Client-side pacing, so Slack's and Telegram's rate limits are planned for, not hit.

A token bucket per key (a channel, a chat) plus a global one; ``hold`` records a
server's ``Retry-After`` so every caller on that key waits it out.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from skbridge import retry


class Pace(Protocol):
    """What a caller paces itself with: this module's Pacer, or one shared by instances
    (:mod:`skbridge.shared_pacing`)."""

    async def acquire(self, key: str = "") -> None: ...

    def hold(self, key: str, seconds: float) -> None: ...


PaceFactory = Callable[[str, "float | None", int], Pace]
"""Makes a pacer: (name, calls a second, burst)."""


def local(name: str, rate: float | None, burst: int) -> Pace:
    """A pacer for this process alone."""
    return Pacer(rate, burst)


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float
    held_until: float = 0.0


class Pacer:
    """Token buckets keyed by string: ``rate`` per second, ``burst`` at most."""

    def __init__(
        self,
        rate: float | None,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 10_000,
    ) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._max_keys = max_keys

    async def acquire(self, key: str = "") -> None:
        """Wait until one call on ``key`` is allowed, then take it."""
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            while (delay := self._take(key)) > 0:
                await retry.wait(delay)
        if len(self._buckets) > self._max_keys:
            self._forget_idle()

    def hold(self, key: str, seconds: float) -> None:
        """The server said wait: nobody on ``key`` calls again for ``seconds``."""
        bucket = self._bucket(key)
        bucket.held_until = max(bucket.held_until, self._clock() + seconds)
        bucket.tokens = 0.0

    def _bucket(self, key: str) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(self.burst, self._clock())
        return bucket

    def _take(self, key: str) -> float:
        now = self._clock()
        bucket = self._bucket(key)
        if bucket.held_until > now:
            return bucket.held_until - now
        if self.rate is None:
            return 0.0
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate

    def _forget_idle(self) -> None:
        now = self._clock()
        for key, bucket in list(self._buckets.items()):
            lock = self._locks.get(key)
            idle = bucket.held_until <= now and (lock is None or not lock.locked())
            full = (
                self.rate is None
                or bucket.tokens + (now - bucket.updated) * self.rate >= self.burst
            )
            if idle and full:
                del self._buckets[key]
                self._locks.pop(key, None)
