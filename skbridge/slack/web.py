"""Slack's Web API, as skbridge uses it.

Each call is one HTTPS POST on the daemon's aiohttp session, never retried here: a
blind retry of ``chat.postMessage`` can post twice, so the outbox retries by looking
first. Every failure is translated into skbridge's error tree here, and posts are
paced per channel at Slack's rate.

The calls are made directly rather than through slack_sdk's ``AsyncWebClient``: per
post, that client cost half as much CPU again as the HTTP request itself (building its
request and response objects, validating and logging), which is what a burst of
customer messages is bound by. The fakes the tests run against are checked with
slack_sdk (``tests/test_fake_slack*.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from skbridge import __version__
from skbridge.config import SlackConfig
from skbridge.errors import DeliveryError, MaybeSent, NotSent, RateLimited, Refused
from skbridge.health import Health
from skbridge.ids import ChannelId, MessageTs, SlackUserId
from skbridge.pacing import PaceFactory, local
from skbridge.slack import errors as slack_errors

log = logging.getLogger(__name__)

METADATA_EVENT = "skbridge_delivery"
"""``metadata.event_type`` of every post, whose payload carries the post's own key."""

SYSTEM = "Slack"
"""How outages of the Web API are named in ``STATUS=``, ``status`` and dispatch."""
POST_BURST = 3
TOPIC_LIMIT = 250
CREATE_BURST = 3

# Slack errors that mean "our fault, try again later" rather than "your request is bad".


@dataclass(frozen=True, slots=True)
class Identity:
    """Who the bot is, from ``auth.test``."""

    user_id: SlackUserId
    bot_id: str
    team_id: str
    team_url: str
    scopes: frozenset[str]


@dataclass(frozen=True, slots=True)
class SlackUser:
    id: SlackUserId
    name: str
    """The name people see: display name, else real name, else handle."""
    email: str | None
    image_url: str | None
    is_bot: bool


@dataclass(frozen=True, slots=True)
class SlackChannel:
    id: ChannelId
    name: str
    is_private: bool
    is_archived: bool
    is_member: bool
    creator: str


