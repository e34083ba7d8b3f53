"""Customers' files, places and contacts in their Slack channel, end to end with the fakes."""

from __future__ import annotations

import re
from typing import Any

import pytest

from skbridge.testing.fake_slack import FakeSlack, Message
from skbridge.testing.fake_telegram_files import DOWNLOAD_LIMIT
from skbridge.testing.harness import (
    ADA,
    ALICE,
    Daemon,
    Fakes,
    dispatch_notices,
    first_message,
    say,
    texts,
)

STORE_ENGINES = ("sqlite", "postgresql")

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40


def send_file(world: Fakes, kind: str, content: bytes, **options: Any) -> int:
    return world.telegram.customer_sends_file(
        ADA, kind, content, first_name="Ada", last_name="Lovelace", **options
    )


def shared(slack: FakeSlack, channel: str) -> list[Message]:
    return [m for m in slack.messages(channel) if m.files]


def content_of(slack: FakeSlack, message: Message) -> bytes:
    assert message.files is not None
    return slack.files[message.files[0]["id"]].content


@pytest.mark.parametrize(
    ("kind", "options", "noun", "name"),
    [
        ("photo", {}, "a photo", r"photo-\d{4}-\d\d-\d\d-\d{6}\.jpg"),
        ("document", {"file_name": "invoice.pdf", "mime_type": "application/pdf"}, "a file",
         r"invoice\.pdf"),
        ("video", {"file_name": "crack.mp4"}, "a video", r"crack\.mp4"),
        ("animation", {}, "a GIF", r"animation-.+\.mp4"),
        ("audio", {"file_name": "song.mp3"}, "an audio file", r"song\.mp3"),
        ("voice", {}, "a voice message", r"voice-.+\.ogg"),
        ("sticker", {}, "a sticker", r"sticker-.+\.webp"),
        ("video_note", {}, "a video message", r"video-note-.+\.mp4"),
    ],
)  # fmt: skip
async def test_each_kind_of_file_is_shared_in_the_channel_under_the_customers_name(
    world: Fakes, daemon: Daemon, kind: str, options: dict[str, Any], noun: str, name: str
) -> None:
    """The file itself (a photo's largest size), its name, and who sent it with the caption."""
    channel = await first_message(world)
    send_file(world, kind, PNG, caption="look <!here> & see", **options)
    await world.slack.wait_for(lambda: bool(shared(world.slack, channel)))
    [message] = shared(world.slack, channel)
    assert content_of(world.slack, message) == PNG
    assert message.files is not None
    assert message.files[0]["name"] == message.files[0]["title"]
    assert re.fullmatch(name, message.files[0]["name"])
    assert message.text == f"*Ada Lovelace* sent {noun}:\nlook &lt;!here&gt; &amp; see"


async def test_files_keep_their_place_among_the_customers_messages(
    world: Fakes, daemon: Daemon
) -> None:
    """Text, a photo, text: the channel shows them in that order."""
    channel = await first_message(world, "before")
    send_file(world, "photo", PNG)
    say(world, "after")
    await world.slack.wait_for(lambda: len(world.slack.messages(channel)) == 3)
    before, photo, after = world.slack.messages(channel)
    assert (before.text, after.text) == ("before", "after")
    assert photo.files and photo.text == "*Ada Lovelace* sent a photo"


async def test_a_file_over_20_mb_is_replaced_by_a_notice(world: Fakes, daemon: Daemon) -> None:
    """Declared over Telegram's download limit: a notice says what and why, no download."""
    channel = await first_message(world)
    big = b"v" * (DOWNLOAD_LIMIT + 1)
    send_file(world, "video", big, file_name="party.mp4", caption="the party")
    say(world, "did you get it?")
    await world.slack.wait_for(lambda: len(world.slack.messages(channel)) == 3)
    notice = world.slack.messages(channel)[1]
    assert notice.username is None and not notice.files
    assert notice.text.startswith(":warning: Ada Lovelace sent a video (*party.mp4*, 20.0 MB)")
    assert "Telegram lets bots download files of up to 20 MB" in notice.text
    assert "the party" in notice.text
    assert texts(world.slack, channel)[-1] == "did you get it?"
    assert not world.telegram.calls_to("getFile")


