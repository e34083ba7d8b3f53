"""The "Send to customer" message shortcut: text and files from Slack to the customer."""

from __future__ import annotations

from pathlib import Path

import pytest

from skbridge.core.rules import NOTHING_TO_SEND, SHORTCUT_NO_POWER
from skbridge.testing.fake_telegram_files import PHOTO_LIMIT, UPLOAD_LIMIT
from skbridge.testing.harness import ADA, ALICE, Daemon, Fakes, first_message, write_lock_held

STORE_ENGINES = ("sqlite", "postgresql")

PNG = b"\x89PNG\r\n\x1a\n" + b"picture" * 100
PDF = b"%PDF-1.7 invoice"


async def shortcut(world: Fakes, channel: str, ts: str) -> str:
    """Alice uses Send to customer on the message ``ts``; returns the envelope ID, acked."""
    envelope = await world.slack.send_message_action(channel, ALICE, ts)
    await world.slack.wait_ack(envelope["envelope_id"])
    return str(envelope["envelope_id"])


def last(world: Fakes, channel: str) -> str:
    return world.slack.messages(channel)[-1].text


async def test_text_and_files_reach_the_customer_and_the_channel_shows_them(
    world: Fakes, daemon: Daemon
) -> None:
    """Text as /sk sends it, then an image as a photo and a PDF as a document, each with
    who sent it; the channel's copy lists the files, under the agent's name."""
    channel = await first_message(world)
    ts, _ = await world.slack.user_shares_file(
        channel, ALICE, "screenshot.png", PNG, mimetype="image/png", text="Here, <@UBOB> says hi"
    )
    await world.slack.user_shares_file(
        channel, ALICE, "invoice.pdf", PDF, mimetype="application/pdf"
    )
    # Slack puts several files of one message together; the fake makes one message each,
    # so the second file joins the first message as Slack would show it.
    first, second = world.slack.messages(channel)[-2:]
    assert first.files is not None and second.files is not None
    first.files.extend(second.files)
    await shortcut(world, channel, ts)
    await world.telegram.wait_for(lambda: len(world.telegram.files_sent_to(ADA)) == 2)
    assert world.telegram.sent_to(ADA) == ["Alice: Here, @Bob says hi"]
    photo, document = world.telegram.files_sent_to(ADA)
    assert (photo.method, photo.content, photo.caption) == (
        "sendPhoto",
        PNG,
        "Alice: screenshot.png",
    )
    assert (document.method, document.file_name, document.content) == (
        "sendDocument",
        "invoice.pdf",
        PDF,
    )
    await world.slack.wait_for(lambda: last(world, channel).startswith("*To Ada Lovelace:*"))
    echo = world.slack.messages(channel)[-1]
    assert (
        echo.text
        == "*To Ada Lovelace:* Here, <@UBOB> says hi\n:paperclip: screenshot.png, invoice.pdf"
    )
    assert echo.username == "Alice"


async def test_a_file_alone_is_sent_without_text(world: Fakes, daemon: Daemon) -> None:
    """A message that is only a file sends only the file."""
    channel = await first_message(world)
    ts, _ = await world.slack.user_shares_file(
        channel, ALICE, "a.pdf", PDF, mimetype="application/pdf"
    )
    await shortcut(world, channel, ts)
    await world.telegram.wait_for(lambda: len(world.telegram.files_sent_to(ADA)) == 1)
    await daemon.wait_idle()
    assert world.telegram.sent_to(ADA) == []
    assert last(world, channel) == "*To Ada Lovelace:* :paperclip: a.pdf"


async def test_a_file_merely_shared_in_the_channel_stays_internal(
    world: Fakes, daemon: Daemon
) -> None:
    """Nothing reaches the customer unless someone sends it."""
    channel = await first_message(world)
    await world.slack.user_shares_file(
        channel, ALICE, "notes.txt", b"internal", mimetype="text/plain"
    )
    await world.slack.user_posts(channel, ALICE, "just between us")
    await daemon.wait_idle()
    assert world.telegram.sent_to(ADA) == [] and world.telegram.files_sent_to(ADA) == []


async def test_the_shortcut_outside_a_customer_channel_answers_privately(
    world: Fakes, daemon: Daemon
) -> None:
    """In dispatch (or any other channel) it says so to the one who used it; nothing sent."""
    await first_message(world)
    ts = await world.slack.user_posts(world.dispatch_id, ALICE, "send me")
    await shortcut(world, world.dispatch_id, ts)
    await world.slack.wait_for(lambda: bool(world.slack.hook_answers))
    [answer] = world.slack.hook_answers
    assert answer.body == {
        "response_type": "ephemeral",
        "replace_original": False,
        "text": SHORTCUT_NO_POWER,
    }
    await daemon.wait_idle()
    assert world.telegram.sent_to(ADA) == []


