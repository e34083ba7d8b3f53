"""End to end: Telegram customers <-> per-customer Slack channels, against the fakes."""

from __future__ import annotations

from pathlib import Path

from skbridge.core.rules import NO_POWER, USAGE
from skbridge.gravatar import email_hash
from skbridge.testing.harness import (
    ADA,
    ALICE,
    ALICE_EMAIL,
    BOB,
    OWNER,
    Daemon,
    Fakes,
    customer_channel,
    dispatch_notices,
    first_message,
    texts,
)

STORE_ENGINES = ("sqlite", "postgresql")
"""Every test here runs on both engines (tests/conftest.py)."""


async def test_first_message_creates_a_channel_under_the_customers_name(
    world: Fakes, daemon: Daemon
) -> None:
    """A new customer gets sk-<name>; the message shows under their name, escaped."""
    channel = await first_message(world, "Hi <!channel> & <@UOWNER>, see <http://evil|x>")
    [message] = world.slack.messages(channel)
    assert message.username == "Ada Lovelace"
    assert message.text == "Hi &lt;!channel&gt; &amp; &lt;@UOWNER&gt;, see &lt;http://evil|x&gt;"
    assert message.icon_url  # a stable generated picture for the customer
    assert not world.slack.channels[channel].is_private


async def test_dispatch_is_notified_with_a_link_and_a_join_button(
    world: Fakes, daemon: Daemon
) -> None:
    """Dispatch hears of each new conversation; Join invites whoever presses it."""
    channel = await first_message(world)
    await world.slack.wait_for(lambda: len(dispatch_notices(world)) == 1)
    [notice] = dispatch_notices(world)
    assert f"<#{channel}>" in notice.text and "Ada Lovelace" in notice.text
    assert "Telegram" in notice.text
    buttons = [e for b in notice.blocks or [] if b["type"] == "actions" for e in b["elements"]]
    assert any(b.get("url", "").endswith(f"/archives/{channel}") for b in buttons)
    join = next(b for b in buttons if b.get("value") == channel)

    envelope = await world.slack.send_block_action(
        world.dispatch_id, BOB, join["action_id"], channel
    )
    await world.slack.wait_ack(envelope["envelope_id"])
    await world.slack.wait_for(lambda: BOB in world.slack.channels[channel].members)


async def test_owner_is_invited_once_per_conversation(world: Fakes, daemon: Daemon) -> None:
    """The primary owner is invited after the first message and never again."""
    channel = await first_message(world)
    await world.slack.wait_for(lambda: OWNER in world.slack.channels[channel].members)
    await world.slack.user_leaves(channel, OWNER)
    world.telegram.customer_says(ADA, "still there?", first_name="Ada", last_name="Lovelace")
    await world.slack.wait_for(lambda: len(world.slack.messages(channel)) == 2)
    await daemon.wait_idle()
    assert OWNER not in world.slack.channels[channel].members
    invites = [
        c for c in world.slack.calls_to("conversations.invite") if OWNER in c.params["users"]
    ]
    assert len(invites) == 1


async def test_ongoing_messages_go_to_the_same_channel_in_order(
    world: Fakes, daemon: Daemon
) -> None:
    """Every later message lands in the customer's channel, in the order written."""
    channel = await first_message(world, "message 0")
    for n in range(1, 30):
        world.telegram.customer_says(ADA, f"message {n}", first_name="Ada", last_name="Lovelace")
    await world.slack.wait_for(lambda: len(world.slack.messages(channel)) == 30)
    assert texts(world.slack, channel) == [f"message {n}" for n in range(30)]
    assert len(dispatch_notices(world)) == 1
    assert len([c for c in world.slack.channels.values() if c.name.startswith("sk-")]) == 1


async def test_sk_sends_plain_text_to_the_customer_and_echoes_it(
    world: Fakes, daemon: Daemon
) -> None:
    """/sk text reaches the customer as plain text under the agent's name; the channel sees it."""
    channel = await first_message(world)
    text = "Hi &lt;there&gt; &amp; welcome <@UBOB> see <https://docs.example|the docs>"
    envelope = await world.slack.send_command(channel, ALICE, text)
    ack = await world.slack.wait_ack(envelope["envelope_id"])
    assert "payload" not in ack or not ack["payload"].get("text")
    await world.telegram.wait_for(lambda: len(world.telegram.sent_to(ADA)) == 1)
    assert world.telegram.sent_to(ADA) == [
        "Alice: Hi <there> & welcome @Bob see the docs (https://docs.example)"
    ]
    await world.slack.wait_for(lambda: len(world.slack.messages(channel)) == 2)
    echo = world.slack.messages(channel)[-1]
    assert echo.username == "Alice"
    assert echo.icon_url == f"{world.gravatar.url}/avatar/{email_hash(ALICE_EMAIL)}?s=128"
    assert text in echo.text


