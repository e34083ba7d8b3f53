"""The daemon under systemd's protocol: READY, WATCHDOG, STATUS, SIGHUP reload, STOPPING."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from skbridge.testing.harness import ALICE, Fakes, first_message

STORE_ENGINES = ("sqlite", "postgresql")
"""SIGHUP and the rest of systemd's protocol work the same on both engines."""


class NotifySocket:
    """A datagram socket standing in for systemd's $NOTIFY_SOCKET."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.messages: list[str] = []

    async def wait_for(self, predicate: Callable[[str], bool], within: float = 20) -> str:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(within):
            while True:
                data = (await loop.sock_recv(self.sock, 4096)).decode()
                self.messages.append(data)
                if predicate(data):
                    return data

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
async def notify(tmp_path: Path) -> AsyncIterator[NotifySocket]:
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.close()


async def test_notify_protocol_reload_and_stop(
    world: Fakes, tmp_path: Path, notify: NotifySocket
) -> None:
    """READY after Socket Mode connects; watchdog pings; SIGHUP moves dispatch; STOPPING."""
    config = world.write_config(tmp_path)
    env = {**os.environ, "NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "200000"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "skbridge", "run", "-c", str(config),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        await notify.wait_for(lambda m: "READY=1" in m)
        assert world.slack.connected >= 1
        status = await notify.wait_for(lambda m: "WATCHDOG=1" in m)
        assert "STATUS=connected; backlog 0" in status

        other = world.slack.add_channel("support-2", members=[ALICE])
        config.write_text(config.read_text().replace('"support"', '"support-2"'))
        proc.send_signal(signal.SIGHUP)
        await notify.wait_for(lambda m: "RELOADING=1" in m)
        await notify.wait_for(lambda m: "READY=1" in m)
        await first_message(world)
        await world.slack.wait_for(lambda: any(m.bot_id for m in world.slack.messages(other)))
        assert world.slack.connections_opened == 1  # the reload kept the connection

        proc.send_signal(signal.SIGTERM)
        await notify.wait_for(lambda m: "STOPPING=1" in m)
        assert await asyncio.wait_for(proc.wait(), 20) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
