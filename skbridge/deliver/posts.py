"""Posts into Slack: customers' messages, dispatch notices, skbridge's own notices and
reports. Each is posted once (its key in ``metadata``) and split at Slack's limits."""

from __future__ import annotations

import logging
from typing import Any

from skbridge.core import rules
from skbridge.core.idle import DAY
from skbridge.core.model import (
    AnswerPrivately,
    Conversation,
    EditCustomerMessage,
    NotifyDispatch,
    PostCustomerMessage,
    PostNotice,
    ReopenChannel,
    ReportDigest,
    ReportInput,
    ReportOutage,
    ReportParked,
    SetTopic,
)
from skbridge.core.text import SECTION_TEXT_LIMIT, SLACK_TEXT_LIMIT, escape_for_slack, split_text
from skbridge.deliver import channels, claims
from skbridge.deliver.context import Context, Handler, live_channel, unless_gone
from skbridge.errors import Refused
from skbridge.ids import ChannelId
from skbridge.slack import errors as slack_errors
from skbridge.slack import messages
from skbridge.store import figures
from skbridge.store import queries as q
from skbridge.store.finish import Delivered
from skbridge.store.persist import persist
from skbridge.store.queries import OutboxRow

log = logging.getLogger(__name__)


EDITED = " _(edited)_"


async def post_customer_message(
    ctx: Context, row: OutboxRow, op: PostCustomerMessage, suspect: bool
) -> list[OutboxRow]:
    conv = await ctx.conversation(row.conversation_id)
    text = escape_for_slack(op.text) + (EDITED if op.edited else "")
    return await _as_customer(ctx, row, conv, text, op.name, op.avatar_url, suspect, op.first)


async def edit_customer_message(
    ctx: Context, row: OutboxRow, op: EditCustomerMessage, suspect: bool
) -> list[OutboxRow]:
    """Update the post that carried the message; post the edit when there is none left
    in the channel (archived or deleted since, never posted, or too long to update)."""
    conv = await ctx.conversation(row.conversation_id)
    text = escape_for_slack(op.text)
    if op.file_name:
        text += f" _(edited the caption of {escape_for_slack(op.file_name)})_"
        return await _as_customer(ctx, row, conv, text, op.name, op.avatar_url, suspect)
    text += EDITED
    post = await q.post_of_message(ctx.db, conv.id, op.message_id)
    if post is not None and post[0] == conv.channel_id and len(text) <= SLACK_TEXT_LIMIT:
        try:
            await ctx.web.update(post[0], post[1], text)
            return await ctx.finish(row, touch=conv.id, posted=post)
        except Refused as exc:
            if exc.code not in slack_errors.POST_GONE:
                raise
            log.info("edited post is gone; posting the edit", extra={"row": row.id})
    return await _as_customer(ctx, row, conv, text, op.name, op.avatar_url, suspect)


async def _as_customer(
    ctx: Context,
    row: OutboxRow,
    conv: Conversation,
    text: str,
    name: str,
    avatar_url: str | None,
    suspect: bool,
    first: bool = False,
) -> list[OutboxRow]:
    """Post Slack text under the customer's name, split at Slack's limit, into the
    conversation's channel (reopened first if it turns out archived or deleted); the
    ``first`` post of a conversation carries the customer's card."""
    channel = live_channel(conv)
    extra: dict[str, Any] = {"username": name, "icon_url": avatar_url}
    # The first post carries the card in its blocks, whose text holds less than a post's.
    chunks = split_text(text, SECTION_TEXT_LIMIT if first else SLACK_TEXT_LIMIT)
    ts = None
    for index, chunk in enumerate(chunks):
        key = f"{row.id}.{index}"
        if first and index == 0:
            extra["blocks"] = messages.first_post(chunk, conv, ctx.label(conv))
        else:
            extra.pop("blocks", None)
        try:
            ts = await ctx.post(channel, chunk, key, suspect, row, **extra)
        except Refused as exc:
            if exc.code not in slack_errors.CHANNEL_GONE:
                raise
            log.info("channel unusable; reopening", extra={"channel": channel})
            conv, channel = await recover(ctx, conv, row, suspect)
            ts = await ctx.post(channel, chunk, key, suspect, row, **extra)
    delivered = Delivered(conv.source, max(0.0, ctx.clock() - row.created_at))
    # An edit updates one post; a message that took several is posted again instead.
    posted = (channel, ts) if ts is not None and len(chunks) == 1 else None
    return await ctx.finish(row, touch=conv.id, delivered=delivered, posted=posted)


