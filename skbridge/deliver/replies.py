"""Replies to customers, sent by their upstream part by part.

An upstream without idempotency (Telegram) is never re-sent blindly. Each part is
marked before and after it goes out, so after a crash only the part that was on its
way is in doubt; an uncertain or refused part is shown in the channel, saying exactly
which parts arrived, with a button that sends the rest again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from skbridge.core.model import Conversation, PostNotice, SendToCustomer
from skbridge.core.states import ARRIVED, OutboxState, PartState
from skbridge.core.text import mentioned_users, slack_to_plain
from skbridge.deliver.context import Context, Handler
from skbridge.errors import MaybeSent, NotSent, RateLimited, Refused
from skbridge.slack import messages
from skbridge.spool import Spool, megabytes
from skbridge.store import Tx, figures
from skbridge.store import queries as q
from skbridge.store.figures import DELIVERY_BUCKETS, RESPONSE_BUCKETS
from skbridge.store.persist import persist
from skbridge.store.queries import OutboxRow
from skbridge.upstreams import Agent, Upstream, files_of

log = logging.getLogger(__name__)

Marks = Mapping[int, PartState]


async def send(ctx: Context, row: OutboxRow, op: SendToCustomer, suspect: bool) -> list[OutboxRow]:
    """Send the reply's parts that are still to go, in order, each once.

    A file is its own part: fetched from Slack before it is marked as on its way (a
    failed download sends nothing), and one the upstream cannot take is marked refused
    while the other parts go on; a refused text part ends the reply.
    """
    conv = await ctx.conversation(row.conversation_id)
    upstream = ctx.upstreams.get(conv.source)
    if upstream is None:
        raise Refused("no_upstream", f"source {conv.source} is not configured")
    parts = await q.reply_parts(ctx.db, row.id)
    in_flight = {p.idx: PartState.UNCERTAIN for p in parts if p.state is PartState.SENDING}
    if in_flight or (suspect and not parts and row.state is OutboxState.SENDING):
        # The previous run stopped while this was on its way: it may have arrived.
        reason = "skbridge stopped while sending it"
        return await _settle(ctx, row, conv, op, OutboxState.UNCERTAIN, reason, in_flight)
    agent = await ctx.agents.agent(op.agent_id, avatar=upstream.shows_avatar)
    new: list[q.ReplyPart] = []
    if not parts:
        new = parts = await _parts(ctx, op, upstream, agent)
    sent: dict[int, PartState] = {}
    refused: list[str] = []
    for part in (p for p in parts if p.state is PartState.PENDING):
        file: Spool | None = None
        if part.file is not None:
            if sent or new:  # stored first: the download may take a while, or fail
                await _mark(ctx, row, sent, new)
                new, sent = [], {}
            try:
                file = await _fetch(ctx, conv, upstream, part.file)
            except Refused as exc:
                sent[part.idx] = PartState.FAILED
                refused.append(exc.detail)
                continue
        await _mark(ctx, row, {**sent, part.idx: PartState.SENDING}, new)
        new, sent = [], {}
        try:
            await _send_part(conv, upstream, part, file, agent)
        except MaybeSent as exc:
            marks = {part.idx: PartState.UNCERTAIN}
            return await _settle(ctx, row, conv, op, OutboxState.UNCERTAIN, str(exc), marks)
        except (NotSent, RateLimited):
            await _mark(ctx, row, {part.idx: PartState.PENDING})
            raise
        except Refused as exc:
            if file is None:
                marks = {part.idx: PartState.FAILED}
                return await _settle(ctx, row, conv, op, OutboxState.FAILED, exc.detail, marks)
            sent = {part.idx: PartState.FAILED}
            refused.append(f"{file.name}: {exc.detail}")
            continue
        finally:
            if file is not None:
                file.close()
        sent = {part.idx: PartState.DONE}
    if refused:
        reason = "; ".join(refused)
        return await _settle(ctx, row, conv, op, OutboxState.FAILED, reason, sent)
    log.info("reply sent", extra={"row": row.id, "conversation": conv.id})
    if not upstream.shows_avatar:  # the channel's copy shows the picture
        agent = await ctx.agents.agent(op.agent_id)
    return await _settle(ctx, row, conv, op, OutboxState.DONE, None, sent, agent)


async def _send_part(
    conv: Conversation, upstream: Upstream, part: q.ReplyPart, file: Spool | None, agent: Agent
) -> None:
    if file is None:
        await upstream.send(conv.upstream_id, part.body, agent)
        return
    carrier = files_of(upstream)
    assert carrier is not None  # _fetch made sure
    await carrier.send_file(conv.upstream_id, file, part.body)


async def _fetch(ctx: Context, conv: Conversation, upstream: Upstream, file_id: str) -> Spool:
    """An agent's file, from Slack to disk, if the upstream can take it."""
    carrier = files_of(upstream)
    if carrier is None:
        raise Refused("no_files", f"{upstream.label} cannot carry files")
    try:
        info = await ctx.files.info(file_id)
    except Refused as exc:
        if exc.code == "file_not_found":
            raise Refused(exc.code, "the file is no longer in Slack") from exc
        raise
    limit = carrier.upload_limit
    why = f"{upstream.label} takes files of up to {megabytes(limit)}"
    try:
        return await ctx.files.fetch(info, limit, why)
    except Refused as exc:
        raise Refused(exc.code, f"{info.name}: {exc.detail}") from exc


