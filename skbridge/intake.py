"""Everything that arrives is made durable here, with the work it causes, in one transaction.

A Telegram batch is stored together with the offset that confirms it; a Slack envelope
is stored (deduplicated) before it is acked. A value the database cannot take is
malformed input: only the item holding it is parked, so a batch or an envelope that
Slack or Telegram delivers again cannot fail the same way forever. The decisions come from
:mod:`skbridge.core.rules`; this module only reads state, asks the rules, and writes
the plan. It never calls Slack or an upstream.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from skbridge.core import claims, rules
from skbridge.core.model import (
    Announce,
    AnswerPrivately,
    ChannelEvent,
    Conversation,
    CustomerMessage,
    InviteToChannel,
    Op,
    PostCustomerMessage,
    ReportInput,
    SendToCustomer,
    Shortcut,
    SlashCommand,
    TellPrivately,
    op_from_row,
)
from skbridge.core.states import RESENDABLE, ConvState
from skbridge.core.text import escape_for_slack, escape_unencodable
from skbridge.errors import StoreUnavailable, StoreUnusable, TooLate, Unstorable
from skbridge.ids import ChannelId, SlackUserId, SourceName
from skbridge.slack import envelopes, messages
from skbridge.slack.envelopes import Handled, Received
from skbridge.store import Store, Tx, figures
from skbridge.store import queries as q
from skbridge.store.persist import until_stored
from skbridge.store.queries import OutboxRow
from skbridge.upstreams import Arrival

log = logging.getLogger(__name__)

Submit = Callable[[list[OutboxRow]], None]
UNRETRIED = ("slash_commands", "interactive")
"""Envelope types Slack does not deliver again: an ack after its 3 s deadline is a lie."""
ACK_BUDGET = 2.0
"""Seconds from reading such an envelope to committing it, well under Slack's 3 s."""


def _said(msg: CustomerMessage) -> str:
    """The transcript's line for a customer message (Slack text): a file by its name."""
    text = escape_for_slack(msg.text)
    if msg.attachment is not None:
        text = f"[{msg.attachment.kind}: {escape_for_slack(msg.attachment.name)}] {text}"
    return text.strip() + (" _(edited)_" if msg.edited else "")


@dataclass(frozen=True, slots=True)
class _Envelope:
    envelope: dict[str, Any]
    key: str
    parsed: envelopes.Parsed
    deadline: float | None
    """When its commit must be done by (event loop clock), for what Slack does not retry."""


def cursor_key(source: SourceName) -> str:
    return f"cursor:{source}"


