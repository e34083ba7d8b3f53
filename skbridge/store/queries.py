"""Small typed queries. Each takes the transaction (or database) it runs in."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from skbridge.core.idle import Idle, Quiet
from skbridge.core.model import Conversation, Customer, Op, carried_message, op_to_json
from skbridge.core.states import RESENDABLE, UNFINISHED, ConvState, OutboxState, PartState
from skbridge.health import Outage
from skbridge.ids import (
    ChannelId,
    ConversationId,
    MessageTs,
    OutboxId,
    SlackUserId,
    SourceName,
    UpstreamUserId,
)
from skbridge.store import Reader, Row, Tx


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: OutboxId
    lane: str
    conversation_id: ConversationId | None
    kind: str
    payload: str
    state: OutboxState
    attempts: int
    created_at: float


# --- settings ------------------------------------------------------------------------


async def get_setting(db: Reader, key: str) -> str | None:
    row = await db.one("SELECT value FROM settings WHERE key = ?", (key,))
    return None if row is None else str(row[0])


async def set_setting(tx: Tx, key: str, value: str) -> None:
    await tx.execute(
        "INSERT INTO settings (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


# --- deduplication ---------------------------------------------------------------------


async def remember(tx: Tx, key: str, now: float) -> bool:
    """Record that ``key`` arrived; False when it had arrived before."""
    changed = await tx.execute(
        "INSERT INTO received (key, received_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
        (key, now),
    )
    return changed == 1


async def stored_ack(db: Reader, key: str) -> dict[str, Any] | None:
    row = await db.one("SELECT ack FROM received WHERE key = ?", (key,))
    if row is None or row[0] is None:
        return None
    ack: dict[str, Any] = json.loads(row[0])
    return ack


async def store_ack(tx: Tx, key: str, ack: dict[str, Any]) -> None:
    await tx.execute("UPDATE received SET ack = ? WHERE key = ?", (json.dumps(ack), key))


async def park_input(
    tx: Tx,
    origin: str,
    kind: str,
    payload: str,
    error: str,
    now: float,
    sender: str | None = None,
) -> bool:
    """Keep an item that could not be carried, counted by kind; True when the kind's
    dispatch report must be queued (its first time, or a repeat since the last report)."""
    await tx.execute(
        "INSERT INTO parked_input (origin, kind, payload, error, received_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (origin, kind, payload, error, now),
    )
    due = await tx.one(
        "SELECT report_due FROM parked_kinds WHERE origin = ? AND kind = ?", (origin, kind)
    )
    await tx.execute(
        "INSERT INTO parked_kinds (origin, kind, count, last_at, last_from) "
        "VALUES (?, ?, 1, ?, ?) ON CONFLICT (origin, kind) DO UPDATE SET "
        "count = parked_kinds.count + 1, last_at = excluded.last_at, "
        "last_from = excluded.last_from, report_due = 1",
        (origin, kind, now, sender),
    )
    return due is None or not due[0]


@dataclass(frozen=True, slots=True)
class ParkedKind:
    origin: str
    kind: str
    count: int
    last_at: float
    last_from: str | None
    notice_channel: ChannelId | None
    notice_ts: MessageTs | None


async def take_kind_report(tx: Tx, origin: str, kind: str) -> ParkedKind | None:
    """The kind's figures as they are now; repeats from here on queue a new report."""
    await tx.execute(
        "UPDATE parked_kinds SET report_due = 0 WHERE origin = ? AND kind = ?", (origin, kind)
    )
    row = await tx.one(
        "SELECT origin, kind, count, last_at, last_from, notice_channel, notice_ts "
        "FROM parked_kinds WHERE origin = ? AND kind = ?",
        (origin, kind),
    )
    if row is None:
        return None
    return ParkedKind(
        str(row[0]),
        str(row[1]),
        int(row[2]),
        float(row[3]),
        row[4],
        None if row[5] is None else ChannelId(row[5]),
        None if row[6] is None else MessageTs(row[6]),
    )


async def set_kind_notice(
    tx: Tx, origin: str, kind: str, channel: ChannelId, ts: MessageTs
) -> None:
    await tx.execute(
        "UPDATE parked_kinds SET notice_channel = ?, notice_ts = ? WHERE origin = ? AND kind = ?",
        (channel, ts, origin, kind),
    )


