"""The receive loops on their own: Socket Mode and Telegram polling, against the fakes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from skbridge import retry
from skbridge.config import load_config
from skbridge.errors import StoreUnavailable
from skbridge.slack.envelopes import Handled, Received
from skbridge.slack.socket import Handler, SocketMode
from skbridge.slack.web import SlackWeb
from skbridge.testing.harness import (
    ADA,
    ALICE,
    Daemon,
    Fakes,
    first_message,
    parked_input,
    say,
    texts,
)
from skbridge.upstreams.telegram import answered_early, next_offset


async def never_parks(envelope: dict[str, Any], error: str) -> None:
    raise StoreUnavailable("database is locked")


@contextlib.asynccontextmanager
async def socket_mode(
    world: Fakes, tmp_path: Path, handle: Handler
) -> AsyncIterator[asyncio.Task[None]]:
    """A SocketMode loop on the fake Slack whose parking always fails; yields its task."""
    config = load_config(world.write_config(tmp_path))
    async with aiohttp.ClientSession() as session:
        socket = SocketMode(SlackWeb(config.slack, session), session, handle, park=never_parks)
        task = asyncio.create_task(socket.run())
        try:
            await asyncio.wait_for(socket.connected.wait(), 10)
            yield task
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_an_envelope_that_cannot_be_parked_after_a_handler_bug_is_not_acked(
    world: Fakes, tmp_path: Path
) -> None:
    """Handler crashed and parking failed: left unacked for Slack to redeliver; loop goes on."""

    async def handle(group: list[Received]) -> list[Handled]:
        bug = RuntimeError("a bug in skbridge")
        return [
            Handled(failed=bug if e["payload"]["text"] == "trigger" else None) for e, _ in group
        ]

    async with socket_mode(world, tmp_path, handle) as task:
        bad = await world.slack.send_command(world.dispatch_id, ALICE, "trigger")
        good = await world.slack.send_command(world.dispatch_id, ALICE, "fine")
        await world.slack.wait_ack(good["envelope_id"])  # handled in order: bad came first
        assert bad["envelope_id"] not in world.slack.acks
        assert not task.done()


async def test_cancelling_socket_mode_mid_envelope_is_not_swallowed(
    world: Fakes, tmp_path: Path
) -> None:
    """CancelledError raised inside the handler ends the loop: no envelope guard eats it."""
    entered = asyncio.Event()

    async def handle(group: list[Received]) -> list[Handled]:
        entered.set()
        await asyncio.Event().wait()
        return []

    async with socket_mode(world, tmp_path, handle) as task:
        await world.slack.send_command(world.dispatch_id, ALICE, "hello")
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_socket_mode_close_is_logged_with_its_code_and_reason(
    world: Fakes, daemon: Daemon, caplog: pytest.LogCaptureFixture
) -> None:
    """A close frame's code and reason are logged; a dropped connection says it sent none."""

    def last_close() -> logging.LogRecord:
        return [r for r in caplog.records if r.getMessage().startswith("socket mode connection")][
            -1
        ]

    async def reconnected_after(fault: Callable[[], Awaitable[None]]) -> None:
        opened = world.slack.connections_opened
        await fault()
        await world.slack.wait_for(lambda: world.slack.connections_opened > opened)

    await reconnected_after(lambda: world.slack.close_connections(4000, "server restarting"))
    record = last_close()
    assert record.getMessage() == "socket mode connection closed"
    assert (record.__dict__["code"], record.__dict__["reason"]) == (4000, "server restarting")

    await reconnected_after(world.slack.drop_connections)
    record = last_close()
    assert record.getMessage() == "socket mode connection closed without a close frame"
    assert "code" not in record.__dict__

    await reconnected_after(lambda: world.slack.disconnect("refresh_requested"))
    record = last_close()
    assert record.getMessage() == "socket mode connection closing on request"
    assert record.__dict__["reason"] == "refresh_requested"


# --- Telegram: offsets and pace -----------------------------------------------------------


def test_next_offset_is_past_the_highest_usable_update_id() -> None:
    """Only non-negative integer update_ids count; with none past the offset, none is sent."""
    batch = [{"update_id": 5}, {"update_id": None}, "junk", {"update_id": 9}, {"update_id": "99"}]
    assert next_offset(batch, 5) == 10
    assert next_offset([{"update_id": True}, [], {"update_id": -3}, {"update_id": 1.5}], 0) is None
    assert next_offset([{"update_id": 4}], 5) is None
    assert next_offset([], 0) is None