class Intake:
    def __init__(
        self,
        db: Store,
        submit: Submit,
        *,
        clock: Callable[[], float] = time.time,
        on_store_state: Callable[[str | None], None] = lambda problem: None,
        dispatch: Callable[[], ChannelId | None] = lambda: None,
    ) -> None:
        self._db = db
        self._dispatch = dispatch
        self._submit = submit
        self._clock = clock
        self._on_store_state = on_store_state
        self.fences: dict[SourceName, Callable[[Tx], Awaitable[None]]] = {}
        """Per source, a check that this instance still holds its poller's lease, run in
        the transaction that stores a batch (LeaseLost: the batch is not stored)."""

    # --- upstreams ------------------------------------------------------------------------

    async def upstream_batch(
        self, source: SourceName, arrivals: list[Arrival], cursor: str | None
    ) -> None:
        """Store a batch and the source's new cursor; waits out a full or locked database."""
        rows = await until_stored(
            lambda: self._store_batch_or_park(source, arrivals, cursor),
            what="upstream batch",
            on_problem=self._on_store_state,
        )
        self._submit(rows)

    async def _store_batch_or_park(
        self, source: SourceName, arrivals: list[Arrival], cursor: str | None
    ) -> list[OutboxRow]:
        try:
            return await self._store_batch(source, arrivals, cursor)
        except Unstorable as exc:
            # The source's parser let a value through that SQLite refuses: find it.
            log.error(
                "upstream batch holds a value that cannot be stored", extra={"error": str(exc)}
            )
            return await self._store_batch(source, arrivals, cursor, apart=True)

    async def _store_batch(
        self,
        source: SourceName,
        arrivals: list[Arrival],
        cursor: str | None,
        *,
        apart: bool = False,
    ) -> list[OutboxRow]:
        now = self._clock()
        rows: list[OutboxRow] = []
        async with self._db.write() as tx:
            if fence := self.fences.get(source):
                await fence(tx)
            for arrival in arrivals:
                if apart:
                    rows += await self._arrival_apart(tx, source, arrival, now)
                else:
                    rows += await self._arrival(tx, source, arrival, now)
            if cursor is not None:
                await q.set_setting(tx, cursor_key(source), cursor)
            posted = sum(r.kind == PostCustomerMessage.kind for r in rows)
            if posted:
                labels = {"direction": "in", "source": str(source)}
                await figures.count(tx, "skbridge_messages_total", labels, posted)
        return rows

    async def _arrival(
        self, tx: Tx, source: SourceName, arrival: Arrival, now: float
    ) -> list[OutboxRow]:
        if not await q.remember(tx, arrival.key, now):
            return []
        if arrival.ignored:
            log.info("upstream item ignored", extra={"key": arrival.key, "kind": arrival.kind})
            await q.count_ignored(tx, str(source), arrival.kind, now, arrival.sender)
            return []
        if arrival.message is None:
            error = arrival.error or "unreadable"
            log.warning("upstream item parked", extra={"key": arrival.key, "error": error})
            return await self._park(
                tx, str(source), arrival.kind, arrival.raw, error, now, arrival.sender
            )
        return await self._customer_message(tx, arrival.message, now)

    async def _arrival_apart(
        self, tx: Tx, source: SourceName, arrival: Arrival, now: float
    ) -> list[OutboxRow]:
        """One arrival inside a savepoint: a value the store refuses parks this arrival only."""
        try:
            async with tx.savepoint():
                return await self._arrival(tx, source, arrival, now)
        except Unstorable as exc:
            key, raw = escape_unencodable(arrival.key), escape_unencodable(arrival.raw)
            unstorable = Arrival(key, None, raw, str(exc), kind="text that cannot be stored")
            return await self._arrival(tx, source, unstorable, now)

    async def _customer_message(self, tx: Tx, msg: CustomerMessage, now: float) -> list[OutboxRow]:
        customer = msg.customer
        conv = await q.conversation_of_customer(tx, customer.source, customer.upstream_id)
        plan = rules.on_customer_message(conv, msg)
        reopened = conv is not None
        if conv is None:
            assert plan.new_state is not None
            conv = await q.insert_conversation(tx, customer, plan.new_state, now)
            log.info("new conversation", extra={"conversation": conv.id, "source": conv.source})
        else:
            if rules.customer_changed(conv, customer):
                await q.update_customer(tx, conv.id, customer)
            if plan.new_state is not None:
                await q.update_conversation(tx, conv.id, state=plan.new_state, now=now)
        if plan.new_state in (ConvState.OPENING, ConvState.REOPENING):
            await figures.open_episode(tx, conv.id, now, reopened)
        await q.add_said(tx, conv.id, q.Said(now, False, customer.name, _said(msg)))
        if not msg.edited:  # an edit is no new message, and asks for no new answer
            await figures.customer_said(tx, conv.id, now)
        if msg.context is not None:
            await q.set_reply_context(tx, conv.id, msg.context, now)
        return await q.enqueue(tx, conv.id, plan.ops, now)

    async def _park(
        self,
        tx: Tx,
        origin: str,
        what: str,
        raw: str,
        error: str,
        now: float,
        sender: str | None = None,
    ) -> list[OutboxRow]:
        """Keep input that cannot be carried; dispatch hears of each kind once, counted."""
        if not await q.park_input(tx, origin, what, raw, error, now, sender):
            return []  # a report of this kind is on its way and will count this one too
        return await q.enqueue(tx, None, [ReportInput(origin=origin, what=what)], now)

    # --- Slack ----------------------------------------------------------------------------

    async def slack_batch(self, group: Sequence[Received]) -> list[Handled]:
        """Store envelopes that arrived together, and their consequences, in one
        transaction (a group commit: one fsync for them all); returns how each went.

        An envelope the daemon does not act on is acked without a write: doing nothing
        twice needs no deduplication. When the database cannot take the group, each is
        ``failed`` with StoreUnavailable: the caller must then not ack it, so Slack
        delivers it again. A command or a click, which Slack does not deliver again, is
        stored within ``ACK_BUDGET`` of when it was read or not at all (TooLate): once
        Slack has told the user it failed, it must not happen anyway. A group that would
        miss one of its deadlines is stored envelope by envelope instead, so that only
        what is late is refused.
        """
        handled: list[Handled] = [Handled() for _ in group]
        items: list[tuple[int, _Envelope]] = []
        for index, (envelope, received) in enumerate(group):
            key = envelopes.dedupe_key(envelope)
            if key is None:
                log.warning(
                    "envelope without an id", extra={"envelope": envelope.get("envelope_id")}
                )
                continue
            parsed = envelopes.parse(envelope)
            if isinstance(parsed, envelopes.Ignored):
                continue
            deadline = received + ACK_BUDGET if envelope.get("type") in UNRETRIED else None
            items.append((index, _Envelope(envelope, key, parsed, deadline)))
        if not items:
            return handled
        try:
            stored = await self._store_group([item for _, item in items])
        except TooLate:
            if len(items) == 1:
                raise
            stored = [await self._store_alone(item) for _, item in items]
        for (index, _), outcome in zip(items, stored, strict=True):
            handled[index] = outcome
        return handled

    async def envelope(
        self, envelope: dict[str, Any], received: float | None = None
    ) -> dict[str, Any] | None:
        """Store one envelope read at ``received`` (default: now), as :meth:`slack_batch`
        does; returns its ack's payload, or raises why it was not stored."""
        if received is None:
            received = asyncio.get_running_loop().time()
        [handled] = await self.slack_batch([(envelope, received)])
        if handled.failed is not None:
            raise handled.failed
        return handled.ack

    async def _store_alone(self, item: _Envelope) -> Handled:
        try:
            [handled] = await self._store_group([item])
        except StoreUnavailable as exc:
            return Handled(failed=exc)
        return handled

    async def _store_group(self, items: list[_Envelope]) -> list[Handled]:
        try:
            return await self._store_envelopes(items)
        except (StoreUnavailable, StoreUnusable):
            raise
        except Exception:
            # One of them holds what the store refuses, or trips a bug: each in a savepoint.
            return await self._store_envelopes(items, apart=True)

    async def _store_envelopes(
        self, items: list[_Envelope], *, apart: bool = False
    ) -> list[Handled]:
        """One transaction for ``items``; ``apart``: each in a savepoint of its own."""
        deadlines = [item.deadline for item in items if item.deadline is not None]
        now = self._clock()
        rows: list[OutboxRow] = []
        handled: list[Handled] = []
        store = self._store_apart if apart else self._store_envelope
        async with self._db.write(min(deadlines, default=None)) as tx:
            for item in items:
                outcome, more = await store(tx, item, now)
                handled.append(outcome)
                rows += more
        self._submit(rows)
        return handled

    async def _store_apart(
        self, tx: Tx, item: _Envelope, now: float
    ) -> tuple[Handled, list[OutboxRow]]:
        """One envelope in a savepoint: what goes wrong with it stays with it."""
        try:
            async with tx.savepoint():
                return await self._store_envelope(tx, item, now)
        except Unstorable as exc:
            # envelopes.parse let a value through the store refuses; retries would too.
            what = "an event that cannot be stored"
            return Handled(), await self._park_envelope(tx, item.envelope, str(exc), what, now)
        except (StoreUnavailable, StoreUnusable):
            raise
        except Exception as exc:  # a bug: the caller sets this one aside
            return Handled(failed=exc), []

    async def park_envelope(
        self, envelope: dict[str, Any], error: str, what: str = "an event skbridge failed on"
    ) -> None:
        """Set an envelope aside, escaped so that it stores; remembered, so that a retry of
        it is acked as a duplicate instead of failing again. Raises StoreError."""
        async with self._db.write() as tx:
            rows = await self._park_envelope(tx, envelope, error, what, self._clock())
        self._submit(rows)

    async def _park_envelope(
        self, tx: Tx, envelope: dict[str, Any], error: str, what: str, now: float
    ) -> list[OutboxRow]:
        log.warning(
            "envelope parked", extra={"envelope": envelope.get("envelope_id"), "error": error}
        )
        if (key := envelopes.dedupe_key(envelope)) is not None:
            await q.remember(tx, key, now)
        raw = json.dumps(envelope)[:100_000]
        return await self._park(tx, "slack", what, raw, escape_unencodable(error), now)

    async def _store_envelope(
        self, tx: Tx, item: _Envelope, now: float
    ) -> tuple[Handled, list[OutboxRow]]:
        envelope_id = item.envelope.get("envelope_id")
        if not await q.remember(tx, item.key, now):
            log.info("duplicate envelope", extra={"envelope": envelope_id, "key": item.key})
            return Handled(await q.stored_ack(tx, item.key)), []
        ack: dict[str, Any] | None = None
        rows: list[OutboxRow] = []
        match item.parsed:
            case envelopes.Malformed(error=error):
                log.warning("envelope parked", extra={"envelope": envelope_id, "error": error})
                raw = json.dumps(item.envelope)[:100_000]
                what = "an event skbridge cannot read"
                rows = await self._park(tx, "slack", what, raw, error, now)
            case envelopes.Ignored():
                pass
            case SlashCommand() as command:
                ack, rows = await self._command(tx, command, now)
                if ack is not None:
                    await q.store_ack(tx, item.key, ack)
            case Shortcut() as shortcut:
                rows = await self._shortcut(tx, shortcut, now)
            case ChannelEvent() as event:
                await self._channel_event(tx, event, now)
            case envelopes.JoinClicked(channel_id=channel, user_id=user):
                conv = await q.conversation_of_channel(tx, channel)
                op = InviteToChannel(channel_id=channel, user_id=user)
                rows = await q.enqueue(tx, conv.id if conv else None, [op], now)
            case envelopes.ResendClicked() as click:
                rows = await self._resend(tx, click, now)
            case envelopes.ClaimClicked() as click:
                rows = await self._claim_clicked(tx, click, now)
            case envelopes.KeepOpenClicked(channel_id=channel, user_id=user):
                rows = await self._keep_open(tx, channel, user, now)
        return Handled(ack), rows

    async def _command(
        self, tx: Tx, command: SlashCommand, now: float
    ) -> tuple[dict[str, Any] | None, list[OutboxRow]]:
        conv = await q.conversation_of_channel(tx, command.channel_id)
        plan = rules.on_command(conv, command)
        rows: list[OutboxRow] = []
        if conv is not None and plan.ops:
            ops = plan.ops
            if any(isinstance(op, SendToCustomer) for op in ops):
                ops += await self._helping(tx, conv, command.user_id)
            await self._apply_claim(tx, conv, plan.claim)
            rows = await q.enqueue(tx, conv.id, ops, now)
            await q.update_conversation(tx, conv.id, state=None, now=now)
        log.info(
            "command",
            extra={
                "envelope": command.envelope_id,
                "channel": command.channel_id,
                "accepted": bool(plan.ops),
            },
        )
        if plan.reply is None:
            return None, rows
        ack: dict[str, Any] = {"response_type": "ephemeral", "text": plan.reply}
        if plan.claim is not None and plan.claim.offer_take_over:
            ack["blocks"] = messages.take_over(plan.reply, command.channel_id)
        return ack, rows

    async def _helping(self, tx: Tx, conv: Conversation, user: SlackUserId) -> tuple[Op, ...]:
        """The note that someone answered another's conversation, the first time only."""
        note = claims.helping_note(conv, user, noted=False)
        if note is None or not await q.note_helper(tx, conv.id, user):
            return ()
        return (note,)

    async def _apply_claim(
        self, tx: Tx, conv: Conversation, decision: claims.Decision | None
    ) -> None:
        if decision is not None and decision.changed:
            await q.set_owner(tx, conv.id, decision.owner)
            log.info("owner", extra={"conversation": conv.id, "owner": decision.owner or "-"})

    async def _keep_open(
        self, tx: Tx, channel: ChannelId, user: SlackUserId, now: float
    ) -> list[OutboxRow]:
        """Keep open counts as speaking: the idle warning stands no more."""
        conv = await q.conversation_of_channel(tx, channel)
        if conv is None or conv.channel_id != channel:
            return []
        await q.update_conversation(tx, conv.id, state=None, now=now)
        return await q.enqueue(tx, conv.id, [Announce("kept_open", user)], now)

    async def _claim_clicked(
        self, tx: Tx, click: envelopes.ClaimClicked, now: float
    ) -> list[OutboxRow]:
        conv = await q.conversation_of_channel(tx, click.channel_id)
        if conv is None:
            return []
        act = claims.take_over if click.take_over else claims.claim
        decision = act(conv, click.user_id)
        await self._apply_claim(tx, conv, decision)
        ops: list[Op] = list(decision.ops)
        if decision.reply:
            offer = click.channel_id if decision.offer_take_over else None
            ops.append(TellPrivately(click.where, click.user_id, decision.reply, offer))
        return await q.enqueue(tx, conv.id, ops, now)

    async def _shortcut(self, tx: Tx, shortcut: Shortcut, now: float) -> list[OutboxRow]:
        """Send to customer: the reply goes in the conversation's lane; a refusal is said
        privately, through the shortcut's response URL (its ack carries no answer)."""
        conv = await q.conversation_of_channel(tx, shortcut.channel_id)
        plan = rules.on_shortcut(conv, shortcut)
        rows: list[OutboxRow] = []
        if conv is not None and plan.ops:
            ops = plan.ops + await self._helping(tx, conv, shortcut.user_id)
            rows = await q.enqueue(tx, conv.id, ops, now)
            await q.update_conversation(tx, conv.id, state=None, now=now)
        if plan.reply is not None:
            answer = AnswerPrivately(response_url=shortcut.response_url, text=plan.reply)
            rows += await q.enqueue(tx, None, [answer], now)
        log.info(
            "shortcut",
            extra={
                "envelope": shortcut.envelope_id,
                "channel": shortcut.channel_id,
                "files": len(shortcut.files),
                "accepted": bool(plan.ops),
            },
        )
        return rows

    async def _channel_event(self, tx: Tx, event: ChannelEvent, now: float) -> None:
        conv = await q.conversation_of_channel(tx, event.channel_id)
        if conv is None:
            return
        plan = rules.on_channel_event(conv, event)
        await self._apply_claim(tx, conv, plan.claim)
        if plan.new_name:
            await q.rename_channel(tx, event.channel_id, plan.new_name)
        if plan.new_state is not None:
            await q.update_conversation(tx, conv.id, state=plan.new_state, now=now)
            log.info(
                "conversation state",
                extra={
                    "conversation": conv.id,
                    "channel": event.channel_id,
                    "state": str(plan.new_state),
                },
            )

    async def _resend(self, tx: Tx, click: envelopes.ResendClicked, now: float) -> list[OutboxRow]:
        """Send a parked, failed or uncertain item again: one click, one send."""
        original = await q.outbox_row(tx, click.row_id)
        if original is None or original.state not in RESENDABLE:
            return []  # already resent, or never ours
        if not await self._click_belongs(tx, click, original):
            log.warning(
                "send again clicked outside its channel; ignored",
                extra={"row": original.id, "channel": click.channel_id, "user": click.user_id},
            )
            return []
        try:
            op = op_from_row(original.kind, original.payload)
        except ValueError:
            return []
        if isinstance(op, SendToCustomer):
            op = dataclasses.replace(op, resend_of=original.id)
        if not await q.take_for_resend(tx, original.id, now):
            return []  # another instance took the same click first
        log.info("sent again", extra={"row": original.id, "user": click.user_id})
        return await q.enqueue(tx, original.conversation_id, [op], now)

    async def _click_belongs(self, tx: Tx, click: envelopes.ResendClicked, row: OutboxRow) -> bool:
        """A button works only where skbridge put it: the item's channel, or dispatch."""
        if click.channel_id == self._dispatch():
            return True
        conv = await q.conversation_of_channel(tx, click.channel_id)
        return conv is not None and conv.id == row.conversation_id