async def count_ignored(
    tx: Tx, origin: str, kind: str, now: float, sender: str | None = None
) -> None:
    """Count input that opens nothing on purpose (an automatic reply), by kind."""
    await tx.execute(
        "INSERT INTO ignored_input (origin, kind, count, last_at, last_from) "
        "VALUES (?, ?, 1, ?, ?) ON CONFLICT (origin, kind) DO UPDATE SET "
        "count = ignored_input.count + 1, last_at = excluded.last_at, "
        "last_from = excluded.last_from",
        (origin, kind, now, sender),
    )


# --- conversations ---------------------------------------------------------------------

_CONV_COLUMNS = (
    "c.id, c.source, c.upstream_id, c.customer_name, c.channel_id, c.channel_name, c.state, "
    "c.handle, c.language, c.owner"
)


def _conversation(row: Row) -> Conversation:
    return Conversation(
        id=ConversationId(row[0]),
        source=SourceName(row[1]),
        upstream_id=UpstreamUserId(row[2]),
        customer_name=row[3],
        channel_id=None if row[4] is None else ChannelId(row[4]),
        channel_name=row[5],
        state=ConvState(row[6]),
        handle=row[7],
        language=row[8],
        owner=None if row[9] is None else SlackUserId(row[9]),
    )


async def conversation(db: Reader, conv_id: ConversationId) -> Conversation | None:
    row = await db.one(f"SELECT {_CONV_COLUMNS} FROM conversations c WHERE c.id = ?", (conv_id,))
    return None if row is None else _conversation(row)


async def conversation_of_customer(
    db: Reader, source: SourceName, upstream_id: UpstreamUserId
) -> Conversation | None:
    row = await db.one(
        f"SELECT {_CONV_COLUMNS} FROM conversations c WHERE c.source = ? AND c.upstream_id = ?",
        (source, upstream_id),
    )
    return None if row is None else _conversation(row)


async def conversation_of_channel(db: Reader, channel_id: ChannelId) -> Conversation | None:
    """The conversation that owns ``channel_id``, now or in the past."""
    row = await db.one(
        f"SELECT {_CONV_COLUMNS} FROM channels ch "
        "JOIN conversations c ON c.id = ch.conversation_id WHERE ch.channel_id = ?",
        (channel_id,),
    )
    return None if row is None else _conversation(row)


async def insert_conversation(
    tx: Tx, customer: Customer, state: ConvState, now: float
) -> Conversation:
    row = await tx.one(
        "INSERT INTO conversations (source, upstream_id, customer_name, handle, language, "
        "state, created_at, last_activity) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (
            customer.source,
            customer.upstream_id,
            customer.name,
            customer.handle,
            customer.language,
            state,
            now,
            now,
        ),
    )
    assert row is not None
    return Conversation(
        id=ConversationId(row[0]),
        source=customer.source,
        upstream_id=customer.upstream_id,
        customer_name=customer.name,
        channel_id=None,
        channel_name=None,
        state=state,
        handle=customer.handle,
        language=customer.language,
    )


async def update_customer(tx: Tx, conv_id: ConversationId, customer: Customer) -> None:
    """What the conversation knows of its customer: name, handle, language."""
    await tx.execute(
        "UPDATE conversations SET customer_name = ?, handle = ?, language = ? WHERE id = ?",
        (customer.name, customer.handle, customer.language, conv_id),
    )


async def set_owner(tx: Tx, conv_id: ConversationId, owner: SlackUserId | None) -> None:
    """Who has the conversation now; those noted as helping someone else are forgotten."""
    await tx.execute("UPDATE conversations SET owner = ? WHERE id = ?", (owner, conv_id))
    await tx.execute("DELETE FROM claim_notes WHERE conversation_id = ?", (conv_id,))


async def note_helper(tx: Tx, conv_id: ConversationId, user: SlackUserId) -> bool:
    """Remember that ``user`` answered someone else's conversation; False if already noted."""
    changed = await tx.execute(
        "INSERT INTO claim_notes (conversation_id, user_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
        (conv_id, user),
    )
    return changed == 1


