"""The fakes with timestamps, the benchmark's customers, and a pre-seeded database.

The fakes live in the benchmark's own process and record ``time.monotonic()`` at the
hook points the benchmarks measure between:

* :class:`TimedTelegram`: when a ``getUpdates`` answer hands an update out, and when a
  ``sendMessage`` is accepted;
* :class:`TimedSlack`: when a ``chat.postMessage`` is received, when a Socket Mode
  envelope is written to the socket, when its ack arrives, and when a channel is created.

Texts written by the benchmarks are unique (``<phase>-<customer>-<n>``), so a text is
the key that joins the two sides.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skbridge.ids import ChannelId, SourceName
from skbridge.store import open_store, report, sqlite_url
from skbridge.store import queries as q
from skbridge.testing.fake_gravatar import FakeGravatar
from skbridge.testing.fake_slack import FakeSlack
from skbridge.testing.fake_slack.web import Request
from skbridge.testing.fake_telegram import FakeTelegram
from skbridge.testing.harness import ALICE, ALICE_EMAIL, BOB, DISPATCH, OWNER, Fakes
from skbridge.testing.postgres import PostgresServer

_server: PostgresServer | None = None
_databases: dict[Path, str] = {}


def use_postgresql(server: PostgresServer | None) -> None:
    """Run every daemon on ``server`` (a fresh database per run directory), or on SQLite."""
    global _server
    _server = server


def location(path: Path) -> str:
    """The store of the run whose SQLite file would be ``path``."""
    if _server is None:
        return sqlite_url(path)
    if path not in _databases:
        _databases[path] = _server.create_database()
    return _databases[path]


JsonDict = dict[str, Any]


def phase_of(text: str) -> str:
    """The phase a benchmark text belongs to: everything before its first ``-``."""
    return text.partition("-")[0]


class TimedTelegram(FakeTelegram):
    """FakeTelegram that records when each update is handed out and each reply arrives."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.handed_out: dict[str, float] = {}
        """Message text -> first time a getUpdates answer carried it."""
        self.sent_at: dict[str, float] = {}
        """Reply text (after ``<agent>: ``) -> when the fake accepted its sendMessage."""
        self.sent_by_phase: Counter[str] = Counter()
        self.batch_sizes: list[int] = []

    async def _get_updates(self, params: JsonDict) -> list[JsonDict]:
        batch = await super()._get_updates(params)
        now = time.monotonic()
        for update in batch:
            message = update.get("message") or update.get("edited_message") or {}
            text = message.get("text")
            if isinstance(text, str):
                self.handed_out.setdefault(text, now)
        if batch:
            self.batch_sizes.append(len(batch))
        return batch

    async def _send_message(self, params: JsonDict) -> JsonDict:
        result = await super()._send_message(params)
        # Replies read "<agent>: <text>"; the benchmark's own text is the key.
        text = str(result.get("text", "")).rpartition(": ")[2]
        if text not in self.sent_at:
            self.sent_at[text] = time.monotonic()
            self.sent_by_phase[phase_of(text)] += 1
        return result


