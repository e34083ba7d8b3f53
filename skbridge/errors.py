"""The one exception tree of skbridge.

Foreign exceptions (aiohttp, slack_sdk, sqlite3, httpx) are translated at the edge
that talks to the foreign system, with ``raise ... from exc``::

    SkbridgeError
    ├── ConfigError                 bad configuration; the daemon exits 78
    ├── StoreError                  the database cannot take work now
    │   ├── StoreUnavailable        disk full, read-only or locked: stop acking, retry later
    │   │   └── TooLate             not stored, because the ack would have come too late
    │   ├── Unstorable              a value SQLite cannot take: malformed input, park it
    │   └── StoreUnusable           the file needs the operator (damaged, empty, unwritable
    │                               at start, newer schema): no retry helps; exit 78
    └── DeliveryError               a call to Slack or an upstream failed
        ├── NotSent                 it certainly had no effect; try again later
        ├── MaybeSent               it may have taken effect (timeout, reset, 5xx)
        ├── RateLimited             refused for now: wait ``retry_after`` seconds
        └── Refused                 refused for good (channel_not_found, 403)

The four outcomes of a call are siblings, one meaning each, so the order of
``except`` clauses never matters. ``MaybeSent`` is the dangerous one: a blind retry can
deliver twice, so callers must look before they retry (Slack) or ask a person
(upstreams without idempotency).
"""

from __future__ import annotations

from pathlib import Path


class SkbridgeError(Exception):
    """Base of every error skbridge raises on purpose."""


class ConfigError(SkbridgeError):
    """The configuration is unusable. ``key`` names the offending setting."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


class StoreError(SkbridgeError):
    """The database refused an operation."""


class StoreUnavailable(StoreError):
    """The database cannot take writes right now (disk full, locked, read-only)."""


class TooLate(StoreUnavailable):
    """The work was given up, not stored: storing it would have taken past its deadline.

    Slack has told the user a command or click failed once 3 s pass without an ack, and
    it does not retry those; storing one after that would act on something the user
    was told had failed (and may retype). So such envelopes are stored in time or not.
    """


class Unstorable(StoreError):
    """A value cannot be stored as given (text with a lone UTF-16 surrogate, an integer
    past 64 bits). It came from outside, so it is malformed input: retrying will not help."""


class StoreUnusable(StoreError):
    """The database file cannot be used until the operator acts on it.

    Damaged, not a database, empty, read-only for this user, or a newer schema: no retry
    fixes these, so the daemon exits 78 and systemd does not restart it. ``path`` is the
    file; errors from a query in flight do not know it, and :meth:`at` adds it.
    """

    def __init__(self, problem: str, advice: str, path: Path | None = None) -> None:
        super().__init__(f"{path}: {problem}; {advice}" if path else f"{problem}; {advice}")
        self.problem = problem
        self.advice = advice
        self.path = path

    def at(self, path: Path) -> StoreUnusable:
        """The same refusal, naming ``path`` if it did not already."""
        return self if self.path else StoreUnusable(self.problem, self.advice, path)


class DeliveryError(SkbridgeError):
    """A call to Slack or to an upstream failed.

    ``code`` is the remote error code when there is one (Slack's ``error`` field,
    Telegram's ``description``), else a short name of the local failure.
    """

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail


class NotSent(DeliveryError):
    """The request certainly had no effect (refused connection, an error before sending):
    trying again later may succeed."""


class MaybeSent(DeliveryError):
    """The request may or may not have taken effect (timeout, reset, 5xx)."""


class RateLimited(DeliveryError):
    """The server refused the request for now and asked us to wait before trying again."""

    def __init__(self, retry_after: float, detail: str = "") -> None:
        super().__init__("ratelimited", detail)
        self.retry_after = retry_after


class Refused(DeliveryError):
    """The other side said no, for good: trying again will not help."""