@dataclass(frozen=True, slots=True)
class DispatchNotice:
    channel: ChannelId
    ts: MessageTs
    reopened: bool


async def set_dispatch_notice(
    tx: Tx, conv_id: ConversationId, channel: ChannelId, ts: MessageTs, reopened: bool
) -> None:
    await tx.execute(
        "UPDATE conversations SET dispatch_channel = ?, dispatch_ts = ?, dispatch_reopened = ? "
        "WHERE id = ?",
        (channel, ts, int(reopened), conv_id),
    )


async def dispatch_notice(db: Reader, conv_id: ConversationId) -> DispatchNotice | None:
    """The conversation's latest dispatch notice, if it was posted."""
    row = await db.one(
        "SELECT dispatch_channel, dispatch_ts, dispatch_reopened FROM conversations WHERE id = ?",
        (conv_id,),
    )
    if row is None or row[0] is None or row[1] is None:
        return None
    return DispatchNotice(ChannelId(row[0]), MessageTs(row[1]), bool(row[2]))


async def update_conversation(
    tx: Tx, conv_id: ConversationId, *, state: ConvState | None, now: float
) -> None:
    """Mark the conversation active at ``now``, and move it to ``state`` if one is given."""
    await tx.execute(
        "UPDATE conversations SET state = coalesce(?, state), last_activity = ? WHERE id = ?",
        (state, now, conv_id),
    )


async def attach_channel(
    tx: Tx,
    conv_id: ConversationId,
    channel_id: ChannelId,
    name: str,
    state: ConvState,
    now: float,
) -> None:
    """Make ``channel_id`` the conversation's current channel, in ``state``."""
    await tx.execute(
        "UPDATE conversations SET channel_id = ?, channel_name = ?, state = ? WHERE id = ?",
        (channel_id, name, state, conv_id),
    )
    await tx.execute(
        "INSERT INTO channels (channel_id, conversation_id, name, created_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (channel_id) DO UPDATE SET name = excluded.name",
        (channel_id, conv_id, name, now),
    )


async def rename_channel(tx: Tx, channel_id: ChannelId, name: str) -> None:
    await tx.execute("UPDATE channels SET name = ? WHERE channel_id = ?", (name, channel_id))
    await tx.execute(
        "UPDATE conversations SET channel_name = ? WHERE channel_id = ?", (name, channel_id)
    )


async def set_reply_context(tx: Tx, conv_id: ConversationId, context: str, now: float) -> None:
    await tx.execute(
        "INSERT INTO reply_context (conversation_id, context, updated_at) VALUES (?, ?, ?) "
        "ON CONFLICT (conversation_id) DO UPDATE SET context = excluded.context, "
        "updated_at = excluded.updated_at",
        (conv_id, context, now),
    )


async def reply_context(db: Reader, source: SourceName, upstream_id: UpstreamUserId) -> str | None:
    """What the upstream kept of the customer's latest message, to answer in its thread."""
    row = await db.one(
        "SELECT r.context FROM reply_context r JOIN conversations c "
        "ON c.id = r.conversation_id WHERE c.source = ? AND c.upstream_id = ?",
        (source, upstream_id),
    )
    return None if row is None else str(row[0])


async def members_invited(db: Reader, channel_id: ChannelId) -> bool:
    row = await db.one("SELECT members_invited FROM channels WHERE channel_id = ?", (channel_id,))
    return bool(row and row[0])


async def mark_members_invited(tx: Tx, channel_id: ChannelId) -> None:
    await tx.execute("UPDATE channels SET members_invited = 1 WHERE channel_id = ?", (channel_id,))


async def channel_names_in_use(db: Reader, names: Sequence[str]) -> set[str]:
    """Which of ``names`` skbridge has already used for some channel."""
    rows = await db.all(f"SELECT name FROM channels WHERE name IN ({marks(names)})", names)
    return {str(r[0]) for r in rows}


# --- outbox --------------------------------------------------------------------------------

_OUTBOX_COLUMNS = "id, lane, conversation_id, kind, payload, state, attempts, created_at"


def lane_of(conv_id: ConversationId | None) -> str:
    return f"c{conv_id}" if conv_id is not None else "workspace"