async def test_telegram_refusing_a_file_too_big_is_a_notice(world: Fakes, daemon: Daemon) -> None:
    """No size in the message, but getFile says the file is too big: the same notice."""
    channel = await first_message(world)
    send_file(world, "document", b"d" * (DOWNLOAD_LIMIT + 1), declare_size=False)
    await world.slack.wait_for(lambda: len(world.slack.messages(channel)) == 2)
    notice = world.slack.messages(channel)[-1].text
    assert "up to 20 MB, and this one is larger than 20.0 MB" in notice
    assert world.telegram.calls_to("getFile")


async def test_a_file_telegram_refuses_is_a_notice_and_the_lane_moves_on(
    world: Fakes, daemon: Daemon
) -> None:
    """getFile refusing the file for good: its error is shown, later messages follow."""
    channel = await first_message(world)
    world.telegram.fail_next("getFile", status=400, description="Bad Request: wrong file_id")
    send_file(world, "photo", PNG)
    say(world, "next")
    await world.slack.wait_for(lambda: len(world.slack.messages(channel)) == 3)
    notice = world.slack.messages(channel)[1].text
    assert "Telegram refused it (Bad Request: wrong file_id)" in notice
    assert texts(world.slack, channel)[-1] == "next"


async def test_a_failing_download_is_retried_and_shared_once(world: Fakes, daemon: Daemon) -> None:
    """Telegram's file server failing for a while delays the file; it is shared once."""
    channel = await first_message(world)
    world.telegram.fail_next("download", status=502, times=2)
    send_file(world, "photo", PNG)
    await world.slack.wait_for(lambda: bool(shared(world.slack, channel)))
    await daemon.wait_idle()
    assert len(shared(world.slack, channel)) == 1
    assert len(world.telegram.calls_to("download")) == 3


async def test_a_failing_upload_is_started_again_and_shared_once(
    world: Fakes, daemon: Daemon
) -> None:
    """The upload URL failing: a fresh upload; only the completed one is shared."""
    channel = await first_message(world)
    world.slack.fail_next("upload", status=503)
    send_file(world, "photo", PNG)
    await world.slack.wait_for(lambda: bool(shared(world.slack, channel)))
    await daemon.wait_idle()
    assert len(shared(world.slack, channel)) == 1
    assert len(world.slack.calls_to("files.getUploadURLExternal")) == 2


async def test_an_ambiguous_completion_is_looked_up_not_repeated(
    world: Fakes, daemon: Daemon
) -> None:
    """Slack shared the file but answered 500: files.info finds the share."""
    channel = await first_message(world)
    world.slack.fail_next("files.completeUploadExternal", status=500, after_effect=True)
    send_file(world, "photo", PNG)
    await world.slack.wait_for(lambda: bool(world.slack.calls_to("files.info")))
    await daemon.wait_idle()
    assert len(shared(world.slack, channel)) == 1
    assert len(world.slack.calls_to("files.completeUploadExternal")) == 1


async def test_a_completion_cut_off_by_a_crash_is_found_after_the_restart(
    world: Fakes, daemon: Daemon
) -> None:
    """Slack completed the upload, the answer never came, the daemon died: shared once."""
    channel = await first_message(world)
    world.slack.hang_next("files.completeUploadExternal", after_effect=True)
    send_file(world, "photo", PNG)
    await world.slack.wait_for(
        lambda: any(c.error == "hung" for c in world.slack.calls_to("files.completeUploadExternal"))
    )
    await daemon.kill()
    await daemon.start()
    say(world, "after")
    await world.slack.wait_for(lambda: texts(world.slack, channel)[-1] == "after")
    await daemon.wait_idle()
    assert len(shared(world.slack, channel)) == 1
    assert world.slack.calls_to("files.info")


async def test_an_upload_never_completed_before_a_crash_is_made_again(
    world: Fakes, daemon: Daemon
) -> None:
    """The completion never reached Slack: after the restart the file is uploaded anew."""
    channel = await first_message(world)
    world.slack.hang_next("files.completeUploadExternal")
    send_file(world, "document", b"%PDF", file_name="a.pdf")
    await world.slack.wait_for(
        lambda: any(c.error == "hung" for c in world.slack.calls_to("files.completeUploadExternal"))
    )
    await daemon.kill()
    await daemon.start()
    await world.slack.wait_for(lambda: bool(shared(world.slack, channel)))
    await daemon.wait_idle()
    [message] = shared(world.slack, channel)
    assert content_of(world.slack, message) == b"%PDF"
    assert len(world.slack.calls_to("files.getUploadURLExternal")) == 2


