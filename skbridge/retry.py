"""Named retry policies: capped exponential backoff with jitter that honours Retry-After.

``set_testing(True)`` makes every wait tiny, so tests of retry paths run fast without
changing what is retried. Waiting always lets ``CancelledError`` through.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass

_testing = False
_TESTING_CAP = 0.01


def set_testing(on: bool) -> None:
    """Shrink every wait to at most 10 ms (tests of retry paths only)."""
    global _testing
    _testing = on


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    initial: float
    maximum: float
    max_attempts: int | None = None
    """Failed attempts after which an item is parked; None retries forever."""
    multiplier: float = 2.0
    jitter: float = 0.2

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 1)."""
        # The exponent is capped: a policy that retries forever must not overflow a float.
        exponent = min(max(0, attempt - 1), 64)
        backoff = min(self.maximum, self.initial * self.multiplier**exponent)
        backoff *= 1 + random.uniform(-self.jitter, self.jitter)
        if retry_after is not None:
            return max(retry_after, 0.0)
        return backoff

    def exhausted(self, attempts: int) -> bool:
        return self.max_attempts is not None and attempts >= self.max_attempts


OUTBOX = Policy("outbox", initial=0.5, maximum=30.0, max_attempts=8)
"""Work for the other side. Transient failures (5xx, timeouts, connection errors) are
retried for as long as they last, at most every 30 s; ``max_attempts`` counts only the
failures nothing explains (a bug), after which the item is parked."""

RECONNECT = Policy("reconnect", initial=0.5, maximum=30.0)
"""Socket Mode and upstream connections: retried forever, at most every 30 s."""

STORE = Policy("store", initial=1.0, maximum=30.0)
"""Database unavailable (disk full, locked): wait for it to recover, forever."""

EARLY_POLL = Policy("early poll", initial=0.5, maximum=5.0)
"""A long poll that came back early with nothing to confirm (a proxy that does not hold
polls, updates without a usable ID): poll again after this, never at once."""


async def wait(seconds: float, wake: asyncio.Event | None = None) -> None:
    """Sleep ``seconds`` (at most 10 ms in tests), or less if ``wake`` is set meanwhile."""
    seconds = min(seconds, _TESTING_CAP) if _testing else seconds
    if wake is None:
        await asyncio.sleep(seconds)
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await wake.wait()
