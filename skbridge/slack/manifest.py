"""The Slack app manifest: exactly the scopes and events the code uses, Socket Mode on."""

from __future__ import annotations

import json
from typing import Any

from skbridge.slack.envelopes import COMMAND, SHORTCUT

BOT_SCOPES = (
    "channels:history",  # conversations.history: find our own post after an ambiguous failure
    "channels:join",  # conversations.join: the dispatch channel, a reopened channel
    "channels:manage",  # conversations.create / invite for customer channels
    "channels:read",  # conversations.info / list, channel_* events
    "chat:write",  # chat.postMessage / postEphemeral
    "chat:write.customize",  # post under the customer's name and picture
    "commands",  # /sk
    "files:read",  # files.info, url_private: agents' files sent to customers; shares
    "files:write",  # files.getUploadURLExternal / completeUploadExternal: customers' files
    "groups:read",  # find a private dispatch channel by name
    "users:read",  # users.info / users.list: agent names, the primary owner
    "users:read.email",  # the agent's email, for Gravatar
)
USER_SCOPES = ("channels:write",)
"""Only for the optional user token: bots cannot unarchive channels."""
BOT_EVENTS = ("channel_archive", "channel_deleted", "channel_rename", "channel_unarchive")


def manifest(name: str = "skbridge") -> dict[str, Any]:
    return {
        "display_information": {
            "name": name,
            "description": "Customer conversations, one channel each. Reply with /sk.",
            "background_color": "#1d3b53",
        },
        "features": {
            "bot_user": {"display_name": name, "always_online": True},
            "slash_commands": [
                {
                    "command": COMMAND,
                    "description": "Send a message to this channel's customer",
                    "usage_hint": "<message to the customer>",
                    "should_escape": True,
                }
            ],
            "shortcuts": [
                {
                    "name": "Send to customer",
                    "type": "message",
                    "callback_id": SHORTCUT,
                    "description": "Send this message and its files to the channel's customer",
                }
            ],
        },
        "oauth_config": {"scopes": {"bot": list(BOT_SCOPES), "user": list(USER_SCOPES)}},
        "settings": {
            "event_subscriptions": {"bot_events": list(BOT_EVENTS)},
            "interactivity": {"is_enabled": True},
            "org_deploy_enabled": False,
            "socket_mode_enabled": True,
            "token_rotation_enabled": False,
        },
    }


def manifest_json() -> str:
    return json.dumps(manifest(), indent=2)
