"""Fault injection, in-process: the real daemon against fakes that misbehave on cue.

Each test checks its invariants from the fakes' own records: every message accepted
on one side arrives exactly once, in order, on the other; every envelope is acked.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from skbridge.store import sqlite as store_db
from skbridge.testing.harness import (
    ADA,
    ALICE,
    Daemon,
    Fakes,
    archived_and_back,
    dispatch_notices,
    fakes,
    first_message,
    say,
    texts,
    write_lock_held,
)


def replies(world: Fakes) -> list[str]:
    return world.telegram.sent_to(ADA)


async def test_socket_mode_survives_disconnects_drops_and_half_open_sockets(
    world: Fakes, tmp_path: Path
) -> None:
    """Disconnect requests, abrupt closes and a silent socket: every command delivered once."""
    daemon = Daemon(world.write_config(tmp_path, ping_interval=0.2))
    await daemon.start()
    try:
        channel = await first_message(world)
        sent: list[str] = []

        async def command(text: str) -> None:
            envelope = await world.slack.send_command(channel, ALICE, text)
            await world.slack.wait_ack(envelope["envelope_id"])
            sent.append(f"Alice: {text}")

        faults = [
            lambda: world.slack.disconnect("warning"),
            lambda: world.slack.disconnect("refresh_requested"),
            lambda: world.slack.disconnect("too_many_websockets"),
            world.slack.drop_connections,
        ]
        for n, fault in enumerate(faults):
            await command(f"before {n}")
            opened = world.slack.connections_opened
            await fault()
            await world.slack.wait_for(lambda o=opened: world.slack.connections_opened > o)  # type: ignore[misc]

        opened = world.slack.connections_opened
        world.slack.freeze_connections()  # half-open: no pongs, nothing read
        await world.slack.wait_for(lambda: world.slack.connections_opened > opened)
        await command("after the silent socket")

        await world.telegram.wait_for(lambda: len(replies(world)) == len(sent))
        await daemon.wait_idle()
        assert replies(world) == sent
    finally:
        await daemon.stop()


async def test_stuck_long_poll_is_timed_out_and_resumed(world: Fakes, tmp_path: Path) -> None:
    """A getUpdates that never answers is abandoned and polling resumes at the stored offset."""
    daemon = Daemon(world.write_config(tmp_path, poll_timeout=0, telegram_timeout=0.5))
    await daemon.start()
    try:
        channel = await first_message(world, "m0")
        world.telegram.hang_next("getUpdates")
        await world.telegram.wait_for(lambda: world.telegram.calls[-1][0] == "getUpdates")
        say(world, "m1")
        await world.slack.wait_for(lambda: len(world.slack.messages(channel)) == 2)
        assert texts(world.slack, channel) == ["m0", "m1"]
    finally:
        await daemon.stop()


async def test_upstream_reset_mid_send_is_flagged_not_repeated(
    world: Fakes, daemon: Daemon
) -> None:
    """A connection reset after Telegram took the reply: shown as uncertain, sent once."""
    channel = await first_message(world)
    world.telegram.reset_next("sendMessage", after_effect=True)
    await world.slack.send_command(channel, ALICE, "hello")
    await world.slack.wait_for(lambda: "Unsure" in world.slack.messages(channel)[-1].text)
    await daemon.wait_idle()
    assert replies(world) == ["Alice: hello"]


async def test_upstream_5xx_and_429_before_the_effect_are_retried(
    world: Fakes, daemon: Daemon
) -> None:
    """Telegram refusing with 429 (retry_after) and connect failures: delivered once, in order."""
    channel = await first_message(world)
    world.telegram.fail_next("sendMessage", status=429, retry_after=1, times=3)
    for n in range(3):
        await world.slack.send_command(channel, ALICE, f"r{n}")
    await world.telegram.wait_for(lambda: len(replies(world)) == 3)
    assert replies(world) == ["Alice: r0", "Alice: r1", "Alice: r2"]


async def test_429_storm_delivers_everything_once_in_order(tmp_path: Path) -> None:
    """Slack rate-limiting hard (and skbridge not pacing): Retry-After honoured, nothing lost."""
    async with fakes(post_rate=20.0, post_burst=5) as world:
        daemon = Daemon(world.write_config(tmp_path))
        await daemon.start()
        try:
            channel = await first_message(world, "m0")
            for n in range(1, 16):
                say(world, f"m{n}")
            await world.slack.wait_for(lambda: len(world.slack.messages(channel)) == 16)
            await daemon.wait_idle()
            assert texts(world.slack, channel) == [f"m{n}" for n in range(16)]
            assert world.slack.ratelimited > 0
        finally:
            await daemon.stop()


async def test_pacing_plans_for_the_rate_limit(tmp_path: Path) -> None:
    """Paced at Slack's rate, a burst is delivered in order with no 429s."""
    async with fakes(post_rate=20.0, post_burst=4) as world:
        daemon = Daemon(world.write_config(tmp_path, posts_per_second=18))
        await daemon.start()
        try:
            channel = await first_message(world, "m0")
            for n in range(1, 30):
                say(world, f"m{n}")
            await world.slack.wait_for(lambda: len(world.slack.messages(channel)) == 30)
            assert texts(world.slack, channel) == [f"m{n}" for n in range(30)]
            assert world.slack.ratelimited == 0
        finally:
            await daemon.stop()


