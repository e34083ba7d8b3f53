"""``skbridge store copy --to postgresql://…``: an SQLite installation moves to a real
PostgreSQL server and goes on where it stopped."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from skbridge.cli import main
from skbridge.testing.harness import (
    ADA,
    ALICE,
    Daemon,
    Fakes,
    customer_channel,
    first_message,
    say,
    texts,
)
from skbridge.testing.postgres import PostgresServer


def posts(world: Fakes, channel: str) -> list[str]:
    return [t for t in texts(world.slack, channel) if t.startswith("m")]


async def copy(config: Path, url: str) -> int:
    return await asyncio.to_thread(main, ["store", "copy", "-c", str(config), "--to", url])


async def test_an_sqlite_installation_moves_to_postgresql_and_goes_on(
    world: Fakes,
    tmp_path: Path,
    postgres_server: PostgresServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Conversations, channels, the Telegram cursor and ids carry over; nothing repeats."""
    sqlite_config = world.write_config(tmp_path)
    daemon = Daemon(sqlite_config)
    await daemon.start()
    channel = await first_message(world, "m0")
    await world.slack.send_command(channel, ALICE, "r0")
    await world.telegram.wait_for(lambda: world.telegram.sent_to(ADA) == ["Alice: r0"])
    url = postgres_server.create_database()
    assert await copy(sqlite_config, url) == 1  # refused while the daemon runs
    assert "stop it first" in capsys.readouterr().err
    await daemon.stop()
    say(world, "m1")  # waits at Telegram meanwhile

    assert await copy(sqlite_config, url) == 0
    out = capsys.readouterr().out
    assert "copied " in out and postgres_server.password not in out
    assert await copy(sqlite_config, url) == 1  # never into a database that holds data
    assert "already holds skbridge data" in capsys.readouterr().err

    world.store_url = url
    moved = tmp_path / "on-postgresql"
    moved.mkdir()
    daemon = Daemon(world.write_config(moved))
    await daemon.start()
    try:
        await world.slack.wait_for(lambda: posts(world, channel) == ["m0", "m1"])
        await world.slack.send_command(channel, ALICE, "r1")
        await world.telegram.wait_for(
            lambda: world.telegram.sent_to(ADA) == ["Alice: r0", "Alice: r1"]
        )
        world.telegram.customer_says(2002, "hi", first_name="Grace")  # a new id is free
        await world.slack.wait_for(lambda: world.slack.channel_by_name("sk-grace") is not None)
        assert customer_channel(world.slack) == channel
    finally:
        await daemon.stop()
