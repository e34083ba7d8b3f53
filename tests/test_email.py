"""Email end to end: a real dovecot and a real SMTP server, the real daemon, fake Slack."""

from __future__ import annotations

from skbridge.testing.dovecot import Dovecot, mail
from skbridge.testing.harness import (
    ALICE,
    Daemon,
    Fakes,
    dispatch_notices,
    mail_channel,
    texts,
)
from skbridge.testing.smtp_server import RecordingSMTP

STORE_ENGINES = ("sqlite", "postgresql")


async def test_customer_mail_opens_a_channel_and_tells_dispatch(
    world: Fakes, dovecot: Dovecot, email_daemon: Daemon
) -> None:
    """A mail to the support address becomes a channel named after the sender; its first
    post shows the subject, and dispatch says it came by Email."""
    await dovecot.append(mail("Hello, my order has not arrived."))
    channel = await mail_channel(world)
    [post] = world.slack.messages(channel)
    assert post.text == "Subject: Order 1234\n\nHello, my order has not arrived."
    assert post.username == "Ada Lovelace"
    await world.slack.wait_for(lambda: bool(dispatch_notices(world)))
    assert "New conversation with Ada Lovelace (Email)" in dispatch_notices(world)[0].text


async def test_reply_is_a_threaded_mail_signed_by_the_agent(
    world: Fakes, dovecot: Dovecot, smtp: RecordingSMTP, email_daemon: Daemon
) -> None:
    """/sk sends a reply in the customer's thread, from the support address in the
    agent's name, with a Message-ID of skbridge's and the agent's Gravatar."""
    references = "<first@example.org> <second@example.org>"
    await dovecot.append(mail(headers={"References": references}))
    channel = await mail_channel(world)
    await world.slack.send_command(channel, ALICE, "Hello Ada, *sorry*! It ships today.")
    [sent] = await smtp.wait_mails(1)
    assert sent.recipients == ["ada@example.org"]
    assert sent.sender == "support@example.com"
    assert sent.header("From") == "Alice at Example Support <support@example.com>"
    assert sent.header("To") == "ada@example.org"
    assert sent.header("Subject") == "Re: Order 1234"
    assert sent.header("In-Reply-To") == "<ada-1@example.org>"
    assert sent.header("References") == f"{references} <ada-1@example.org>"
    assert sent.header("Date")
    assert sent.header("Message-ID").endswith("@example.com>")
    assert "Auto-Submitted" not in sent.message
    assert sent.text().startswith("Hello Ada, *sorry*! It ships today.\n\n-- \nAlice at")
    assert world.gravatar.url in sent.html() and "<strong>Alice</strong>" in sent.html()
    await world.slack.wait_for(lambda: len(world.slack.messages(channel)) >= 2)
    assert texts(world.slack, channel)[-1].startswith("*To Ada Lovelace:* Hello Ada")


async def test_second_mail_in_the_thread_goes_to_the_same_channel(
    world: Fakes, dovecot: Dovecot, smtp: RecordingSMTP, email_daemon: Daemon
) -> None:
    """The customer's answer joins their channel without its quoted history, and the
    next reply follows it in the thread (no Re: Re:)."""
    await dovecot.append(mail())
    channel = await mail_channel(world)
    await world.slack.send_command(channel, ALICE, "Which address?")
    [first] = await smtp.wait_mails(1)
    answer = (
        "12 Main Street, London.\n\n"
        "On Mon, 3 Feb 2025 at 10:05, Alice at Example Support <\n"
        "support@example.com> wrote:\n> Which address?\n"
    )
    await dovecot.append(
        mail(
            answer,
            subject="Re: Order 1234",
            message_id="<ada-2@example.org>",
            headers={
                "In-Reply-To": first.header("Message-ID"),
                "References": f"<ada-1@example.org> {first.header('Message-ID')}",
            },
        )
    )
    await world.slack.wait_for(lambda: len(world.slack.messages(channel)) >= 3)
    assert texts(world.slack, channel)[-1] == "12 Main Street, London."
    assert len(dispatch_notices(world)) == 1
    await world.slack.send_command(channel, ALICE, "Thanks!")
    second = (await smtp.wait_mails(2))[1]
    assert second.header("Subject") == "Re: Order 1234"
    assert second.header("In-Reply-To") == "<ada-2@example.org>"
    assert second.header("References") == (
        f"<ada-1@example.org> {first.header('Message-ID')} <ada-2@example.org>"
    )
