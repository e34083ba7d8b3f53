"""``skbridge demo``: the real daemon, a scripted conversation, no tokens needed.

Starts the bundled fakes of Slack, Telegram and Gravatar on loopback, writes a config
for them in a temporary directory (removed afterwards), runs the real daemon in this
process and plays one customer's conversation, printing what each side saw. Every
step waits on the fakes' state, never on a timer, and gives up after ``STEP_TIMEOUT``.
"""

from __future__ import annotations

import html
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from skbridge.testing.fake_slack import FakeSlack, Message
from skbridge.testing.harness import ADA, ALICE, OWNER, Daemon, Fakes, dispatch_notices, fakes

STEP_TIMEOUT = 15.0
FIRST = "Hi! My order #1234 hasn't arrived yet."
REPLY = "Sorry about that, Ada! It left our warehouse this morning, tracking number 1234."
AGAIN = "It just arrived, thank you!"
PHOTO_CAPTION = "This is the order confirmation, if it helps"
INVOICE_TEXT = "Thanks! Here is the invoice for it."
PHOTO = bytes.fromhex("ffd8ffe000104a46494600010100000100010000") + b"\x00" * 2_000
INVOICE = b"%PDF-1.7\n% an invoice for order #1234\n" + b"0" * 3_000

Say = Callable[[str], None]


class Story:
    """Numbered lines of what each side saw."""

    def __init__(self, world: Fakes, say: Say) -> None:
        self.world = world
        self.slack = world.slack
        self._say = say
        self._step = 0

    def tell(self, side: str, text: str) -> None:
        self._step += 1
        self._say(f"{self._step:>2}  {side:<9} {text}")

    def posted(self, message: Message) -> None:
        """A Slack message as people see it: where, under which name, the text, buttons."""
        where = f"#{self._channel_name(message.channel)}"
        who = f'as "{message.username}"' if message.username else "by skbridge"
        buttons = "".join(f"  [{label}]" for label in _buttons(message))
        files = "".join(f"  [file {f['name']}, {f['size']:,} bytes]" for f in message.files or [])
        text = self.readable(message.text)
        self.tell("Slack", f"{where}, posted {who}: {text}{files}{buttons}")

    def readable(self, text: str) -> str:
        """Slack markup as a person reads it: channel and user names, link texts, no escapes."""
        text = re.sub(r"<#(\w+)(?:\|[^>]*)?>", lambda m: "#" + self._channel_name(m[1]), text)
        text = re.sub(r"<@(\w+)>", lambda m: "@" + self._user_name(m[1]), text)
        text = re.sub(r"<([^>|]+)\|([^>]+)>", r"\2 (\1)", text)
        text = re.sub(r"\*([^*\n]+)\*", r"\1", text)
        return html.unescape(text).replace("\n", " / ")

    def _channel_name(self, channel_id: str) -> str:
        channel = self.slack.channels.get(channel_id) or self.slack.deleted_channels.get(channel_id)
        return channel.name if channel else channel_id

    def _user_name(self, user_id: str) -> str:
        user = self.slack.users.get(user_id)
        return (user.display_name or user.real_name or user.name) if user else user_id

    async def until(self, what: str, predicate: Callable[[], bool]) -> None:
        try:
            await self.slack.wait_for(predicate, timeout=STEP_TIMEOUT)
        except TimeoutError:
            raise DemoFailed(
                f"step {self._step + 1}: no {what} within {STEP_TIMEOUT:.0f} s"
            ) from None


class DemoFailed(Exception):
    """A step of the demo did not happen in time."""


def _elements(message: Message) -> list[dict[str, Any]]:
    return [
        element
        for block in message.blocks or []
        if block.get("type") == "actions"
        for element in block.get("elements", [])
    ]


def _buttons(message: Message) -> list[str]:
    return [str(e["text"]["text"]) for e in _elements(message) if e.get("type") == "button"]


def _channel(slack: FakeSlack, name: str) -> str | None:
    channel = slack.channel_by_name(name)
    return channel.id if channel else None


async def _all_acked(story: Story) -> None:
    slack = story.slack
    await story.until(
        "acknowledgement", lambda: all(e["envelope_id"] in slack.acks for e in slack.deliveries)
    )


