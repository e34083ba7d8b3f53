"""The receive loops on their own: Socket Mode and Telegram polling, against the fakes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from skbridge.config import load_config
from skbridge.errors import StoreUnavailable
from skbridge.slack.socket import Handler, Parker, SocketMode
from skbridge.slack.web import SlackWeb
from skbridge.testing.harness import ALICE, Fakes


async def never_parks(envelope: dict[str, Any], error: str) -> None:
    raise StoreUnavailable("database is locked")


@contextlib.asynccontextmanager
async def socket_mode(
    world: Fakes, tmp_path: Path, handle: Handler, park: Parker = never_parks
) -> AsyncIterator[asyncio.Task[None]]:
    """A SocketMode loop connected to the fake Slack; yields its task."""
    config = load_config(world.write_config(tmp_path))
    async with aiohttp.ClientSession() as session:
        socket = SocketMode(SlackWeb(config.slack, session), session, handle, park=park)
        task = asyncio.create_task(socket.run())
        try:
            await socket.connected.wait()
            yield task
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_an_envelope_that_cannot_be_parked_after_a_handler_bug_is_not_acked(
    world: Fakes, tmp_path: Path
) -> None:
    """Handler crashed and parking failed: left unacked for Slack to redeliver; loop goes on."""

    async def handle(envelope: dict[str, Any]) -> dict[str, Any] | None:
        if envelope["payload"]["text"] == "trigger":
            raise RuntimeError("a bug in skbridge")
        return None

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

    async def handle(envelope: dict[str, Any]) -> dict[str, Any] | None:
        entered.set()
        await asyncio.Event().wait()
        return None

    async with socket_mode(world, tmp_path, handle) as task:
        await world.slack.send_command(world.dispatch_id, ALICE, "hello")
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