class TimedSlack(FakeSlack):
    """FakeSlack that records post arrivals, envelope sends and ack arrivals."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.received_at: dict[str, float] = {}
        """Posted text -> when chat.postMessage reached the fake (first time)."""
        self.received_by_phase: Counter[str] = Counter()
        self.duplicates = 0
        self.envelope_sent: dict[str, float] = {}
        self.ack_at: dict[str, float] = {}
        self.created_at: list[float] = []
        """When each conversations.create succeeded."""

    def _conversations_create(self, req: Request) -> dict[str, Any]:
        body = super()._conversations_create(req)
        self.created_at.append(time.monotonic())
        return body

    def _chat_post_message(self, req: Request) -> dict[str, Any]:
        body = super()._chat_post_message(req)
        now = time.monotonic()
        text = req.text("text")
        if text in self.received_at:
            self.duplicates += 1
        else:
            self.received_at[text] = now
            self.received_by_phase[phase_of(text)] += 1
        return body

    async def _deliver(self, envelope: dict[str, Any]) -> dict[str, Any]:
        self.envelope_sent[str(envelope["envelope_id"])] = time.monotonic()
        return await super()._deliver(envelope)

    def _on_client_frame(self, text: str) -> None:
        now = time.monotonic()
        with contextlib.suppress(ValueError, AttributeError):
            envelope_id = json.loads(text).get("envelope_id")
            if isinstance(envelope_id, str):
                self.ack_at.setdefault(envelope_id, now)
        super()._on_client_frame(text)

    def add_customer_channels(self, names: Iterable[str]) -> dict[str, str]:
        """Create many bot-joined channels at once (no per-name scan); name -> id."""
        taken = {c.name for c in self.channels.values()}
        ids: dict[str, str] = {}
        for name in names:
            if name in taken:
                raise ValueError(f"channel {name} exists")
            channel = self._new_channel(name, is_private=False, creator=self.bot_user_id)
            channel.members.update((self.bot_user_id, OWNER))
            ids[name] = channel.id
            taken.add(name)
        self._notify()
        return ids


@dataclass
class World:
    slack: TimedSlack
    telegram: TimedTelegram
    gravatar: FakeGravatar
    dispatch_id: str
    agents: list[str] = field(default_factory=list)

    def fakes(self, directory: Path | None = None) -> Fakes:
        fakes = Fakes(self.slack, self.telegram, self.gravatar, self.dispatch_id)
        if _server is not None and directory is not None:
            fakes.store_url = location(directory / "skbridge.db")
        return fakes

    def add_agents(self, count: int) -> list[str]:
        """``count`` agents (Slack users with an email; every other one has a Gravatar)."""
        for n in range(count):
            user_id = f"UAGENT{n:04d}"
            email = f"agent{n}@example.com"
            self.slack.add_user(
                user_id, f"agent{n}", display_name=f"Agent {n}", email=email, image_192=""
            )
            if n % 2 == 0:
                self.gravatar.add(email)
            self.agents.append(user_id)
        return self.agents


@contextlib.asynccontextmanager
async def world(**slack_limits: Any) -> AsyncIterator[World]:
    """The harness's workspace (owner, two agents, #support), on the timed fakes."""
    async with (
        TimedSlack(**slack_limits) as slack,
        TimedTelegram() as telegram,
        FakeGravatar() as gravatar,
    ):
        slack.add_user(
            OWNER, "olivia", real_name="Olivia Owner", is_primary_owner=True, is_owner=True
        )
        slack.add_user(ALICE, "alice", display_name="Alice", email=ALICE_EMAIL.strip())
        slack.add_user(BOB, "bob", display_name="Bob", email="bob@example.com")
        gravatar.add(ALICE_EMAIL)
        dispatch_id = slack.add_channel(DISPATCH, members=[OWNER, ALICE, BOB])
        yield World(slack, telegram, gravatar, dispatch_id)


# --- customers ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Customer:
    number: int
    chat_id: int
    first_name: str
    last_name: str
    channel_id: str = ""

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}"

    @property
    def channel_name(self) -> str:
        """The name skbridge itself picks for this customer (``sk-<slug>``)."""
        return f"sk-{self.first_name.lower()}-{self.last_name}"


def customers(count: int, *, first_name: str = "Customer", start: int = 0) -> list[Customer]:
    return [Customer(n, 7_000_000 + n, first_name, str(n)) for n in range(start, start + count)]


def with_channels(world: World, people: Sequence[Customer]) -> list[Customer]:
    """Give each customer a channel in the fake Slack (bot and owner are members)."""
    ids = world.slack.add_customer_channels(c.channel_name for c in people)
    for c in people:
        world.telegram.register_chat(c.chat_id, first_name=c.first_name, last_name=c.last_name)
    return [
        Customer(c.number, c.chat_id, c.first_name, c.last_name, ids[c.channel_name])
        for c in people
    ]


def say(world: World, customer: Customer, text: str) -> None:
    world.telegram.customer_says(
        customer.chat_id, text, first_name=customer.first_name, last_name=customer.last_name
    )


# --- the database, seeded before the daemon starts ------------------------------------------


async def seed_database(
    path: Path,
    people: Iterable[Customer],
    *,
    extra: int = 0,
    extra_start: int = 1_000_000,
) -> int:
    """Create the schema (through the store) and store open conversations with their channels.

    ``people`` keep the channel IDs they have in the fake Slack; ``extra`` more
    conversations get made-up channels the fake does not know (footprint only: they
    are stored but never touched). Returns the number of conversations stored.
    """
    rows = [
        (SourceName("telegram"), str(c.chat_id), c.name, ChannelId(c.channel_id), c.channel_name)
        for c in people
    ]
    rows += [
        (
            SourceName("telegram"),
            str(extra_start + n),
            f"Stored {n}",
            ChannelId(f"CSTORED{n:07d}"),
            f"sk-stored-{n}",
        )
        for n in range(extra)
    ]
    store = await open_store(location(path))
    try:
        async with store.write() as tx:
            await q.seed_open_conversations(tx, rows, time.time())
    finally:
        await store.close()
    return len(rows)


async def unfinished_work(path: Path) -> int:
    """Outbox rows the daemon has not finished (a read-only look at its database)."""
    store = await open_store(location(path), read_only=True)
    try:
        return await report.unfinished_count(store)
    finally:
        await store.close()


# --- waiting ------------------------------------------------------------------------------


async def until(
    predicate: Callable[[], bool],
    timeout: float,  # noqa: ASYNC109 - a plain deadline reads best here
    what: str,
    poll: float = 0.01,
) -> None:
    """Poll ``predicate`` (cheap, O(1)) every ``poll`` seconds; TimeoutError names ``what``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise TimeoutError(f"not within {timeout:.0f} s: {what}")
        await asyncio.sleep(poll)
