"""Typed queries for instances sharing one database: leases, lane claims, the instances
themselves and shared pacing. Every time is ``skbridge_now()``, the database's clock.
The rules that use them live in :mod:`skbridge.leases`, :mod:`skbridge.lanes` and
:mod:`skbridge.shared_pacing`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from skbridge.store import Reader, Store, Tx
from skbridge.store.queries import marks, unfinished_state

RELEASED = ""
"""The holder of a lease or lane given back cleanly."""
_CHUNK = 500


# --- instances -------------------------------------------------------------------------


async def register_instance(tx: Tx, holder: str, host: str, pid: int, forget: float) -> None:
    """Record this instance; forget those silent for ``forget`` seconds."""
    await tx.execute(
        "INSERT INTO instances (id, host, pid, started_at, seen_at) "
        "VALUES (?, ?, ?, skbridge_now(), skbridge_now())",
        (holder, host, pid),
    )
    await tx.execute("DELETE FROM instances WHERE seen_at < skbridge_now() - ?", (forget,))


async def seen(tx: Tx, holder: str) -> None:
    await tx.execute("UPDATE instances SET seen_at = skbridge_now() WHERE id = ?", (holder,))


async def end_earlier_runs(tx: Tx, holder: str) -> None:
    """Expire every lease and lane another instance holds (kept as theirs: in doubt)."""
    await tx.execute("UPDATE leases SET expires_at = 0 WHERE holder != ?", (holder,))
    await tx.execute("UPDATE lanes SET expires_at = 0 WHERE holder != ?", (holder,))


async def forget_instance(tx: Tx, holder: str) -> None:
    await tx.execute(
        "UPDATE leases SET holder = ?, expires_at = 0 WHERE holder = ?", (RELEASED, holder)
    )
    await tx.execute("DELETE FROM instances WHERE id = ?", (holder,))


# --- leases ----------------------------------------------------------------------------


async def lease_holder(tx: Tx, name: str) -> tuple[str, bool] | None:
    """(holder, whether it is still valid) of lease ``name``, if it ever existed."""
    row = await tx.one(
        "SELECT holder, expires_at > skbridge_now() FROM leases WHERE name = ?", (name,)
    )
    return None if row is None else (str(row[0]), bool(row[1]))


async def take_lease(tx: Tx, name: str, holder: str, seconds: float) -> int | None:
    """Take ``name`` if it is free or expired (or ours); the new fencing token, or None."""
    row = await tx.one(
        "INSERT INTO leases (name, holder, token, expires_at) "
        "VALUES (?, ?, 1, skbridge_now() + ?) ON CONFLICT (name) DO UPDATE SET "
        "holder = excluded.holder, token = leases.token + 1, expires_at = excluded.expires_at "
        "WHERE leases.expires_at <= skbridge_now() OR leases.holder = excluded.holder "
        "RETURNING token",
        (name, holder, seconds),
    )
    return None if row is None else int(row[0])


async def renew_lease(tx: Tx, name: str, holder: str, token: int, seconds: float) -> bool:
    changed = await tx.execute(
        "UPDATE leases SET expires_at = skbridge_now() + ? "
        "WHERE name = ? AND holder = ? AND token = ? AND expires_at > skbridge_now()",
        (seconds, name, holder, token),
    )
    return changed == 1


async def still_holds(tx: Tx, name: str, holder: str, token: int) -> bool:
    """The fencing check: the row is locked until the transaction ends (PostgreSQL)."""
    changed = await tx.execute(
        "UPDATE leases SET token = token "
        "WHERE name = ? AND holder = ? AND token = ? AND expires_at > skbridge_now()",
        (name, holder, token),
    )
    return changed == 1


async def release_lease(tx: Tx, name: str, holder: str, token: int) -> None:
    await tx.execute(
        "UPDATE leases SET holder = ?, expires_at = 0 WHERE name = ? AND holder = ? AND token = ?",
        (RELEASED, name, holder, token),
    )


# --- lanes -----------------------------------------------------------------------------


async def lane_holders(tx: Tx, lanes: Sequence[str]) -> dict[str, tuple[str, bool]]:
    found: dict[str, tuple[str, bool]] = {}
    for start in range(0, len(lanes), _CHUNK):
        chunk = lanes[start : start + _CHUNK]
        rows = await tx.all(
            "SELECT lane, holder, expires_at > skbridge_now() FROM lanes "
            f"WHERE lane IN ({marks(chunk)})",
            chunk,
        )
        found.update({str(r[0]): (str(r[1]), bool(r[2])) for r in rows})
    return found


async def claim_lane(tx: Tx, lane: str, holder: str, seconds: float) -> bool:
    row = await tx.one(
        "INSERT INTO lanes (lane, holder, expires_at) VALUES (?, ?, skbridge_now() + ?) "
        "ON CONFLICT (lane) DO UPDATE SET holder = excluded.holder, "
        "expires_at = excluded.expires_at "
        "WHERE lanes.expires_at <= skbridge_now() OR lanes.holder = excluded.holder "
        "RETURNING lane",
        (lane, holder, seconds),
    )
    return row is not None


async def renew_lanes(tx: Tx, holder: str, seconds: float) -> set[str]:
    """Extend every lane ``holder`` still holds; returns them."""
    rows = await tx.all(
        "UPDATE lanes SET expires_at = skbridge_now() + ? "
        "WHERE holder = ? AND expires_at > skbridge_now() RETURNING lane",
        (seconds, holder),
    )
    return {str(r[0]) for r in rows}


async def release_lanes(tx: Tx, holder: str, lanes: Sequence[str], *, only_empty: bool) -> set[str]:
    """Give lanes back; with ``only_empty``, only those with no unfinished row (another
    instance may have added one since). Returns the lanes released."""
    released: set[str] = set()
    empty = (
        "AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.lane = lanes.lane "
        f"AND {unfinished_state('o.state')})"
        if only_empty
        else ""
    )
    for start in range(0, len(lanes), _CHUNK):
        chunk = lanes[start : start + _CHUNK]
        rows = await tx.all(
            f"UPDATE lanes SET holder = ?, expires_at = 0 WHERE holder = ? "
            f"AND lane IN ({marks(chunk)}) {empty} RETURNING lane",
            (RELEASED, holder, *chunk),
        )
        released.update(str(r[0]) for r in rows)
    return released


async def lanes_with_work(db: Reader, holder: str) -> set[str]:
    """Lanes with unfinished rows that are free, expired, or ``holder``'s."""
    rows = await db.all(
        "SELECT DISTINCT o.lane FROM outbox o LEFT JOIN lanes l ON l.lane = o.lane "
        f"WHERE {unfinished_state('o.state')} AND (l.lane IS NULL "
        "OR l.expires_at <= skbridge_now() OR l.holder = ?)",
        (holder,),
    )
    return {str(r[0]) for r in rows}


