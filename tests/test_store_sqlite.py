"""What only the SQLite engine does, on real files: its pragmas, its schema record, a
full disk, a write cancelled while it waits for the write lock or while its commit runs
in the store's thread, and statements that never wait on the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from skbridge.core.states import OutboxState
from skbridge.errors import StoreError, StoreUnavailable, TooLate
from skbridge.ids import ChannelId, ConversationId, MessageTs, OutboxId
from skbridge.store import queries as q
from skbridge.store.migrations import MIGRATIONS
from skbridge.store.sqlite import SqliteStore, SqliteTx


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
    assert db._writer is not None
    db._writer.execute(f"PRAGMA max_page_count = {row[0]}")

    async def fill() -> None:
        async with db.write() as tx:
            for n in range(200):
                await tx.execute("INSERT INTO settings VALUES (?, ?)", (f"k{n}", "x" * 4000))

    with pytest.raises(StoreUnavailable, match="full"):
        await fill()


@contextlib.contextmanager
def write_lock_held(path: Path) -> Iterator[None]:
    """Another connection (as another process would) holds the write lock meanwhile."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()


async def write_setting(db: SqliteStore, key: str, deadline: float | None = None) -> None:
    async with db.write(deadline) as tx:
        await tx.execute("INSERT INTO settings (key, value) VALUES (?, '1')", (key,))


async def test_a_write_cancelled_while_it_waits_for_the_lock_leaves_no_transaction_open(
    db: SqliteStore,
) -> None:
    """Cancelled between tries for a lock another connection holds: nothing is stored,
    and the next write works."""
    with write_lock_held(db.path):
        task = asyncio.create_task(write_setting(db, "a"))
        assert tuple(await db.one("SELECT count(*) FROM settings")) == (0,)  # reads go on
        await asyncio.sleep(0)  # the task tried once and now waits for the next try
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    await write_setting(db, "b")
    assert await q.get_setting(db, "a") is None
    assert await q.get_setting(db, "b") == "1"


async def test_a_locked_database_ends_a_write_at_its_deadline(db: SqliteStore) -> None:
    """The wait for another connection's lock happens between tries, not inside SQLite:
    the event loop runs on, and the deadline ends it."""
    loop = asyncio.get_running_loop()
    with write_lock_held(db.path):
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        beside = asyncio.create_task(ticker())
        with pytest.raises(TooLate):
            await write_setting(db, "a", deadline=loop.time() + 0.2)
        beside.cancel()
    assert ticks > 10
    assert await q.get_setting(db, "a") is None


async def test_a_write_cancelled_while_it_commits_is_stored_and_then_cancelled(
    db: SqliteStore,
) -> None:
    """A commit under way in the store's thread cannot be called back: the cancellation
    waits for it, the work is stored, and the next write works."""
    task = asyncio.create_task(write_setting(db, "a"))
    await asyncio.sleep(0)  # statements ran on the loop; the commit runs in the thread
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await q.get_setting(db, "a") == "1"
    await write_setting(db, "b")
    assert await q.get_setting(db, "b") == "1"


async def test_a_lanes_read_uses_the_partial_index(
    db: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Written with bound parameters, the read a lane makes each time it runs dry (on a
    shared store) scanned the whole outbox (a week of rows); its condition now matches
    the index's."""
    said: list[tuple[str, tuple[Any, ...]]] = []
    read = db.all

    async def spy(sql: str, params: Iterable[Any] = ()) -> list[Any]:
        said.append((sql, tuple(params)))
        return await read(sql, params)

    monkeypatch.setattr(db, "all", spy)
    await q.unfinished_in_lane(db, "c1")
    [(sql, params)] = said
    plan = " ".join(str(row[-1]) for row in await read(f"EXPLAIN QUERY PLAN {sql}", params))
    assert "USING INDEX outbox_unfinished" in plan, plan
    [migration] = [m.sqlite for m in MIGRATIONS if "outbox_unfinished" in m.sqlite][-1:]
    assert f"WHERE {q.unfinished_state()};" in migration  # the index's condition, word for word


async def test_finishing_batches_of_any_size_prepares_the_same_few_statements(
    db: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A statement written for its batch's size was prepared anew for nearly every group
    commit and each size kept in the statement cache: megabytes after a burst."""
    async with db.write() as tx:
        await tx.execute(
            "INSERT INTO conversations (source, upstream_id, customer_name, state, "
            "created_at, last_activity) VALUES ('telegram', '1', 'Ada', 'open', 0, 0)"
        )
        for n in range(60):
            await tx.execute(
                "INSERT INTO outbox (lane, conversation_id, kind, payload, created_at) "
                "VALUES ('c1', 1, 'x', '{}', ?)",
                (n,),
            )
    said: set[str] = set()
    execute, execute_many = SqliteTx.execute, SqliteTx.execute_many

    async def one(tx: SqliteTx, sql: str, params: Iterable[Any] = ()) -> int:
        said.add(sql)
        return await execute(tx, sql, params)

    async def many(tx: SqliteTx, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        said.add(sql)
        await execute_many(tx, sql, rows)

    monkeypatch.setattr(SqliteTx, "execute", one)
    monkeypatch.setattr(SqliteTx, "execute_many", many)
    start = 1
    for size in range(1, 11):
        ids = [OutboxId(i) for i in range(start, start + size)]
        posted = {ids[0]: (ChannelId("C1"), MessageTs("1.0"))}
        async with db.write() as tx:
            await q.finish_many(tx, ids, OutboxState.DONE, [ConversationId(1)], 1.0, posted)
        start += size
    assert len(said) == 3, said
    assert await db.one("SELECT count(*) FROM outbox WHERE state = 'done'") == (55,)
    assert await db.one("SELECT posted_ts FROM outbox WHERE id = 56") == (None,)
    assert await db.one("SELECT posted_ts FROM outbox WHERE id = 1") == ("1.0",)
