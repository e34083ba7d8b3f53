"""``skbridge status``: what the database says, read-only, safe while the daemon runs.

The file is opened with SQLite's ``mode=ro``: in WAL mode a reader never blocks the
daemon's writer and sees only committed work. This module never writes, never
migrates, and never creates a database that is not there.
"""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import closing
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from skbridge.core.model import SendToCustomer
from skbridge.core.states import ConvState
from skbridge.ops.readonly import connect_read_only
from skbridge.store import files
from skbridge.store.queries import OUTAGES, outages_from

STATES = (
    ConvState.OPEN,
    ConvState.ARCHIVED,
    ConvState.OPENING,
    ConvState.REOPENING,
    ConvState.GONE,
)
TEXT_LIST_LIMIT = 20
"""Parked items listed in the text output; ``--json`` lists them all."""


@dataclass(frozen=True, slots=True)
class Parked:
    id: int
    what: str
    error: str
    at: str
    """ISO time it was set aside (outbox) or received (input)."""


@dataclass(frozen=True, slots=True)
class Status:
    database: str
    conversations: dict[str, int]
    backlog: dict[str, int]
    """``to_customers`` and ``to_slack``: outbox rows pending or in flight."""
    replies: dict[str, int]
    """``uncertain`` and ``failed`` replies nobody has sent again yet."""
    parked_outbox: list[Parked]
    parked_input: list[Parked]
    parked_kinds: dict[str, int]
    """How often each kind of input was set aside (``a story from Telegram``: 3)."""
    last_activity: str | None
    minutes_since_activity: int | None
    outages: list[str]
    """Outside systems failing now, as the daemon last recorded them."""


def read_status(path: Path, now: float | None = None) -> Status:
    with closing(connect_read_only(path)) as conn:
        try:
            return _gather(conn, path, time.time() if now is None else now)
        except sqlite3.Error as exc:
            raise files.reading_error(path, exc) from exc


def _gather(conn: sqlite3.Connection, path: Path, now: float) -> Status:
    # One read transaction: every number comes from the same committed state.
    conn.execute("BEGIN")
    counts = dict.fromkeys(STATES, 0)
    for state, count in conn.execute("SELECT state, count(*) FROM conversations GROUP BY 1"):
        counts[state] = count
    backlog = {"to_customers": 0, "to_slack": 0}
    for to_customer, count in conn.execute(
        "SELECT kind = ?, count(*) FROM outbox WHERE state IN ('pending', 'sending') GROUP BY 1",
        (SendToCustomer.kind,),
    ):
        backlog["to_customers" if to_customer else "to_slack"] = count
    replies = {"uncertain": 0, "failed": 0}
    for state, count in conn.execute(
        "SELECT state, count(*) FROM outbox WHERE kind = ? AND state IN ('uncertain', 'failed') "
        "GROUP BY 1",
        (SendToCustomer.kind,),
    ):
        replies[state] = count
    parked_outbox = [
        Parked(row_id, _what(kind, conv_id, customer), error or "", _iso(at))
        for row_id, kind, conv_id, customer, error, at in conn.execute(
            "SELECT o.id, o.kind, o.conversation_id, c.customer_name, o.last_error, "
            "coalesce(o.finished_at, o.created_at) FROM outbox o "
            "LEFT JOIN conversations c ON c.id = o.conversation_id "
            "WHERE o.state = 'parked' ORDER BY o.id"
        )
    ]
    parked_input = [
        Parked(row_id, origin, f"{kind}: {error}", _iso(at))
        for row_id, origin, kind, error, at in conn.execute(
            "SELECT id, origin, kind, error, received_at FROM parked_input ORDER BY id"
        )
    ]
    parked_kinds = {
        f"{kind} from {origin.capitalize()}": count
        for origin, kind, count in conn.execute(
            "SELECT origin, kind, count FROM parked_kinds ORDER BY count DESC, kind"
        )
    }
    (last,) = conn.execute("SELECT max(last_activity) FROM conversations").fetchone()
    outage_row = conn.execute("SELECT value FROM settings WHERE key = ?", (OUTAGES,)).fetchone()
    conn.execute("COMMIT")
    waiting = sum(backlog.values())
    outages = [
        f"{o.system} has failed for {o.minutes(now)} min (since {_iso(o.since)}, {o.error}); "
        f"{waiting} messages waiting"
        for o in outages_from(outage_row[0] if outage_row else None)
    ]
    return Status(
        database=str(path),
        conversations={str(k): v for k, v in counts.items()},
        backlog=backlog,
        replies=replies,
        parked_outbox=parked_outbox,
        parked_input=parked_input,
        parked_kinds=parked_kinds,
        last_activity=None if last is None else _iso(last),
        minutes_since_activity=None if last is None else max(0, int((now - last) // 60)),
        outages=outages,
    )


def _what(kind: str, conv_id: int | None, customer: str | None) -> str:
    if conv_id is None:
        return kind
    return f"{kind} (conversation {conv_id}" + (f", {customer})" if customer else ")")


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).astimezone().isoformat(timespec="seconds")


def to_json(status: Status) -> str:
    data: dict[str, Any] = asdict(status)
    return json.dumps(data, indent=2, ensure_ascii=False)


def to_text(status: Status) -> str:
    conv = ", ".join(f"{n} {state}" for state, n in status.conversations.items())
    lines = [
        f"database       {status.database}",
        *(f"OUTAGE         {line}" for line in status.outages),
        f"conversations  {conv}",
        f"backlog        {status.backlog['to_customers']} to customers, "
        f"{status.backlog['to_slack']} to Slack",
        f"replies        {status.replies['uncertain']} uncertain, "
        f"{status.replies['failed']} failed (not yet sent again)",
    ]
    lines += _listing("parked work   ", status.parked_outbox)
    lines += _listing("parked input  ", status.parked_input)
    if status.parked_kinds:
        kinds = ", ".join(f"{n} × {kind}" for kind, n in status.parked_kinds.items())
        lines.append(f"  by kind: {kinds}")
    if status.last_activity is None:
        lines.append("last activity  never")
    else:
        minutes = status.minutes_since_activity
        ago = f"{minutes} minute{'' if minutes == 1 else 's'} ago"
        lines.append(f"last activity  {status.last_activity} ({ago})")
    return "\n".join(lines)


def _listing(label: str, items: list[Parked]) -> list[str]:
    if not items:
        return [f"{label} none"]
    lines = [f"{label} {len(items)}"]
    for item in items[-TEXT_LIST_LIMIT:]:
        error = " ".join(item.error.split())
        lines.append(f"  #{item.id} {item.what} at {item.at}: {error}")
    if len(items) > TEXT_LIST_LIMIT:
        lines.append(f"  (the {len(items) - TEXT_LIST_LIMIT} older ones: see --json)")
    return lines


def command(path: Path, as_json: bool) -> int:
    """``skbridge status``: 0 with the report on stdout; StoreError when unreadable."""
    status = read_status(path)
    print(to_json(status) if as_json else to_text(status))
    return 0
