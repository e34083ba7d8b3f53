"""Slack's error codes, sorted once: what each means to skbridge.

Every module that reacts to a particular Slack error asks this table, so that a code
means the same thing everywhere (a token Slack refuses is refused at start, in
``check`` and by Socket Mode alike).
"""

from __future__ import annotations

TRANSIENT = frozenset({"internal_error", "fatal_error", "service_unavailable", "request_timeout"})
"""Slack's own trouble, whatever the request: it may or may not have taken effect."""

BAD_TOKEN = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "not_allowed_token_type",
    }
)
"""The token is wrong, revoked or of the wrong kind: a config error, not a retry."""

MISSING_SCOPE = frozenset({"missing_scope"})
"""The app lacks a scope the call needs: reinstall it from the manifest."""

CHANNEL_GONE = frozenset({"is_archived", "channel_not_found"})
"""The channel can no longer be posted in: archived (the bot was removed) or deleted."""

POST_GONE = CHANNEL_GONE | {"message_not_found", "cant_update_message"}
"""A post of ours can no longer be updated: post a fresh one instead."""

SOCKET_REFUSED = frozenset({"too_many_websockets", "link_disabled"})
"""Socket Mode ``disconnect`` reasons that mean: do not come straight back."""
