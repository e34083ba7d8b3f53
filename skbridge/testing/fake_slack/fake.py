"""The :class:`FakeSlack` server: lifecycle plus "a human did something" helpers."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

from aiohttp import web

from skbridge.testing.lifecycle import Lifecycle

from .files import FilesMixin
from .state import Channel, Message, channel_name_error


class FakeSlack(FilesMixin, Lifecycle):
    """An in-process Slack (Web API + Socket Mode) on ``127.0.0.1``, for tests and demos.

    Point ``AsyncWebClient(base_url=fake.api_url)`` at it and use ``fake.bot_token`` /
    ``fake.app_token`` / ``fake.user_token``.  Rate limits are off unless ``post_rate``
    (chat.postMessage per channel, per second, ``post_burst`` capacity) or
    ``create_per_minute`` (conversations.create, burst 3) are given; they run on ``clock``.
    """

    def __init__(
        self,
        *,
        post_rate: float | None = None,
        post_burst: int = 4,
        create_per_minute: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.post_rate = post_rate
        self.post_burst = post_burst
        self.create_per_minute = create_per_minute
        self._clock = clock
        self._setup_state()
        self._setup_web()
        self._setup_socket()
        self._setup_files()
        self._runner: web.AppRunner | None = None

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on an ephemeral port of 127.0.0.1."""
        if self._runner is not None:
            raise RuntimeError("FakeSlack already started")
        self._release_hung = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_get("/link/", self._handle_link)
        app.router.add_get("/link", self._handle_link)
        self._add_file_routes(app)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runner = runner
        self._port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        """Release hung requests, close every socket and stop listening."""
        if self._runner is None:
            return
        self._release_hung.set()
        await self._close_sockets()
        await self._runner.cleanup()
        self._runner = None
        self._port = None
        self._notify()

    @property
    def api_url(self) -> str:
        """Web API base URL in slack_sdk's ``base_url`` form (trailing slash)."""
        return f"http://127.0.0.1:{self._require_port()}/api/"

    # -- acting as a human user ------------------------------------------------------------

    def _existing(self, channel_id: str) -> Channel:
        channel = self.channels.get(channel_id)
        if channel is None:
            raise ValueError(f"no channel {channel_id!r}")
        return channel

    async def _emit(self, event: dict[str, Any], *, bot_must_be_member: Channel | None) -> None:
        """Deliver a generated event if the app is subscribed to it (and would see it)."""
        if event["type"] not in self.event_subscriptions:
            return
        if bot_must_be_member is not None and self.bot_user_id not in bot_must_be_member.members:
            return
        await self.send_event(event)

    async def user_posts(
        self, channel_id: str, user_id: str, text: str, *, thread_ts: str | None = None
    ) -> str:
        """A human posts ``text``; the ``message`` event only reaches the app when the bot
        is a member of the channel, as with Slack's message.channels/groups events."""
        channel = self._existing(channel_id)
        if channel.is_archived:
            raise ValueError(f"channel {channel_id} is archived")
        ts = self._next_ts()
        channel.messages.append(
            Message(ts=ts, channel=channel_id, text=text, user=user_id, thread_ts=thread_ts)
        )
        self._notify()
        event: dict[str, Any] = {
            "type": "message",
            "channel": channel_id,
            "user": user_id,
            "text": text,
            "ts": ts,
            "event_ts": ts,
            "team": self.team_id,
            "client_msg_id": str(uuid.uuid4()),
            "channel_type": "group" if channel.is_private else "channel",
        }
        if thread_ts is not None:
            event["thread_ts"] = thread_ts
        await self._emit(event, bot_must_be_member=channel)
        return ts

    async def user_shares_file(
        self,
        channel_id: str,
        user_id: str,
        name: str,
        content: bytes,
        *,
        mimetype: str = "application/octet-stream",
        text: str = "",
        external: bool = False,
    ) -> tuple[str, str]:
        """A human uploads ``content`` into a channel, with ``text``; returns (ts, file ID).

        ``external`` makes it a linked file (Google Drive and the like): Slack holds no
        bytes of it. The ``message`` event reaches the app only when the bot is a member.
        """
        channel = self._existing(channel_id)
        file = self._new_file(name, name, mimetype, len(content), user_id)
        file.content, file.uploaded, file.completed, file.external = content, True, True, external
        ts = self._share(file, channel_id, text, user=user_id, bot=False)
        event: dict[str, Any] = {
            "type": "message",
            "subtype": "file_share",
            "channel": channel_id,
            "user": user_id,
            "text": text,
            "ts": ts,
            "files": [self._file_api(file)],
            "upload": True,
            "channel_type": "group" if channel.is_private else "channel",
        }
        await self._emit(event, bot_must_be_member=channel)
        return ts, file.id

    @staticmethod
    def _kind(channel: Channel, what: str) -> str:
        return f"{'group' if channel.is_private else 'channel'}_{what}"

    async def user_archives(self, channel_id: str, user_id: str) -> None:
        """A human archives the channel; like Slack, this removes the bot from it."""
        channel = self._existing(channel_id)
        channel.is_archived = True
        channel.members.discard(self.bot_user_id)
        self._notify()
        event = {
            "type": self._kind(channel, "archive"),
            "channel": channel_id,
            "user": user_id,
            "event_ts": self._next_ts(),
        }
        await self._emit(event, bot_must_be_member=None)

    async def user_unarchives(self, channel_id: str, user_id: str) -> None:
        """A human unarchives the channel; the bot is not re-added."""
        channel = self._existing(channel_id)
        channel.is_archived = False
        self._notify()
        event = {
            "type": self._kind(channel, "unarchive"),
            "channel": channel_id,
            "user": user_id,
            "event_ts": self._next_ts(),
        }
        await self._emit(event, bot_must_be_member=None)

    async def user_renames(self, channel_id: str, user_id: str, new_name: str) -> None:
        channel = self._existing(channel_id)
        error = channel_name_error(new_name)
        other = self.channel_by_name(new_name)
        if error is None and other is not None and other is not channel:
            error = "name_taken"
        if error is not None:
            raise ValueError(f"user_renames({new_name!r}): {error}")
        if new_name != channel.name:
            channel.previous_names.append(channel.name)
            channel.name = new_name
        self._notify()
        event = {
            "type": self._kind(channel, "rename"),
            "channel": {
                "id": channel_id,
                "name": new_name,
                "name_normalized": new_name,
                "created": channel.created,
                "is_channel": True,
                "is_mpim": False,
            },
            "event_ts": self._next_ts(),
        }
        await self._emit(event, bot_must_be_member=None)

    async def user_leaves(self, channel_id: str, user_id: str) -> None:
        channel = self._existing(channel_id)
        channel.members.discard(user_id)
        self._notify()
        event = {
            "type": "member_left_channel",
            "user": user_id,
            "channel": channel_id,
            "channel_type": "G" if channel.is_private else "C",
            "team": self.team_id,
            "event_ts": self._next_ts(),
        }
        await self._emit(event, bot_must_be_member=None)

    async def user_deletes(self, channel_id: str, user_id: str) -> None:
        """A human deletes the channel: it disappears (``channel_not_found``) and its name
        becomes free; it stays readable through :meth:`messages`."""
        channel = self._existing(channel_id)
        del self.channels[channel_id]
        self.deleted_channels[channel_id] = channel
        self._notify()
        event = {
            "type": self._kind(channel, "deleted"),
            "channel": channel_id,
            "actor_id": user_id,
            "event_ts": self._next_ts(),
        }
        await self._emit(event, bot_must_be_member=None)
