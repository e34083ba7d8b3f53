"""What only the SQLite engine does, on real files: its pragmas, its schema record, a
full disk, and a write cancelled while aiosqlite's thread runs BEGIN."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from skbridge.errors import StoreError, StoreUnavailable
from skbridge.store import queries as q
from skbridge.store.migrations import MIGRATIONS
from skbridge.store.sqlite import SqliteStore


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = await SqliteStore.open(tmp_path / "state" / "skbridge.db")
    yield store
    await store.close()


async def test_open_sets_durable_pragmas_and_migrates(db: SqliteStore) -> None:
    assert tuple(await db.one("PRAGMA journal_mode") or ()) == ("wal",)
    assert tuple(await db.one("PRAGMA synchronous") or ()) == (2,)  # FULL
    assert tuple(await db.one("PRAGMA user_version") or ()) == (len(MIGRATIONS),)
    assert await db.integrity_check() == "ok"


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer"):
        await SqliteStore.open(path)


async def test_disk_full_is_store_unavailable(db: SqliteStore) -> None:
    row = await db.one("PRAGMA page_count")
    assert row is not None
    await db._writer.execute(f"PRAGMA max_page_count = {row[0]}")

    async def fill() -> None:
        async with db.write() as tx:
            for n in range(200):
                await tx.execute("INSERT INTO settings VALUES (?, ?)", (f"k{n}", "x" * 4000))

    with pytest.raises(StoreUnavailable, match="full"):
        await fill()


async def test_a_write_cancelled_while_it_begins_leaves_no_transaction_open(
    db: SqliteStore,
) -> None:
    """Cancelled while BEGIN runs in the database thread: the next write still works."""

    async def write() -> None:
        async with db.write() as tx:
            await tx.execute("INSERT INTO settings (key, value) VALUES ('a', '1')")

    task = asyncio.create_task(write())
    await asyncio.sleep(0)  # the task is now waiting on BEGIN IMMEDIATE
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with db.write() as tx:
        await tx.execute("INSERT INTO settings (key, value) VALUES ('b', '2')")
    assert await q.get_setting(db, "a") is None
    assert await q.get_setting(db, "b") == "2"
