"""The Web API half of the fake Slack: ``GET|POST /api/<method>``.

Parameters are read from the query string and from form-encoded or JSON bodies, the
token from ``Authorization: Bearer`` or a ``token`` parameter, and answers are HTTP
200 ``{"ok": ...}`` JSON exactly like slack.com, except 429s and injected faults.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .state import (
    Call,
    Channel,
    Message,
    TokenBucket,
    WorkspaceState,
    channel_name_error,
    decode_cursor,
    encode_cursor,
    ts_key,
)

_JSON_ENCODED_PARAMS = ("blocks", "metadata", "attachments")
MAX_TEXT = 40_000
MAX_BLOCKS = 50


class ApiError(Exception):
    """Answer ``{"ok": false, "error": code, **extra}``."""

    def __init__(self, code: str, **extra: Any) -> None:
        super().__init__(code)
        self.code = code
        self.extra = extra


@dataclass
class Fault:
    status: int
    error: str | None
    after_effect: bool
    retry_after: int


@dataclass
class Request:
    """What a method handler gets: decoded params and who is calling."""

    method: str
    params: dict[str, Any]
    token_kind: str
    caller: str  # user id acting (UBOT for the bot token)

    def text(self, key: str, default: str = "") -> str:
        value = self.params.get(key)
        return default if value is None else str(value)

    def opt_str(self, key: str) -> str | None:
        value = self.params.get(key)
        return None if value is None or value == "" else str(value)

    def flag(self, key: str) -> bool:
        value = self.params.get(key)
        return value is True or str(value).lower() in ("1", "true")

    def number(self, key: str, default: int) -> int:
        try:
            value = int(str(self.params.get(key, default)))
        except ValueError:
            return default
        return value if value > 0 else default


Handler = Callable[[Request], dict[str, Any]]


def _page(items: list[Any], req: Request, *, default: int, maximum: int) -> tuple[list[Any], str]:
    """Cursor pagination: the slice for this request and the next cursor ("" when done)."""
    start = decode_cursor(req.text("cursor"))
    if start is None:
        raise ApiError("invalid_cursor")
    limit = min(req.number("limit", default), maximum)
    end = start + limit
    return items[start:end], encode_cursor(end) if end < len(items) else ""


class WebApiMixin(WorkspaceState):
    """Web API request handling; mixed into :class:`FakeSlack`."""

    post_rate: float | None
    post_burst: int
    create_per_minute: float | None
    _clock: Callable[[], float]

    def _setup_web(self) -> None:
        self._fails: dict[str, deque[Fault]] = {}
        self._outage: tuple[int, frozenset[str] | None] | None = None
        self._hangs: dict[str, int] = {}
        self._hang_effects: dict[str, bool] = {}
        self._release_hung = asyncio.Event()
        self._post_buckets: dict[str, TokenBucket] = {}
        self._create_bucket: TokenBucket | None = None
        self._handlers: dict[str, Handler] = {
            "auth.test": self._auth_test,
            "apps.connections.open": self._apps_connections_open,
            "users.list": self._users_list,
            "users.info": self._users_info,
            "users.lookupByEmail": self._users_lookup_by_email,
            "conversations.create": self._conversations_create,
            "conversations.info": self._conversations_info,
            "conversations.list": self._conversations_list,
            "conversations.join": self._conversations_join,
            "conversations.leave": self._conversations_leave,
            "conversations.invite": self._conversations_invite,
            "conversations.archive": self._conversations_archive,
            "conversations.unarchive": self._conversations_unarchive,
            "conversations.rename": self._conversations_rename,
            "conversations.setTopic": self._conversations_set_topic,
            "conversations.setPurpose": self._conversations_set_purpose,
            "conversations.history": self._conversations_history,
            "conversations.members": self._conversations_members,
            "chat.postMessage": self._chat_post_message,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.update": self._chat_update,
        }

    # -- fault injection --------------------------------------------------------

    def fail_next(
        self,
        method: str,
        *,
        status: int = 500,
        error: str | None = None,
        after_effect: bool = False,
        times: int = 1,
        retry_after: int = 1,
    ) -> None:
        """Make the next ``times`` calls of ``method`` fail.

        ``status`` 5xx: HTTP error with a text body; 200 (+ ``error``): ``{"ok": false}``;
        429: ``ratelimited`` with ``Retry-After: retry_after``.  With ``after_effect`` the
        call takes effect first (e.g. the post is recorded) and only the answer fails.
        """
        if status == 200 and error is None:
            error = "internal_error"
        queue = self._fails.setdefault(method, deque())
        queue.extend(Fault(status, error, after_effect, retry_after) for _ in range(times))

    def hang_next(self, method: str, *, times: int = 1, after_effect: bool = False) -> None:
        """Leave the next ``times`` calls of ``method`` unanswered until :meth:`stop`.

        With ``after_effect`` the call takes effect first (the post is recorded), as when
        Slack did the work but the answer never came back.
        """
        self._hangs[method] = self._hangs.get(method, 0) + times
        self._hang_effects[method] = after_effect

    def outage(self, status: int = 503, *, methods: Iterable[str] | None = None) -> None:
        """Answer every Web API call (or those to ``methods``) with HTTP ``status`` and no
        effect, as a load balancer does while Slack is down, until :meth:`end_outage`."""
        self._outage = (status, None if methods is None else frozenset(methods))

    def end_outage(self) -> None:
        self._outage = None

    def _in_outage(self, method: str) -> int | None:
        if self._outage is None:
            return None
        status, methods = self._outage
        return status if methods is None or method in methods else None

    def _take_fail(self, method: str) -> Fault | None:
        queue = self._fails.get(method)
        return queue.popleft() if queue else None

    # -- request plumbing ---------------------------------------------------------

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        try:
            params, token = await self._read_params(request)
        except ApiError as exc:
            return self._answer(method, {}, None, {"ok": False, "error": exc.code})
        kind = self._token_kind(token)
        down = self._in_outage(method)
        if down is not None:
            self.calls.append(Call(method, params, kind, down, f"http_{down}"))
            self._notify()
            return web.Response(status=down, text="<html>Service Unavailable</html>")
        if token is None or kind is None:
            error = "not_authed" if token is None else "invalid_auth"
            return self._answer(method, params, None, {"ok": False, "error": error})

        if self._hangs.get(method, 0) > 0:
            self._hangs[method] -= 1
            if self._hang_effects.get(method):
                self._dispatch(Request(method, params, kind, self._caller(kind)))
            self.calls.append(Call(method, params, kind, 0, "hung"))
            self._notify()
            await self._release_hung.wait()
            return web.Response(status=503, text="fake slack stopped")

        fault = self._take_fail(method)
        if fault is not None and not fault.after_effect:
            return self._fault_answer(method, params, kind, fault)

        wait = self._rate_limit_wait(method, params)
        if wait > 0:
            self.ratelimited += 1
            retry_after = TokenBucket.retry_after(wait)
            body = {"ok": False, "error": "ratelimited"}
            headers = {"Retry-After": str(retry_after)}
            return self._answer(method, params, kind, body, status=429, headers=headers)

        body = self._dispatch(Request(method, params, kind, self._caller(kind)))
        if fault is not None:
            return self._fault_answer(method, params, kind, fault)
        return self._answer(method, params, kind, body)

    def _dispatch(self, req: Request) -> dict[str, Any]:
        handler = self._handlers.get(req.method)
        if handler is None:
            return {"ok": False, "error": "unknown_method"}
        if (req.token_kind == "app") != (req.method == "apps.connections.open"):
            return {"ok": False, "error": "not_allowed_token_type"}
        try:
            return {"ok": True, **handler(req)}
        except ApiError as exc:
            return {"ok": False, "error": exc.code, **exc.extra}

    async def _read_params(self, request: web.Request) -> tuple[dict[str, Any], str | None]:
        params: dict[str, Any] = dict(request.query)
        if request.method == "POST" and request.can_read_body:
            if request.content_type == "application/json":
                try:
                    body = json.loads(await request.text() or "{}")
                except ValueError:
                    raise ApiError("invalid_json") from None
                if not isinstance(body, dict):
                    raise ApiError("json_not_object")
                params.update(body)
            else:
                form = await request.post()
                params.update({k: v for k, v in form.items() if isinstance(v, str)})
        for key in _JSON_ENCODED_PARAMS:
            value = params.get(key)
            if isinstance(value, str) and value:
                # Form-encoded nested values arrive as JSON text; if it is not valid JSON
                # it stays a string and the handler rejects it.
                with contextlib.suppress(ValueError):
                    params[key] = json.loads(value)
        token = params.pop("token", None)
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            token = auth.removeprefix("Bearer ").strip()
        return params, (str(token) if token else None)

    def _token_kind(self, token: str | None) -> str | None:
        kinds = {self.bot_token: "bot", self.user_token: "user", self.app_token: "app"}
        return kinds.get(token or "")

    def _caller(self, kind: str) -> str:
        return self.bot_user_id if kind == "bot" else self.admin_user_id

    def _answer(
        self,
        method: str,
        params: dict[str, Any],
        kind: str | None,
        body: dict[str, Any],
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> web.Response:
        error = body.get("error") if not body.get("ok") else None
        self.calls.append(Call(method, params, kind, status, error))
        self._notify()
        all_headers = dict(headers or {})
        if kind in ("bot", "user"):
            all_headers["x-oauth-scopes"] = ",".join(sorted(self.scopes))
        return web.json_response(body, status=status, headers=all_headers)

    def _fault_answer(
        self, method: str, params: dict[str, Any], kind: str, fault: Fault
    ) -> web.Response:
        if fault.status == 429:
            self.ratelimited += 1
            body = {"ok": False, "error": "ratelimited"}
            headers = {"Retry-After": str(fault.retry_after)}
            return self._answer(method, params, kind, body, status=429, headers=headers)
        if fault.status == 200:
            return self._answer(method, params, kind, {"ok": False, "error": fault.error})
        self.calls.append(Call(method, params, kind, fault.status, f"http_{fault.status}"))
        self._notify()
        text = f"fake slack: injected HTTP {fault.status} for {method}"
        return web.Response(status=fault.status, text=text)

    def _rate_limit_wait(self, method: str, params: dict[str, Any]) -> float:
        if method == "chat.postMessage" and self.post_rate is not None:
            raw = str(params.get("channel", ""))
            channel = self._find_channel(raw)
            key = channel.id if channel is not None else raw
            bucket = self._post_buckets.get(key)
            if bucket is None:
                bucket = TokenBucket(self.post_rate, self.post_burst, self._clock)
                self._post_buckets[key] = bucket
            return bucket.take()
        if method == "conversations.create" and self.create_per_minute is not None:
            if self._create_bucket is None:
                self._create_bucket = TokenBucket(self.create_per_minute / 60, 3, self._clock)
            return self._create_bucket.take()
        return 0.0

    # -- lookups shared by handlers ------------------------------------------------

    def _find_channel(self, ref: str) -> Channel | None:
        if not ref:
            return None
        return self.channels.get(ref) or self.channel_by_name(ref)

    def _channel(self, req: Request) -> Channel:
        channel = self._find_channel(req.text("channel"))
        if channel is None:
            raise ApiError("channel_not_found")
        return channel

    @staticmethod
    def _member_or_admin(req: Request, channel: Channel) -> bool:
        """The user token belongs to a workspace owner who may act on any channel."""
        return req.token_kind == "user" or req.caller in channel.members

    # -- auth / apps / users ---------------------------------------------------------

    def _auth_test(self, req: Request) -> dict[str, Any]:
        user = self.users.get(req.caller)
        out: dict[str, Any] = {
            "url": "https://fake.slack.com/",
            "team": self.team_name,
            "user": user.name if user is not None else "admin",
            "team_id": self.team_id,
            "user_id": req.caller,
            "is_enterprise_install": False,
        }
        if req.token_kind == "bot":
            out["bot_id"] = self.bot_id
        return out

    def _apps_connections_open(self, req: Request) -> dict[str, Any]:
        return {"url": f"ws://127.0.0.1:{self._require_port()}/link/?ticket={self._issue_ticket()}"}

    def _user_api(self, user_id: str) -> dict[str, Any]:
        with_email = "users:read.email" in self.scopes
        return self.users[user_id].to_api(team_id=self.team_id, with_email=with_email)

    def _users_list(self, req: Request) -> dict[str, Any]:
        page, cursor = _page(list(self.users), req, default=200, maximum=1000)
        return {
            "members": [self._user_api(u) for u in page],
            "cache_ts": int(self._clock()),
            "response_metadata": {"next_cursor": cursor},
        }

    def _users_info(self, req: Request) -> dict[str, Any]:
        user_id = req.text("user")
        if user_id not in self.users:
            raise ApiError("user_not_found")
        return {"user": self._user_api(user_id)}

    def _users_lookup_by_email(self, req: Request) -> dict[str, Any]:
        email = req.text("email")
        user = next((u for u in self.users.values() if email and u.email == email), None)
        if user is None:
            raise ApiError("users_not_found")
        return {"user": self._user_api(user.id)}

    # -- conversations ---------------------------------------------------------------

    def _conversations_create(self, req: Request) -> dict[str, Any]:
        name = req.text("name")
        error = channel_name_error(name)
        if error is not None:
            raise ApiError(error)
        if self.channel_by_name(name) is not None:
            raise ApiError("name_taken")
        channel = self._new_channel(name, is_private=req.flag("is_private"), creator=req.caller)
        channel.members.add(req.caller)
        return {"channel": channel.to_api(caller=req.caller)}

    def _conversations_info(self, req: Request) -> dict[str, Any]:
        return {"channel": self._channel(req).to_api(caller=req.caller)}

    def _conversations_list(self, req: Request) -> dict[str, Any]:
        types = set(req.text("types", "public_channel").split(","))
        exclude_archived = req.flag("exclude_archived")
        visible = [
            c
            for c in self.channels.values()
            if ("private_channel" if c.is_private else "public_channel") in types
            and not (exclude_archived and c.is_archived)
            and (not c.is_private or self._member_or_admin(req, c))
        ]
        page, cursor = _page(visible, req, default=100, maximum=1000)
        return {
            "channels": [c.to_api(caller=req.caller) for c in page],
            "response_metadata": {"next_cursor": cursor},
        }

    def _conversations_join(self, req: Request) -> dict[str, Any]:
        channel = self._channel(req)
        if channel.is_private:
            raise ApiError("method_not_supported_for_channel_type")
        if channel.is_archived:
            raise ApiError("is_archived")
        out: dict[str, Any] = {}
        if req.caller in channel.members:
            out = {"warning": "already_in_channel"}
            out["response_metadata"] = {"warnings": ["already_in_channel"]}
        channel.members.add(req.caller)
        return {"channel": channel.to_api(caller=req.caller), **out}

    def _conversations_leave(self, req: Request) -> dict[str, Any]:
        channel = self._channel(req)
        if channel.is_archived:
            raise ApiError("is_archived")
        if req.caller not in channel.members:
            return {"not_in_channel": True}
        channel.members.discard(req.caller)
        return {}

    def _conversations_invite(self, req: Request) -> dict[str, Any]:
        channel = self._writable_channel(req)
        raw = req.params.get("users", "")
        wanted = [u.strip() for u in (raw if isinstance(raw, list) else str(raw).split(","))]
        wanted = [u for u in wanted if u]
        if not wanted:
            raise ApiError("no_user")
        for user_id, code in (
            *((u, "cant_invite_self") for u in wanted if u == req.caller),
            *((u, "user_not_found") for u in wanted if u not in self.users),
        ):
            raise ApiError(code, errors=[{"user": user_id, "ok": False, "error": code}])
        new = [u for u in wanted if u not in channel.members]
        if not new:
            errors = [{"user": u, "ok": False, "error": "already_in_channel"} for u in wanted]
            raise ApiError("already_in_channel", errors=errors)
        channel.members.update(new)
        return {"channel": channel.to_api(caller=req.caller)}

    def _conversations_archive(self, req: Request) -> dict[str, Any]:
        channel = self._channel(req)
        if channel.is_archived:
            raise ApiError("already_archived")
        if not self._member_or_admin(req, channel):
            raise ApiError("not_in_channel")
        channel.is_archived = True
        channel.members.discard(self.bot_user_id)  # Slack removes apps from archived channels
        return {}

    def _conversations_unarchive(self, req: Request) -> dict[str, Any]:
        if req.token_kind == "bot":
            raise ApiError("not_allowed_token_type")  # bot tokens cannot unarchive
        channel = self._channel(req)
        if not channel.is_archived:
            raise ApiError("not_archived")
        channel.is_archived = False  # the bot is NOT re-added
        return {}

    def _conversations_rename(self, req: Request) -> dict[str, Any]:
        channel = self._writable_channel(req)
        name = req.text("name")
        error = channel_name_error(name)
        if error is not None:
            raise ApiError(error)
        other = self.channel_by_name(name)
        if other is not None and other is not channel:
            raise ApiError("name_taken")
        if name != channel.name:
            channel.previous_names.append(channel.name)
            channel.name = name
        return {"channel": channel.to_api(caller=req.caller)}

    def _set_text_field(self, req: Request, attr: str) -> dict[str, Any]:
        channel = self._writable_channel(req)
        setattr(channel, attr, req.text(attr))
        return {"channel": channel.to_api(caller=req.caller)}

    def _conversations_set_topic(self, req: Request) -> dict[str, Any]:
        if len(req.text("topic")) > 250:
            raise ApiError("too_long")
        return self._set_text_field(req, "topic")

    def _conversations_set_purpose(self, req: Request) -> dict[str, Any]:
        return self._set_text_field(req, "purpose")

    def _conversations_history(self, req: Request) -> dict[str, Any]:
        channel = self._channel(req)
        if channel.is_private and not self._member_or_admin(req, channel):
            raise ApiError("not_in_channel")
        try:
            oldest = ts_key(req.text("oldest", "0"))
            latest = ts_key(req.text("latest")) if req.opt_str("latest") else None
        except ValueError:
            raise ApiError("invalid_ts_oldest") from None
        inclusive = req.flag("inclusive")

        def in_range(m: Message) -> bool:
            key = ts_key(m.ts)
            above = key >= oldest if inclusive else key > oldest
            below = latest is None or (key <= latest if inclusive else key < latest)
            return above and below

        # Like Slack: thread replies are not part of the channel history.
        selected = [
            m
            for m in reversed(channel.messages)
            if (m.thread_ts is None or m.thread_ts == m.ts) and in_range(m)
        ]
        page, cursor = _page(selected, req, default=100, maximum=999)
        meta = req.flag("include_all_metadata")
        return {
            "messages": [m.to_api(include_metadata=meta, app_id=self.app_id) for m in page],
            "has_more": bool(cursor),
            "pin_count": 0,
            "response_metadata": {"next_cursor": cursor},
        }

    def _conversations_members(self, req: Request) -> dict[str, Any]:
        channel = self._channel(req)
        page, cursor = _page(sorted(channel.members), req, default=100, maximum=1000)
        return {"members": page, "response_metadata": {"next_cursor": cursor}}

    # -- chat --------------------------------------------------------------------------

    def _writable_channel(self, req: Request, *, posting: bool = False) -> Channel:
        """The request's channel, if it is live and the caller may act in it.

        Posting to a public channel needs no membership when chat:write.public is granted.
        """
        channel = self._channel(req)
        if channel.is_archived:
            raise ApiError("is_archived")
        public_post = posting and not channel.is_private and "chat:write.public" in self.scopes
        if not self._member_or_admin(req, channel) and not public_post:
            raise ApiError("not_in_channel")
        return channel

    def _message_content(self, req: Request) -> tuple[str, list[Any] | None]:
        text = req.text("text")
        blocks = req.params.get("blocks")
        if blocks is not None and not isinstance(blocks, list):
            raise ApiError("invalid_blocks_format")
        if blocks is not None and (
            len(blocks) > MAX_BLOCKS or not all(isinstance(b, dict) for b in blocks)
        ):
            raise ApiError("invalid_blocks")
        if not text and not blocks:
            raise ApiError("no_text")
        if len(text) > MAX_TEXT:
            raise ApiError("msg_too_long")
        return text, blocks

    def _metadata(self, req: Request) -> dict[str, Any] | None:
        metadata = req.params.get("metadata")
        if metadata is None or metadata == "":
            return None
        if (
            not isinstance(metadata, dict)
            or not isinstance(metadata.get("event_type"), str)
            or not isinstance(metadata.get("event_payload"), dict)
        ):
            raise ApiError("invalid_metadata_format")
        return metadata

    def _chat_post_message(self, req: Request) -> dict[str, Any]:
        channel = self._writable_channel(req, posting=True)
        text, blocks = self._message_content(req)
        metadata = self._metadata(req)
        is_bot = req.token_kind == "bot"
        customize = is_bot and "chat:write.customize" in self.scopes
        message = Message(
            ts=self._next_ts(),
            channel=channel.id,
            text=text,
            blocks=blocks,
            user=req.caller,
            bot_id=self.bot_id if is_bot else None,
            username=req.opt_str("username") if customize else None,
            icon_url=req.opt_str("icon_url") if customize else None,
            icon_emoji=req.opt_str("icon_emoji") if customize else None,
            metadata=metadata,
            thread_ts=req.opt_str("thread_ts"),
        )
        channel.messages.append(message)
        self.posts.append(message)
        return {
            "channel": channel.id,
            "ts": message.ts,
            "message": message.to_api(include_metadata=True, app_id=self.app_id),
        }

    def _chat_post_ephemeral(self, req: Request) -> dict[str, Any]:
        channel = self._writable_channel(req, posting=True)
        user_id = req.text("user")
        if user_id not in self.users:
            raise ApiError("user_not_found")
        if user_id not in channel.members:
            raise ApiError("user_not_in_channel")
        text, blocks = self._message_content(req)
        message = Message(
            ts=self._next_ts(),
            channel=channel.id,
            text=text,
            blocks=blocks,
            user=req.caller,
            bot_id=self.bot_id if req.token_kind == "bot" else None,
            thread_ts=req.opt_str("thread_ts"),
            ephemeral_to=user_id,
        )
        self.ephemerals.append(message)
        return {"message_ts": message.ts}

    def _chat_update(self, req: Request) -> dict[str, Any]:
        channel = self._channel(req)
        if channel.is_archived:
            raise ApiError("is_archived")
        ts = req.text("ts")
        message = next((m for m in channel.messages if m.ts == ts), None)
        if message is None:
            raise ApiError("message_not_found")
        if message.user != req.caller:
            raise ApiError("cant_update_message")
        text, blocks = self._message_content(req)
        message.text, message.blocks, message.edited = text, blocks, True
        metadata = self._metadata(req)
        if metadata is not None:
            message.metadata = metadata
        return {
            "channel": channel.id,
            "ts": ts,
            "text": text,
            "message": message.to_api(include_metadata=True, app_id=self.app_id),
        }
