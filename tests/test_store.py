"""The SQLite store on real files: pragmas, migrations, transactions, group commit."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from skbridge.core.model import Customer, InviteMembers
from skbridge.core.states import ConvState
from skbridge.errors import StoreError, StoreUnavailable, TooLate, Unstorable
from skbridge.ids import OutboxId, SourceName, UpstreamUserId
from skbridge.store import queries as q
from skbridge.store.db import Database, Tx
from skbridge.store.finish import FinishMarks
from skbridge.store.migrations import MIGRATIONS

ADA = Customer(SourceName("telegram"), UpstreamUserId("1"), "Ada")


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path / "state" / "skbridge.db")
    yield database
    await database.close()


async def test_open_sets_durable_pragmas_and_migrates(db: Database) -> None:
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
        await Database.open(path)


async def test_a_failed_transaction_leaves_nothing_behind(db: Database) -> None:
    async def insert_then_fail() -> None:
        async with db.write() as tx:
            await q.insert_conversation(tx, ADA, ConvState.OPENING, 1.0)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await insert_then_fail()
    assert await q.conversation_of_customer(db, ADA.source, ADA.upstream_id) is None


async def test_disk_full_is_store_unavailable(db: Database) -> None:
    row = await db.one("PRAGMA page_count")
    assert row is not None
    await db._writer.execute(f"PRAGMA max_page_count = {row[0]}")

    async def fill() -> None:
        async with db.write() as tx:
            for n in range(200):
                await tx.execute("INSERT INTO settings VALUES (?, ?)", (f"k{n}", "x" * 4000))

    with pytest.raises(StoreUnavailable, match="full"):
        await fill()


@pytest.mark.parametrize("value", ["\ud83d", 10**23], ids=["lone surrogate", "huge int"])
async def test_a_value_sqlite_cannot_take_is_unstorable(db: Database, value: object) -> None:
    """Unencodable text or an integer past 64 bits is skbridge's Unstorable, in writes and reads."""
    with pytest.raises(Unstorable):
        async with db.write() as tx:
            await tx.execute("INSERT INTO settings VALUES (?, ?)", ("k", value))
    with pytest.raises(Unstorable):
        async with db.write() as tx:
            await tx.one("SELECT value FROM settings WHERE key = ?", (value,))
    with pytest.raises(Unstorable):
        await db.one("SELECT value FROM settings WHERE key = ?", (value,))
    assert await db.all("SELECT * FROM settings WHERE key = 'k'") == []


async def rows(db: Database, count: int) -> list[OutboxId]:
    async with db.write() as tx:
        conv = await q.insert_conversation(tx, ADA, ConvState.OPEN, 1.0)
        queued = await q.enqueue(tx, conv.id, [InviteMembers()] * count, 1.0)
    return [r.id for r in queued]


class CountingWrites:
    """Counts the write transactions a Database starts."""

    def __init__(self, db: Database) -> None:
        self.count = 0
        self._write = db.write
        db.write = self  # type: ignore[method-assign]

    def __call__(self) -> AbstractAsyncContextManager[Tx]:
        self.count += 1
        return self._write()


async def test_finishes_from_many_lanes_share_commits(db: Database) -> None:
    """Concurrent finishes are durable when they return, in far fewer transactions."""
    ids = await rows(db, 50)
    writes = CountingWrites(db)
    marks = FinishMarks(db, clock=lambda: 2.0)
    await asyncio.gather(*(marks.finish(i) for i in ids))
    assert writes.count < 10
    states = await db.all("SELECT DISTINCT state FROM outbox")
    assert [tuple(r) for r in states] == [("done",)]


async def test_a_failed_group_commit_fails_every_waiter_then_recovers(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = await rows(db, 5)
    real = q.finish_many
    calls = 0

    async def flaky(tx: Tx, *args: Any, **kwargs: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise StoreUnavailable("database or disk is full")
        await real(tx, *args, **kwargs)

    monkeypatch.setattr(q, "finish_many", flaky)
    marks = FinishMarks(db, clock=lambda: 2.0)
    results = await asyncio.gather(*(marks.finish(i) for i in ids), return_exceptions=True)
    failed = [r for r in results if isinstance(r, StoreUnavailable)]
    assert failed, "the first batch must report the failure"
    await asyncio.gather(*(marks.finish(i) for i in ids))
    assert await db.all("SELECT id FROM outbox WHERE state != 'done'") == []


async def test_a_write_cancelled_while_it_begins_leaves_no_transaction_open(db: Database) -> None:
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


async def test_work_that_ends_after_its_deadline_is_rolled_back(db: Database) -> None:
    """A write with a deadline is committed in time or not at all."""
    late = asyncio.get_running_loop().time() - 1
    with pytest.raises(TooLate):
        async with db.write(late) as tx:
            await tx.execute("INSERT INTO settings (key, value) VALUES ('late', '1')")
    assert await q.get_setting(db, "late") is None
    async with db.write() as tx:
        await tx.execute("INSERT INTO settings (key, value) VALUES ('next', '1')")
    assert await q.get_setting(db, "next") == "1"