async def play(world: Fakes, say: Say) -> None:
    """The scripted conversation against a running daemon."""
    story = Story(world, say)
    slack, telegram = world.slack, world.telegram

    telegram.customer_says(ADA, FIRST, first_name="Ada", last_name="Lovelace")
    story.tell("Telegram", f'Ada Lovelace writes to @{telegram.bot_username}: "{FIRST}"')
    await story.until("channel", lambda: _channel(slack, "sk-ada-lovelace") is not None)
    channel = _channel(slack, "sk-ada-lovelace") or ""
    story.tell("Slack", "skbridge created the channel #sk-ada-lovelace for her")
    await story.until("customer message", lambda: bool(slack.messages(channel)))
    story.posted(slack.messages(channel)[0])
    await story.until("dispatch notice", lambda: bool(dispatch_notices(world)))
    story.posted(dispatch_notices(world)[0])
    await story.until("owner invite", lambda: OWNER in slack.channels[channel].members)
    owner = story.readable(f"<@{OWNER}>")
    story.tell("Slack", f"{owner}, the workspace owner, is invited to #sk-ada-lovelace")

    notice = dispatch_notices(world)[0]
    claim = next(e for e in _elements(notice) if e.get("action_id") == "claim")
    story.tell("Slack", "Alice presses Claim in #support")
    click = await slack.send_block_action(world.dispatch_id, ALICE, "claim", claim["value"])
    await story.until("ack", lambda: click["envelope_id"] in slack.acks)
    await story.until("claim", lambda: "is on it" in str(dispatch_notices(world)[0].blocks))
    await story.until("claim news", lambda: len(slack.messages(channel)) >= 2)
    story.posted(slack.messages(channel)[1])
    story.tell("Slack", "the #support notice now says: Alice is on it.")

    story.tell("Slack", f"Alice, in #sk-ada-lovelace: /sk {story.readable(REPLY)}")
    envelope = await slack.send_command(channel, ALICE, REPLY)
    await story.until("ack", lambda: envelope["envelope_id"] in slack.acks)
    await story.until("reply on Telegram", lambda: bool(telegram.sent_to(ADA)))
    story.tell("Telegram", f'Ada receives: "{telegram.sent_to(ADA)[0]}"')
    await story.until("echo", lambda: len(slack.messages(channel)) >= 3)
    story.posted(slack.messages(channel)[2])

    await files(story, channel)

    await slack.user_archives(channel, ALICE)
    story.tell("Slack", "Alice archives #sk-ada-lovelace: done for now")
    await _all_acked(story)

    telegram.customer_says(ADA, AGAIN, first_name="Ada", last_name="Lovelace")
    story.tell("Telegram", f'Ada Lovelace writes again: "{AGAIN}"')
    await story.until("new channel", lambda: _channel(slack, "sk-ada-lovelace-2") is not None)
    again = _channel(slack, "sk-ada-lovelace-2") or ""
    story.tell(
        "Slack",
        "conversation reopened in #sk-ada-lovelace-2 (without a user token a bot cannot "
        "unarchive, so it continues in a new, linked channel)",
    )
    await story.until("messages in the new channel", lambda: len(slack.messages(again)) >= 3)
    for message in slack.messages(again)[:3]:
        story.posted(message)
    await story.until("second dispatch notice", lambda: len(dispatch_notices(world)) >= 2)
    story.posted(dispatch_notices(world)[1])


async def files(story: Story, channel: str) -> None:
    """A photo from the customer, and a file an agent sends with Send to customer."""
    slack, telegram = story.slack, story.world.telegram
    telegram.customer_sends_file(
        ADA, "photo", PHOTO, caption=PHOTO_CAPTION, first_name="Ada", last_name="Lovelace"
    )
    story.tell("Telegram", f'Ada sends a photo ({len(PHOTO):,} bytes): "{PHOTO_CAPTION}"')
    await story.until("shared photo", lambda: any(m.files for m in slack.messages(channel)))
    story.posted(next(m for m in slack.messages(channel) if m.files))

    ts, _ = await slack.user_shares_file(
        channel, ALICE, "invoice.pdf", INVOICE, mimetype="application/pdf", text=INVOICE_TEXT
    )
    story.tell("Slack", f"Alice shares invoice.pdf in #sk-ada-lovelace: {INVOICE_TEXT}")
    story.tell("Slack", "Alice picks Send to customer on that message")
    envelope = await slack.send_message_action(channel, ALICE, ts)
    await story.until("ack", lambda: envelope["envelope_id"] in slack.acks)
    await story.until("file on Telegram", lambda: bool(telegram.files_sent_to(ADA)))
    [sent] = telegram.files_sent_to(ADA)
    story.tell("Telegram", f'Ada receives: "{telegram.sent_to(ADA)[-1]}"')
    story.tell(
        "Telegram",
        f"Ada receives the document {sent.file_name} ({len(sent.content):,} bytes), "
        f'captioned "{sent.caption}"',
    )
    await story.until("echo", lambda: "invoice.pdf" in slack.messages(channel)[-1].text)
    story.posted(slack.messages(channel)[-1])


async def run(say: Say = print) -> int:
    """``skbridge demo``: 0 when every step happened."""
    started = time.monotonic()
    say("skbridge demo: the real daemon against in-process fakes of Slack, Telegram and Gravatar")
    say("")
    async with fakes() as world:
        with tempfile.TemporaryDirectory(prefix="skbridge-demo-") as tmp:
            daemon = Daemon(world.write_config(Path(tmp), log_level="WARNING"))
            await daemon.start()
            try:
                await play(world, say)
            except DemoFailed as exc:
                say(f"demo failed at {exc}")
                return 1
            finally:
                await daemon.stop()
    say("")
    say(f"done in {time.monotonic() - started:.1f} s; nothing left on disk")
    return 0
