"""Two daemons on one PostgreSQL database and one workspace: Telegram polled by one at a
time, every envelope with one effect, lanes run by one instance each, and a takeover
when the holder dies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from skbridge.ops.status import read_status, to_text
from skbridge.store import Store
from skbridge.testing.harness import ALICE, BOB, Daemon, Fakes, customer_channel, texts

STORE_ENGINES = ("postgresql",)
CUSTOMERS = range(4001, 4005)


@pytest.fixture
async def pair(world: Fakes, tmp_path: Path) -> AsyncIterator[tuple[Daemon, Daemon]]:
    config = world.write_config(tmp_path, poll_timeout=2)
    first, second = Daemon(config), Daemon(config)
    await first.start()
    await second.start()
    try:
        yield first, second
    finally:
        await second.stop()
        await first.stop()


def write(world: Fakes, n: int) -> None:
    for user in CUSTOMERS:
        world.telegram.customer_says(user, f"m{n}", first_name=f"C{user}")


def delivered(world: Fakes) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for user in CUSTOMERS:
        channel = world.slack.channel_by_name(f"sk-c{user}")
        found[user] = [] if channel is None else texts(world.slack, channel.id)
    return found


def db_of(daemon: Daemon) -> Store:
    assert daemon.service is not None and daemon.service.db is not None
    return daemon.service.db


async def poller(daemon: Daemon) -> str | None:
    row = await db_of(daemon).one(
        "SELECT holder FROM leases WHERE name = 'upstream:telegram' AND expires_at > skbridge_now()"
    )
    return None if row is None else str(row[0])


def instance(daemon: Daemon) -> str:
    assert daemon.service is not None
    return daemon.service.instance


async def test_two_instances_poll_one_at_a_time_and_act_once(
    world: Fakes, pair: tuple[Daemon, Daemon]
) -> None:
    """Both running, neither dying: one poller, no 409, each message and reply once."""
    first, second = pair
    assert await poller(first) == instance(first)
    assert world.store_url is not None
    report = to_text(await read_status(world.store_url))
    assert f"instance       {instance(first)} (seen " in report
    assert f"instance       {instance(second)} (seen " in report
    assert "upstream:telegram" in report and "no upstream (standby)" in report
    for n in range(5):
        write(world, n)
    wanted = [f"m{n}" for n in range(5)]
    await world.slack.wait_for(
        lambda: all(t == wanted for t in delivered(world).values()), timeout=30
    )
    assert world.slack.connected == 2
    channels = [customer_channel(world.slack, f"sk-c{user}") for user in CUSTOMERS]
    for n, channel in enumerate(channels * 2):
        envelope = await world.slack.send_command(channel, (ALICE, BOB)[n % 2], f"r{n}")
        await world.slack.wait_ack(envelope["envelope_id"])
    await world.telegram.wait_for(
        lambda: sum(len(world.telegram.sent_to(u)) for u in CUSTOMERS) == 8, timeout=30
    )
    echoed = {
        user: [*wanted, f"*To C{user}:* r{n}", f"*To C{user}:* r{n + 4}"]
        for user, n in zip(CUSTOMERS, range(4), strict=True)
    }
    await world.slack.wait_for(lambda: delivered(world) == echoed, timeout=30)
    for user, n in zip(CUSTOMERS, range(4), strict=True):
        agent = ("Alice", "Bob")[n % 2]
        assert world.telegram.sent_to(user) == [f"{agent}: r{n}", f"{agent}: r{n + 4}"]
    assert world.telegram.conflicts == 0
    assert len(world.slack.channels) == 1 + len(CUSTOMERS)  # no channel made twice


async def test_the_standby_takes_over_polling_and_lanes_when_the_holder_dies(
    world: Fakes, pair: tuple[Daemon, Daemon]
) -> None:
    """The poller crashes mid-stream: the other polls on; nothing lost, doubled or reordered."""
    first, second = pair
    for n in range(6):
        write(world, n)
    await world.slack.wait_for(lambda: sum(map(len, delivered(world).values())) >= 8, timeout=30)
    await first.kill()
    for n in range(6, 10):
        write(world, n)
    wanted = [f"m{n}" for n in range(10)]
    await world.slack.wait_for(
        lambda: all(t == wanted for t in delivered(world).values()), timeout=40
    )
    assert await poller(second) == instance(second)
    first.service = None
