"""Whether the outside systems answer, as seen from the calls skbridge makes to them.

The edges (Slack's Web API, each upstream) report every answer and every transient
failure here; nothing here does I/O. An outage starts at the first transient failure
after an answer and ends at the next answer. The service shows a running outage in
``STATUS=`` and in the database (for ``skbridge status``), and tells the dispatch
channel about a long one once it is over. Lanes waiting out a failure are woken as
soon as any outage ends, so delivery resumes at once instead of at the next backoff.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from types import TracebackType

from skbridge.errors import MaybeSent, NotSent, RateLimited, Refused


@dataclass(frozen=True, slots=True)
class Outage:
    system: str
    """The system's human name (``Slack``, ``Telegram``)."""
    since: float
    error: str
    """The first failure's code."""
    until: float | None = None

    def minutes(self, now: float) -> int:
        return max(0, int(((self.until or now) - self.since) // 60))


class Health:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._current: dict[str, Outage] = {}
        self._ended: list[Outage] = []
        self._recovered = asyncio.Event()
        self.changed = asyncio.Event()
        """Set when an outage starts or ends; the watcher clears it."""

    def failed(self, system: str, error: str) -> None:
        """A call to ``system`` failed in a way that says nothing about the request."""
        if system not in self._current:
            self._current[system] = Outage(system, self._clock(), error)
            self.changed.set()

    def answered(self, system: str) -> None:
        """``system`` answered (even with a refusal): it is up."""
        if not self._current:
            return  # the hot path: nothing is down
        outage = self._current.pop(system, None)
        if outage is not None:
            self._ended.append(replace(outage, until=self._clock()))
            self.changed.set()
            self._recovered.set()
            self._recovered = asyncio.Event()

    def watch(self, system: str) -> Watch:
        """Put around each call to ``system``: ``with watch: await call()``."""
        return Watch(self, system)

    @property
    def outages(self) -> list[Outage]:
        """What is down now, oldest first."""
        return sorted(self._current.values(), key=lambda o: o.since)

    @property
    def recovered(self) -> asyncio.Event:
        """Set the next time any outage ends (a fresh event after each end)."""
        return self._recovered

    def take_ended(self) -> list[Outage]:
        """Outages that ended since the last call."""
        ended, self._ended = self._ended, []
        return ended


class Watch:
    """Reports how a call went: an answer, even a refusal or a rate limit, says the
    system is up; a failure that says nothing about the request, that it may be down.
    Holds no state of its own, so one serves every call to its system."""

    __slots__ = ("_health", "_system")

    def __init__(self, health: Health, system: str) -> None:
        self._health = health
        self._system = system

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc is None or isinstance(exc, RateLimited | Refused):
            self._health.answered(self._system)
        elif isinstance(exc, NotSent | MaybeSent):
            self._health.failed(self._system, exc.code)
