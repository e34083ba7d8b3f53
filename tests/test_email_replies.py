"""Replies by mail when the SMTP server says no, later, or nothing at all."""

from __future__ import annotations

from typing import Any

from skbridge.testing.dovecot import Dovecot, mail
from skbridge.testing.harness import ALICE, Daemon, Fakes, mail_channel
from skbridge.testing.smtp_server import DROP, RecordingSMTP

STORE_ENGINES = ("sqlite", "postgresql")


def button(message: Any) -> dict[str, Any]:
    return next(e for b in message.blocks or [] if b["type"] == "actions" for e in b["elements"])


async def ada_writes(world: Fakes, dovecot: Dovecot) -> str:
    await dovecot.append(mail())
    return await mail_channel(world)


async def test_a_temporary_refusal_is_retried(
    world: Fakes, dovecot: Dovecot, smtp: RecordingSMTP, email_daemon: Daemon
) -> None:
    """A 4xx answer means later: the reply is sent again by itself, and arrives once."""
    channel = await ada_writes(world, dovecot)
    smtp.answers = ["451 4.3.0 Try again later", "421 4.7.0 Busy"]
    await world.slack.send_command(channel, ALICE, "On its way")
    [sent] = await smtp.wait_mails(1)
    await email_daemon.wait_idle()
    assert sent.text().startswith("On its way")
    assert world.slack.messages(channel)[-1].text.startswith("*To Ada Lovelace:* On its way")


async def test_a_permanent_refusal_shows_the_servers_words(
    world: Fakes, dovecot: Dovecot, smtp: RecordingSMTP, email_daemon: Daemon
) -> None:
    """A 5xx answer is final: the channel says the reply was not delivered, and why."""
    channel = await ada_writes(world, dovecot)
    smtp.answers = ["554 5.7.1 Message rejected as spam"]
    await world.slack.send_command(channel, ALICE, "Buy now")
    await world.slack.wait_for(lambda: "Not delivered" in world.slack.messages(channel)[-1].text)
    notice = world.slack.messages(channel)[-1]
    assert "554 5.7.1 Message rejected as spam" in notice.text
    assert button(notice)["text"]["text"] == "Send again"
    assert smtp.mails == []


async def test_an_unanswered_send_is_uncertain_and_send_again_keeps_the_message_id(
    world: Fakes, dovecot: Dovecot, smtp: RecordingSMTP, email_daemon: Daemon
) -> None:
    """The connection drops after the message went out: the reply is shown as uncertain,
    never re-sent by itself; Send again sends the same mail, with the same Message-ID."""
    channel = await ada_writes(world, dovecot)
    smtp.answers = [DROP]
    await world.slack.send_command(channel, ALICE, "Did this arrive?")
    await world.slack.wait_for(lambda: "Unsure" in world.slack.messages(channel)[-1].text)
    await email_daemon.wait_idle()
    [first] = smtp.mails
    notice = world.slack.messages(channel)[-1]
    resend = button(notice)
    click = await world.slack.send_block_action(
        channel, ALICE, resend["action_id"], resend["value"]
    )
    await world.slack.wait_ack(click["envelope_id"])
    _, again = await smtp.wait_mails(2)
    await email_daemon.wait_idle()
    assert again.header("Message-ID") == first.header("Message-ID")
    assert again.text() == first.text()
    assert again.header("In-Reply-To") == "<ada-1@example.org>"
    assert world.slack.messages(channel)[-1].text.startswith("*To Ada Lovelace:* Did this")
    await world.slack.send_command(channel, ALICE, "And another")
    third = (await smtp.wait_mails(3))[2]
    assert third.header("Message-ID") != first.header("Message-ID")