async def test_a_message_with_nothing_to_send_is_answered_privately(
    world: Fakes, daemon: Daemon
) -> None:
    """A message with only invisible text and no files: a private answer, nothing sent."""
    channel = await first_message(world)
    ts = await world.slack.user_posts(channel, ALICE, " \u200b ")
    await shortcut(world, channel, ts)
    await world.slack.wait_for(lambda: bool(world.slack.hook_answers))
    assert world.slack.hook_answers[0].body["text"] == NOTHING_TO_SEND


async def test_a_redelivered_shortcut_sends_once(world: Fakes, daemon: Daemon) -> None:
    """The same envelope again, or the same use in a new envelope: one send."""
    channel = await first_message(world)
    ts = await world.slack.user_posts(channel, ALICE, "only once")
    envelope = await world.slack.send_message_action(channel, ALICE, ts)
    await world.slack.wait_ack(envelope["envelope_id"])
    for new_id in (False, True):
        again = await world.slack.redeliver(envelope, retry_attempt=1, new_envelope_id=new_id)
        await world.slack.wait_ack(again["envelope_id"])
    await world.telegram.wait_for(lambda: bool(world.telegram.sent_to(ADA)))
    await daemon.wait_idle()
    assert world.telegram.sent_to(ADA) == ["Alice: only once"]


async def test_a_file_over_50_mb_is_not_sent_and_the_channel_says_so(
    world: Fakes, daemon: Daemon
) -> None:
    """Past Telegram's upload limit: never downloaded; the text still goes, the channel
    says which part arrived and why the file did not."""
    channel = await first_message(world)
    big = b"\0" * (UPLOAD_LIMIT + 1)
    ts, _ = await world.slack.user_shares_file(
        channel, ALICE, "video.mp4", big, mimetype="video/mp4", text="the video"
    )
    await shortcut(world, channel, ts)
    await world.slack.wait_for(lambda: "Not all of this reply" in last(world, channel))
    notice = last(world, channel)
    assert "Telegram takes files of up to 50.0 MB, and this one is 50.0 MB" in notice
    assert "part 1 of 2 arrived; part 2 of 2 was refused" in notice
    assert world.telegram.sent_to(ADA) == ["Alice: the video"]
    assert world.telegram.files_sent_to(ADA) == []
    assert not world.slack.calls_to("download")


async def test_an_image_too_large_or_unreadable_for_a_photo_goes_as_a_document(
    world: Fakes, daemon: Daemon
) -> None:
    """Over 10 MB, or refused as a photo: sent as a document instead."""
    channel = await first_message(world)
    large = PNG + b"\0" * PHOTO_LIMIT
    ts1, _ = await world.slack.user_shares_file(
        channel, ALICE, "large.png", large, mimetype="image/png"
    )
    ts2, _ = await world.slack.user_shares_file(
        channel, ALICE, "odd.png", b"not really", mimetype="image/png"
    )
    await shortcut(world, channel, ts1)
    await shortcut(world, channel, ts2)
    await world.telegram.wait_for(lambda: len(world.telegram.files_sent_to(ADA)) == 2)
    assert [f.method for f in world.telegram.files_sent_to(ADA)] == ["sendDocument"] * 2
    assert [f.file_name for f in world.telegram.files_sent_to(ADA)] == ["large.png", "odd.png"]


async def test_an_uncertain_file_send_is_shown_and_send_again_sends_only_it(
    world: Fakes, daemon: Daemon
) -> None:
    """Telegram took the file but answered 502: shown as uncertain, never re-sent by
    itself; Send again sends what may not have arrived, not the text that did."""
    channel = await first_message(world)
    ts, _ = await world.slack.user_shares_file(
        channel, ALICE, "a.pdf", PDF, mimetype="application/pdf", text="see"
    )
    world.telegram.fail_next("sendDocument", status=502, after_effect=True)
    await shortcut(world, channel, ts)
    await world.slack.wait_for(lambda: "Unsure" in last(world, channel))
    notice = world.slack.messages(channel)[-1]
    assert "part 1 of 2 arrived; part 2 of 2 may or may not have arrived" in notice.text
    await daemon.wait_idle()
    assert len(world.telegram.files_sent_to(ADA)) == 1
    button = next(e for b in notice.blocks or [] if b["type"] == "actions" for e in b["elements"])
    click = await world.slack.send_block_action(
        channel, ALICE, button["action_id"], button["value"]
    )
    await world.slack.wait_ack(click["envelope_id"])
    await world.telegram.wait_for(lambda: len(world.telegram.files_sent_to(ADA)) == 2)
    await daemon.wait_idle()
    assert world.telegram.sent_to(ADA) == ["Alice: see"]