def _outbox(row: Row) -> OutboxRow:
    return OutboxRow(
        id=OutboxId(row[0]),
        lane=row[1],
        conversation_id=None if row[2] is None else ConversationId(row[2]),
        kind=row[3],
        payload=row[4],
        state=OutboxState(row[5]),
        attempts=row[6],
        created_at=row[7],
    )


async def enqueue(
    tx: Tx, conv_id: ConversationId | None, ops: Iterable[Op], now: float
) -> list[OutboxRow]:
    lane = lane_of(conv_id)
    rows: list[OutboxRow] = []
    for op in ops:
        payload = op_to_json(op)
        found = await tx.one(
            "INSERT INTO outbox (lane, conversation_id, kind, payload, created_at, message_ref) "
            "VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
            (lane, conv_id, op.kind, payload, now, carried_message(op)),
        )
        assert found is not None
        row = OutboxRow(
            OutboxId(found[0]), lane, conv_id, op.kind, payload, OutboxState.PENDING, 0, now
        )
        rows.append(row)
    return rows


async def unfinished(db: Reader) -> list[OutboxRow]:
    """Every pending or in-flight outbox row, oldest first."""
    rows = await db.all(
        f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE {unfinished_state()} ORDER BY id"
    )
    return [_outbox(r) for r in rows]


async def unfinished_in_lane(db: Reader, lane: str) -> list[OutboxRow]:
    """A lane's pending or in-flight rows, in order."""
    rows = await db.all(
        f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE lane = ? AND {unfinished_state()} ORDER BY id",
        (lane,),
    )
    return [_outbox(r) for r in rows]


