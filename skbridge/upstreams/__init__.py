"""Upstream messaging sources: where customers write from. One module per source."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from skbridge.core.model import CustomerMessage
from skbridge.ids import SourceName, UpstreamUserId


@dataclass(frozen=True, slots=True)
class Agent:
    """Who replies, as the customer should see them."""

    name: str
    avatar_url: str | None


@dataclass(frozen=True, slots=True)
class Arrival:
    """One item from an upstream: a message, or something we could not read."""

    key: str
    """Unique per item within the source (deduplication)."""
    message: CustomerMessage | None
    raw: str
    error: str | None = None
    kind: str = "something skbridge cannot read"
    """For an item set aside: what it is, for people (``a story``); reported once per kind."""
    sender: str | None = None
    """For an item set aside: who sent it, when that is known."""


class Intake(Protocol):
    async def upstream_batch(
        self, source: SourceName, arrivals: list[Arrival], cursor: str | None
    ) -> None:
        """Make ``arrivals`` durable together with the source's new ``cursor``."""


class Upstream(Protocol):
    name: SourceName
    label: str
    """Human name of the source, e.g. ``Telegram``."""
    shows_avatar: bool
    """Whether a reply carries the agent's picture (a reply waits for it only then)."""

    async def run(self, intake: Intake, cursor: str | None) -> None:
        """Receive from the source forever, starting after ``cursor``."""

    def render(self, text: str, agent: Agent) -> list[str]:
        """The reply ``text`` by ``agent`` as the parts the customer receives, in order.

        Each part is its own unit of delivery: sent once, retried alone.
        """

    async def send(self, to: UpstreamUserId, part: str, agent: Agent) -> str:
        """Deliver one part of a reply to the customer; returns the upstream's message ID.

        Raises ``NotSent`` when it certainly did not arrive, ``MaybeSent`` when it
        may have, ``Refused`` when it never will.
        """

    async def check(self) -> str:
        """Ask the source who we are; returns a description for ``skbridge check``."""
