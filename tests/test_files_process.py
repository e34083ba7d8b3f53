"""Files through the real ``skbridge run`` process: a SIGKILL between upload and
completion shares once, and memory stays flat while 20 MB and 50 MB files pass."""

from __future__ import annotations

import signal

from skbridge.testing.fake_telegram_files import DOWNLOAD_LIMIT, UPLOAD_LIMIT
from skbridge.testing.harness import ADA, ALICE, DaemonProcess, Fakes, first_message, say, texts

MB = 1024 * 1024


def shares(world: Fakes, channel: str, user: str = "UBOT") -> int:
    """Files shared in ``channel`` by ``user`` (skbridge's bot: the customer's files)."""
    return sum(1 for m in world.slack.messages(channel) for f in m.files or () if f["user"] == user)


async def test_sigkill_between_upload_and_completion_shares_the_file_once(
    world: Fakes, process: DaemonProcess
) -> None:
    """Slack completed the upload but the answer never came; kill -9; the restarted
    daemon finds the share through files.info and does not share it again."""
    await process.start(world)
    channel = await first_message(world)
    world.slack.hang_next("files.completeUploadExternal", after_effect=True)
    world.telegram.customer_sends_file(
        ADA,
        "document",
        b"%PDF-1.7",
        file_name="invoice.pdf",
        first_name="Ada",
        last_name="Lovelace",
    )
    await world.slack.wait_for(
        lambda: any(
            c.error == "hung" for c in world.slack.calls_to("files.completeUploadExternal")
        ),
        timeout=30,
    )
    assert await process.signal(signal.SIGKILL) == -signal.SIGKILL
    await process.start(world)
    say(world, "after the crash")
    await world.slack.wait_for(lambda: texts(world.slack, channel)[-1] == "after the crash", 30)
    assert shares(world, channel) == 1
    assert world.slack.calls_to("files.info")
    assert len(world.slack.calls_to("files.completeUploadExternal")) == 1


async def test_memory_stays_flat_while_large_files_pass(
    world: Fakes, process: DaemonProcess
) -> None:
    """A 20 MB file from a customer and a 50 MB file to one: the daemon's peak resident
    memory grows by far less than either file (they are streamed through disk)."""
    await process.start(world)
    channel = await first_message(world)
    # Warm up both ways with small files, so that what is measured is the size alone.
    world.telegram.customer_sends_file(ADA, "document", b"warm", file_name="w.bin")
    await world.slack.wait_for(lambda: shares(world, channel) == 1, 30)
    ts, _ = await world.slack.user_shares_file(channel, ALICE, "w.pdf", b"warm")
    await world.slack.send_message_action(channel, ALICE, ts)
    await world.telegram.wait_for(lambda: len(world.telegram.files_sent_to(ADA)) == 1, 30)
    rss_before, peak_before = process.memory()

    world.telegram.customer_sends_file(ADA, "document", b"c" * DOWNLOAD_LIMIT, file_name="in.bin")
    await world.slack.wait_for(lambda: shares(world, channel) == 2, 60)
    ts, _ = await world.slack.user_shares_file(channel, ALICE, "out.bin", b"a" * UPLOAD_LIMIT)
    await world.slack.send_message_action(channel, ALICE, ts)
    await world.telegram.wait_for(lambda: len(world.telegram.files_sent_to(ADA)) == 2, 60)
    rss_after, peak_after = process.memory()

    [incoming] = [m for m in world.slack.messages(channel) if m.files and "in.bin" in str(m.files)]
    assert incoming.files is not None
    assert world.slack.files[incoming.files[0]["id"]].size == DOWNLOAD_LIMIT
    assert len(world.telegram.files_sent_to(ADA)[-1].content) == UPLOAD_LIMIT
    figures = (
        f"RSS before {rss_before / MB:.1f} MB (peak {peak_before / MB:.1f} MB), after "
        f"{rss_after / MB:.1f} MB (peak {peak_after / MB:.1f} MB)"
    )
    print(f"\nmemory while 20 MB in and 50 MB out passed: {figures}")
    assert peak_after - max(peak_before, rss_before) < 12 * MB, figures