@pytest.mark.parametrize(
    ("message", "text"),
    [
        ({"location": {"latitude": 48.85837, "longitude": 2.294481}},
         "📍 Location: 48.858370, 2.294481 https://www.openstreetmap.org/?mlat=48.858370&amp;"
         "mlon=2.294481#map=17/48.858370/2.294481"),
        ({"location": {"latitude": 1.5, "longitude": -2.25, "live_period": 60}},
         "📍 Live location: 1.500000, -2.250000 "),
        ({"venue": {"location": {"latitude": 1, "longitude": 2}, "title": "Café <Ada>",
                    "address": "1 Main St"}, "location": {"latitude": 1, "longitude": 2}},
         "📍 Café &lt;Ada&gt;, 1 Main St (1.000000, 2.000000) "),
        ({"contact": {"phone_number": "+44 20 7946 0000", "first_name": "Charles",
                      "last_name": "Babbage"}},
         "👤 Contact: Charles Babbage, +44 20 7946 0000"),
        ({"poll": {"id": "1", "question": "?"}}, "[poll — open Telegram to see it]"),
        ({"sticker": {"file_id": "S", "file_unique_id": "U", "type": "regular", "width": 1,
                      "height": 1, "is_animated": True, "is_video": False, "emoji": "🎉"}},
         "[animated sticker 🎉 — open Telegram to see it]"),
    ],
)  # fmt: skip
async def test_places_contacts_and_the_rest_become_text(
    world: Fakes, daemon: Daemon, message: dict[str, Any], text: str
) -> None:
    """A location is coordinates and a map link, a contact a card, the rest a placeholder."""
    channel = await first_message(world)
    world.telegram.customer_sends(ADA, message, first_name="Ada", last_name="Lovelace")
    await world.slack.wait_for(lambda: len(world.slack.messages(channel)) == 2)
    assert world.slack.messages(channel)[-1].text.startswith(text)
    assert world.slack.messages(channel)[-1].username == "Ada Lovelace"


async def test_an_edited_caption_is_posted_beside_the_file(world: Fakes, daemon: Daemon) -> None:
    """A caption edit names the file; the file is not uploaded again."""
    channel = await first_message(world)
    send_file(world, "photo", PNG, caption="broken")
    await world.slack.wait_for(lambda: bool(shared(world.slack, channel)))
    [photo] = shared(world.slack, channel)
    assert photo.files is not None
    world.telegram.customer_edits(ADA, 2, "broken, see the corner", first_name="Ada")
    await world.slack.wait_for(lambda: len(world.slack.messages(channel)) == 3)
    name = photo.files[0]["name"]
    assert texts(world.slack, channel)[-1] == (
        f"broken, see the corner _(edited the caption of {name})_"
    )
    assert len(world.slack.calls_to("files.completeUploadExternal")) == 1


async def test_without_the_file_scopes_a_file_waits_in_dispatch_for_send_again(
    world: Fakes, daemon: Daemon, caplog: pytest.LogCaptureFixture
) -> None:
    """An app not yet reinstalled from the new manifest: the daemon says so at start, the
    file is set aside and reported; after the reinstall, Send again shares it."""
    world.slack.scopes -= {"files:read", "files:write"}
    await daemon.restart()
    assert "the app lacks scopes the manifest asks for" in caplog.text
    channel = await first_message(world)
    send_file(world, "photo", PNG)
    await world.slack.wait_for(
        lambda: any("missing_scope" in m.text for m in dispatch_notices(world))
    )
    report = next(m for m in dispatch_notices(world) if "missing_scope" in m.text)
    assert "a photo from Ada Lovelace" in report.text
    world.slack.scopes |= {"files:read", "files:write"}
    button = next(e for b in report.blocks or [] if b["type"] == "actions" for e in b["elements"])
    click = await world.slack.send_block_action(
        world.dispatch_id, ALICE, button["action_id"], button["value"]
    )
    await world.slack.wait_ack(click["envelope_id"])
    await world.slack.wait_for(lambda: bool(shared(world.slack, channel)))
