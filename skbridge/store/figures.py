"""The team's figures (per conversation and per opening) and the monitoring counters.

Figures are kept as the work happens, in the transactions that record it, so that
``skbridge status``, the daily digest and ``skbridge metrics`` only read. Counters are
monotonic, Prometheus-style: a histogram is stored as its cumulative buckets, its sum and
its count.
"""

from __future__ import annotations

import functools
import json
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from skbridge.core.states import ConvState
from skbridge.ids import ConversationId
from skbridge.store import Reader, Tx

DELIVERY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
"""Seconds from arrival to delivery."""
RESPONSE_BUCKETS = (60.0, 300.0, 900.0, 1800.0, 3600.0, 14400.0, 28800.0, 86400.0, 259200.0)
"""Seconds from a conversation's (re)opening to its first reply."""

Labels = Mapping[str, str]


def _key(labels: Labels) -> str:
    return _key_of(tuple(sorted(labels.items())))


@functools.lru_cache(maxsize=1024)
def _key_of(labels: tuple[tuple[str, str], ...]) -> str:
    """The stored form of a label set; a few dozen exist, and each finish commit names a
    dozen (one per histogram bucket)."""
    return json.dumps(dict(labels), separators=(",", ":"))


async def count(tx: Tx, name: str, labels: Labels, by: float = 1.0) -> None:
    await tx.execute(
        "INSERT INTO counters (name, labels, value) VALUES (?, ?, ?) "
        "ON CONFLICT (name, labels) DO UPDATE SET value = counters.value + excluded.value",
        (name, _key(labels), by),
    )


async def observe(
    tx: Tx, name: str, labels: Labels, values: Sequence[float], buckets: Sequence[float]
) -> None:
    """Add ``values`` to the histogram ``name``: one trip, however many values."""
    if not values:
        return
    rows: list[tuple[str, str, float]] = []
    for le in (*buckets, float("inf")):
        within = sum(1 for v in values if v <= le)
        if within:
            le_text = "+Inf" if le == float("inf") else f"{le:g}"
            rows.append((f"{name}_bucket", _key({**labels, "le": le_text}), within))
    rows.append((f"{name}_sum", _key(labels), sum(values)))
    rows.append((f"{name}_count", _key(labels), len(values)))
    await tx.execute_many(
        "INSERT INTO counters (name, labels, value) VALUES (?, ?, ?) "
        "ON CONFLICT (name, labels) DO UPDATE SET value = counters.value + excluded.value",
        rows,
    )


async def counters(db: Reader) -> list[tuple[str, dict[str, str], float]]:
    rows = await db.all("SELECT name, labels, value FROM counters ORDER BY name, labels")
    return [(str(name), json.loads(labels), float(value)) for name, labels, value in rows]


# --- per conversation ---------------------------------------------------------------------


async def customer_said(tx: Tx, conv_id: ConversationId, at: float) -> None:
    """A customer message: counted, and the conversation waits for an answer from ``at``."""
    await tx.execute(
        "UPDATE conversations SET messages_in = messages_in + 1, "
        "waiting_since = coalesce(waiting_since, ?) WHERE id = ?",
        (at, conv_id),
    )


async def team_replied(tx: Tx, conv_id: ConversationId, at: float) -> float | None:
    """A reply reached the customer; returns the first response time if it was the first
    reply since the conversation (re)opened."""
    await tx.execute(
        "UPDATE conversations SET replies = replies + 1, waiting_since = NULL WHERE id = ?",
        (conv_id,),
    )
    row = await tx.one(
        "UPDATE episodes SET first_reply_at = ? WHERE first_reply_at IS NULL AND id = "
        "(SELECT max(id) FROM episodes WHERE conversation_id = ?) RETURNING opened_at",
        (at, conv_id),
    )
    return None if row is None else max(0.0, at - float(row[0]))


async def open_episode(tx: Tx, conv_id: ConversationId, at: float, reopened: bool) -> None:
    """The conversation opened (or reopened) at ``at``: its first reply is timed from here."""
    await tx.execute(
        "INSERT INTO episodes (conversation_id, opened_at, reopened) VALUES (?, ?, ?)",
        (conv_id, at, int(reopened)),
    )
    if reopened:
        await tx.execute("UPDATE conversations SET reopens = reopens + 1 WHERE id = ?", (conv_id,))


# --- reports ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Window:
    """A period's figures."""

    new: int
    reopened: int
    answered: int
    """Openings in the period that got their first reply."""
    median_first_response: float | None
    p90_first_response: float | None


async def window(db: Reader, since: float) -> Window:
    rows = await db.all(
        "SELECT reopened, first_reply_at - opened_at FROM episodes WHERE opened_at >= ?",
        (since,),
    )
    times = sorted(float(t) for _, t in rows if t is not None)
    return Window(
        new=sum(1 for r, _ in rows if not r),
        reopened=sum(1 for r, _ in rows if r),
        answered=len(times),
        median_first_response=statistics.median(times) if times else None,
        p90_first_response=_percentile(times, 0.9),
    )


def _percentile(ordered: Sequence[float], share: float) -> float | None:
    """The nearest-rank percentile of sorted values."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


@dataclass(frozen=True, slots=True)
class Waiting:
    conversation_id: ConversationId
    customer: str
    channel_name: str | None
    since: float
    messages_in: int
    replies: int
    reopens: int


async def unanswered(db: Reader, limit: int = 10) -> tuple[list[Waiting], int]:
    """Conversations whose customer waits for an answer, oldest first; and how many in all."""
    live = (ConvState.OPEN, ConvState.OPENING, ConvState.REOPENING)
    rows = await db.all(
        "SELECT id, customer_name, channel_name, waiting_since, messages_in, replies, reopens "
        "FROM conversations WHERE waiting_since IS NOT NULL AND state IN (?, ?, ?) "
        "ORDER BY waiting_since, id",
        live,
    )
    waiting = [
        Waiting(ConversationId(r[0]), str(r[1]), r[2], float(r[3]), int(r[4]), int(r[5]), int(r[6]))
        for r in rows[:limit]
    ]
    return waiting, len(rows)
