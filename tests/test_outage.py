"""Long outages and permanent refusals: nothing lost, nothing parked that could wait,
everything parked shown with its content and a way to send it again."""

from __future__ import annotations

import time
from pathlib import Path

from skbridge.ops.status import read_status, to_text
from skbridge.testing.harness import (
    ADA,
    ALICE,
    Daemon,
    Fakes,
    button,
    dispatch_notices,
    first_message,
    say,
    texts,
)

MINUTE = 60.0

STORE_ENGINES = ("sqlite", "postgresql")
"""Every test here runs on both engines (tests/conftest.py)."""


class Clock:
    """Real time, plus whatever the test lets pass in an instant."""

    def __init__(self) -> None:
        self.skipped = 0.0

    def __call__(self) -> float:
        return time.time() + self.skipped


def refused(world: Fakes) -> int:
    return sum(c.status == 503 for c in world.slack.calls)


async def test_an_hour_long_slack_outage_loses_nothing_and_is_reported_once(
    world: Fakes, tmp_path: Path
) -> None:
    """Slack answering 503 for an hour: every message and reply waits, then arrives in order."""
    clock = Clock()
    config = world.write_config(tmp_path)
    daemon = Daemon(config, clock=clock)
    await daemon.start()
    try:
        channel = await first_message(world, "m0")
        await daemon.wait_idle()
        world.slack.outage(503)
        for n in range(1, 7):
            say(world, f"m{n}")
        command = await world.slack.send_command(channel, ALICE, "we are on it")
        await world.slack.wait_ack(command["envelope_id"])
        # Far more attempts than the old limit of 8, over an hour of the daemon's time.
        await world.slack.wait_for(lambda: refused(world) >= 40)
        clock.skipped += 60 * MINUTE
        assert daemon.service is not None
        service = daemon.service
        await world.slack.wait_for(lambda: "Slack has failed for 60 min" in service.status_line())
        assert "(http_503); " in service.status_line()
        assert service.status_line().endswith("messages waiting")
        report = to_text(await read_status(daemon.config.store.location, now=clock()))
        assert "OUTAGE         Slack has failed for 60 min" in report

        world.slack.end_outage()
        wanted = [f"m{n}" for n in range(7)] + ["*To Ada Lovelace:* we are on it"]
        await world.slack.wait_for(lambda: texts(world.slack, channel) == wanted, timeout=20)
        await world.slack.wait_for(lambda: len(dispatch_notices(world)) == 2)
        await daemon.wait_idle()
        assert world.telegram.sent_to(ADA) == ["Alice: we are on it"]
        back = dispatch_notices(world)[-1].text
        assert "Slack is answering again after 60 min" in back and "http_503" in back
        assert "set aside" not in " ".join(m.text for m in dispatch_notices(world))
        assert "OUTAGE" not in to_text(await read_status(daemon.config.store.location))
        assert "Slack has failed" not in service.status_line()
    finally:
        await daemon.stop()


async def test_a_short_outage_is_not_announced(world: Fakes, daemon: Daemon) -> None:
    """A blip of a few failures is retried quietly: no notice in dispatch."""
    channel = await first_message(world, "m0")
    await daemon.wait_idle()
    world.slack.fail_next("chat.postMessage", status=503, times=12)
    say(world, "m1")
    await world.slack.wait_for(lambda: texts(world.slack, channel) == ["m0", "m1"])
    await daemon.wait_idle()
    assert len(dispatch_notices(world)) == 1


async def test_transient_failures_never_park_a_reply(world: Fakes, daemon: Daemon) -> None:
    """Thirty 503s while looking up the agent: the reply still goes out, once."""
    channel = await first_message(world)
    world.slack.fail_next("users.info", status=503, times=30)
    await world.slack.send_command(channel, ALICE, "patience")
    await world.telegram.wait_for(lambda: world.telegram.sent_to(ADA) == ["Alice: patience"])
    await daemon.wait_idle()
    assert not any("Not delivered" in t for t in texts(world.slack, channel))


async def test_a_parked_message_shows_its_content_and_is_sent_again_from_dispatch(
    world: Fakes, daemon: Daemon
) -> None:
    """Slack refusing a post for good: dispatch quotes it; one click posts it, once."""
    channel = await first_message(world, "m0")
    await world.slack.wait_for(lambda: len(dispatch_notices(world)) == 1)
    world.slack.fail_next("chat.postMessage", status=200, error="invalid_blocks")
    say(world, "the <b>parcel</b> is broken")
    say(world, "m2")
    await world.slack.wait_for(lambda: len(dispatch_notices(world)) == 2)
    report = dispatch_notices(world)[-1]
    assert "a message from Ada Lovelace" in report.text and "invalid_blocks" in report.text
    assert "> the &lt;b&gt;parcel&lt;/b&gt; is broken" in report.text
    retry = button(report)
    for _ in range(2):
        click = await world.slack.send_block_action(
            world.dispatch_id, ALICE, retry["action_id"], retry["value"]
        )
        await world.slack.wait_ack(click["envelope_id"])
    await world.slack.wait_for(lambda: len(world.slack.messages(channel)) == 3)
    await daemon.wait_idle()
    assert texts(world.slack, channel) == ["m0", "m2", "the &lt;b&gt;parcel&lt;/b&gt; is broken"]


async def test_send_again_only_works_where_skbridge_put_the_button(
    world: Fakes, daemon: Daemon
) -> None:
    """A Send again click from another customer's channel is ignored."""
    channel = await first_message(world)
    world.telegram.customer_says(2002, "hi", first_name="Grace")
    await world.slack.wait_for(lambda: world.slack.channel_by_name("sk-grace") is not None)
    other = world.slack.channel_by_name("sk-grace")
    assert other is not None
    world.telegram.fail_next("sendMessage", status=502, after_effect=True)
    await world.slack.send_command(channel, ALICE, "did it arrive?")
    await world.slack.wait_for(lambda: "Unsure" in texts(world.slack, channel)[-1])
    resend = button(world.slack.messages(channel)[-1])
    stray = await world.slack.send_block_action(
        other.id, ALICE, resend["action_id"], resend["value"]
    )
    await world.slack.wait_ack(stray["envelope_id"])
    await daemon.wait_idle()
    assert world.telegram.sent_to(ADA) == ["Alice: did it arrive?"]
    click = await world.slack.send_block_action(
        channel, ALICE, resend["action_id"], resend["value"]
    )
    await world.slack.wait_ack(click["envelope_id"])
    await world.telegram.wait_for(lambda: len(world.telegram.sent_to(ADA)) == 2)