async def test_a_file_send_cut_off_by_a_crash_is_uncertain_not_repeated(
    world: Fakes, daemon: Daemon
) -> None:
    """A file on its way when the daemon died is shown as uncertain, never sent again by itself."""
    channel = await first_message(world)
    ts, _ = await world.slack.user_shares_file(
        channel, ALICE, "a.pdf", PDF, mimetype="application/pdf"
    )
    world.telegram.hang_next("sendDocument", after_effect=True)
    await shortcut(world, channel, ts)
    await world.telegram.wait_for(lambda: bool(world.telegram.files_sent_to(ADA)))
    await daemon.kill()
    await daemon.start()
    await world.slack.wait_for(lambda: "Unsure" in last(world, channel))
    await daemon.wait_idle()
    assert len(world.telegram.files_sent_to(ADA)) == 1


async def test_files_slack_holds_no_copy_of_or_redirects_away_are_refused(
    world: Fakes, daemon: Daemon
) -> None:
    """A linked file cannot be sent; a download sent to another host is not followed."""
    channel = await first_message(world)
    ts1, _ = await world.slack.user_shares_file(channel, ALICE, "plan", b"", external=True)
    ts2, file_id = await world.slack.user_shares_file(
        channel, ALICE, "x.pdf", PDF, mimetype="application/pdf"
    )
    world.slack.redirect_file(file_id, "http://127.0.0.2:9/steal")
    await shortcut(world, channel, ts1)
    await world.slack.wait_for(lambda: "Not delivered" in last(world, channel))
    assert "plan is a linked file" in last(world, channel)
    await shortcut(world, channel, ts2)
    await world.slack.wait_for(lambda: "127.0.0.2:9" in last(world, channel))
    assert "Not delivered" in last(world, channel)
    assert world.telegram.files_sent_to(ADA) == []


async def test_a_blocked_bot_is_reported(world: Fakes, daemon: Daemon) -> None:
    """The customer blocked the bot: the file is refused and the channel says why."""
    channel = await first_message(world)
    ts, _ = await world.slack.user_shares_file(
        channel, ALICE, "a.pdf", PDF, mimetype="application/pdf"
    )
    world.telegram.block(ADA)
    await shortcut(world, channel, ts)
    await world.slack.wait_for(lambda: "Not delivered" in last(world, channel))
    assert "bot was blocked by the user" in last(world, channel)


async def test_a_file_deleted_before_it_went_is_reported(world: Fakes, daemon: Daemon) -> None:
    """A file deleted from Slack before its turn is reported as not delivered, saying so."""
    channel = await first_message(world)
    ts, file_id = await world.slack.user_shares_file(channel, ALICE, "a.pdf", PDF)
    del world.slack.files[file_id]
    await shortcut(world, channel, ts)
    await world.slack.wait_for(lambda: "Not delivered" in last(world, channel))
    assert "the file is no longer in Slack" in last(world, channel)


@pytest.mark.engines("sqlite")  # another process holding the write lock
async def test_a_shortcut_not_stored_before_slacks_deadline_is_never_acked_or_sent(
    world: Fakes, daemon: Daemon, config_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The database locked past the 3 s ack deadline: Slack told the agent it failed, so
    the shortcut is neither acked nor sent later; the next use goes through."""
    channel = await first_message(world)
    ts = await world.slack.user_posts(channel, ALICE, "while locked")
    async with write_lock_held(config_path.parent / "skbridge.db"):
        envelope = await world.slack.send_message_action(channel, ALICE, ts)
        await world.slack.wait_for(
            lambda: any("not stored in time" in r.getMessage() for r in caplog.records),
            timeout=15,
        )
    again = await shortcut(world, channel, ts)
    await world.telegram.wait_for(lambda: bool(world.telegram.sent_to(ADA)))
    await daemon.wait_idle()
    assert world.telegram.sent_to(ADA) == ["Alice: while locked"]
    assert envelope["envelope_id"] not in world.slack.acks and again in world.slack.acks
