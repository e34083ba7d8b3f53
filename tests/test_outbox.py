"""The outbox on both engines, with a recording executor: each stored row is carried out
once, in the order it was stored within its lane, whatever order it was handed over in;
on a shared store a lane also finds the rows another instance stored."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from skbridge.core.model import Customer, ReportInput
from skbridge.core.states import ConvState, OutboxState
from skbridge.ids import ConversationId, SourceName, UpstreamUserId
from skbridge.lanes import LaneClaims
from skbridge.outbox import Outbox
from skbridge.store import Store
from skbridge.store import queries as q
from skbridge.store.queries import OutboxRow

STORE_ENGINES = ("sqlite", "postgresql")


class Recorder:
    """Carries a row out by noting its id and marking it done; ``gate`` holds each row
    until the test lets it through, so work can be handed over while a row is in flight."""

    def __init__(self, db: Store) -> None:
        self.db = db
        self.done: list[int] = []
        self.started = asyncio.Queue[int]()
        self.gate: asyncio.Queue[None] | None = None

    async def execute(self, row: OutboxRow, suspect: bool) -> list[OutboxRow]:
        self.started.put_nowait(row.id)
        if self.gate is not None:
            await self.gate.get()
        self.done.append(row.id)
        async with self.db.write() as tx:
            await q.set_outbox_state(tx, row.id, OutboxState.DONE, 0.0)
        return []

    async def park(self, row: OutboxRow, error: str) -> list[OutboxRow]:
        raise AssertionError(f"row {row.id} parked: {error}")


async def conversation(db: Store, name: str) -> ConversationId:
    customer = Customer(SourceName("telegram"), UpstreamUserId(name), name)
    async with db.write() as tx:
        return (await q.insert_conversation(tx, customer, ConvState.OPEN, 0.0)).id


async def store_rows(db: Store, conv: ConversationId, count: int) -> list[OutboxRow]:
    ops = [ReportInput(origin="test", what=str(i)) for i in range(count)]
    async with db.write() as tx:
        return await q.enqueue(tx, conv, ops, 0.0)


@pytest.fixture
async def outbox(db: Store) -> AsyncIterator[tuple[Outbox, Recorder]]:
    recorder = Recorder(db)
    box = Outbox(db, recorder, claims=LaneClaims(db, "here", 30))
    task = asyncio.create_task(box.run())
    yield box, recorder
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_rows_handed_over_out_of_order_run_in_stored_order_once(
    db: Store, outbox: tuple[Outbox, Recorder]
) -> None:
    box, recorder = outbox
    recorder.gate = asyncio.Queue()
    first, *rest = await store_rows(db, await conversation(db, "a"), 6)
    box.submit([first])
    assert await recorder.started.get() == first.id  # in flight from here on
    box.submit(list(reversed(rest)))
    box.submit(rest[:2])  # handed over twice: still carried out once
    for _ in range(6):
        recorder.gate.put_nowait(None)
    await asyncio.wait_for(box.idle.wait(), 10)
    assert recorder.done == [first.id, *(row.id for row in rest)]
    assert await q.unfinished(db) == []


async def test_lanes_run_side_by_side_each_in_order(
    db: Store, outbox: tuple[Outbox, Recorder]
) -> None:
    box, recorder = outbox
    a, b = await conversation(db, "a"), await conversation(db, "b")
    one, two = await store_rows(db, a, 20), await store_rows(db, b, 20)
    box.submit([row for pair in zip(one, two, strict=True) for row in pair])
    await asyncio.wait_for(box.idle.wait(), 10)
    done = recorder.done
    assert [i for i in done if i in {r.id for r in one}] == [r.id for r in one]
    assert [i for i in done if i in {r.id for r in two}] == [r.id for r in two]
    assert len(done) == 40


@pytest.mark.engines("postgresql")
async def test_on_a_shared_store_a_lane_finds_rows_another_instance_stored(
    db: Store, outbox: tuple[Outbox, Recorder]
) -> None:
    box, recorder = outbox
    recorder.gate = asyncio.Queue()
    conv = await conversation(db, "a")
    mine = await store_rows(db, conv, 1)
    box.submit(mine)
    assert await recorder.started.get() == mine[0].id
    theirs = await store_rows(db, conv, 2)  # stored elsewhere: never handed to this outbox
    for _ in range(3):
        recorder.gate.put_nowait(None)
    await asyncio.wait_for(box.idle.wait(), 10)
    assert recorder.done == [mine[0].id, *(row.id for row in theirs)]
