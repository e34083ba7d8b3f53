"""Email through trouble: machine-written and malformed mail, dropped connections, a
rebuilt mailbox, the first start, and the real process killed."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from skbridge.ops.status import read_status
from skbridge.testing.dovecot import Dovecot, mail
from skbridge.testing.harness import (
    ADA,
    Daemon,
    Fakes,
    Mailboxes,
    customer_channel,
    dispatch_notices,
    first_message,
    mail_channel,
    parked_input,
    texts,
)
from skbridge.testing.smtp_server import RecordingSMTP


def posts(world: Fakes, name: str = "sk-ada-lovelace") -> list[str]:
    channel = world.slack.channel_by_name(name)
    return [] if channel is None else texts(world.slack, channel.id)


async def test_automatic_replies_and_bounces_open_nothing_and_are_counted(
    world: Fakes, dovecot: Dovecot, email_daemon: Daemon, email_config: Path
) -> None:
    """An out-of-office, a bounce and a newsletter open no conversation and are never
    answered; `skbridge status` counts them. The mail after them flows."""
    await dovecot.append(mail(headers={"Auto-Submitted": "auto-replied"}, message_id="<o@x>"))
    bounce = mail(sender="MAILER-DAEMON@mx.example.org", message_id="<b@x>")
    await dovecot.append(bounce)
    await dovecot.append(mail(headers={"List-Id": "<news.example.org>"}, message_id="<n@x>"))
    await dovecot.append(mail("A person writes."))
    channel = await mail_channel(world)
    await email_daemon.wait_idle()
    assert texts(world.slack, channel) == ["Subject: Order 1234\n\nA person writes."]
    assert len(world.slack.channels) == 2  # dispatch and Ada's
    status = await read_status(email_config.parent / "skbridge.db")
    assert status.ignored == {
        "an automatic reply from Email": 1,
        "a delivery report (bounce) from Email": 1,
        "bulk or mailing-list mail from Email": 1,
    }
    assert status.conversations["open"] == 1


async def test_malformed_mail_is_parked_and_reported_once(
    world: Fakes, dovecot: Dovecot, email_daemon: Daemon
) -> None:
    """Unreadable mail is kept with its error and reported in dispatch once, counted;
    the rest of the mailbox flows."""
    await dovecot.append(b"Subject: no sender\r\nMessage-ID: <m1@x>\r\n\r\nhello\r\n")
    await dovecot.append(b"Subject: again\r\nMessage-ID: <m2@x>\r\n\r\nhello\r\n")
    await dovecot.append(mail("Readable."))
    await mail_channel(world)
    await email_daemon.wait_idle()
    parked = await parked_input(email_daemon)
    assert [(origin, error) for origin, _, error in parked] == [
        ("email", "the mail has no From: header")
    ] * 2
    notices = [m for m in dispatch_notices(world) if "cannot carry" in m.text]
    assert len(notices) == 1
    assert "a mail skbridge cannot read from Email" in notices[0].text
    await world.slack.wait_for(lambda: "2 times so far" in dispatch_notices(world)[0].text)


async def test_a_dropped_connection_loses_nothing(
    world: Fakes, dovecot: Dovecot, email_daemon: Daemon
) -> None:
    """The server drops the connection (a kick, then a restart): skbridge reconnects and
    carries what arrived meanwhile, each mail once."""
    await dovecot.append(mail("one", message_id="<1@x>"))
    channel = await mail_channel(world)
    await dovecot.kick()
    await dovecot.append(mail("two", message_id="<2@x>"))
    await mail_channel(world, count=2)
    await email_daemon.mail_caught_up()
    await dovecot.restart()
    await dovecot.append(mail("three", message_id="<3@x>"))
    await mail_channel(world, count=3)
    await email_daemon.mail_caught_up()
    await dovecot.append(mail("four", message_id="<4@x>"))
    await mail_channel(world, count=4)
    await email_daemon.wait_idle()
    assert texts(world.slack, channel)[1:] == ["two", "three", "four"]


async def test_a_new_uidvalidity_rescans_without_reposting(
    world: Fakes, dovecot: Dovecot, email_daemon: Daemon, caplog: pytest.LogCaptureFixture
) -> None:
    """The server renumbers the mailbox: what was posted is not posted again; new mail is."""
    await dovecot.append(mail("one", message_id="<1@x>"))
    await dovecot.append(mail("two", message_id="<2@x>"))
    channel = await mail_channel(world, count=2)
    await email_daemon.mail_caught_up()
    await dovecot.new_uidvalidity(12345)
    await dovecot.kick()
    await dovecot.append(mail("three", message_id="<3@x>"))
    await mail_channel(world, count=3)
    await email_daemon.wait_idle()
    assert texts(world.slack, channel)[1:] == ["two", "three"]
    assert any("UIDVALIDITY changed" in r.message for r in caplog.records)


async def test_the_first_start_carries_only_new_mail(
    world: Fakes, dovecot: Dovecot, email_config: Path
) -> None:
    """The mailbox's history stays out of Slack at the first start; mail after it comes."""
    await dovecot.append(mail("old history", message_id="<old@x>"))
    daemon = Daemon(email_config)
    await daemon.start()
    try:
        await daemon.mail_caught_up()
        await dovecot.append(mail("new", message_id="<new@x>"))
        channel = await mail_channel(world)
        await daemon.wait_idle()
        assert texts(world.slack, channel) == ["Subject: Order 1234\n\nnew"]
    finally:
        await daemon.stop()


