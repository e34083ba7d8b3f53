"""Input skbridge cannot carry is set aside and shown: one dispatch notice per kind,
kept counted, and ``skbridge status`` lists every kind."""

from __future__ import annotations

import json
from pathlib import Path

from skbridge.ops.status import read_status
from skbridge.testing.harness import ADA, ALICE, Daemon, Fakes, dispatch_notices, first_message


def notices(world: Fakes) -> list[str]:
    return [m.text for m in dispatch_notices(world)]


def group_message(text: str) -> dict[str, object]:
    chat = {"id": -100, "type": "group", "title": "Parcel fans"}
    sender = {"id": ADA, "is_bot": False, "first_name": "Ada"}
    return {"message": {"message_id": 1, "from": sender, "chat": chat, "date": 0, "text": text}}


async def test_each_kind_of_unreadable_input_is_reported_once_and_counted(
    world: Fakes, daemon: Daemon, config_path: Path
) -> None:
    """Stories, games, paid media and group chats: one notice each, updated with the count."""
    await first_message(world)
    await world.slack.wait_for(lambda: len(notices(world)) == 1)
    world.telegram.customer_sends(ADA, {"story": {"chat": {"id": 1}, "id": 7}})
    await world.slack.wait_for(lambda: len(notices(world)) == 2)
    story = dispatch_notices(world)[-1]
    assert "a story from Telegram" in story.text and "once so far" in story.text
    assert "from Ada" in story.text

    for _ in range(2):
        world.telegram.customer_sends(ADA, {"story": {"chat": {"id": 1}, "id": 8}})
    world.telegram.customer_sends(ADA, {"game": {"title": "Tetris"}}, first_name="Grace")
    world.telegram.customer_sends(ADA, {"paid_media": {"star_count": 5}})
    world.telegram.push_update(group_message("hello all"))
    await world.slack.wait_for(lambda: len(notices(world)) == 5)
    await world.slack.wait_for(lambda: "3 times so far" in dispatch_notices(world)[1].text)
    await daemon.wait_idle()
    texts = notices(world)
    assert len(texts) == 5  # the repeats updated the story's notice in place
    assert any("a game from Telegram" in t and "from Grace" in t for t in texts)
    assert any("paid media from Telegram" in t for t in texts)
    assert any("a message in a group chat from Telegram" in t for t in texts)

    status = await read_status(config_path.parent / "skbridge.db")
    assert status.parked_kinds == {
        "a story from Telegram": 3,
        "a game from Telegram": 1,
        "a message in a group chat from Telegram": 1,
        "paid media from Telegram": 1,
    }


async def test_a_malformed_envelope_is_reported_in_dispatch(world: Fakes, daemon: Daemon) -> None:
    """An event skbridge cannot read is acked, parked and shown, not silently dropped."""
    channel = await first_message(world)
    await world.slack.wait_for(lambda: len(notices(world)) == 1)
    click = {"type": "block_actions", "user": {"id": ALICE}, "actions": []}
    frame = {"envelope_id": "bad-click", "type": "interactive", "payload": click}
    await world.slack.send_raw(json.dumps(frame))
    await world.slack.wait_ack("bad-click")
    await world.slack.wait_for(lambda: len(notices(world)) == 2)
    assert "an event skbridge cannot read from Slack" in notices(world)[-1]
    envelope = await world.slack.send_command(channel, ALICE, "still works")
    await world.slack.wait_ack(envelope["envelope_id"])
    await world.telegram.wait_for(lambda: world.telegram.sent_to(ADA) == ["Alice: still works"])
