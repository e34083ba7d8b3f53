"""Typed identifiers, so an ID from one side cannot be passed where the other side's is expected."""

from typing import NewType

ChannelId = NewType("ChannelId", str)
"""A Slack conversation ID (``C…`` or ``G…``). Conversations are mapped by ID, never by name."""

SlackUserId = NewType("SlackUserId", str)
"""A Slack user ID (``U…`` or ``W…``)."""

MessageTs = NewType("MessageTs", str)
"""A Slack message timestamp, the message's ID within its channel."""

EnvelopeId = NewType("EnvelopeId", str)
"""A Socket Mode envelope ID."""

SourceName = NewType("SourceName", str)
"""The name of an upstream source as configured under ``[sources]`` (e.g. ``telegram``)."""

UpstreamUserId = NewType("UpstreamUserId", str)
"""The customer's ID on the upstream (for Telegram, the private chat ID), as text."""

ConversationId = NewType("ConversationId", int)
"""skbridge's own conversation row ID."""

OutboxId = NewType("OutboxId", int)
"""skbridge's own outbox row ID."""
