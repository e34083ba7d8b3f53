"""Running the inbox: who the customer is, who has the conversation, history on reopen,
idle channels archived, and the team's figures."""

from __future__ import annotations

from typing import Any

from skbridge.testing.harness import (
    ADA,
    Daemon,
    Fakes,
    customer_channel,
    dispatch_notices,
)

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