def test_an_empty_answer_is_early_unless_the_poll_was_held() -> None:
    """Held for half the timeout or more counts as held; short polling is always early."""
    assert answered_early(0.01, 25)
    assert not answered_early(13, 25)
    assert answered_early(30, 0)


@pytest.fixture
def telegram_waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The seconds the Telegram receiver asks ``retry.wait`` for, in order.

    A spy on the one seam the fakes cannot see: how the receiver paces itself. Counting
    waits against polls is deterministic, where timing the polls would flake.
    """
    waits: list[float] = []
    real = retry.wait

    async def spy(seconds: float) -> None:
        task = asyncio.current_task()
        if task is not None and task.get_name() == "telegram":
            waits.append(seconds)
        await real(seconds)

    monkeypatch.setattr(retry, "wait", spy)
    return waits


def polls(world: Fakes) -> int:
    return len(world.telegram.calls_to("getUpdates"))


LOST = {
    "message_id": 99,
    "chat": {"id": ADA, "type": "private", "first_name": "Ada"},
    "from": {"id": ADA, "is_bot": False, "first_name": "Ada"},
    "date": 0,
    "text": "never shown",
}


async def test_updates_without_a_usable_update_id_are_parked_and_the_rest_confirmed(
    world: Fakes, daemon: Daemon
) -> None:
    """update_id null or a string, items that are no object: parked; the batch confirmed."""
    channel = await first_message(world, "m0")
    say(world, "m1")
    world.telegram.push_update({"update_id": None, "message": LOST})
    world.telegram.push_update({"update_id": "7", "message": LOST})
    world.telegram.push_update(["no", "object"])
    world.telegram.push_update("junk")
    last = say(world, "m2")
    await world.slack.wait_for(lambda: texts(world.slack, channel) == ["m0", "m1", "m2"])
    await world.telegram.wait_for(lambda: world.telegram.pending_updates == 0)
    assert world.telegram.confirmed_offset == last + 1
    parked = await parked_input(daemon)
    assert [(origin, error) for origin, _, error in parked] == [("telegram", "no update_id")] * 4


async def test_a_batch_with_no_usable_update_id_is_parked_once_and_polled_at_a_pace(
    world: Fakes, daemon: Daemon, telegram_waits: list[float]
) -> None:
    """Nothing in it can be confirmed: parked once, re-polled only after a wait, never spun;
    the next valid update confirms it too."""
    channel = await first_message(world, "m0")
    before_polls, before_waits = polls(world), len(telegram_waits)
    world.telegram.push_update({"update_id": None, "message": LOST})
    await world.telegram.wait_for(lambda: polls(world) >= before_polls + 6)
    assert len(telegram_waits) - before_waits >= polls(world) - before_polls - 1
    last = say(world, "m1")
    await world.slack.wait_for(lambda: texts(world.slack, channel) == ["m0", "m1"])
    await world.telegram.wait_for(lambda: world.telegram.pending_updates == 0)
    assert world.telegram.confirmed_offset == last + 1
    assert [error for _, _, error in await parked_input(daemon)] == ["no update_id"]


async def test_early_empty_answers_are_spaced_out_by_a_growing_capped_wait(
    world: Fakes, tmp_path: Path, telegram_waits: list[float]
) -> None:
    """getUpdates answering empty at once (a proxy not holding the poll): a wait before each
    re-poll, growing to a cap; an answer carrying updates starts it over."""
    world.telegram.hold_polls = False
    daemon = Daemon(world.write_config(tmp_path))
    await daemon.start()
    try:
        await world.telegram.wait_for(lambda: polls(world) >= 12)
        assert len(telegram_waits) >= polls(world) - 1
        policy = retry.EARLY_POLL
        assert telegram_waits[0] <= policy.initial * (1 + policy.jitter)
        assert max(telegram_waits) <= policy.maximum * (1 + policy.jitter)
        assert telegram_waits[10] >= policy.maximum * (1 - policy.jitter)

        before = len(telegram_waits)
        channel = await first_message(world, "m0")
        seen = polls(world)
        await world.telegram.wait_for(lambda: polls(world) >= seen + 3)
        assert min(telegram_waits[before:]) <= policy.initial * (1 + policy.jitter)
        assert texts(world.slack, channel) == ["m0"]
    finally:
        await daemon.stop()
