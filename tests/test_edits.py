"""Customers' edits: the Slack post that carried a message is updated, not posted again."""

from __future__ import annotations

from pathlib import Path

from skbridge.testing.harness import (
    ADA,
    ALICE,
    Daemon,
    Fakes,
    customer_channel,
    first_message,
    say,
    texts,
)

STORE_ENGINES = ("sqlite", "postgresql")


def edit(world: Fakes, message_id: int, text: str) -> int:
    return world.telegram.customer_edits(ADA, message_id, text, first_name="Ada")


async def test_an_edit_updates_the_post_that_carried_the_message(
    world: Fakes, daemon: Daemon
) -> None:
    """chat.update on the original post, marked (edited); nothing new is posted."""
    channel = await first_message(world, "Helo")
    say(world, "second")
    await world.slack.wait_for(lambda: len(world.slack.messages(channel)) == 2)
    edit(world, 1, "Hello <!channel>")
    await world.slack.wait_for(lambda: "(edited)" in world.slack.messages(channel)[0].text)
    await daemon.wait_idle()
    first, second = world.slack.messages(channel)
    assert first.text == "Hello &lt;!channel&gt; _(edited)_"
    assert first.edited and first.username == "Ada Lovelace"
    assert second.text == "second"
    assert [c.params["ts"] for c in world.slack.calls_to("chat.update")] == [first.ts]


async def test_every_edit_updates_the_same_post_also_after_a_restart(
    world: Fakes, daemon: Daemon
) -> None:
    """The post of each message is stored: a second edit, after a restart, finds it again."""
    channel = await first_message(world, "v1")
    edit(world, 1, "v2")
    await world.slack.wait_for(lambda: texts(world.slack, channel) == ["v2 _(edited)_"])
    await daemon.restart()
    edit(world, 1, "v3")
    await world.slack.wait_for(lambda: texts(world.slack, channel) == ["v3 _(edited)_"])
    await daemon.wait_idle()
    assert len(world.slack.messages(channel)) == 1


async def test_an_edit_of_a_message_never_posted_is_posted_marked_as_an_edit(
    world: Fakes, daemon: Daemon
) -> None:
    """No post carried it (it came before skbridge did): the edit is posted, marked."""
    channel = await first_message(world, "hello")
    edit(world, 77, "an old message, edited")
    await world.slack.wait_for(lambda: len(world.slack.messages(channel)) == 2)
    assert texts(world.slack, channel)[-1] == "an old message, edited _(edited)_"
    assert world.slack.messages(channel)[-1].username == "Ada Lovelace"
    assert not world.slack.calls_to("chat.update")


async def test_an_edit_of_a_deleted_post_is_posted_again(world: Fakes, daemon: Daemon) -> None:
    """Someone deleted the post in Slack: chat.update finds no message, the edit is posted."""
    channel = await first_message(world, "hello")
    world.slack.channels[channel].messages.clear()
    edit(world, 1, "hello again")
    await world.slack.wait_for(lambda: texts(world.slack, channel) == ["hello again _(edited)_"])
    assert [c.error for c in world.slack.calls_to("chat.update")] == ["message_not_found"]


async def test_an_edit_after_the_channel_was_archived_goes_to_the_continuation(
    world: Fakes, daemon: Daemon
) -> None:
    """The original is in an archived channel: the edit reopens the conversation and is
    posted in the new channel, marked as an edit."""
    channel = await first_message(world, "order 12")
    await world.slack.user_archives(channel, ALICE)
    archive = next(e for e in world.slack.deliveries if e["type"] == "events_api")
    await world.slack.wait_ack(archive["envelope_id"])
    edit(world, 1, "order 13")
    await world.slack.wait_for(
        lambda: (
            world.slack.channel_by_name("sk-ada-lovelace-2") is not None
            and any(
                "order 13" in t
                for t in texts(world.slack, customer_channel(world.slack, "sk-ada-lovelace-2"))
            )
        )
    )
    again = customer_channel(world.slack, "sk-ada-lovelace-2")
    assert texts(world.slack, again)[-1] == "order 13 _(edited)_"
    assert texts(world.slack, channel) == ["order 12"]


async def test_an_edit_after_unarchiving_updates_the_original(world: Fakes, tmp_path: Path) -> None:
    """With a user token the same channel comes back: the original post is updated."""
    daemon = Daemon(world.write_config(tmp_path, user_token=True))
    await daemon.start()
    try:
        channel = await first_message(world, "order 12")
        await world.slack.user_archives(channel, ALICE)
        archive = next(e for e in world.slack.deliveries if e["type"] == "events_api")
        await world.slack.wait_ack(archive["envelope_id"])
        edit(world, 1, "order 13")
        await world.slack.wait_for(lambda: texts(world.slack, channel)[0] == "order 13 _(edited)_")
        await daemon.wait_idle()
        assert not world.slack.channels[channel].is_archived
        assert [t for t in texts(world.slack, channel) if "order" in t] == ["order 13 _(edited)_"]
    finally:
        await daemon.stop()
