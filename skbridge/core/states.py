"""The state machines: a conversation's, an outbox row's and a reply part's.

Each is an enum with its allowed moves as data, in the manner of h11's state table:
the edges (intake, the deliverer, the store) ask here whether a move is allowed and
which states count as unfinished or resendable, instead of spelling states out.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


class ConvState(StrEnum):
    OPENING = "opening"
    """The first channel is being created."""
    OPEN = "open"
    ARCHIVED = "archived"
    """The team archived the channel: done for now."""
    REOPENING = "reopening"
    """The customer wrote again; the channel is being unarchived or continued."""
    GONE = "gone"
    """The channel was deleted (or could not be created); the next message opens one."""


CONV_MOVES: Mapping[ConvState, frozenset[ConvState]] = {
    ConvState.OPENING: frozenset({ConvState.OPEN, ConvState.GONE}),
    ConvState.OPEN: frozenset({ConvState.OPEN, ConvState.ARCHIVED, ConvState.GONE}),
    ConvState.ARCHIVED: frozenset({ConvState.OPEN, ConvState.REOPENING, ConvState.GONE}),
    ConvState.REOPENING: frozenset({ConvState.OPEN, ConvState.ARCHIVED, ConvState.GONE}),
    ConvState.GONE: frozenset({ConvState.OPENING, ConvState.OPEN, ConvState.GONE}),
}
"""Where a conversation may go from each state (OPEN to OPEN: a missed archive, mended)."""


class OutboxState(StrEnum):
    PENDING = "pending"
    """Waiting for its lane."""
    SENDING = "sending"
    """On its way to the customer (rows of older versions; parts now say so)."""
    DONE = "done"
    UNCERTAIN = "uncertain"
    """Sent to an upstream without idempotency, with no answer: shown, never re-sent."""
    FAILED = "failed"
    """The upstream refused the reply; the channel was told."""
    PARKED = "parked"
    """Set aside after a permanent error (or repeated crashes); reported."""
    RESENT = "resent"
    """Someone pressed Send again: a new row carries it."""


OUTBOX_MOVES: Mapping[OutboxState, frozenset[OutboxState]] = {
    OutboxState.PENDING: frozenset(
        {
            OutboxState.SENDING,
            OutboxState.DONE,
            OutboxState.UNCERTAIN,
            OutboxState.FAILED,
            OutboxState.PARKED,
        }
    ),
    OutboxState.SENDING: frozenset(
        {
            OutboxState.PENDING,
            OutboxState.DONE,
            OutboxState.UNCERTAIN,
            OutboxState.FAILED,
            OutboxState.PARKED,
        }
    ),
    OutboxState.UNCERTAIN: frozenset({OutboxState.RESENT}),
    OutboxState.FAILED: frozenset({OutboxState.RESENT}),
    OutboxState.PARKED: frozenset({OutboxState.RESENT}),
    OutboxState.DONE: frozenset(),
    OutboxState.RESENT: frozenset(),
}

UNFINISHED = frozenset(s for s in OutboxState if OutboxState.DONE in OUTBOX_MOVES[s])
"""States a row is carried out from (after a restart, too)."""

RESENDABLE = frozenset(s for s in OutboxState if OutboxState.RESENT in OUTBOX_MOVES[s])
"""States a Send again button acts on: one click, one send."""


def is_finished(state: OutboxState) -> bool:
    return state not in UNFINISHED


class PartState(StrEnum):
    """One part of a reply, each its own unit of delivery."""

    PENDING = "pending"
    SENDING = "sending"
    """Marked just before it went out: found so after a crash, it may have arrived."""
    DONE = "done"
    UNCERTAIN = "uncertain"
    FAILED = "failed"


ARRIVED = frozenset({PartState.DONE})
"""Parts a Send again leaves out."""
