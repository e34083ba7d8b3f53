"""Running the inbox: who the customer is, who has the conversation, history on reopen,
idle channels archived, and the team's figures."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from skbridge.testing.harness import (
    ADA,
    ALICE,
    BOB,
    Daemon,
    Fakes,
    button,
    click,
    customer_channel,
    dispatch_notices,
    first_message,
    texts,
)

STORE_ENGINES = ("sqlite", "postgresql")

CARD = "Ada Lovelace · Telegram · @ada · language: en"


def context_texts(message: Any) -> list[str]:
    return [
        element["text"]
        for block in message.blocks or []
        if block["type"] == "context"
        for element in block["elements"]
    ]


def ada_says(world: Fakes, text: str, **who: Any) -> int:
    who = {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "username": "ada",
        "language_code": "en",
    } | who
    return world.telegram.customer_says(ADA, text, **who)


async def test_the_channel_topic_first_post_and_dispatch_notice_say_who_the_customer_is(
    world: Fakes, daemon: Daemon
) -> None:
    """Name, source, handle and language: in the topic, on the first post, in dispatch."""
    ada_says(world, "Hello")
    await world.slack.wait_for(lambda: world.slack.channel_by_name("sk-ada-lovelace") is not None)
    channel = customer_channel(world.slack)
    await world.slack.wait_for(lambda: world.slack.channels[channel].topic == CARD)
    first = world.slack.messages(channel)[0]
    assert first.text == "Hello" and context_texts(first) == [CARD]
    await world.slack.wait_for(lambda: len(dispatch_notices(world)) == 1)
    assert context_texts(dispatch_notices(world)[0]) == [CARD]

    ada_says(world, "second")
    await world.slack.wait_for(lambda: len(world.slack.messages(channel)) == 2)
    assert context_texts(world.slack.messages(channel)[1]) == []

    ada_says(world, "I married", last_name="King", username="ada_king")
    await world.slack.wait_for(
        lambda: (
            world.slack.channels[channel].topic == "Ada King · Telegram · @ada_king · language: en"
        )
    )
    await daemon.wait_idle()


def private_to(world: Fakes, user: str) -> list[Any]:
    return [m for m in world.slack.ephemerals if m.ephemeral_to == user]


async def test_two_agents_claim_at_once_one_owns_and_the_other_is_told(
    world: Fakes, daemon: Daemon
) -> None:
    """Claims race: the first click wins; the second hears privately who has it."""
    channel = await first_message(world)
    await world.slack.wait_for(lambda: len(dispatch_notices(world)) == 1)
    notice = dispatch_notices(world)[0]
    pressed = button(notice, "claim")
    both = [
        await world.slack.send_block_action(world.dispatch_id, who, "claim", pressed["value"])
        for who in (ALICE, BOB)
    ]
    for envelope in both:
        await world.slack.wait_ack(envelope["envelope_id"])
    await world.slack.wait_for(lambda: "Alice is on it" in str(dispatch_notices(world)[0].blocks))
    await world.slack.wait_for(lambda: bool(private_to(world, BOB)))
    assert "has this conversation" in private_to(world, BOB)[0].text
    assert private_to(world, ALICE) == []
    await world.slack.wait_for(lambda: "Alice is on it." in texts(world.slack, channel)[-1])
    await daemon.wait_idle()
    assert len(dispatch_notices(world)) == 1  # updated in place, not posted again
    assert sum("is on it" in t for t in texts(world.slack, channel)) == 1


async def test_take_over_release_and_help_are_announced(world: Fakes, daemon: Daemon) -> None:
    """Take over from the private answer; a non-owner's /sk works and is noted once."""
    channel = await first_message(world)
    await world.slack.wait_for(lambda: len(dispatch_notices(world)) == 1)
    envelope = await world.slack.send_command(channel, ALICE, "claim")
    ack = await world.slack.wait_ack(envelope["envelope_id"])
    assert "payload" not in ack or not ack["payload"]
    await world.slack.wait_for(lambda: "Alice is on it." in texts(world.slack, channel)[-1])

    for n in (1, 2):
        await world.slack.send_command(channel, BOB, f"help {n}")
    await world.telegram.wait_for(lambda: len(world.telegram.sent_to(ADA)) == 2)
    await daemon.wait_idle()
    notes = [t for t in texts(world.slack, channel) if "Alice has this conversation" in t]
    assert notes == ["Bob answered the customer; Alice has this conversation."]

    envelope = await world.slack.send_command(channel, BOB, "claim")
    ack = await world.slack.wait_ack(envelope["envelope_id"])
    assert "has this conversation" in ack["payload"]["text"]
    offer = next(b for b in ack["payload"]["blocks"] if b["type"] == "actions")
    take = offer["elements"][0]
    assert take["action_id"] == "take_over"
    pressed = await world.slack.send_block_action(
        world.dispatch_id, BOB, "take_over", take["value"]
    )
    await world.slack.wait_ack(pressed["envelope_id"])
    await world.slack.wait_for(
        lambda: "Bob took this conversation over from Alice." in texts(world.slack, channel)[-1]
    )
    await world.slack.wait_for(lambda: "Bob is on it" in str(dispatch_notices(world)[0].blocks))

    envelope = await world.slack.send_command(channel, BOB, "release")
    await world.slack.wait_ack(envelope["envelope_id"])
    await world.slack.wait_for(lambda: "released" in texts(world.slack, channel)[-1])
    await world.slack.wait_for(lambda: "is on it" not in str(dispatch_notices(world)[0].blocks))