# --- shared pacing ---------------------------------------------------------------------


async def take_slot(db: Store, key: str, interval: float, hold: float = 0.0) -> float:
    """Reserve the next call on ``key``, one per ``interval``, not before ``hold`` seconds
    from now (a server said wait); returns how far ahead the reserved slot's
    theoretical time lies. One statement, committed on its own."""
    rows = await db.write_one(
        "INSERT INTO pacing (key, next_at) VALUES (?, skbridge_now() + ? + ?) "
        "ON CONFLICT (key) DO UPDATE SET next_at = CASE "
        "WHEN pacing.next_at > skbridge_now() + ? THEN pacing.next_at "
        "ELSE skbridge_now() + ? END + ? "
        "RETURNING next_at - skbridge_now()",
        (key, hold, interval, hold, hold, interval),
    )
    return float(rows[0][0]) if rows else 0.0


# --- status ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Holding:
    instance: str
    host: str
    pid: int
    seen_ago: float
    leases: list[str]
    lanes: int


async def holdings(db: Reader) -> list[Holding]:
    """Each instance seen lately, with the leases it holds and how many lanes."""
    instances = await db.all(
        "SELECT id, host, pid, skbridge_now() - seen_at FROM instances ORDER BY started_at"
    )
    leases = await db.all(
        "SELECT holder, name FROM leases WHERE expires_at > skbridge_now() ORDER BY name"
    )
    lanes = await db.all(
        "SELECT holder, count(*) FROM lanes WHERE expires_at > skbridge_now() GROUP BY holder"
    )
    lane_count = {str(h): int(n) for h, n in lanes}
    return [
        Holding(
            str(i),
            str(host),
            int(pid),
            float(ago),
            [str(n) for h, n in leases if h == i],
            lane_count.get(str(i), 0),
        )
        for i, host, pid, ago in instances
    ]