async def test_lost_channel_create_is_adopted_not_duplicated(world: Fakes, daemon: Daemon) -> None:
    """conversations.create succeeded but answered 500: the channel is found and used."""
    world.slack.fail_next("conversations.create", status=500, after_effect=True)
    channel = await first_message(world, "m0")
    await daemon.wait_idle()
    assert [c.name for c in world.slack.channels.values() if c.name.startswith("sk-")] == [
        "sk-ada-lovelace"
    ]
    assert texts(world.slack, channel) == ["m0"]


@pytest.fixture
def daemon_db(daemon: Daemon) -> store_db.SqliteStore:
    assert daemon.service is not None and daemon.service.db is not None
    return daemon.service.db


async def test_disk_full_stops_taking_work_and_recovers(
    world: Fakes, daemon: Daemon, daemon_db: store_db.SqliteStore
) -> None:
    """With the disk full nothing is confirmed to Telegram; when space returns, all arrives."""
    channel = await first_message(world, "m0")
    await daemon.wait_idle()
    writer = daemon_db._writer  # the one seam a fake cannot reach: SQLite's page limit
    assert writer is not None
    row = await daemon_db.one("PRAGMA page_count")
    assert row is not None
    writer.execute(f"PRAGMA max_page_count = {row[0]}")
    confirmed = world.telegram.confirmed_offset
    for n in range(1, 200):
        say(world, f"m{n} " + "x" * 500)
    assert daemon.service is not None
    service = daemon.service
    await world.slack.wait_for(lambda: "degraded" in service.status_line())
    assert world.telegram.confirmed_offset == confirmed  # Telegram still holds them

    writer.execute("PRAGMA max_page_count = 1073741823")
    await world.slack.wait_for(lambda: len(world.slack.messages(channel)) == 200, timeout=30)
    await world.slack.wait_for(lambda: "degraded" not in service.status_line())
    assert [t.split(" ")[0] for t in texts(world.slack, channel)] == [f"m{n}" for n in range(200)]
    assert await daemon_db.integrity_check() == "ok"