async def test_archiving_clears_the_owner(world: Fakes, daemon: Daemon) -> None:
    """Done for now: after an archive, the conversation is nobody's until claimed again."""
    channel = await first_message(world)
    envelope = await world.slack.send_command(channel, ALICE, "claim")
    await world.slack.wait_ack(envelope["envelope_id"])
    await world.slack.user_archives(channel, ALICE)
    archive = next(e for e in world.slack.deliveries if e["type"] == "events_api")
    await world.slack.wait_ack(archive["envelope_id"])
    ada_says(world, "back again")
    await world.slack.wait_for(lambda: len(dispatch_notices(world)) == 2)
    again = customer_channel(world.slack, "sk-ada-lovelace-2")
    envelope = await world.slack.send_command(again, BOB, "claim")
    await world.slack.wait_ack(envelope["envelope_id"])
    await world.slack.wait_for(lambda: "Bob is on it." in texts(world.slack, again)[-1])


async def test_a_continuation_channel_starts_with_the_last_messages(
    world: Fakes, tmp_path: Path
) -> None:
    """The last N lines, both ways, with who said them; older ones are left to the archive."""
    config = world.write_config(tmp_path)
    config.write_text(config.read_text().replace("[slack]\n", "[slack]\nhistory_messages = 3\n"))
    daemon = Daemon(config)
    await daemon.start()
    try:
        channel = await first_message(world, "m1")
        for n in (2, 3):
            ada_says(world, f"m{n} <b>")
        await world.slack.wait_for(lambda: len(world.slack.messages(channel)) == 3)
        await world.slack.send_command(channel, ALICE, "r1 *bold*")
        await world.telegram.wait_for(lambda: len(world.telegram.sent_to(ADA)) == 1)
        await daemon.wait_idle()
        await world.slack.user_archives(channel, ALICE)
        archive = next(e for e in world.slack.deliveries if e["type"] == "events_api")
        await world.slack.wait_ack(archive["envelope_id"])
        ada_says(world, "back")
        await world.slack.wait_for(
            lambda: world.slack.channel_by_name("sk-ada-lovelace-2") is not None
        )
        again = customer_channel(world.slack, "sk-ada-lovelace-2")
        await world.slack.wait_for(lambda: len(world.slack.messages(again)) == 3)
        history = texts(world.slack, again)[1].splitlines()
        assert history[:2] == [
            "*Earlier in this conversation:*",
            "_(older messages are in the archived channel)_",
        ]
        assert [line.split("` ", 1)[1] for line in history[2:]] == [
            "← *Ada Lovelace:* m2 &lt;b&gt;",
            "← *Ada Lovelace:* m3 &lt;b&gt;",
            "→ *Alice:* r1 *bold*",
        ]
        assert texts(world.slack, again)[2] == "back"
    finally:
        await daemon.stop()


class Clock:
    """Real time, plus days the test lets pass at once."""

    def __init__(self) -> None:
        self.skipped = 0.0

    def __call__(self) -> float:
        return time.time() + self.skipped

    def days(self, n: float) -> None:
        self.skipped += n * 86_400


