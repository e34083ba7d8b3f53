"""The delivery model: durable before acked, once and in order across restarts and faults."""

from __future__ import annotations

import json
from pathlib import Path

from skbridge.store import open_store
from skbridge.testing.harness import (
    ADA,
    ALICE,
    Daemon,
    Fakes,
    archived_and_back,
    customer_channel,
    dispatch_notices,
    first_message,
    say,
    texts,
)

STORE_ENGINES = ("sqlite", "postgresql")
"""Every test here runs on both engines (tests/conftest.py)."""


async def test_messages_sent_while_stopped_arrive_once_after_restart(
    world: Fakes, daemon: Daemon
) -> None:
    """Telegram keeps what we have not confirmed; a restart picks up exactly there."""
    channel = await first_message(world, "m0")
    await daemon.stop()
    for n in range(1, 6):
        say(world, f"m{n}")
    await daemon.start()
    await world.slack.wait_for(lambda: len(world.slack.messages(channel)) == 6)
    await daemon.restart()
    say(world, "m6")
    await world.slack.wait_for(lambda: len(world.slack.messages(channel)) == 7)
    await daemon.wait_idle()
    assert texts(world.slack, channel) == [f"m{n}" for n in range(7)]


async def test_ambiguous_post_failure_is_not_posted_twice(world: Fakes, daemon: Daemon) -> None:
    """Slack recorded the post but answered 500: the key in metadata prevents a re-post."""
    channel = await first_message(world, "m0")
    world.slack.fail_next("chat.postMessage", status=500, after_effect=True)
    say(world, "m1")
    say(world, "m2")
    await world.slack.wait_for(lambda: len(world.slack.messages(channel)) == 3)
    await daemon.wait_idle()
    assert texts(world.slack, channel) == ["m0", "m1", "m2"]
    assert world.slack.calls_to("conversations.history")


async def test_unfinished_work_after_a_crash_is_checked_not_repeated(
    world: Fakes, daemon: Daemon
) -> None:
    """A post that Slack took just before the daemon died is found, not posted again."""
    channel = await first_message(world, "m0")
    world.slack.hang_next("chat.postMessage", after_effect=True)
    say(world, "m1")
    await world.slack.wait_for(
        lambda: any(c.error == "hung" for c in world.slack.calls_to("chat.postMessage"))
    )
    await daemon.kill()  # Slack took the post; the answer never came; the daemon died.
    await daemon.start()
    await world.slack.wait_for(lambda: len(world.slack.messages(channel)) >= 2)
    await daemon.wait_idle()
    assert texts(world.slack, channel).count("m1") == 1


async def test_rate_limited_post_waits_and_delivers_once(world: Fakes, daemon: Daemon) -> None:
    channel = await first_message(world, "m0")
    world.slack.fail_next("chat.postMessage", status=429, times=3)
    say(world, "m1")
    await world.slack.wait_for(lambda: len(world.slack.messages(channel)) == 2)
    await daemon.wait_idle()
    assert texts(world.slack, channel) == ["m0", "m1"]
    assert world.slack.ratelimited >= 3


async def test_redelivered_command_is_sent_once(world: Fakes, daemon: Daemon) -> None:
    """Slack delivering the same /sk twice (same or new envelope) sends it once."""
    channel = await first_message(world)
    envelope = await world.slack.send_command(channel, ALICE, "only once")
    await world.slack.wait_ack(envelope["envelope_id"])
    again = await world.slack.redeliver(envelope, retry_attempt=1, new_envelope_id=False)
    await world.slack.wait_ack(again["envelope_id"])
    await world.telegram.wait_for(lambda: bool(world.telegram.sent_to(ADA)))
    await daemon.wait_idle()
    assert world.telegram.sent_to(ADA) == ["Alice: only once"]


async def test_redelivered_event_is_handled_once(world: Fakes, tmp_path: Path) -> None:
    """An archive event retried with a new envelope_id (same event_id) is not applied twice."""
    daemon = Daemon(world.write_config(tmp_path, user_token=True))
    await daemon.start()
    try:
        channel, archive = await archived_and_back(world)
        await world.slack.wait_for(lambda: len(world.slack.messages(channel)) == 2)
        for attempt in (1, 2, 3):
            retried = await world.slack.redeliver(archive, retry_attempt=attempt)
            await world.slack.wait_ack(retried["envelope_id"])
        say(world, "still open")
        await world.slack.wait_for(lambda: len(world.slack.messages(channel)) == 3)
        await daemon.wait_idle()
        assert len(dispatch_notices(world)) == 2
    finally:
        await daemon.stop()


