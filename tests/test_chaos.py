"""kill -9 at random points of a two-way stream: nothing lost, nothing twice, order kept.

The real ``skbridge run`` process runs against the fakes while customers write and agents
reply; it is SIGKILLed whenever progress reaches a random mark, and restarted. The
invariants are read from the fakes' own records at the end. ``pytest tests/test_chaos.py
--soak -s`` runs the long variant (at least 1,000 messages and 50 kills) and prints figures.
"""

from __future__ import annotations

import asyncio
import random
import signal
import sqlite3
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from skbridge.testing.fake_slack import FakeSlack
from skbridge.testing.harness import ALICE, DaemonProcess, Fakes, fakes

FIRST_CUSTOMER = 5001


@dataclass
class Figures:
    customer_messages: int = 0
    replies_acked: int = 0
    kills: int = 0
    lost: int = 0
    duplicated: int = 0
    reordered: int = 0
    uncertain: int = 0
    ratelimited: int = 0
    ack_seconds: list[float] = field(default_factory=list)

    def p99_ack_ms(self) -> float:
        if len(self.ack_seconds) < 2:
            return 0.0
        return statistics.quantiles(self.ack_seconds, n=100)[98] * 1000

    def line(self) -> str:
        return (
            f"messages={self.customer_messages + self.replies_acked} "
            f"(customer {self.customer_messages}, replies {self.replies_acked}) "
            f"kills={self.kills} lost={self.lost} duplicated={self.duplicated} "
            f"reordered={self.reordered} uncertain={self.uncertain} "
            f"429s={self.ratelimited} p99_ack={self.p99_ack_ms():.1f}ms"
        )


def channel_of(slack: FakeSlack, user: int) -> str | None:
    channel = slack.channel_by_name(f"sk-c{user}")
    return channel.id if channel else None


def customer_texts(slack: FakeSlack, user: int) -> list[str]:
    channel = channel_of(slack, user)
    if channel is None:
        return []
    return [m.text for m in slack.messages(channel) if m.username == f"C{user}"]


async def chaos(
    world: Fakes, tmp_path: Path, *, customers: int, per_customer: int, kills: int, seed: int
) -> Figures:
    rng = random.Random(seed)
    figures = Figures()
    users = list(range(FIRST_CUSTOMER, FIRST_CUSTOMER + customers))
    total = customers * per_customer
    daemon = DaemonProcess(world.write_config(tmp_path, poll_timeout=1))
    acked: dict[int, str] = {}

    def delivered() -> int:
        return sum(len(customer_texts(world.slack, u)) for u in users)

    async def customers_write() -> None:
        for n in range(per_customer):
            for user in users:
                world.telegram.customer_says(user, f"c{user}-m{n}", first_name=f"C{user}")
            await world.slack.wait_for(lambda n=n: delivered() >= (n + 1) * customers // 2)  # type: ignore[misc]

    replies = total // 3

    def progress() -> int:
        return delivered() + len(acked)

    async def agents_reply() -> None:
        n = 0
        while len(acked) < replies:
            user = rng.choice(users)
            channel = channel_of(world.slack, user)
            if channel is None:
                await world.slack.wait_for(lambda u=user: channel_of(world.slack, u) is not None)  # type: ignore[misc]
                continue
            text = f"r{user}-{n}"
            n += 1
            started = time.monotonic()
            try:
                envelope = await world.slack.send_command(channel, ALICE, text)
                await world.slack.wait_ack(envelope["envelope_id"], timeout=5)
            except TimeoutError:
                continue  # sent into a dying socket: Slack would show the agent an error
            figures.ack_seconds.append(time.monotonic() - started)
            acked[user * 1_000_000 + n] = text

    await daemon.start(world)
    traffic = [asyncio.create_task(customers_write()), asyncio.create_task(agents_reply())]
    try:
        goal = total + replies
        for _ in range(kills):
            mark = min(progress() + rng.randint(1, max(2, goal // (kills + 1))), goal)
            await world.slack.wait_for(lambda m=mark: progress() >= m, timeout=60)  # type: ignore[misc]
            assert await daemon.signal(signal.SIGKILL) == -signal.SIGKILL
            figures.kills += 1
            await daemon.start(world)
        await asyncio.wait_for(traffic[0], 120)
        await world.slack.wait_for(lambda: delivered() >= total, timeout=120)
        await asyncio.wait_for(traffic[1], 60)
        expected = set(acked.values())
        await world.telegram.wait_for(
            lambda: all(
                t in replied_texts(world) or t in uncertain_texts(world.slack) for t in expected
            ),
            timeout=60,
        )
        assert await daemon.signal(signal.SIGTERM) == 0
    finally:
        for task in traffic:
            task.cancel()
        await daemon.kill()

    for user in users:
        got = customer_texts(world.slack, user)
        want = [f"c{user}-m{n}" for n in range(per_customer)]
        figures.lost += len(set(want) - set(got))
        figures.duplicated += len(got) - len(set(got))
        figures.reordered += int(list(dict.fromkeys(got)) != [w for w in want if w in got])
    sent = replied_texts(world)
    figures.duplicated += len(sent) - len(set(sent))
    flagged = uncertain_texts(world.slack)
    figures.uncertain = len({t for t in acked.values() if t in flagged and t not in sent})
    figures.lost += len({t for t in acked.values() if t not in sent and t not in flagged})
    figures.customer_messages = total
    figures.replies_acked = len(acked)
    figures.ratelimited = world.slack.ratelimited
    db = sqlite3.connect(tmp_path / "skbridge.db")
    try:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        db.close()
    return figures


def replied_texts(world: Fakes) -> list[str]:
    return [m.text.removeprefix("Alice: ") for m in world.telegram.sent]


def uncertain_texts(slack: FakeSlack) -> set[str]:
    return {
        line.removeprefix("> ")
        for m in slack.posts
        if "Unsure" in m.text
        for line in m.text.splitlines()
        if line.startswith("> ")
    }


async def test_random_sigkills_lose_and_repeat_nothing(tmp_path: Path) -> None:
    """Several kill -9s during a two-way stream: every message once, in order; DB intact."""
    async with fakes() as world:
        figures = await chaos(world, tmp_path, customers=6, per_customer=40, kills=5, seed=7)
    print(figures.line())
    assert (figures.lost, figures.duplicated, figures.reordered) == (0, 0, 0), figures.line()
    assert figures.kills == 5


async def test_soak(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """The long run: >= 1,000 messages, >= 50 kills, Slack rate-limiting, zero lost or doubled."""
    if not request.config.getoption("--soak"):
        pytest.skip("soak run: pytest tests/test_chaos.py --soak -s")
    async with fakes(post_rate=50.0, post_burst=5) as world:
        figures = await chaos(world, tmp_path, customers=20, per_customer=50, kills=50, seed=11)
    print(f"\nsoak: {figures.line()}")
    assert (figures.lost, figures.duplicated, figures.reordered) == (0, 0, 0), figures.line()
