"""``skbridge status``: what the database says, read-only, safe while the daemon runs.

The store is opened read-only (for SQLite, ``mode=ro``: in WAL mode such a reader never
blocks the daemon's writer and sees only committed work). This module never writes,
never migrates, and never creates a database that is not there.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from skbridge.core.idle import DAY
from skbridge.core.states import ConvState, OutboxState
from skbridge.core.text import duration
from skbridge.slack import messages
from skbridge.store import Reader, figures, leasing, open_store, report, url_of
from skbridge.store import queries as q
from skbridge.store.queries import outages_from

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
    ignored: dict[str, int]
    """Input that opened nothing on purpose, by kind (``an automatic reply from Email``: 2)."""
    last_activity: str | None
    minutes_since_activity: int | None
    outages: list[str]
    """Outside systems failing now, as the daemon last recorded them."""
    figures: dict[str, dict[str, Any]]
    """``last_24h`` and ``last_7d``: new and reopened conversations, first reply times."""
    unanswered: list[dict[str, Any]]
    """Conversations whose customer waits for an answer, oldest first (at most 10)."""
    unanswered_total: int
    instances: list[str] = field(default_factory=list)
    """Each running instance, with the leases it holds (``upstream:telegram``) and how
    many lanes: who polls and who delivers, when several share the database."""


async def read_status(where: Path | str, now: float | None = None) -> Status:
    """The report on the database at ``where`` (an SQLite file, or a store URL)."""
    store = await open_store(url_of(where), read_only=True)
    try:
        async with store.snapshot() as r:  # every figure from one committed state
            return await _gather(r, store.where, time.time() if now is None else now)
    finally:
        await store.close()


async def _gather(r: Reader, where: str, now: float) -> Status:
    counts = await report.conversations_by_state(r)
    to_customers, to_slack = await report.backlog(r)
    replies = await report.reply_outcomes(r, (OutboxState.UNCERTAIN, OutboxState.FAILED))
    parked_outbox = [
        Parked(p.id, _what(p.kind, p.conversation_id, p.customer), p.error, _iso(p.at))
        for p in await report.parked_work(r)
    ]
    parked_input = [
        Parked(p.id, p.origin, f"{p.kind}: {p.error}", _iso(p.at))
        for p in await report.parked_input(r)
    ]
    parked_kinds = {
        f"{kind} from {origin.capitalize()}": count
        for origin, kind, count in await report.parked_kinds(r)
    }
    ignored = {
        f"{kind} from {origin.capitalize()}": count
        for origin, kind, count in await report.ignored_kinds(r)
    }
    last = await report.last_activity(r)
    periods = {"last_24h": DAY, "last_7d": 7 * DAY}
    windows = {name: await figures.window(r, now - span) for name, span in periods.items()}
    unanswered, unanswered_total = await figures.unanswered(r)
    waiting = to_customers + to_slack
    outages = [
        f"{o.system} has failed for {o.minutes(now)} min (since {_iso(o.since)}, {o.error}); "
        f"{waiting} messages waiting"
        for o in outages_from(await q.get_setting(r, q.OUTAGES))
    ]
    return Status(
        database=where,
        conversations={str(state): counts[state] for state in STATES},
        backlog={"to_customers": to_customers, "to_slack": to_slack},
        replies={str(state): n for state, n in replies.items()},
        parked_outbox=parked_outbox,
        parked_input=parked_input,
        parked_kinds=parked_kinds,
        ignored=ignored,
        last_activity=None if last is None else _iso(last),
        minutes_since_activity=None if last is None else max(0, int((now - last) // 60)),
        outages=outages,
        figures={name: asdict(w) for name, w in windows.items()},
        unanswered=[
            {
                "customer": w.customer,
                "channel": w.channel_name,
                "waiting_seconds": round(now - w.since),
                "messages_in": w.messages_in,
                "replies": w.replies,
                "reopens": w.reopens,
            }
            for w in unanswered
        ],
        unanswered_total=unanswered_total,
        instances=[_instance(h) for h in await leasing.holdings(r)],
    )


def _instance(h: leasing.Holding) -> str:
    held = ", ".join(h.leases) or "no upstream (standby)"
    lanes = f"{h.lanes} lane{'' if h.lanes == 1 else 's'}"
    return f"{h.instance} (seen {h.seen_ago:.0f} s ago): {held}; {lanes}"


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
    if status.ignored:
        kinds = ", ".join(f"{n} × {kind}" for kind, n in status.ignored.items())
        lines.append(f"ignored input  {kinds} (opened nothing, never answered)")
    for name, label in (("last_24h", "last 24 h"), ("last_7d", "last 7 d ")):
        lines.append(
            ("figures        " if name == "last_24h" else "               ")
            + f"{label}: "
            + _window(status.figures[name])
        )
    lines.append(f"unanswered     {status.unanswered_total}" + _waiting(status.unanswered))
    if status.last_activity is None:
        lines.append("last activity  never")
    else:
        minutes = status.minutes_since_activity
        ago = f"{minutes} minute{'' if minutes == 1 else 's'} ago"
        lines.append(f"last activity  {status.last_activity} ({ago})")
    lines += [f"instance       {line}" for line in status.instances] or ["instances      none"]
    return "\n".join(lines)


def _window(window: dict[str, Any]) -> str:
    return messages.figures_line(figures.Window(**window))


def _waiting(waiting: list[dict[str, Any]]) -> str:
    if not waiting:
        return ""
    who = ", ".join(
        f"{w['customer']}"
        + (f" (#{w['channel']})" if w["channel"] else "")
        + f" for {duration(w['waiting_seconds'])}"
        for w in waiting
    )
    return f" waiting, oldest first: {who}"


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


def command(where: Path | str, as_json: bool) -> int:
    """``skbridge status``: 0 with the report on stdout; StoreError when unreadable."""
    status = asyncio.run(read_status(where))
    print(to_json(status) if as_json else to_text(status))
    return 0
