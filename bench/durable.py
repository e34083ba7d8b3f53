"""The durable path alone: what keeping one customer message costs, without any HTTP.

``python -m bench.durable [--runs N]`` stores batches of 100 customer messages for 100
open conversations in a fresh SQLite file (``synchronous=FULL``, WAL), as the daemon
does between ``getUpdates`` and ``chat.postMessage`` and after the post, two ways:

* ``bare``: the same statements on the same schema straight through ``sqlite3``: per
  message at intake its key, the conversation lookup, its transcript line, the
  conversation's counters and its outbox row (one transaction per batch); the
  conversation read before posting; when delivered, the row's state and post and the
  conversation's activity (one transaction per batch);
* ``skbridge``: the store's own functions doing that work, as the intake, the lanes and
  the group commit of finished rows call them (rules, ops, figures included).

Prints CPU per message (this process, the store's commit thread included), median of
the runs. The floor of :mod:`bench.relay` does none of this; this is what a bridge that
keeps what it carries pays on top of the one HTTP request.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from skbridge.core import rules
from skbridge.core.model import Customer, CustomerMessage, op_from_row
from skbridge.ids import ChannelId, MessageTs, SourceName, UpstreamUserId
from skbridge.store import figures, open_store, sqlite_url
from skbridge.store import queries as q
from skbridge.store.finish import Delivered, FinishMarks

CONVERSATIONS = 100
BATCHES = 30
WARM_UP = 5
"""Batches left out of the figure (caches filling)."""
SOURCE = SourceName("telegram")


def cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime


async def seeded(path: Path) -> None:
    db = await open_store(sqlite_url(path))
    people = [
        (SOURCE, str(n), f"Customer {n}", ChannelId(f"C{n:06d}"), f"sk-customer-{n}")
        for n in range(CONVERSATIONS)
    ]
    async with db.write() as tx:
        await q.seed_open_conversations(tx, people, time.time())
    await db.close()


def bare(path: Path) -> float:
    """Microseconds of CPU per message, the statements alone."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    reader = sqlite3.connect(path, isolation_level=None)
    spent, n = 0.0, 0
    for batch in range(BATCHES):
        start = cpu()
        conn.execute("BEGIN IMMEDIATE")
        stored: list[tuple[int, int]] = []
        for who in range(CONVERSATIONS):
            n += 1
            conn.execute(
                "INSERT INTO received (key, received_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (f"telegram:{n}", 1.0),
            )
            conv = conn.execute(
                "SELECT id, source, upstream_id, customer_name, channel_id, channel_name, "
                "state, handle, language, owner FROM conversations "
                "WHERE source = ? AND upstream_id = ?",
                (SOURCE, str(who)),
            ).fetchone()
            conn.execute(
                "INSERT INTO transcript (conversation_id, at, direction, who, text) "
                "VALUES (?, ?, 'in', ?, ?)",
                (conv[0], 1.0, conv[3], f"message {n}"),
            )
            conn.execute(
                "UPDATE conversations SET messages_in = messages_in + 1, "
                "waiting_since = coalesce(waiting_since, ?) WHERE id = ?",
                (1.0, conv[0]),
            )
            row = conn.execute(
                "INSERT INTO outbox (lane, conversation_id, kind, payload, created_at, "
                "message_ref) VALUES (?, ?, 'post_customer_message', ?, ?, ?) RETURNING id",
                (f"c{conv[0]}", conv[0], f'{{"text":"message {n}"}}', 1.0, str(n)),
            ).fetchone()
            stored.append((row[0], conv[0]))
        conn.execute("COMMIT")
        for _, conv_id in stored:
            reader.execute(
                "SELECT id, source, upstream_id, customer_name, channel_id, channel_name, "
                "state, handle, language, owner FROM conversations WHERE id = ?",
                (conv_id,),
            ).fetchone()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "UPDATE outbox SET state = 'done', finished_at = ?, posted_channel = ?, "
            "posted_ts = ? WHERE id = ?",
            [(2.0, "C000001", "1.0", row_id) for row_id, _ in stored],
        )
        conn.executemany(
            "UPDATE conversations SET last_activity = ? WHERE id = ?",
            [(2.0, conv_id) for _, conv_id in stored],
        )
        conn.execute("COMMIT")
        if batch >= WARM_UP:
            spent += cpu() - start
    conn.close()
    reader.close()
    return spent / ((BATCHES - WARM_UP) * CONVERSATIONS) * 1e6


async def through_skbridge(path: Path) -> float:
    """Microseconds of CPU per message, through the store as the daemon uses it."""
    db = await open_store(sqlite_url(path))
    marks = FinishMarks(db, time.time)
    posted = (ChannelId("C000001"), MessageTs("1.0"))
    spent, n = 0.0, 0
    for batch in range(BATCHES):
        start = cpu()
        rows: list[q.OutboxRow] = []
        async with db.write() as tx:
            for who in range(CONVERSATIONS):
                n += 1
                customer = Customer(SOURCE, UpstreamUserId(str(who)), f"Customer {who}")
                message = CustomerMessage(customer, f"message {n}", str(n), False)
                if not await q.remember(tx, f"telegram:{n}", 1.0):
                    continue
                conv = await q.conversation_of_customer(tx, SOURCE, customer.upstream_id)
                assert conv is not None
                plan = rules.on_customer_message(conv, message)
                await q.add_said(tx, conv.id, q.Said(1.0, False, customer.name, message.text))
                await figures.customer_said(tx, conv.id, 1.0)
                rows += await q.enqueue(tx, conv.id, plan.ops, 1.0)
        for row in rows:
            assert row.conversation_id is not None
            await q.conversation(db, row.conversation_id)
            op_from_row(row.kind, row.payload)

        async def finished(row: q.OutboxRow) -> None:
            delivered = Delivered(SOURCE, 0.01)
            await marks.finish(
                row.id, touch=row.conversation_id, delivered=delivered, posted=posted
            )

        async with asyncio.TaskGroup() as lanes:  # each lane waits for its own mark
            for row in rows:
                lanes.create_task(finished(row))
        if batch >= WARM_UP:
            spent += cpu() - start
    await db.close()
    return spent / ((BATCHES - WARM_UP) * CONVERSATIONS) * 1e6


def median_of(runs: int, measure: Callable[[Path], float]) -> tuple[float, Sequence[float]]:
    found: list[float] = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="skbench-durable-") as directory:
            path = Path(directory) / "skbridge.db"
            asyncio.run(seeded(path))
            found.append(measure(path))
    return statistics.median(found), found


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.durable", description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    plain, plain_runs = median_of(args.runs, bare)
    ours, our_runs = median_of(args.runs, lambda path: asyncio.run(through_skbridge(path)))
    print(f"durable path, CPU per message, median of {args.runs} runs (min-max):")
    print(
        f"  bare sqlite3 statements  {plain:6.1f} us  ({min(plain_runs):.1f}-{max(plain_runs):.1f})"
    )
    print(f"  through skbridge's store {ours:6.1f} us  ({min(our_runs):.1f}-{max(our_runs):.1f})")
    print(f"  ratio                    {ours / plain:6.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
