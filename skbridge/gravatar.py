"""Agent avatars from Gravatar, matched on the agent's Slack email.

The hash is SHA-256 of the trimmed, lowercased email (MD5 is legacy and refused by
FIPS builds of Python). ``d=404`` tells whether an avatar exists.

A lookup never holds up a reply. Answers are cached (a day when found, an hour when
not); a failed lookup (Gravatar down, or blocked by the firewall) is cached too, with
a backoff that grows to an hour, and warned about at most once an hour per address.
Once an address has had an answer, that answer is used at once and a stale one is
refreshed by :meth:`Gravatar.run`, a task the service owns. Only an address never
seen before is looked up on the spot, for at most ``FIRST_LOOKUP`` seconds.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from skbridge.config import GravatarConfig

log = logging.getLogger(__name__)

FOUND_TTL = 24 * 3600.0
MISSING_TTL = 3600.0
FIRST_LOOKUP = 3.0
"""Seconds an address never seen before may be looked up for before going without."""
FAILED_BACKOFF = 60.0
"""After a failed lookup, the next one waits this long, doubling up to an hour."""
WARN_EVERY = 3600.0


def email_hash(email: str) -> str:
    return hashlib.sha256(email.strip().lower().encode("utf-8")).hexdigest()


@dataclass(slots=True)
class _Entry:
    url: str | None
    """The last known answer."""
    fresh_until: float
    failures: int = 0
    warned_at: float = -math.inf


class Gravatar:
    def __init__(
        self,
        config: GravatarConfig,
        client: httpx.AsyncClient,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._client = client
        self._clock = clock
        self._cache: dict[str, _Entry] = {}
        self._stale: set[str] = set()
        self._wake = asyncio.Event()

    def url(self, digest: str, default: str | None = None) -> str:
        base = self._config.url.rstrip("/")
        query = f"s={self._config.size}" + (f"&d={default}" if default else "")
        return f"{base}/avatar/{digest}?{query}"

    def identicon(self, seed: str) -> str | None:
        """A stable generated picture for someone without one (e.g. a Telegram customer)."""
        return self.url(email_hash(seed), "identicon") if self._config.enabled else None

    async def avatar(self, email: str | None) -> str | None:
        """The avatar URL for ``email`` if Gravatar has one, else None; never slow."""
        if not email or not self._config.enabled:
            return None
        digest = email_hash(email)
        entry = self._cache.get(digest)
        if entry is None:
            try:
                async with asyncio.timeout(FIRST_LOOKUP):
                    return await self._lookup(digest)
            except TimeoutError:
                return self._failed(digest, "timeout").url
        if entry.fresh_until <= self._clock():
            self._stale.add(digest)
            self._wake.set()
        return entry.url

    async def run(self) -> None:
        """Refresh stale answers as they are found, until cancelled."""
        while True:
            await self._wake.wait()
            await self.refresh()

    async def refresh(self) -> int:
        """Look up every address found stale so far, one at a time; returns how many."""
        self._wake.clear()
        done = 0
        while self._stale:
            await self._lookup(self._stale.pop())
            done += 1
        return done

    async def _lookup(self, digest: str) -> str | None:
        try:
            response = await self._client.get(self.url(digest, "404"))
        except httpx.HTTPError as exc:
            return self._failed(digest, type(exc).__name__).url
        if response.status_code == 200:
            found: str | None = self.url(digest)
            ttl = FOUND_TTL
        elif response.status_code == 404:
            found, ttl = None, MISSING_TTL
        else:
            return self._failed(digest, f"HTTP {response.status_code}").url
        self._cache[digest] = _Entry(found, self._clock() + ttl)
        return found

    def _failed(self, digest: str, error: str) -> _Entry:
        """Keep the last known answer; try again after a backoff; warn once an hour."""
        now = self._clock()
        entry = self._cache.get(digest) or _Entry(None, now)
        entry.failures += 1
        entry.fresh_until = now + min(
            MISSING_TTL, FAILED_BACKOFF * 2 ** min(entry.failures - 1, 12)
        )
        if now - entry.warned_at >= WARN_EVERY:
            entry.warned_at = now
            log.warning(
                "gravatar lookup failed; using the last known picture",
                extra={"error": error, "failures": entry.failures},
            )
        self._cache[digest] = entry
        return entry