class SlackWeb:
    """The Web API calls skbridge makes, with pacing and error translation."""

    def __init__(
        self,
        config: SlackConfig,
        session: aiohttp.ClientSession,
        health: Health | None = None,
        *,
        pace: PaceFactory = local,
        serial: Callable[[], AbstractAsyncContextManager[None]] | None = None,
    ) -> None:
        self._session = session
        self._base = URL(config.api_url)
        self._urls: dict[str, URL] = {}
        self._timeout = aiohttp.ClientTimeout(total=config.request_timeout)
        self._bot = _Token(config.bot_token.get_secret_value())
        self._app = _Token(config.app_token.get_secret_value())
        self._user = _Token(config.user_token.get_secret_value()) if config.user_token else None
        self.posts = pace("slack:post", config.posts_per_second, POST_BURST)
        self.creations = pace("slack:create", config.channels_per_minute / 60, CREATE_BURST)
        self._create_lock = asyncio.Lock()
        self._serial = serial or contextlib.nullcontext
        self._watch = (health or Health()).watch(SYSTEM)

    @property
    def can_unarchive(self) -> bool:
        return self._user is not None

    async def _call(
        self, method: str, *, token: _Token | None = None, **params: Any
    ) -> dict[str, Any]:
        """Call ``method``; returns the response body or raises a DeliveryError."""
        with self._watch:
            data, headers = await self._request(method, token or self._bot, params)
        if method == "auth.test":
            data["_scopes"] = headers.get("x-oauth-scopes", "")
        return data

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Any other Web API method, with the bot token (the file calls of :mod:`.files`)."""
        return await self._call(method, **params)

    def _url(self, method: str) -> URL:
        url = self._urls.get(method)
        if url is None:
            url = self._urls[method] = self._base.join(URL(method))
        return url

    async def _request(
        self, method: str, token: _Token, params: dict[str, Any]
    ) -> tuple[dict[str, Any], CIMultiDictProxy[str]]:
        """One POST; the answer's body and headers if Slack says ``ok``, else raises."""
        if method in _JSON_METHODS:
            body: bytes | dict[str, str] = json.dumps(params).encode()
            headers = token.json
        else:
            body, headers = _form(params), token.form
        try:
            async with self._session.post(
                self._url(method), data=body, headers=headers, timeout=self._timeout
            ) as response:
                status, answer, raw = response.status, response.headers, await response.read()
        except aiohttp.ClientConnectorError as exc:
            raise NotSent("connect_failed", f"{method}: {exc.os_error}") from exc
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise MaybeSent("timeout", method) from exc
        except aiohttp.ClientError as exc:
            raise MaybeSent("transport", f"{method}: {type(exc).__name__}") from exc
        data = _json_object(raw)
        if status == 200 and data is not None and data.get("ok") is True:
            return data, answer
        raise _translate_error(method, status, data or {}, answer)

    # --- identity and people -----------------------------------------------------------

    async def auth_test(self) -> Identity:
        data = await self._call("auth.test")
        scopes = frozenset(s.strip() for s in str(data.get("_scopes", "")).split(",") if s.strip())
        return Identity(
            user_id=SlackUserId(data["user_id"]),
            bot_id=str(data.get("bot_id", "")),
            team_id=str(data.get("team_id", "")),
            team_url=str(data.get("url", "")),
            scopes=scopes,
        )

    async def socket_url(self) -> str:
        """A fresh, single-use Socket Mode URL (``apps.connections.open``)."""
        data = await self._call("apps.connections.open", token=self._app)
        return str(data["url"])

    async def primary_owner(self) -> SlackUserId | None:
        cursor = ""
        while True:
            data = await self._call("users.list", limit=200, cursor=cursor)
            for member in data.get("members", []):
                if member.get("is_primary_owner") and not member.get("deleted"):
                    return SlackUserId(member["id"])
            cursor = data.get("response_metadata", {}).get("next_cursor", "")
            if not cursor:
                return None

    async def user(self, user_id: SlackUserId) -> SlackUser:
        data = await self._call("users.info", user=user_id)
        member = data["user"]
        profile = member.get("profile", {})
        name = (
            profile.get("display_name")
            or profile.get("real_name")
            or member.get("real_name")
            or member.get("name")
            or user_id
        )
        return SlackUser(
            id=user_id,
            name=str(name),
            email=profile.get("email") or None,
            image_url=profile.get("image_192") or profile.get("image_72") or None,
            is_bot=bool(member.get("is_bot")),
        )

    # --- channels -------------------------------------------------------------------------

    async def create_channel(self, name: str) -> SlackChannel:
        """Create a public channel. Serialised and paced: Slack's Tier 2 allows ~20/min,
        and two concurrent creates can both succeed with the same name."""
        async with self._create_lock, self._serial():  # here, then across instances
            await self.creations.acquire()
            try:
                data = await self._call("conversations.create", name=name, is_private=False)
            except RateLimited as exc:
                self.creations.hold("", exc.retry_after)
                raise
        return _channel(data["channel"])

    async def channel(self, channel_id: ChannelId) -> SlackChannel:
        data = await self._call("conversations.info", channel=channel_id)
        return _channel(data["channel"])

    async def find_channel(self, name: str) -> SlackChannel | None:
        """Look a channel up by name, archived ones included."""
        wanted = name.lstrip("#")
        cursor = ""
        while True:
            data = await self._call(
                "conversations.list",
                types="public_channel,private_channel",
                exclude_archived=False,
                limit=1000,
                cursor=cursor,
            )
            for raw in data.get("channels", []):
                if raw.get("name") == wanted:
                    return _channel(raw)
            cursor = data.get("response_metadata", {}).get("next_cursor", "")
            if not cursor:
                return None

    async def join(self, channel_id: ChannelId) -> None:
        await self._call("conversations.join", channel=channel_id)

    async def invite(self, channel_id: ChannelId, users: list[SlackUserId]) -> None:
        """Invite users; those already in the channel are not an error."""
        try:
            await self._call("conversations.invite", channel=channel_id, users=",".join(users))
        except Refused as exc:
            if exc.code != "already_in_channel":
                raise

    async def archive(self, channel_id: ChannelId) -> None:
        """Archive a channel the bot is in (which also removes the bot from it)."""
        await self._call("conversations.archive", channel=channel_id)

    async def unarchive(self, channel_id: ChannelId) -> None:
        """Unarchive with the user token (bot tokens cannot); then the bot rejoins."""
        if self._user is None:
            raise Refused("not_allowed_token_type", "no user token configured")
        try:
            await self._call("conversations.unarchive", token=self._user, channel=channel_id)
        except Refused as exc:
            if exc.code != "not_archived":
                raise
        await self.join(channel_id)

    # --- messages -------------------------------------------------------------------------

    async def post(
        self,
        channel: ChannelId,
        text: str,
        *,
        key: str,
        blocks: list[dict[str, Any]] | None = None,
        username: str | None = None,
        icon_url: str | None = None,
    ) -> MessageTs:
        """Post a message tagged with ``key`` (see :meth:`find_post`). Paced per channel."""
        params: dict[str, Any] = {
            "channel": channel,
            "text": text,
            "unfurl_links": False,
            "unfurl_media": False,
            "metadata": {"event_type": METADATA_EVENT, "event_payload": {"key": key}},
        }
        if blocks:
            params["blocks"] = blocks
        if username:
            params["username"] = username[:80]
        if icon_url:
            params["icon_url"] = icon_url
        await self.posts.acquire(channel)
        try:
            data = await self._call("chat.postMessage", **params)
        except RateLimited as exc:
            self.posts.hold(channel, exc.retry_after)
            raise
        return MessageTs(str(data["ts"]))

    async def find_post(self, channel: ChannelId, key: str, oldest: float) -> MessageTs | None:
        """The ts of our post tagged ``key`` since ``oldest``, if Slack has it."""
        cursor = ""
        for _ in range(20):
            data = await self._call(
                "conversations.history",
                channel=channel,
                oldest=f"{max(0.0, oldest):.6f}",
                limit=200,
                include_all_metadata=True,
                cursor=cursor,
            )
            for message in data.get("messages", []):
                metadata = message.get("metadata") or {}
                payload = metadata.get("event_payload") or {}
                if metadata.get("event_type") == METADATA_EVENT and payload.get("key") == key:
                    return MessageTs(str(message["ts"]))
            cursor = data.get("response_metadata", {}).get("next_cursor", "")
            if not data.get("has_more") or not cursor:
                return None
        return None

    async def update(
        self,
        channel: ChannelId,
        ts: MessageTs,
        text: str,
        *,
        blocks: list[dict[str, Any]] | None = None,
    ) -> None:
        """Replace the text (and blocks) of our own post ``ts``."""
        params: dict[str, Any] = {"channel": channel, "ts": ts, "text": text}
        if blocks:
            params["blocks"] = blocks
        await self.posts.acquire(channel)
        try:
            await self._call("chat.update", **params)
        except RateLimited as exc:
            self.posts.hold(channel, exc.retry_after)
            raise

    async def set_topic(self, channel: ChannelId, topic: str) -> None:
        """The channel's topic: plain text (Slack formats nothing in it), 250 at most."""
        await self._call("conversations.setTopic", channel=channel, topic=topic[:TOPIC_LIMIT])

    async def post_ephemeral(
        self,
        channel: ChannelId,
        user: SlackUserId,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
    ) -> None:
        """A message only ``user`` sees, in ``channel``, which they must be in."""
        params: dict[str, Any] = {"channel": channel, "user": user, "text": text}
        if blocks:
            params["blocks"] = blocks
        await self._call("chat.postEphemeral", **params)