async def recover(
    ctx: Context, conv: Conversation, row: OutboxRow, suspect: bool
) -> tuple[Conversation, ChannelId]:
    """The channel was archived or deleted and no event said so: do what the core says."""
    for step in rules.on_channel_lost(conv).ops:
        match step:
            case ReopenChannel(previous_channel=previous):
                await channels.reopen(ctx, conv, previous, f"{row.id}", suspect, row)
                conv = await ctx.conversation(conv.id)
            case NotifyDispatch(reopened=reopened):
                await notify(ctx, conv, reopened, f"{row.id}:notify", suspect, row)
    return conv, live_channel(conv)


async def set_topic(ctx: Context, row: OutboxRow, op: SetTopic, suspect: bool) -> list[OutboxRow]:
    """The channel's topic is the customer's card (setting it twice does no harm)."""
    conv = await ctx.conversation(row.conversation_id)
    if conv.channel_id is not None:
        with unless_gone(row, "topic"):
            await ctx.web.set_topic(conv.channel_id, messages.card(conv, ctx.label(conv)))
    return await ctx.finish(row)


async def notify_dispatch(
    ctx: Context, row: OutboxRow, op: NotifyDispatch, suspect: bool
) -> list[OutboxRow]:
    conv = await ctx.conversation(row.conversation_id)
    if conv.channel_id is None:
        # The channel could not be created: that is reported on its own.
        log.info("no channel; skipped", extra={"row": row.id, "kind": row.kind})
    else:
        await notify(ctx, conv, op.reopened, f"{row.id}", suspect, row)
    return await ctx.finish(row)


async def notify(
    ctx: Context, conv: Conversation, reopened: bool, key: str, suspect: bool, row: OutboxRow
) -> None:
    """Post the dispatch notice, and keep where it is: claims update it in place."""
    message = await claims.dispatch_message(ctx, conv, reopened)
    where, ts = await ctx.post_dispatch(message, key, suspect, row)
    await persist(
        ctx.db,
        lambda tx: q.set_dispatch_notice(tx, conv.id, where, ts, reopened),
        what="dispatch notice",
    )


async def post_notice(
    ctx: Context, row: OutboxRow, op: PostNotice, suspect: bool
) -> list[OutboxRow]:
    """Post a notice, split like customer text; a Send again button goes on the last part."""
    conv = await ctx.conversation(row.conversation_id)
    channel = live_channel(conv)
    limit = SECTION_TEXT_LIMIT if op.resend_of else SLACK_TEXT_LIMIT
    chunks = split_text(op.text, limit)
    extra: dict[str, Any] = {}
    if op.username:
        extra.update(username=op.username, icon_url=op.icon_url)
    with unless_gone(row, "notice"):
        for index, chunk in enumerate(chunks):
            resend = op.resend_of if index == len(chunks) - 1 else None
            blocks = messages.with_resend(chunk, resend) if resend else None
            key = f"{row.id}" if index == 0 else f"{row.id}.{index}"
            await ctx.post(channel, chunk, key, suspect, row, blocks=blocks, **extra)
    return await ctx.finish(row)


async def report_parked(
    ctx: Context, row: OutboxRow, op: ReportParked, suspect: bool
) -> list[OutboxRow]:
    await ctx.post_dispatch(messages.parked(op), f"{row.id}", suspect, row)
    return await ctx.finish(row)


