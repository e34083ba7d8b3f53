"""Leases, lane claims and shared pacing on both engines: one holder at a time, fencing
tokens that stop a holder that woke up too late, takeovers marked as such."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from skbridge.intake import Intake
from skbridge.lanes import LaneClaims
from skbridge.leases import LeaseLost, Leases
from skbridge.store import Store, leasing, open_store, sqlite_url
from skbridge.store import queries as q
from skbridge.testing.postgres import PostgresServer
from skbridge.upstreams import Arrival

STORE_ENGINES = ("sqlite", "postgresql")


@pytest.fixture
async def shared_db(postgres_server: PostgresServer) -> AsyncIterator[Store]:
    """Lane claims mean something only where instances share the store."""
    store = await open_store(postgres_server.create_database())
    yield store
    await store.close()


async def expire(db: Store, table: str = "leases") -> None:
    """As if the holder had stalled past its lease."""
    async with db.write() as tx:
        await tx.execute(f"UPDATE {table} SET expires_at = 0")


async def test_one_holder_at_a_time_and_a_takeover_bumps_the_token(db: Store) -> None:
    """Only one instance holds a lease; taking an expired one bumps the token and says so."""
    a, b = Leases(db, "a", 30), Leases(db, "b", 30)
    first = await a.try_take("upstream:x")
    assert first is not None and not first.taken_over
    assert await b.try_take("upstream:x") is None
    assert await a.renew(first)
    await expire(db)
    second = await b.try_take("upstream:x")
    assert second is not None and second.taken_over and second.token > first.token
    assert not await a.renew(first)
    await b.release(second)
    third = await a.try_take("upstream:x")
    assert third is not None and not third.taken_over  # given back cleanly


async def test_a_holder_that_lost_its_lease_stores_no_batch(db: Store) -> None:
    """The fence: a stalled poller's batch and cursor are not written after a takeover."""
    a, b = Leases(db, "a", 30), Leases(db, "b", 30)
    lease = await a.try_take("upstream:telegram")
    assert lease is not None
    intake = Intake(db, lambda rows: None)
    intake.fences["telegram"] = lambda tx: a.fence(tx, lease)  # type: ignore[index]
    arrival = Arrival("telegram:1", None, "{}", "unreadable")
    await intake.upstream_batch("telegram", [arrival], "2")  # type: ignore[arg-type]
    assert await q.get_setting(db, "cursor:telegram") == "2"

    await expire(db)
    assert await b.try_take("upstream:telegram") is not None
    late = Arrival("telegram:2", None, "{}", "unreadable")
    with pytest.raises(LeaseLost):
        await intake.upstream_batch("telegram", [late], "3")  # type: ignore[arg-type]
    assert await q.get_setting(db, "cursor:telegram") == "2"
    assert len(await db.all("SELECT key FROM received")) == 1


async def test_hold_runs_the_work_only_while_the_lease_is_held(db: Store) -> None:
    """The body is cancelled when the lease is lost, and runs again once it is regained."""
    leases = Leases(db, "a", 1.5)
    starts: list[int] = []
    running = asyncio.Event()

    async def body(lease: object) -> None:
        starts.append(len(starts))
        running.set()
        await asyncio.Event().wait()

    holder = asyncio.create_task(leases.hold("upstream:x", body, task="x"))
    try:
        await asyncio.wait_for(running.wait(), 10)
        running.clear()
        async with db.write() as tx:  # someone else takes it
            await tx.execute("UPDATE leases SET holder = 'b', token = token + 1")
        await asyncio.wait_for(running.wait(), 20)  # lost, then taken back after expiry
        assert starts == [0, 1]
    finally:
        holder.cancel()
        with pytest.raises(asyncio.CancelledError):
            await holder


async def test_lanes_are_claimed_once_and_a_dead_holders_lanes_are_taken_over(
    shared_db: Store,
) -> None:
    """A lane has one holder; an expired claim is taken over and the old holder loses it."""
    db = shared_db
    a, b = LaneClaims(db, "a", 30), LaneClaims(db, "b", 30)
    assert await a.claim(["c1", "c2"]) == {"c1": False, "c2": False}
    assert await b.claim(["c1", "c3"]) == {"c3": False}
    assert await a.renew() == set()
    assert await a.release(["c2"]) == {"c2"}
    assert await b.claim(["c2"]) == {"c2": False}
    await expire(db, "lanes")
    assert await b.claim(["c1"]) == {"c1": True}  # a never gave it back
    assert await a.renew() == {"c1"}  # lost


async def test_a_lane_with_work_stored_elsewhere_is_not_given_back(shared_db: Store) -> None:
    """A lane is not released while it holds rows; its holder is told to run them."""
    db = shared_db
    claims = LaneClaims(db, "a", 30)
    async with db.write() as tx:
        await tx.execute(
            "INSERT INTO outbox (lane, kind, payload, created_at) VALUES ('c9', 'x', '{}', 1)"
        )
    await claims.claim(["c9"])
    assert await claims.release(["c9"]) == set()
    assert "c9" in await leasing.lanes_with_work(db, "a")
    assert "c9" not in await leasing.lanes_with_work(db, "b")


async def test_on_an_unshared_store_every_lane_is_granted_without_a_write(
    tmp_path: Path,
) -> None:
    """SQLite: one instance; claims cost nothing and leave no rows."""
    db = await open_store(sqlite_url(tmp_path / "one.db"))
    claims = LaneClaims(db, "a", 30)
    assert await claims.claim(["c1", "c2"]) == {"c1": False, "c2": False}
    assert claims.holds("c1")
    assert await db.all("SELECT * FROM lanes") == []
    await db.close()


async def test_shared_pacing_spaces_every_instances_calls(db: Store) -> None:
    """Two instances reserving on one key get one slot per interval between them."""
    ahead = [await leasing.take_slot(db, "k", 1.0) for _ in range(6)]
    steps = [later - earlier for earlier, later in itertools.pairwise(ahead)]
    assert all(0.5 < step <= 1.0 for step in steps), ahead
    assert await leasing.take_slot(db, "k", 1.0, hold=100.0) > 100.0