async def _mark(
    ctx: Context, row: OutboxRow, states: Marks, new: Sequence[q.ReplyPart] = ()
) -> None:
    """Store new parts (all pending) and then ``states``, in one transaction."""

    async def mark(tx: Tx) -> None:
        if new:
            await q.add_reply_parts(tx, row.id, new)
        await q.set_part_states(tx, row.id, states)

    await persist(ctx.db, mark, what="reply parts")


async def _parts(
    ctx: Context, op: SendToCustomer, upstream: Upstream, agent: Agent
) -> list[q.ReplyPart]:
    """The parts to send, text first, then each file; a resend sends what of the
    original did not arrive."""
    planned: list[tuple[str, str | None]] = []
    if op.resend_of is not None:
        original = await q.reply_parts(ctx.db, op.resend_of)
        planned = [(p.body, p.file) for p in original if p.state not in ARRIVED]
    if not planned:
        if op.text:
            names = await ctx.agents.names(mentioned_users(op.text))
            planned = [(b, None) for b in upstream.render(slack_to_plain(op.text, names), agent)]
        carrier = files_of(upstream)
        for file in op.files:
            caption = carrier.caption(file.name, agent) if carrier else file.name
            planned.append((caption, file.id))
    return [q.ReplyPart(i, body, PartState.PENDING, file) for i, (body, file) in enumerate(planned)]


async def _settle(
    ctx: Context,
    row: OutboxRow,
    conv: Conversation,
    op: SendToCustomer,
    state: OutboxState,
    reason: str | None,
    marks: Marks,
    agent: Agent | None = None,
) -> list[OutboxRow]:
    """Record how a send ended and, in the same transaction, what the channel is told.

    The send has happened: its record is kept however long the store takes.
    """

    async def record(tx: Tx) -> list[OutboxRow]:
        now = ctx.clock()
        await q.set_part_states(tx, row.id, marks)
        parts = [p.state for p in await q.reply_parts(tx, row.id)]
        if state is OutboxState.DONE:
            assert agent is not None
            text = messages.echo(conv, op.text, [f.name for f in op.files])
            notice = PostNotice(text=text, username=agent.name, icon_url=agent.avatar_url)
            warning = None
            await q.add_said(tx, conv.id, q.Said(now, True, agent.name, op.text))
            await _count_reply(tx, conv, row, now)
        else:
            tell = messages.uncertain if state is OutboxState.UNCERTAIN else messages.not_delivered
            warning = tell(messages.reply(op.text, [f.name for f in op.files]), reason or "", parts)
            notice = PostNotice(text=warning, resend_of=row.id)
        if state is OutboxState.UNCERTAIN:
            await figures.count(tx, "skbridge_uncertain_sends_total", {"source": conv.source})
        await q.set_outbox_state(tx, row.id, state, now, warning)
        await q.update_conversation(tx, conv.id, state=None, now=now)
        return await q.enqueue(tx, conv.id, [notice], now)

    return await persist(ctx.db, record, what="reply outcome")


async def _count_reply(tx: Tx, conv: Conversation, row: OutboxRow, now: float) -> None:
    """A reply arrived: counted, its delivery time and any first response time observed."""
    first = await figures.team_replied(tx, conv.id, now)
    source = {"source": conv.source}
    await figures.count(tx, "skbridge_messages_total", {"direction": "out", **source})
    delivery = {"direction": "out", **source}
    latency = [max(0.0, now - row.created_at)]
    await figures.observe(tx, "skbridge_delivery_seconds", delivery, latency, DELIVERY_BUCKETS)
    if first is not None:
        buckets = RESPONSE_BUCKETS
        await figures.observe(tx, "skbridge_first_response_seconds", source, [first], buckets)


REPLY = Handler(
    send,
    lambda op, conv: (
        f"a reply from <@{op.agent_id}> to {messages.who(conv)}{messages.where(conv)}",
        messages.reply(op.text, [f.name for f in op.files]),
    ),
)