async def test_import_days_carries_recent_mail_at_the_first_start(
    world: Fakes, dovecot: Dovecot, mailboxes: Mailboxes, tmp_path: Path
) -> None:
    """``import_days`` asks for the last days' mail at the very first start."""
    await dovecot.append(mail("from yesterday", message_id="<y@x>"))
    mailboxes.import_days = 2
    path = tmp_path / "config.toml"
    path.write_text(world.config_text(tmp_path / "skbridge.db", email=mailboxes, telegram=False))
    daemon = Daemon(path)
    await daemon.start()
    try:
        channel = await mail_channel(world)
        await daemon.mail_caught_up()
        await daemon.restart()  # a later start imports nothing again
        await daemon.mail_caught_up()
        await daemon.wait_idle()
        assert texts(world.slack, channel) == ["Subject: Order 1234\n\nfrom yesterday"]
    finally:
        await daemon.stop()


async def test_telegram_and_email_run_together(
    world: Fakes, dovecot: Dovecot, mailboxes: Mailboxes, tmp_path: Path
) -> None:
    """Both sources at once: the same person on each is two conversations, and dispatch
    says which source each came from."""
    path = tmp_path / "config.toml"
    path.write_text(world.config_text(tmp_path / "skbridge.db", email=mailboxes))
    daemon = Daemon(path)
    await daemon.start()
    try:
        await daemon.mail_caught_up()
        telegram_channel = await first_message(world, "via Telegram")
        await dovecot.append(mail("via email"))
        await mail_channel(world, "sk-ada-lovelace-2")
        await world.slack.wait_for(lambda: len(dispatch_notices(world)) == 2)
        sources = sorted(m.text.split("(")[1].split(")")[0] for m in dispatch_notices(world))
        assert sources == ["Email", "Telegram"]
        assert texts(world.slack, telegram_channel) == ["via Telegram"]
        await world.slack.send_command(telegram_channel, "UALICE", "hi on Telegram")
        await world.telegram.wait_for(
            lambda: world.telegram.sent_to(ADA) == ["Alice: hi on Telegram"]
        )
    finally:
        await daemon.stop()


async def test_sigkill_right_after_the_mail_arrived_posts_it_once(
    world: Fakes, dovecot: Dovecot, email_config: Path
) -> None:
    """The real process is killed as mail arrives; after the restart each mail is posted
    exactly once."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    async def start() -> asyncio.subprocess.Process:
        before = world.slack.connections_opened
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "skbridge", "run", "-c", str(email_config),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, env=env,
        )  # fmt: skip
        await world.slack.wait_for(lambda: world.slack.connections_opened > before, timeout=30)
        return proc

    async def kill(proc: asyncio.subprocess.Process) -> None:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()

    first = Daemon(email_config)  # the first start, which only marks where mail begins
    await first.start()
    await first.mail_caught_up()
    await first.stop()
    proc = await start()
    try:
        await dovecot.append(mail("m0", message_id="<m0@x>"))
        channel = await mail_channel(world, within=30)
        await dovecot.append(mail("m1", message_id="<m1@x>"))
        await kill(proc)  # right after m1 arrived: carried or not, never lost
        await dovecot.append(mail("m2", message_id="<m2@x>"))
        proc = await start()
        await mail_channel(world, count=3, within=30)
        await dovecot.append(mail("m3", message_id="<m3@x>"))
        await mail_channel(world, count=4, within=30)
        await kill(proc)
        assert texts(world.slack, channel) == ["Subject: Order 1234\n\nm0", "m1", "m2", "m3"]
        assert customer_channel(world.slack) == channel
    finally:
        if proc.returncode is None:
            await kill(proc)


async def test_a_server_without_idle_is_polled(
    world: Fakes, smtp: RecordingSMTP, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the server lacks IDLE, NOOP polls find new mail."""
    from skbridge.testing.dovecot import Dovecot as Server
    from skbridge.upstreams.mail import receive
    from skbridge.upstreams.mail.parse import SOURCE

    monkeypatch.setattr(receive, "POLL_EVERY", 0.2)
    async with Server(idle=False) as plain:
        boxes = Mailboxes(
            plain.port, smtp.port, plain.user, plain.password, smtp.user, smtp.password
        )
        path = tmp_path / "config.toml"
        path.write_text(world.config_text(tmp_path / "skbridge.db", email=boxes, telegram=False))
        daemon = Daemon(path)
        await daemon.start()
        try:
            await daemon.mail_caught_up()
            assert daemon.service is not None
            assert "no IDLE: polling" in await daemon.service.upstreams[SOURCE].check()
            await plain.append(mail("polled"))
            channel = await mail_channel(world)
            assert texts(world.slack, channel) == ["Subject: Order 1234\n\npolled"]
        finally:
            await daemon.stop()