async def test_agent_without_gravatar_falls_back_to_the_slack_picture(
    world: Fakes, daemon: Daemon
) -> None:
    """No Gravatar for the agent's email: the Slack profile picture is used."""
    channel = await first_message(world)
    await world.slack.send_command(channel, BOB, "hello from Bob")
    await world.slack.wait_for(lambda: len(world.slack.messages(channel)) == 2)
    assert world.slack.messages(channel)[-1].icon_url == "https://img.example/bob.png"
    assert world.telegram.sent_to(ADA) == ["Bob: hello from Bob"]


async def test_sk_is_acked_while_the_upstream_hangs(world: Fakes, daemon: Daemon) -> None:
    """The ack does not wait for delivery: Telegram hanging does not delay it."""
    channel = await first_message(world)
    world.telegram.hang_next("sendMessage")
    envelope = await world.slack.send_command(channel, ALICE, "are you there?")
    await world.slack.wait_ack(envelope["envelope_id"])
    assert world.telegram.sent_to(ADA) == []


async def test_failed_delivery_is_reported_in_the_channel(world: Fakes, daemon: Daemon) -> None:
    """A reply the customer cannot get is shown in the channel with the reason."""
    channel = await first_message(world)
    world.telegram.block(ADA)
    await world.slack.send_command(channel, ALICE, "hello?")
    await world.slack.wait_for(lambda: len(world.slack.messages(channel)) == 2)
    warning = world.slack.messages(channel)[-1].text
    assert "Not delivered" in warning and "blocked" in warning and "hello?" in warning


async def test_sk_outside_customer_channels_has_no_power(world: Fakes, daemon: Daemon) -> None:
    """/sk in dispatch (or any unlinked channel) answers only the caller, sends nothing."""
    await first_message(world)
    for channel in (world.dispatch_id, world.slack.add_channel("random", members=[ALICE])):
        envelope = await world.slack.send_command(channel, ALICE, "hello customer")
        ack = await world.slack.wait_ack(envelope["envelope_id"])
        assert ack["payload"] == {"response_type": "ephemeral", "text": NO_POWER}
    assert world.telegram.sent_to(ADA) == []


async def test_sk_without_text_shows_usage(world: Fakes, daemon: Daemon) -> None:
    """/sk alone in a customer channel explains itself privately."""
    channel = await first_message(world)
    envelope = await world.slack.send_command(channel, ALICE, "   ")
    ack = await world.slack.wait_ack(envelope["envelope_id"])
    assert ack["payload"] == {"response_type": "ephemeral", "text": USAGE}


async def test_internal_chatter_stays_internal(world: Fakes, daemon: Daemon) -> None:
    """Plain messages, mentions and thread replies in a customer channel never reach them."""
    channel = await first_message(world)
    ts = await world.slack.user_posts(channel, ALICE, "I think she means the invoice")
    await world.slack.user_posts(channel, BOB, f"<@{ALICE}> agreed", thread_ts=ts)
    await world.slack.user_posts(channel, BOB, "<!here> anyone?")
    delivered = list(world.slack.deliveries)
    for envelope in delivered:
        await world.slack.wait_ack(envelope["envelope_id"])
    await world.slack.send_command(channel, ALICE, "the reply")
    await world.telegram.wait_for(lambda: bool(world.telegram.sent_to(ADA)))
    await daemon.wait_idle()
    assert world.telegram.sent_to(ADA) == ["Alice: the reply"]