_JSON_METHODS = frozenset({"chat.postMessage"})
"""Methods whose parameters go as a JSON body (nested ``metadata``, ``blocks``); the
others are form-encoded, which every Web API method accepts."""
_USER_AGENT = f"skbridge/{__version__} aiohttp/{aiohttp.__version__}"


class _Token:
    """A token and the request headers that carry it (built once, sent with every call)."""

    def __init__(self, token: str) -> None:
        auth = {"Authorization": f"Bearer {token}", "User-Agent": _USER_AGENT}
        self.json = {**auth, "Content-Type": "application/json; charset=utf-8"}
        self.form = auth

    def __repr__(self) -> str:
        return "_Token(...)"


def _json_object(raw: bytes) -> dict[str, Any] | None:
    """The body as a JSON object, or None (an HTML error page, a truncated answer)."""
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _form(params: dict[str, Any]) -> dict[str, str]:
    """Form-encode parameters the way Slack reads them (booleans as true/false)."""
    form: dict[str, str] = {}
    for key, value in params.items():
        if isinstance(value, bool):
            form[key] = "true" if value else "false"
        elif isinstance(value, dict | list):
            form[key] = json.dumps(value)
        else:
            form[key] = str(value)
    return form


def _channel(raw: dict[str, Any]) -> SlackChannel:
    return SlackChannel(
        id=ChannelId(raw["id"]),
        name=str(raw.get("name", "")),
        is_private=bool(raw.get("is_private")),
        is_archived=bool(raw.get("is_archived")),
        is_member=bool(raw.get("is_member")),
        creator=str(raw.get("creator", "")),
    )


def _translate_error(
    method: str, status: int, data: dict[str, Any], headers: CIMultiDictProxy[str]
) -> DeliveryError:
    """What an answer other than ``200 {"ok": true}`` means for the call."""
    code = str(data.get("error") or f"http_{status}")
    if status == 429 or code == "ratelimited":
        try:
            retry_after = float(headers.get("Retry-After", "1"))
        except ValueError:
            retry_after = 1.0
        return RateLimited(retry_after, method)
    if status >= 500 or code in slack_errors.TRANSIENT:
        return MaybeSent(code, method)
    if status == 200 and data.get("ok") is not False:
        return MaybeSent("bad_response", f"{method}: the answer is not Slack's JSON")
    return Refused(code, method)
