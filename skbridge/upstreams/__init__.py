"""Upstream messaging sources: where customers write from. One module per source."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from skbridge.core.model import Attachment, CustomerMessage
from skbridge.errors import DeliveryError
from skbridge.health import Health
from skbridge.ids import SourceName, UpstreamUserId
from skbridge.pacing import PaceFactory, local

if TYPE_CHECKING:
    import aiohttp
    import httpx

    from skbridge.config_types import Section
    from skbridge.spool import Spool
    from skbridge.store import Store


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
    ignored: bool = False
    """Opens nothing on purpose (an automatic reply, a bounce): only counted, by ``kind``."""


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


@runtime_checkable
class FileCarrier(Protocol):
    """An upstream that carries files both ways (optional: :func:`files_of` tells)."""

    upload_limit: int
    """The largest file it takes from skbridge, in bytes."""

    async def fetch(self, attachment: Attachment) -> Spool:
        """Download a customer's file to disk; the caller closes it.

        Raises ``Refused`` when it cannot be had (too large for the source, refused),
        ``NotSent`` when it may be had later.
        """

    def caption(self, name: str, agent: Agent) -> str:
        """What goes with a file ``agent`` sends, so the customer sees who sent it."""

    async def send_file(self, to: UpstreamUserId, file: Spool, caption: str) -> str:
        """Deliver one file to the customer, as ``send`` delivers a part."""


def files_of(upstream: Upstream | None) -> FileCarrier | None:
    """``upstream`` as a carrier of files, if it is one."""
    return upstream if isinstance(upstream, FileCarrier) else None


@dataclass(frozen=True, slots=True)
class Services:
    """What the daemon shares with every upstream it builds."""

    http: httpx.AsyncClient
    """For file transfers (streamed through disk) and Gravatar."""
    session: aiohttp.ClientSession
    """For JSON APIs: the client Slack's calls use too."""
    health: Health
    avatar_for: Callable[[str], str | None] | None = None
    """A generated picture for a customer without one, from a stable seed."""
    store: Store | None = None
    """The database, for an upstream that keeps state of its own (email threads)."""
    pace: PaceFactory = local
    """Makes the pacers of rate limits; shared by every instance on a shared database."""


@dataclass(frozen=True, slots=True)
class Source:
    """One kind of upstream, as the rest of skbridge knows it: listed once, in
    :mod:`skbridge.upstreams.registry`, and declared by its own module."""

    name: str
    """Its table under ``[sources]``, and the :data:`SourceName` of its conversations."""
    label: str
    """How people name it (``Telegram``)."""
    config: type[Section]
    """Its config table."""
    secrets: tuple[str, ...]
    """The keys of that table that are secrets: masked in every log line and output."""
    mask: str
    """A regular expression that finds such a secret in free text (library errors)."""
    credentials: str
    """The key to name when the source refuses to let us in (``bot_token``)."""
    credential_word: str
    """What that key holds, for people (``token``, ``password``)."""
    fix: str
    """What to do then, for people (where to get a good one)."""
    refuses: Callable[[DeliveryError], bool]
    """Whether an error means the source refused our credentials."""
    build: Callable[[Any, Services], Upstream]
    """Make the upstream from its config table."""
    key_for: Callable[[DeliveryError], str] | None = None
    """The key a refusal names, when it is not always :attr:`credentials` (email has two
    servers, each with its password)."""
    fix_for: Callable[[DeliveryError], str] | None = None
    """What to do about a failed check, when it depends on the failure."""

    def refused_key(self, exc: DeliveryError) -> str:
        return f"sources.{self.name}.{self.key_for(exc) if self.key_for else self.credentials}"

    def fix_of(self, exc: DeliveryError) -> str:
        return self.fix_for(exc) if self.fix_for else self.fix
