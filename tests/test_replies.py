"""Replies too long for one Telegram message: each part is sent once and retried alone,
and the channel says exactly which parts arrived."""

from __future__ import annotations

from skbridge.testing.harness import ADA, ALICE, Daemon, Fakes, click, first_message, texts

STORE_ENGINES = ("sqlite", "postgresql")

PARTS = [f"P{n} " + "x" * 3000 for n in (1, 2, 3)]
REPLY = "\n".join(PARTS)
SENT = ["Alice: " + PARTS[0], PARTS[1], PARTS[2]]
"""How Telegram receives the reply: three messages, the agent's name on the first."""


async def click_send_again(world: Fakes, channel: str) -> None:
    await click(world, channel, ALICE, world.slack.messages(channel)[-1])


async def test_a_rate_limit_on_a_later_part_does_not_repeat_the_earlier_ones(
    world: Fakes, daemon: Daemon
) -> None:
    """A 429 on part 2 of 3: part 2 waits and is sent again, alone; part 1 arrives once."""
    channel = await first_message(world)
    world.telegram.fail_next("sendMessage", status=429, retry_after=1, skip=1)
    await world.slack.send_command(channel, ALICE, REPLY)
    await world.telegram.wait_for(lambda: len(world.telegram.sent_to(ADA)) == 3)
    await daemon.wait_idle()
    assert world.telegram.sent_to(ADA) == SENT


async def test_a_refused_later_part_says_which_parts_arrived_and_resends_only_the_rest(
    world: Fakes, daemon: Daemon
) -> None:
    """A 403 on part 2: the channel names what arrived; Send again sends parts 2 and 3."""
    channel = await first_message(world)
    world.telegram.fail_next("sendMessage", status=403, skip=1)
    await world.slack.send_command(channel, ALICE, REPLY)
    await world.slack.wait_for(lambda: "Not all of this reply" in texts(world.slack, channel)[-1])
    notice = texts(world.slack, channel)[-1]
    assert "part 1 of 3 arrived; part 2 of 3 was refused; part 3 of 3 was not sent" in notice
    assert world.telegram.sent_to(ADA) == SENT[:1]
    await click_send_again(world, channel)
    await world.telegram.wait_for(lambda: len(world.telegram.sent_to(ADA)) == 3)
    await daemon.wait_idle()
    assert world.telegram.sent_to(ADA) == SENT


async def test_an_ambiguous_later_part_is_shown_and_resent_from_there(
    world: Fakes, daemon: Daemon
) -> None:
    """A 502 after Telegram took part 2: part 2 is unsure, part 3 unsent, nothing repeated."""
    channel = await first_message(world)
    world.telegram.fail_next("sendMessage", status=502, after_effect=True, skip=1)
    await world.slack.send_command(channel, ALICE, REPLY)
    await world.slack.wait_for(lambda: "Unsure" in texts(world.slack, channel)[-1])
    notice = texts(world.slack, channel)[-1]
    assert "part 1 of 3 arrived; part 2 of 3 may or may not have arrived" in notice
    assert "part 3 of 3 was not sent" in notice
    await daemon.wait_idle()
    assert world.telegram.sent_to(ADA) == SENT[:2]
    await click_send_again(world, channel)
    await world.telegram.wait_for(lambda: len(world.telegram.sent_to(ADA)) == 4)
    await daemon.wait_idle()
    assert world.telegram.sent_to(ADA) == [*SENT[:2], *SENT[1:]]


async def test_a_crash_during_a_later_part_flags_only_that_part(
    world: Fakes, daemon: Daemon
) -> None:
    """Killed while part 2 was on its way: after the restart part 2 is unsure, 3 unsent."""
    channel = await first_message(world)
    world.telegram.hang_next("sendMessage", skip=1)
    await world.slack.send_command(channel, ALICE, REPLY)
    await world.telegram.wait_for(
        lambda: sum(m == "sendMessage" for m, _ in world.telegram.calls) == 2
    )
    await daemon.kill()
    await daemon.start()
    await world.slack.wait_for(lambda: "Unsure" in texts(world.slack, channel)[-1])
    notice = texts(world.slack, channel)[-1]
    assert "part 1 of 3 arrived; part 2 of 3 may or may not have arrived" in notice
    await daemon.wait_idle()
    assert world.telegram.sent_to(ADA) == SENT[:1]


async def test_the_channel_copy_of_a_long_reply_is_split_like_customer_text(
    world: Fakes, daemon: Daemon
) -> None:
    """The echo of a 9,000-character reply comes in posts Slack shows whole, in order."""
    channel = await first_message(world)
    await world.slack.send_command(channel, ALICE, REPLY)
    await world.telegram.wait_for(lambda: len(world.telegram.sent_to(ADA)) == 3)
    await daemon.wait_idle()
    echo = texts(world.slack, channel)[1:]
    assert len(echo) >= 3 and all(len(post) <= 4000 for post in echo)
    assert "\n".join(echo).split() == f"*To Ada Lovelace:* {REPLY}".split()
