"""Agent avatars from Gravatar, matched on the agent's Slack email.

The hash is SHA-256 of the trimmed, lowercased email (MD5 is legacy and refused by
FIPS builds of Python). ``d=404`` tells whether an avatar exists. Answers are cached,
so one agent costs one lookup a day, not one per reply.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable

import httpx

from skbridge.config import GravatarConfig

log = logging.getLogger(__name__)

FOUND_TTL = 24 * 3600.0
MISSING_TTL = 3600.0


def email_hash(email: str) -> str:
    return hashlib.sha256(email.strip().lower().encode("utf-8")).hexdigest()


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
        self._cache: dict[str, tuple[float, str | None]] = {}

    def url(self, digest: str, default: str | None = None) -> str:
        base = self._config.url.rstrip("/")
        query = f"s={self._config.size}" + (f"&d={default}" if default else "")
        return f"{base}/avatar/{digest}?{query}"

    def identicon(self, seed: str) -> str | None:
        """A stable generated picture for someone without one (e.g. a Telegram customer)."""
        return self.url(email_hash(seed), "identicon") if self._config.enabled else None

    async def avatar(self, email: str | None) -> str | None:
        """The avatar URL for ``email`` if Gravatar has one, else None."""
        if not email or not self._config.enabled:
            return None
        digest = email_hash(email)
        cached = self._cache.get(digest)
        now = self._clock()
        if cached and cached[0] > now:
            return cached[1]
        try:
            response = await self._client.get(self.url(digest, "404"))
        except httpx.HTTPError as exc:
            log.warning("gravatar lookup failed", extra={"error": type(exc).__name__})
            return None
        if response.status_code == 200:
            found: str | None = self.url(digest)
            ttl = FOUND_TTL
        elif response.status_code == 404:
            found, ttl = None, MISSING_TTL
        else:
            log.warning("gravatar lookup failed", extra={"status": response.status_code})
            return None
        self._cache[digest] = (now + ttl, found)
        return found
