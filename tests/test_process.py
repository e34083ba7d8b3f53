"""The real ``skbridge run`` process: SIGTERM and SIGKILL restarts lose and repeat nothing."""

from __future__ import annotations

import signal

from skbridge.testing.harness import (
    ADA,
    ALICE,
    DaemonProcess,
    Fakes,
    customer_channel,
    first_message,
    say,
    texts,
)


async def test_sigterm_stops_cleanly_and_a_restart_loses_nothing(
    world: Fakes, process: DaemonProcess
) -> None:
    await process.start(world)
    channel = await first_message(world, "m0")
    await world.slack.send_command(channel, ALICE, "r0")
    await world.telegram.wait_for(lambda: world.telegram.sent_to(ADA) == ["Alice: r0"])

    assert await process.signal(signal.SIGTERM) == 0
    assert "stopped" in process.stderr
    for n in range(1, 4):
        say(world, f"m{n}")  # written while the daemon is down

    await process.start(world)
    await world.slack.wait_for(lambda: len(world.slack.messages(channel)) >= 5)
    await world.slack.send_command(channel, ALICE, "r1")
    await world.telegram.wait_for(lambda: len(world.telegram.sent_to(ADA)) == 2)
    assert await process.signal(signal.SIGTERM) == 0

    customer_posts = [t for t in texts(world.slack, channel) if t.startswith("m")]
    assert customer_posts == ["m0", "m1", "m2", "m3"]
    assert world.telegram.sent_to(ADA) == ["Alice: r0", "Alice: r1"]
    assert customer_channel(world.slack) == channel


async def test_sigkill_mid_stream_loses_and_repeats_nothing(
    world: Fakes, process: DaemonProcess
) -> None:
    """Four customers write 10 messages each; the daemon is killed mid-stream and restarted."""
    customers = range(3001, 3005)

    def write(n: int) -> None:
        for user in customers:
            world.telegram.customer_says(user, f"m{n}", first_name=f"C{user}")

    def channels() -> list[str]:
        return [customer_channel(world.slack, f"sk-c{user}") for user in customers]

    def delivered() -> int:
        names = {f"sk-c{user}" for user in customers}
        return sum(len(c.messages) for c in world.slack.channels.values() if c.name in names)

    await process.start(world)
    for n in range(7):
        write(n)
    await world.slack.wait_for(lambda: delivered() >= 12, timeout=30)
    assert await process.signal(signal.SIGKILL) == -signal.SIGKILL
    for n in range(7, 10):
        write(n)

    await process.start(world)
    await world.slack.wait_for(lambda: delivered() >= 40, timeout=60)
    assert await process.signal(signal.SIGTERM) == 0
    for channel in channels():
        assert texts(world.slack, channel) == [f"m{n}" for n in range(10)]