async def test_ambiguous_telegram_send_is_shown_not_repeated(world: Fakes, daemon: Daemon) -> None:
    """Telegram has no idempotency: an uncertain send asks the agent; one click, one resend."""
    channel = await first_message(world)
    world.telegram.fail_next("sendMessage", status=502, after_effect=True)
    await world.slack.send_command(channel, ALICE, "did it arrive?")
    await world.slack.wait_for(lambda: len(world.slack.messages(channel)) == 2)
    warning = world.slack.messages(channel)[-1]
    assert "Unsure" in warning.text
    assert world.telegram.sent_to(ADA) == ["Alice: did it arrive?"]
    button = next(e for b in warning.blocks or [] if b["type"] == "actions" for e in b["elements"])
    for _ in range(2):
        click = await world.slack.send_block_action(
            channel, ALICE, button["action_id"], button["value"]
        )
        await world.slack.wait_ack(click["envelope_id"])
    await world.telegram.wait_for(lambda: len(world.telegram.sent_to(ADA)) == 2)
    await daemon.wait_idle()
    assert len(world.telegram.sent_to(ADA)) == 2


async def test_send_interrupted_by_a_crash_is_shown_as_uncertain(
    world: Fakes, daemon: Daemon
) -> None:
    """A reply that was on its way when the daemon died is flagged, never silently re-sent."""
    channel = await first_message(world)
    world.telegram.hang_next("sendMessage")
    await world.slack.send_command(channel, ALICE, "in flight")
    await world.telegram.wait_for(lambda: any(m == "sendMessage" for m, _ in world.telegram.calls))
    await daemon.kill()
    await daemon.start()
    await world.slack.wait_for(lambda: "Unsure" in world.slack.messages(channel)[-1].text)
    await daemon.wait_idle()
    assert world.telegram.sent_to(ADA) == []


async def test_malformed_upstream_update_is_parked_and_does_not_block(
    world: Fakes, daemon: Daemon, config_path: Path
) -> None:
    channel = await first_message(world, "m0")
    world.telegram.push_update({"message": {"chat": "nonsense"}})
    say(world, "m1")
    await world.slack.wait_for(lambda: len(world.slack.messages(channel)) == 2)
    await daemon.stop()
    db = await open_store(daemon.config.store.location, read_only=True)
    [(origin, error)] = await db.all("SELECT origin, error FROM parked_input")
    await db.close()
    assert origin == "telegram" and "malformed" in error


async def test_malformed_envelope_is_acked_and_parked(world: Fakes, daemon: Daemon) -> None:
    await world.slack.send_raw(json.dumps({"envelope_id": "bad-1", "type": "events_api"}))
    await world.slack.wait_ack("bad-1")
    await world.slack.send_raw("{not json")
    channel = await first_message(world)
    envelope = await world.slack.send_command(channel, ALICE, "still works")
    await world.slack.wait_ack(envelope["envelope_id"])
    await world.telegram.wait_for(lambda: bool(world.telegram.sent_to(ADA)))


async def test_poison_work_is_parked_reported_once_and_the_rest_flows(
    world: Fakes, daemon: Daemon
) -> None:
    """A post Slack refuses for good is set aside, dispatch is told once, later work goes on."""
    channel = await first_message(world, "m0")
    await world.slack.wait_for(lambda: len(dispatch_notices(world)) == 1)
    world.slack.fail_next("chat.postMessage", status=200, error="invalid_blocks")
    say(world, "poison")
    say(world, "m2")
    await world.slack.wait_for(lambda: texts(world.slack, channel) == ["m0", "m2"])
    await world.slack.wait_for(lambda: len(dispatch_notices(world)) == 2)
    await daemon.wait_idle()
    report = dispatch_notices(world)[-1].text
    assert "set aside" in report and "invalid_blocks" in report
    assert len(dispatch_notices(world)) == 2


async def test_a_reply_refused_for_good_is_reported_in_the_channel(
    world: Fakes, daemon: Daemon
) -> None:
    """A reply Slack refuses to prepare is parked; the agent sees it and can send it again."""
    channel = await first_message(world)
    world.slack.fail_next("users.info", status=200, error="user_not_found")
    await world.slack.send_command(channel, ALICE, "hello?")
    await world.slack.wait_for(lambda: "Not delivered" in world.slack.messages(channel)[-1].text)
    assert customer_channel(world.slack) == channel
    assert world.telegram.sent_to(ADA) == []
    notice = world.slack.messages(channel)[-1]
    button = next(e for b in notice.blocks or [] if b["type"] == "actions" for e in b["elements"])
    await world.slack.send_block_action(channel, ALICE, button["action_id"], button["value"])
    await world.telegram.wait_for(lambda: world.telegram.sent_to(ADA) == ["Alice: hello?"])