async def test_archive_then_message_continues_in_a_new_channel(
    world: Fakes, daemon: Daemon
) -> None:
    """Without a user token, a reopened conversation continues in a linked new channel."""
    old = await first_message(world)
    await world.slack.wait_for(lambda: len(dispatch_notices(world)) == 1)
    await world.slack.user_archives(old, ALICE)
    world.telegram.customer_says(ADA, "me again", first_name="Ada", last_name="Lovelace")
    await world.slack.wait_for(lambda: world.slack.channel_by_name("sk-ada-lovelace-2") is not None)
    new = customer_channel(world.slack, "sk-ada-lovelace-2")
    await world.slack.wait_for(lambda: len(world.slack.messages(new)) == 3)
    assert f"<#{old}>" in world.slack.messages(new)[0].text
    assert "Earlier in this conversation" in world.slack.messages(new)[1].text
    assert world.slack.messages(new)[2].text == "me again"
    await world.slack.wait_for(lambda: len(dispatch_notices(world)) == 2)
    assert f"<#{new}>" in dispatch_notices(world)[1].text
    await world.slack.wait_for(lambda: OWNER in world.slack.channels[new].members)

    await world.slack.send_command(new, ALICE, "welcome back")
    await world.telegram.wait_for(lambda: world.telegram.sent_to(ADA) == ["Alice: welcome back"])


async def test_archive_then_message_unarchives_with_a_user_token(
    world: Fakes, tmp_path: Path
) -> None:
    """With a user token, the same channel comes back; dispatch hears of it again."""
    daemon = Daemon(world.write_config(tmp_path, user_token=True))
    await daemon.start()
    try:
        channel = await first_message(world)
        await world.slack.user_archives(channel, ALICE)
        world.telegram.customer_says(ADA, "me again", first_name="Ada", last_name="Lovelace")
        await world.slack.wait_for(lambda: len(world.slack.messages(channel)) == 2)
        assert not world.slack.channels[channel].is_archived
        await world.slack.wait_for(lambda: len(dispatch_notices(world)) == 2)
        world.telegram.customer_says(ADA, "and again", first_name="Ada", last_name="Lovelace")
        await world.slack.wait_for(lambda: len(world.slack.messages(channel)) == 3)
        await daemon.wait_idle()
        assert len(dispatch_notices(world)) == 2
        assert [c.name for c in world.slack.channels.values() if c.name.startswith("sk-")] == [
            "sk-ada-lovelace"
        ]
    finally:
        await daemon.stop()


async def test_dispatch_channel_follows_the_config(world: Fakes, tmp_path: Path) -> None:
    """Changing dispatch_channel and restarting moves notices there; the bot joins it."""
    other = world.slack.add_channel("support-2", members=[ALICE])
    daemon = Daemon(world.write_config(tmp_path, dispatch="support-2"))
    await daemon.start()
    try:
        await first_message(world)
        await world.slack.wait_for(lambda: any(m.bot_id for m in world.slack.messages(other)))
        assert "UBOT" in world.slack.channels[other].members
        assert dispatch_notices(world) == []
    finally:
        await daemon.stop()


async def test_channel_names_are_slugged_and_unique(world: Fakes, daemon: Daemon) -> None:
    """Names are Slack-safe; collisions (archived too) and empty slugs get distinct names."""
    taken = world.slack.add_channel("sk-zoe", is_archived=True)
    world.telegram.customer_says(2001, "hi", first_name="Zoë")
    world.telegram.customer_says(2002, "hi", first_name="Zoe")
    world.telegram.customer_says(2003, "hi", first_name="李")
    world.telegram.customer_says(2004, "hi", first_name="Ada Lovelace " * 10)
    names = {"sk-zoe-2", "sk-zoe-3", "sk-te-2003"}
    await world.slack.wait_for(
        lambda: (
            names <= {c.name for c in world.slack.channels.values()}
            and sum(c.name.startswith("sk-ada") for c in world.slack.channels.values()) == 1
        )
    )
    long_name = next(c.name for c in world.slack.channels.values() if c.name.startswith("sk-ada"))
    assert len(long_name) <= 80
    assert world.slack.channels[taken].is_archived


async def test_missed_archive_event_still_reopens_the_conversation(
    world: Fakes, daemon: Daemon
) -> None:
    """If the archive event never arrived, the failed post reveals it: reopen, notify, post."""
    old = await first_message(world)
    await world.slack.wait_for(lambda: len(dispatch_notices(world)) == 1)
    world.slack.event_subscriptions.discard("channel_archive")
    await world.slack.user_archives(old, ALICE)
    world.telegram.customer_says(ADA, "hello again", first_name="Ada", last_name="Lovelace")
    await world.slack.wait_for(lambda: world.slack.channel_by_name("sk-ada-lovelace-2") is not None)
    new = customer_channel(world.slack, "sk-ada-lovelace-2")
    await world.slack.wait_for(lambda: texts(world.slack, new)[-1:] == ["hello again"])
    await world.slack.wait_for(lambda: len(dispatch_notices(world)) == 2)
    assert f"<#{new}>" in dispatch_notices(world)[1].text
