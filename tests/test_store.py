"""The store through its interface, on every engine: transactions, savepoints, deadlines,
values it cannot take, migrations, group commit. (What only SQLite does, such as its
pragmas and its full-disk behaviour, is in ``test_store_sqlite.py``.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from skbridge.core.model import Customer, InviteMembers
from skbridge.core.states import ConvState
from skbridge.errors import StoreUnavailable, TooLate, Unstorable
from skbridge.ids import OutboxId, SourceName, UpstreamUserId
from skbridge.store import Store, Tx, open_store, sqlite_url
from skbridge.store import queries as q
from skbridge.store.finish import FinishMarks
from skbridge.store.migrations import MIGRATIONS
from skbridge.testing.postgres import PostgresServer

ADA = Customer(SourceName("telegram"), UpstreamUserId("1"), "Ada")


ENGINES = ("sqlite", "postgresql")
"""Every store engine; each test below runs on each."""


def url_for(engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if engine == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        return server.create_database()
    return sqlite_url(tmp_path / "state" / "skbridge.db")


@pytest.fixture(params=ENGINES)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    store = await open_store(url_for(request.param, tmp_path, request))
    yield store
    await store.close()


async def test_open_migrates_to_the_newest_schema(db: Store) -> None:
    assert await db.schema_version() == len(MIGRATIONS)
    assert await db.integrity_check() == "ok"


async def test_a_savepoint_undoes_only_its_own_statements(db: Store) -> None:
    """Work inside a savepoint that fails is undone; the transaction around it commits."""

    async def fails(tx: Tx) -> None:
        async with tx.savepoint():
            await q.set_setting(tx, "undone", "1")
            raise RuntimeError("boom")

    async with db.write() as tx:
        await q.set_setting(tx, "kept", "1")
        with pytest.raises(RuntimeError):
            await fails(tx)
        async with tx.savepoint():
            await q.set_setting(tx, "also kept", "1")
    assert await q.get_setting(db, "kept") == "1"
    assert await q.get_setting(db, "undone") is None
    assert await q.get_setting(db, "also kept") == "1"


async def test_a_snapshot_reads_committed_state(db: Store) -> None:
    async with db.write() as tx:
        await q.set_setting(tx, "k", "v")
    async with db.snapshot() as r:
        assert await q.get_setting(r, "k") == "v"


async def test_a_failed_transaction_leaves_nothing_behind(db: Store) -> None:
    async def insert_then_fail() -> None:
        async with db.write() as tx:
            await q.insert_conversation(tx, ADA, ConvState.OPENING, 1.0)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await insert_then_fail()
    assert await q.conversation_of_customer(db, ADA.source, ADA.upstream_id) is None


@pytest.mark.parametrize("value", ["\ud83d", 10**23], ids=["lone surrogate", "huge int"])
async def test_a_value_sqlite_cannot_take_is_unstorable(db: Store, value: object) -> None:
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


async def rows(db: Store, count: int) -> list[OutboxId]:
    async with db.write() as tx:
        conv = await q.insert_conversation(tx, ADA, ConvState.OPEN, 1.0)
        queued = await q.enqueue(tx, conv.id, [InviteMembers()] * count, 1.0)
    return [r.id for r in queued]


class CountingWrites:
    """Counts the write transactions a store starts."""

    def __init__(self, db: Store) -> None:
        self.count = 0
        self._write = db.write
        db.write = self  # type: ignore[method-assign]

    def __call__(self) -> AbstractAsyncContextManager[Tx]:
        self.count += 1
        return self._write()


async def test_finishes_from_many_lanes_share_commits(db: Store) -> None:
    """Concurrent finishes are durable when they return, in far fewer transactions."""
    ids = await rows(db, 50)
    writes = CountingWrites(db)
    marks = FinishMarks(db, clock=lambda: 2.0)
    await asyncio.gather(*(marks.finish(i) for i in ids))
    assert writes.count < 10
    states = await db.all("SELECT DISTINCT state FROM outbox")
    assert [tuple(r) for r in states] == [("done",)]


async def test_a_failed_group_commit_fails_every_waiter_then_recovers(
    db: Store, monkeypatch: pytest.MonkeyPatch
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


async def test_work_that_ends_after_its_deadline_is_rolled_back(db: Store) -> None:
    """A write with a deadline is committed in time or not at all."""
    late = asyncio.get_running_loop().time() - 1
    with pytest.raises(TooLate):
        async with db.write(late) as tx:
            await tx.execute("INSERT INTO settings (key, value) VALUES ('late', '1')")
    assert await q.get_setting(db, "late") is None
    async with db.write() as tx:
        await tx.execute("INSERT INTO settings (key, value) VALUES ('next', '1')")
    assert await q.get_setting(db, "next") == "1"
