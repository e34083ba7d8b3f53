"""Figures about the database, for ``skbridge status``, ``backup`` and the benchmarks.

Read-only queries, typed like :mod:`skbridge.store.queries`; call them inside
:meth:`Store.snapshot` when the figures must agree with each other.
"""

from __future__ import annotations

from dataclasses import dataclass

from skbridge.core.model import SendToCustomer
from skbridge.core.states import UNFINISHED, ConvState, OutboxState
from skbridge.store import Reader
from skbridge.store.queries import marks


@dataclass(frozen=True, slots=True)
class ParkedWork:
    id: int
    kind: str
    conversation_id: int | None
    customer: str | None
    error: str
    at: float
    """When it was set aside (or, for rows of older versions, created)."""


@dataclass(frozen=True, slots=True)
class ParkedInput:
    id: int
    origin: str
    kind: str
    error: str
    at: float


async def conversations_by_state(r: Reader) -> dict[ConvState, int]:
    counts = dict.fromkeys(ConvState, 0)
    for state, count in await r.all("SELECT state, count(*) FROM conversations GROUP BY 1"):
        counts[ConvState(state)] = int(count)
    return counts


async def backlog(r: Reader) -> tuple[int, int]:
    """Unfinished outbox rows: (replies to customers, work for Slack)."""
    rows = await r.all(
        f"SELECT kind = ?, count(*) FROM outbox WHERE state IN ({marks(UNFINISHED)}) GROUP BY 1",
        (SendToCustomer.kind, *sorted(UNFINISHED)),
    )
    found = {bool(to_customer): int(count) for to_customer, count in rows}
    return found.get(True, 0), found.get(False, 0)


async def reply_outcomes(r: Reader, states: tuple[OutboxState, ...]) -> dict[OutboxState, int]:
    """How many replies are in each of ``states`` (uncertain, failed: not yet sent again)."""
    counts = dict.fromkeys(states, 0)
    for state, count in await r.all(
        f"SELECT state, count(*) FROM outbox WHERE kind = ? AND state IN ({marks(states)}) "
        "GROUP BY 1",
        (SendToCustomer.kind, *states),
    ):
        counts[OutboxState(state)] = int(count)
    return counts


async def parked_work(r: Reader) -> list[ParkedWork]:
    rows = await r.all(
        "SELECT o.id, o.kind, o.conversation_id, c.customer_name, o.last_error, "
        "coalesce(o.finished_at, o.created_at) FROM outbox o "
        "LEFT JOIN conversations c ON c.id = o.conversation_id "
        "WHERE o.state = ? ORDER BY o.id",
        (OutboxState.PARKED,),
    )
    return [ParkedWork(int(i), str(k), c, n, str(e or ""), float(at)) for i, k, c, n, e, at in rows]


async def parked_input(r: Reader) -> list[ParkedInput]:
    rows = await r.all("SELECT id, origin, kind, error, received_at FROM parked_input ORDER BY id")
    return [ParkedInput(int(i), str(o), str(k), str(e), float(at)) for i, o, k, e, at in rows]


async def parked_kinds(r: Reader) -> list[tuple[str, str, int]]:
    """(origin, kind, count) of every kind of input set aside, the most frequent first."""
    rows = await r.all("SELECT origin, kind, count FROM parked_kinds ORDER BY count DESC, kind")
    return [(str(origin), str(kind), int(count)) for origin, kind, count in rows]


async def ignored_kinds(r: Reader) -> list[tuple[str, str, int]]:
    """(origin, kind, count) of input that opened nothing on purpose (automatic replies)."""
    rows = await r.all("SELECT origin, kind, count FROM ignored_input ORDER BY count DESC, kind")
    return [(str(origin), str(kind), int(count)) for origin, kind, count in rows]


async def last_activity(r: Reader) -> float | None:
    row = await r.one("SELECT max(last_activity) FROM conversations")
    return None if row is None or row[0] is None else float(row[0])


async def conversation_count(r: Reader) -> int:
    row = await r.one("SELECT count(*) FROM conversations")
    return int(row[0]) if row else 0


async def unfinished_count(r: Reader) -> int:
    """Outbox rows not finished yet (the benchmarks wait for none)."""
    row = await r.one(
        f"SELECT count(*) FROM outbox WHERE state IN ({marks(UNFINISHED)})", sorted(UNFINISHED)
    )
    return int(row[0]) if row else 0