def idle_config(world: Fakes, tmp_path: Path, after: float = 2, grace: float = 1) -> Path:
    config = world.write_config(tmp_path)
    options = f"archive_after_days = {after}\narchive_grace_days = {grace}\n"
    config.write_text(config.read_text().replace("[slack]\n", "[slack]\n" + options))
    return config


async def sweep(daemon: Daemon) -> int:
    assert daemon.service is not None and daemon.service.chores is not None
    acted = await daemon.service.chores.idle_once()
    await daemon.wait_idle()
    return acted


async def answered_conversation(world: Fakes, daemon: Daemon) -> str:
    channel = await first_message(world)
    await world.slack.send_command(channel, ALICE, "hello Ada")
    await world.telegram.wait_for(lambda: bool(world.telegram.sent_to(ADA)))
    await daemon.wait_idle()
    return channel


async def test_a_quiet_channel_is_warned_then_archived_and_reopens_on_the_next_message(
    world: Fakes, tmp_path: Path
) -> None:
    """Two quiet days: a warning; one more: archived, as a team archive. Survives a restart."""
    clock = Clock()
    daemon = Daemon(idle_config(world, tmp_path), clock=clock)
    await daemon.start()
    try:
        channel = await answered_conversation(world, daemon)
        clock.days(1.9)
        assert await sweep(daemon) == 0
        clock.days(0.2)
        assert await sweep(daemon) == 1
        warning = world.slack.messages(channel)[-1]
        assert "quiet for 2 days" in warning.text and "archives it in 1 day" in warning.text
        assert await sweep(daemon) == 0  # warned once
        await daemon.restart()
        clock.days(1.1)
        assert await sweep(daemon) == 1
        await world.slack.wait_for(lambda: world.slack.channels[channel].is_archived)
        assert len(dispatch_notices(world)) == 1  # archiving tells nobody
        ada_says(world, "me again")
        await world.slack.wait_for(lambda: len(dispatch_notices(world)) == 2)
        assert world.slack.channel_by_name("sk-ada-lovelace-2") is not None
    finally:
        await daemon.stop()


async def test_speaking_or_keep_open_cancels_the_warning(world: Fakes, tmp_path: Path) -> None:
    """A reply after the warning, or a Keep open click: the channel stays open."""
    clock = Clock()
    daemon = Daemon(idle_config(world, tmp_path), clock=clock)
    await daemon.start()
    try:
        channel = await answered_conversation(world, daemon)
        clock.days(3)
        assert await sweep(daemon) == 1
        await click(world, channel, BOB, world.slack.messages(channel)[-1], "keep_open")
        await world.slack.wait_for(
            lambda: "Bob keeps this channel open." in texts(world.slack, channel)[-1]
        )
        clock.days(1.5)
        assert await sweep(daemon) == 1  # the warning is forgotten: nothing else happens
        assert not world.slack.channels[channel].is_archived

        clock.days(3)
        assert await sweep(daemon) == 1  # quiet again: a new warning
        await world.slack.send_command(channel, ALICE, "anything else?")
        await world.telegram.wait_for(lambda: len(world.telegram.sent_to(ADA)) == 2)
        await daemon.wait_idle()
        clock.days(1.5)
        await sweep(daemon)
        assert not world.slack.channels[channel].is_archived
    finally:
        await daemon.stop()


async def test_a_channel_whose_customer_waits_for_an_answer_is_never_archived(
    world: Fakes, tmp_path: Path
) -> None:
    """The customer's last message has no answer: the channel is told so, once; no archive."""
    clock = Clock()
    daemon = Daemon(idle_config(world, tmp_path, after=0.5), clock=clock)
    await daemon.start()
    try:
        channel = await first_message(world)
        await daemon.wait_idle()
        clock.days(1)
        assert await sweep(daemon) == 1
        assert "no answer yet" in texts(world.slack, channel)[-1]
        for _ in range(3):
            clock.days(2)
            assert await sweep(daemon) == 0
        assert not world.slack.channels[channel].is_archived
        assert sum("no answer yet" in t for t in texts(world.slack, channel)) == 1
    finally:
        await daemon.stop()