async def report_outage(
    ctx: Context, row: OutboxRow, op: ReportOutage, suspect: bool
) -> list[OutboxRow]:
    await ctx.post_dispatch(messages.outage(op), f"{row.id}", suspect, row)
    return await ctx.finish(row)


async def report_digest(
    ctx: Context, row: OutboxRow, op: ReportDigest, suspect: bool
) -> list[OutboxRow]:
    """The day's figures, read now, into dispatch."""
    now = ctx.clock()
    day = await figures.window(ctx.db, now - DAY)
    week = await figures.window(ctx.db, now - 7 * DAY)
    waiting, total = await figures.unanswered(ctx.db, limit=5)
    message = messages.digest(day, week, waiting, total, now)
    await ctx.post_dispatch(message, f"{row.id}", suspect, row)
    return await ctx.finish(row)


async def report_input(
    ctx: Context, row: OutboxRow, op: ReportInput, suspect: bool
) -> list[OutboxRow]:
    """Post the kind's notice the first time; later, update it with the new count."""
    kind = await persist(
        ctx.db, lambda tx: q.take_kind_report(tx, op.origin, op.what), what="report"
    )
    if kind is not None:
        message = messages.parked_input(kind)
        if kind.notice_channel and kind.notice_ts:
            try:
                text, blocks = message
                await ctx.web.update(kind.notice_channel, kind.notice_ts, text, blocks=blocks)
                return await ctx.finish(row)
            except Refused as exc:
                if exc.code not in slack_errors.POST_GONE:
                    raise
        channel, ts = await ctx.post_dispatch(message, f"{row.id}", suspect, row)
        await persist(
            ctx.db,
            lambda tx: q.set_kind_notice(tx, op.origin, op.what, channel, ts),
            what="report",
        )
    return await ctx.finish(row)


async def answer_privately(
    ctx: Context, row: OutboxRow, op: AnswerPrivately, suspect: bool
) -> list[OutboxRow]:
    """Answer whoever used a shortcut, through its response URL. Slack keeps one for half
    an hour: one it no longer takes is dropped, as the answer no longer helps."""
    try:
        await ctx.files.answer(op.response_url, op.text)
    except Refused as exc:
        log.warning("private answer dropped", extra={"row": row.id, "error": str(exc)})
    return await ctx.finish(row)


CUSTOMER_MESSAGE = Handler(
    post_customer_message,
    lambda op, conv: (
        f"a message from {messages.who(conv)}{messages.where(conv)}",
        escape_for_slack(op.text),
    ),
)
TOPIC = Handler(set_topic, lambda op, conv: (f"the topic of{messages.where(conv)}", ""))
CUSTOMER_EDIT = Handler(
    edit_customer_message,
    lambda op, conv: (
        f"an edited message from {messages.who(conv)}{messages.where(conv)}",
        escape_for_slack(op.text),
    ),
)
DISPATCH_NOTICE = Handler(
    notify_dispatch,
    lambda op, conv: (f"the dispatch notice for {messages.who(conv)}{messages.where(conv)}", ""),
)
NOTICE = Handler(post_notice, lambda op, conv: (f"a notice{messages.where(conv)}", op.text))
PARKED_REPORT = Handler(report_parked, lambda op, conv: ("a report of a set-aside item", op.what))
INPUT_REPORT = Handler(
    report_input,
    lambda op, conv: (f"the report of {op.what} from {op.origin.capitalize()}", ""),
)
DIGEST = Handler(report_digest, lambda op, conv: (f"the digest of {op.day}", ""))
PRIVATE_ANSWER = Handler(answer_privately, lambda op, conv: ("a private answer", op.text))
OUTAGE_REPORT = Handler(
    report_outage, lambda op, conv: (f"the notice that {op.system} is back", "")
)
