"""``skbridge backup``: a consistent copy taken while the daemon runs, never an overwrite."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from skbridge.cli import main
from skbridge.testing.harness import ADA, Daemon, Fakes, first_message, texts


def rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(path)) as db:
        return db.execute(sql).fetchall()


async def test_backup_while_messages_flow_is_complete_and_intact(
    world: Fakes,
    daemon: Daemon,
    config_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A copy taken mid-stream opens, passes integrity_check and holds the committed data."""
    channel = await first_message(world, "m0")
    for n in range(1, 40):
        world.telegram.customer_says(ADA, f"m{n}", first_name="Ada", last_name="Lovelace")
    dest = tmp_path / "backups" / "skbridge-copy.db"
    dest.parent.mkdir()

    code = await asyncio.to_thread(main, ["backup", "-c", str(config_path), str(dest)])
    await world.slack.wait_for(lambda: len(world.slack.messages(channel)) == 40)

    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0].startswith(f"wrote {dest} (") and out[0].endswith("1 conversation)")
    assert out[1] == "integrity_check: ok"
    assert rows(dest, "PRAGMA integrity_check") == [("ok",)]
    assert rows(dest, "SELECT customer_name, channel_id FROM conversations") == [
        ("Ada Lovelace", channel)
    ]
    assert rows(dest, "SELECT count(*) FROM outbox")[0][0] >= 1
    assert texts(world.slack, channel) == [f"m{n}" for n in range(40)]


async def test_backup_refuses_to_overwrite(
    world: Fakes,
    daemon: Daemon,
    config_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An existing DEST is left alone and the command exits 1, saying why."""
    dest = tmp_path / "precious.db"
    dest.write_bytes(b"not to be lost")
    code = await asyncio.to_thread(main, ["backup", "-c", str(config_path), str(dest)])
    assert code == 1
    assert f"{dest} already exists; refusing to overwrite it" in capsys.readouterr().err
    assert dest.read_bytes() == b"not to be lost"


def test_backup_without_a_database_exits_1(
    world: Fakes, config_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No database yet: nothing is written and the message says where it looked."""
    dest = tmp_path / "copy.db"
    assert main(["backup", "-c", str(config_path), str(dest)]) == 1
    assert "no database at" in capsys.readouterr().err
    assert not dest.exists()