async def test_database_locked_by_another_process_holds_acks_then_recovers(
    world: Fakes, config_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process holds the write lock: envelopes are not acked until it lets go."""
    monkeypatch.setattr(store_db, "BUSY_TIMEOUT_MS", 100)
    daemon = Daemon(config_path)
    await daemon.start()
    try:
        channel = await first_message(world, "m0")
        async with write_lock_held(config_path.parent / "skbridge.db"):
            envelope = await world.slack.send_command(channel, ALICE, "while locked")
            assert daemon.service is not None
            service = daemon.service
            await world.slack.wait_for(lambda: "degraded" in service.status_line())
            assert envelope["envelope_id"] not in world.slack.acks
        retried = await world.slack.redeliver(envelope, retry_attempt=1, new_envelope_id=False)
        await world.slack.wait_ack(retried["envelope_id"])
        await world.telegram.wait_for(lambda: replies(world) == ["Alice: while locked"])
    finally:
        await daemon.stop()


async def test_a_command_not_stored_before_slacks_deadline_is_never_acked_or_sent(
    world: Fakes, daemon: Daemon, config_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Locked past the ack deadline: /sk is not acked and never sent (the agent saw it fail)."""
    channel = await first_message(world, "m0")
    async with write_lock_held(config_path.parent / "skbridge.db"):
        sent = [await world.slack.send_command(channel, ALICE, f"c{n}") for n in range(3)]
        await world.slack.wait_for(lambda: given_up(caplog) == 3, timeout=15)
    fresh = await world.slack.send_command(channel, ALICE, "after")
    await world.slack.wait_ack(fresh["envelope_id"])
    await world.telegram.wait_for(lambda: replies(world) == ["Alice: after"])
    await daemon.wait_idle()
    assert replies(world) == ["Alice: after"]
    assert not any(e["envelope_id"] in world.slack.acks for e in sent)


def given_up(caplog: pytest.LogCaptureFixture) -> int:
    return sum("not stored in time" in r.getMessage() for r in caplog.records)


async def test_oversized_payloads_are_split_or_parked(world: Fakes, daemon: Daemon) -> None:
    """A 10,000-character message arrives whole, in order; a 1 MB junk frame harms nothing."""
    channel = await first_message(world, "m0")
    long_text = "".join(f"line {n:05d} " + "y" * 80 + "\n" for n in range(110))
    say(world, long_text)
    await world.slack.wait_for(lambda: len(world.slack.messages(channel)) >= 4)
    await daemon.wait_idle()
    parts = texts(world.slack, channel)[1:]
    assert all(len(p) <= 4000 for p in parts)
    assert "\n".join(parts).split() == long_text.split()

    await world.slack.send_raw('{"envelope_id": "huge", "type": "events_api", "payload": "'
                               + "z" * 1_000_000 + '"}')  # fmt: skip
    await world.slack.wait_ack("huge")
    reply = "word " * 1200
    await world.slack.send_command(channel, ALICE, reply)
    await world.telegram.wait_for(lambda: len(replies(world)) == 2)
    assert " ".join(replies(world)).replace("Alice: ", "", 1).split() == reply.split()


async def test_event_redelivered_after_five_minutes_is_still_deduplicated(
    world: Fakes, tmp_path: Path
) -> None:
    """Slack's last retry comes ~5 min later; the key is still remembered (controlled clock)."""
    now = [1_800_000_000.0]
    daemon = Daemon(world.write_config(tmp_path, user_token=True), clock=lambda: now[0])
    await daemon.start()
    try:
        channel, archive = await archived_and_back(world)
        await world.slack.wait_for(lambda: len(dispatch_notices(world)) == 2)
        now[0] += 6 * 60
        assert daemon.service is not None
        await daemon.service.housekeeping_once()
        late = await world.slack.redeliver(archive, retry_attempt=3, retry_reason="timeout")
        await world.slack.wait_ack(late["envelope_id"])
        say(world, "still open")
        await world.slack.wait_for(lambda: len(world.slack.messages(channel)) == 3)
        await daemon.wait_idle()
        assert len(dispatch_notices(world)) == 2
    finally:
        await daemon.stop()


async def test_burst_of_new_customers_does_not_hold_up_existing_ones(tmp_path: Path) -> None:
    """Channel creation is serialised and paced; open conversations keep flowing meanwhile."""
    async with fakes(create_per_minute=120) as world:
        daemon = Daemon(world.write_config(tmp_path, channels_per_minute=110))
        await daemon.start()
        try:
            channel = await first_message(world, "m0")
            newcomers = range(6000, 6012)
            for user in newcomers:
                world.telegram.customer_says(user, f"hello from {user}", first_name=f"N{user}")
            for n in range(1, 6):
                say(world, f"m{n}")
            await world.slack.wait_for(lambda: len(world.slack.messages(channel)) == 6)
            created = [c for c in world.slack.channels.values() if c.name.startswith("sk-n")]
            assert len(created) < len(newcomers)  # existing traffic did not wait for them

            def all_greeted() -> bool:
                return all(
                    (c := world.slack.channel_by_name(f"sk-n{u}")) is not None
                    and [m.text for m in c.messages] == [f"hello from {u}"]
                    for u in newcomers
                )

            await world.slack.wait_for(all_greeted, timeout=30)
            assert world.slack.ratelimited <= 1
        finally:
            await daemon.stop()