async def outbox_row(db: Reader, row_id: OutboxId) -> OutboxRow | None:
    row = await db.one(f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE id = ?", (row_id,))
    return None if row is None else _outbox(row)


async def set_outbox_state(
    tx: Tx, row_id: OutboxId, state: OutboxState, now: float, error: str | None = None
) -> None:
    finished = None if state in UNFINISHED else now
    await tx.execute(
        "UPDATE outbox SET state = ?, finished_at = ?, last_error = coalesce(?, last_error) "
        "WHERE id = ?",
        (state, finished, error, row_id),
    )


async def take_for_resend(tx: Tx, row_id: OutboxId, now: float) -> bool:
    """Mark a row resent if it still may be: of two concurrent clicks, one wins."""
    changed = await tx.execute(
        f"UPDATE outbox SET state = ?, finished_at = ? WHERE id = ? "
        f"AND state IN ({marks(RESENDABLE)})",
        (OutboxState.RESENT, now, row_id, *sorted(RESENDABLE)),
    )
    return changed == 1


Posted = tuple[ChannelId, MessageTs]
"""The Slack post a row made: its channel and ts."""


async def finish_many(
    tx: Tx,
    rows: Sequence[OutboxId],
    state: OutboxState,
    touched: Sequence[ConversationId],
    now: float,
    posted: Mapping[OutboxId, Posted] | None = None,
) -> None:
    """Mark many rows finished and their conversations active; ``posted`` records the
    post some of them made.

    One statement text each, run for every row: a statement written for the size of the
    batch would be prepared anew for nearly every batch, and each size kept in the
    connection's statement cache (megabytes, after a burst of customer messages).
    """
    made = posted or {}
    plain = [(state, now, row) for row in rows if row not in made]
    if plain:
        await tx.execute_many("UPDATE outbox SET state = ?, finished_at = ? WHERE id = ?", plain)
    marked = [(state, now, *made[row], row) for row in rows if row in made]
    if marked:
        await tx.execute_many(
            "UPDATE outbox SET state = ?, finished_at = ?, posted_channel = ?, posted_ts = ? "
            "WHERE id = ?",
            marked,
        )
    if touched:
        await tx.execute_many(
            "UPDATE conversations SET last_activity = ? WHERE id = ?",
            [(now, conv) for conv in touched],
        )


async def post_of_message(db: Reader, conv_id: ConversationId, message_ref: str) -> Posted | None:
    """The latest Slack post that carried the upstream message ``message_ref``."""
    row = await db.one(
        "SELECT posted_channel, posted_ts FROM outbox WHERE conversation_id = ? "
        "AND message_ref = ? AND posted_ts IS NOT NULL ORDER BY id DESC LIMIT 1",
        (conv_id, message_ref),
    )
    return None if row is None else (ChannelId(row[0]), MessageTs(row[1]))


def marks(values: Collection[object]) -> str:
    return ",".join("?" * len(values))


def unfinished_state(column: str = "state") -> str:
    """``state IN ('pending', 'sending')``: the condition of the ``outbox_unfinished``
    partial index, written out. A planner uses a partial index only when the query's
    own text implies its condition, which bound parameters never do: with them, every
    lane's read scanned the whole outbox."""
    return f"{column} IN ({', '.join(repr(str(s)) for s in sorted(UNFINISHED))})"


# --- reply parts ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReplyPart:
    idx: int
    body: str
    """The text sent; for a file, its caption."""
    state: PartState
    file: str | None = None
    """A Slack file ID: this part is that file."""


async def reply_parts(db: Reader, row_id: OutboxId) -> list[ReplyPart]:
    rows = await db.all(
        "SELECT idx, body, state, file FROM reply_parts WHERE outbox_id = ? ORDER BY idx",
        (row_id,),
    )
    return [ReplyPart(int(r[0]), str(r[1]), PartState(r[2]), r[3]) for r in rows]


async def add_reply_parts(tx: Tx, row_id: OutboxId, parts: Sequence[ReplyPart]) -> None:
    """Store a reply's parts, all pending."""
    for part in parts:
        await tx.execute(
            "INSERT INTO reply_parts (outbox_id, idx, body, file) VALUES (?, ?, ?, ?)",
            (row_id, part.idx, part.body, part.file),
        )


async def set_part_states(tx: Tx, row_id: OutboxId, states: Mapping[int, PartState]) -> None:
    for idx, state in states.items():
        await tx.execute(
            "UPDATE reply_parts SET state = ? WHERE outbox_id = ? AND idx = ?",
            (state, row_id, idx),
        )


# --- uploads -------------------------------------------------------------------------------


async def upload_of(db: Reader, row_id: OutboxId) -> str | None:
    """The Slack file a row's upload made, stored before the upload was completed."""
    row = await db.one("SELECT file_id FROM slack_uploads WHERE outbox_id = ?", (row_id,))
    return None if row is None else str(row[0])


async def set_upload(tx: Tx, row_id: OutboxId, file_id: str) -> None:
    await tx.execute(
        "INSERT INTO slack_uploads (outbox_id, file_id) VALUES (?, ?) "
        "ON CONFLICT (outbox_id) DO UPDATE SET file_id = excluded.file_id",
        (row_id, file_id),
    )


# --- outages -------------------------------------------------------------------------------

OUTAGES = "outages"
"""The settings key holding the outages running now, for ``skbridge status``."""


async def set_outages(tx: Tx, outages: Sequence[Outage]) -> None:
    value = json.dumps([dataclasses.asdict(o) for o in outages])
    await set_setting(tx, OUTAGES, value)


def outages_from(value: str | None) -> list[Outage]:
    try:
        return [Outage(**o) for o in json.loads(value or "[]")]
    except (TypeError, ValueError):
        return []


async def record_attempt(tx: Tx, row_id: OutboxId, error: str) -> int:
    """Count a failed attempt; returns the number of attempts so far."""
    await tx.execute(
        "UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE id = ?", (error, row_id)
    )
    row = await tx.one("SELECT attempts FROM outbox WHERE id = ?", (row_id,))
    return int(row[0]) if row else 0


async def prune(tx: Tx, now: float, keep_seconds: float) -> None:
    """Forget finished work, old deduplication keys, and all but the latest of what was said."""
    cutoff = now - keep_seconds
    await tx.execute("DELETE FROM received WHERE received_at < ?", (cutoff,))
    await tx.execute(
        "DELETE FROM outbox WHERE state = ? AND finished_at < ?", (OutboxState.DONE, cutoff)
    )
    await tx.execute(
        "DELETE FROM transcript WHERE id IN (SELECT id FROM (SELECT id, row_number() OVER "
        "(PARTITION BY conversation_id ORDER BY id DESC) AS n FROM transcript) AS ranked "
        "WHERE n > ?)",
        (TRANSCRIPT_KEPT,),
    )


# --- idle channels -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QuietChannel:
    conversation_id: ConversationId
    quiet: Quiet


async def quiet_channels(db: Reader, idle_since: float, limit: int = 500) -> list[QuietChannel]:
    """Open conversations quiet since before ``idle_since``, or warned already."""
    rows = await db.all(
        "SELECT c.id, c.last_activity, c.idle_warned_at, c.idle_notice, "
        "(SELECT t.direction FROM transcript t WHERE t.conversation_id = c.id "
        "ORDER BY t.id DESC LIMIT 1) FROM conversations c "
        "WHERE c.state = ? AND c.channel_id IS NOT NULL "
        "AND (c.last_activity < ? OR c.idle_warned_at IS NOT NULL) ORDER BY c.id LIMIT ?",
        (ConvState.OPEN, idle_since, limit),
    )
    return [
        QuietChannel(
            ConversationId(conv),
            Quiet(float(last), warned, Idle(notice) if notice else None, direction == "in"),
        )
        for conv, last, warned, notice, direction in rows
    ]


async def last_activity(db: Reader, conv_id: ConversationId) -> float:
    row = await db.one("SELECT last_activity FROM conversations WHERE id = ?", (conv_id,))
    return float(row[0]) if row else 0.0


async def set_idle(
    tx: Tx, conv_id: ConversationId, warned_at: float | None, notice: Idle | None
) -> None:
    await tx.execute(
        "UPDATE conversations SET idle_warned_at = ?, idle_notice = ? WHERE id = ?",
        (warned_at, notice, conv_id),
    )


# --- what was said ----------------------------------------------------------------------------

TRANSCRIPT_KEPT = 100
"""Lines of transcript kept per conversation: more than any history shows."""


@dataclass(frozen=True, slots=True)
class Said:
    at: float
    outbound: bool
    """From the team to the customer (a reply), else from the customer."""
    who: str
    text: str
    """As Slack shows it: customer text escaped, agent text in Slack's markup."""


def _shown(text: str) -> str:
    """Text for a line only ever shown: NUL, which no Slack message carries and some
    engines cannot store, as U+FFFD."""
    return text.replace("\x00", "\ufffd")


async def add_said(tx: Tx, conv_id: ConversationId, said: Said) -> None:
    direction = "out" if said.outbound else "in"
    await tx.execute(
        "INSERT INTO transcript (conversation_id, at, direction, who, text) VALUES (?, ?, ?, ?, ?)",
        (conv_id, said.at, direction, _shown(said.who), _shown(said.text)),
    )


async def said_before(
    db: Reader, conv_id: ConversationId, before: float, limit: int
) -> tuple[list[Said], bool]:
    """The last ``limit`` lines said before ``before``, oldest first; and whether there
    were more."""
    rows = await db.all(
        "SELECT at, direction, who, text FROM transcript WHERE conversation_id = ? AND at < ? "
        "ORDER BY id DESC LIMIT ?",
        (conv_id, before, limit + 1),
    )
    said = [Said(float(at), d == "out", str(who), str(text)) for at, d, who, text in rows]
    return list(reversed(said[:limit])), len(said) > limit


# --- seeding (benchmarks) ------------------------------------------------------------------


async def seed_open_conversations(
    tx: Tx, rows: Sequence[tuple[SourceName, str, str, ChannelId, str]], now: float
) -> None:
    """Store open conversations that already have their channel, members invited:
    (source, upstream id, customer name, channel id, channel name) each."""
    await tx.execute_many(
        "INSERT INTO conversations (source, upstream_id, customer_name, channel_id, "
        "channel_name, state, created_at, last_activity) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(*row, ConvState.OPEN, now, now) for row in rows],
    )
    await tx.execute(
        "INSERT INTO channels (channel_id, conversation_id, name, members_invited, created_at) "
        "SELECT channel_id, id, channel_name, 1, created_at FROM conversations "
        "WHERE channel_id IS NOT NULL ON CONFLICT (channel_id) DO NOTHING"
    )
