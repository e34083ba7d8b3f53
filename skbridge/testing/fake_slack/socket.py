"""The Socket Mode half of the fake Slack: the ``/link/`` websocket and envelopes.

Handshakes need a one-time ticket from ``apps.connections.open``; the server greets with
``hello``, delivers envelopes to one open connection, records the client's acks and can
misbehave on request (disconnect, abrupt drop, half-open "frozen" sockets).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from .state import WorkspaceState, random_id


@dataclass(eq=False)
class Connection:
    """One accepted websocket."""

    number: int
    ws: web.WebSocketResponse
    request: web.Request
    frozen: bool = False
    disconnecting: bool = False  # a disconnect message was sent; no more deliveries
    closed: asyncio.Event = field(default_factory=asyncio.Event)


class SocketModeMixin(WorkspaceState):
    """Socket Mode server side; mixed into :class:`FakeSlack`."""

    def _setup_socket(self) -> None:
        self.acks: dict[str, dict[str, Any]] = {}
        self.ack_counts: Counter[str] = Counter()  # an envelope delivered again is acked again
        self.bad_frames: list[str] = []
        self.deliveries: list[dict[str, Any]] = []  # envelopes written to a socket
        self.lost_deliveries: list[dict[str, Any]] = []  # sent into a frozen/dying socket
        self.connections_opened = 0
        self.rejected_handshakes = 0
        self.dropped_frames = 0  # client frames (incl. pings) swallowed by frozen sockets
        self.delivery_timeout = 10.0  # how long send_* waits for a connection
        self.disconnect_grace = 0.5  # after a disconnect message, close if the client has not
        self._connections: list[Connection] = []
        self._tasks: set[asyncio.Task[None]] = set()

    # -- connection state -----------------------------------------------------------

    @property
    def connected(self) -> int:
        return len(self._connections)

    async def wait_connected(
        self,
        n: int = 1,
        timeout: float = 10,  # noqa: ASYNC109 - plain timeouts read best in tests
    ) -> None:
        await self.wait_for(lambda: self.connected >= n, timeout)

    async def wait_ack(
        self,
        envelope_id: str,
        timeout: float = 10,  # noqa: ASYNC109 - plain timeouts read best in tests
    ) -> dict[str, Any]:
        await self.wait_for(lambda: envelope_id in self.acks, timeout)
        return self.acks[envelope_id]

    def _state_summary(self) -> str:
        unacked = sum(1 for e in self.deliveries if e["envelope_id"] not in self.acks)
        return (
            f"{super()._state_summary()} connected={self.connected} "
            f"opened={self.connections_opened} delivered={len(self.deliveries)} "
            f"unacked={unacked} lost={len(self.lost_deliveries)} bad_frames={len(self.bad_frames)}"
        )

    # -- the websocket endpoint ---------------------------------------------------------

    async def _handle_link(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if ticket not in self._tickets:
            self.rejected_handshakes += 1
            self._notify()
            return web.Response(status=401, text="invalid or already used ticket")
        self._tickets.discard(ticket)
        # autoping=False: pings are answered by hand so frozen sockets can ignore them.
        ws = web.WebSocketResponse(autoping=False, timeout=1.0)
        await ws.prepare(request)
        self.connections_opened += 1
        conn = Connection(number=self.connections_opened, ws=ws, request=request)
        self._connections.append(conn)
        try:
            await ws.send_str(json.dumps(self._hello()))
            self._notify()
            async for msg in ws:
                if conn.frozen:
                    self.dropped_frames += 1
                    self._notify()
                elif msg.type is WSMsgType.PING:
                    await ws.pong(msg.data)
                elif msg.type is WSMsgType.TEXT:
                    self._on_client_frame(msg.data)
                elif msg.type is WSMsgType.BINARY:
                    self.bad_frames.append(repr(msg.data))
                    self._notify()
        except ConnectionError:
            pass
        finally:
            self._connections.remove(conn)
            conn.closed.set()
            self._notify()
        return ws

    def _hello(self) -> dict[str, Any]:
        return {
            "type": "hello",
            "num_connections": self.connected,
            "debug_info": {"host": "fake", "approximate_connection_time": 18060},
            "connection_info": {"app_id": self.app_id},
        }

    def _on_client_frame(self, text: str) -> None:
        try:
            frame = json.loads(text)
        except ValueError:
            frame = None
        if isinstance(frame, dict) and isinstance(frame.get("envelope_id"), str):
            self.acks[frame["envelope_id"]] = frame
            self.ack_counts[frame["envelope_id"]] += 1
        else:
            self.bad_frames.append(text)
        self._notify()

    # -- delivering -----------------------------------------------------------------------

    async def _pick_connection(self) -> Connection:
        def usable() -> list[Connection]:
            return [c for c in self._connections if not c.disconnecting and not c.ws.closed]

        if not usable():
            try:
                await self.wait_for(lambda: bool(usable()), self.delivery_timeout)
            except TimeoutError as exc:
                raise TimeoutError(f"no Socket Mode connection to deliver to: {exc}") from None
        candidates = usable()
        live = [c for c in candidates if not c.frozen]
        return (live or candidates)[-1]  # the newest healthy one; else a frozen one

    async def _deliver(self, envelope: dict[str, Any]) -> dict[str, Any]:
        conn = await self._pick_connection()
        if conn.frozen:
            self.lost_deliveries.append(envelope)
        else:
            try:
                await conn.ws.send_str(json.dumps(envelope))
                self.deliveries.append(envelope)
            except (ConnectionError, RuntimeError):
                self.lost_deliveries.append(envelope)
        self._notify()
        return envelope

    async def send_raw(self, frame: str) -> None:
        """Send an arbitrary text frame (for malformed-payload tests)."""
        conn = await self._pick_connection()
        if not conn.frozen:
            await conn.ws.send_str(frame)

    def _authorizations(self) -> list[dict[str, Any]]:
        return [
            {
                "enterprise_id": None,
                "team_id": self.team_id,
                "user_id": self.bot_user_id,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ]

    async def send_event(
        self, event: dict[str, Any], *, event_id: str | None = None
    ) -> dict[str, Any]:
        """Deliver an Events API ``event`` in an ``events_api`` envelope."""
        event_id = event_id or random_id("Ev")
        payload = {
            "token": "x",
            "team_id": self.team_id,
            "context_team_id": self.team_id,
            "context_enterprise_id": None,
            "api_app_id": self.app_id,
            "event": event,
            "type": "event_callback",
            "event_id": event_id,
            "event_time": int(time.time()),
            "authorizations": self._authorizations(),
            "is_ext_shared_channel": False,
            "event_context": f"4-{uuid.uuid4().hex}",
        }
        return await self._deliver(
            {
                "envelope_id": str(uuid.uuid4()),
                "type": "events_api",
                "accepts_response_payload": False,
                "retry_attempt": 0,
                "retry_reason": "",
                "payload": payload,
            }
        )

    def _channel_name_for_payload(self, channel_id: str) -> str:
        channel = self.channels.get(channel_id)
        if channel is None:
            return "unknown"
        return "privategroup" if channel.is_private else channel.name  # as Slack sends it

    def _user_name(self, user_id: str) -> str:
        user = self.users.get(user_id)
        return user.name if user is not None else user_id

    @staticmethod
    def _trigger_id() -> str:
        return f"{int(time.time())}.{random_id('', 12)}.{uuid.uuid4().hex}"

    def _response_url(self, kind: str) -> str:
        """A ``response_url`` this fake serves (Slack's own are on hooks.slack.com)."""
        secret = uuid.uuid4().hex
        base = f"http://127.0.0.1:{self._require_port()}"
        return f"{base}/hooks/{kind}/{self.team_id}/{random_id('', 13)}/{secret}"

    async def send_command(
        self, channel_id: str, user_id: str, text: str, *, command: str = "/sk"
    ) -> dict[str, Any]:
        """Deliver a slash command invocation (``slash_commands`` envelope)."""
        payload = {
            "token": "x",
            "team_id": self.team_id,
            "team_domain": self.team_domain,
            "channel_id": channel_id,
            "channel_name": self._channel_name_for_payload(channel_id),
            "user_id": user_id,
            "user_name": self._user_name(user_id),
            "command": command,
            "text": text,
            "api_app_id": self.app_id,
            "is_enterprise_install": "false",
            "response_url": self._response_url("commands"),
            "trigger_id": self._trigger_id(),
        }
        return await self._deliver(
            {
                "envelope_id": str(uuid.uuid4()),
                "type": "slash_commands",
                "accepts_response_payload": True,
                "payload": payload,
            }
        )

    async def send_block_action(
        self,
        channel_id: str,
        user_id: str,
        action_id: str,
        value: str,
        *,
        block_id: str | None = None,
        message_ts: str | None = None,
    ) -> dict[str, Any]:
        """Deliver a button click (``interactive`` envelope, ``block_actions`` payload).

        The clicked message defaults to the newest one in the channel.
        """
        channel = self.channels.get(channel_id)
        message = None
        if channel is not None and channel.messages:
            if message_ts is None:
                message = channel.messages[-1]
            else:
                message = next((m for m in channel.messages if m.ts == message_ts), None)
        ts = message_ts or (message.ts if message is not None else self._next_ts())
        payload: dict[str, Any] = {
            "type": "block_actions",
            "user": {
                "id": user_id,
                "username": self._user_name(user_id),
                "name": self._user_name(user_id),
                "team_id": self.team_id,
            },
            "api_app_id": self.app_id,
            "token": "x",
            "team": {"id": self.team_id, "domain": self.team_domain},
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": {"id": channel_id, "name": self._channel_name_for_payload(channel_id)},
            "container": {
                "type": "message",
                "message_ts": ts,
                "channel_id": channel_id,
                "is_ephemeral": False,
            },
            "trigger_id": self._trigger_id(),
            "response_url": self._response_url("actions"),
            "state": {"values": {}},
            "actions": [
                {
                    "action_id": action_id,
                    "block_id": block_id or random_id("", 5),
                    "value": value,
                    "type": "button",
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        }
        if message is not None:
            payload["message"] = message.to_api(include_metadata=True, app_id=self.app_id)
        return await self._deliver(
            {
                "envelope_id": str(uuid.uuid4()),
                "type": "interactive",
                "accepts_response_payload": False,
                "payload": payload,
            }
        )

    async def redeliver(
        self,
        envelope: dict[str, Any],
        *,
        retry_attempt: int,
        retry_reason: str = "timeout",
        new_envelope_id: bool = True,
    ) -> dict[str, Any]:
        """Send ``envelope`` again as Slack's retry would (same payload and event_id)."""
        again = copy.deepcopy(envelope)
        again["retry_attempt"] = retry_attempt
        again["retry_reason"] = retry_reason
        if new_envelope_id:
            again["envelope_id"] = str(uuid.uuid4())
        return await self._deliver(again)

    # -- misbehaving ---------------------------------------------------------------------------

    async def disconnect(self, reason: str = "refresh_requested") -> None:
        """Send ``{"type": "disconnect"}`` to every open socket; close those the client
        has not closed itself within ``disconnect_grace`` seconds (in the background)."""
        frame = json.dumps({"type": "disconnect", "reason": reason, "debug_info": {"host": "fake"}})
        for conn in list(self._connections):
            conn.disconnecting = True
            if not conn.frozen:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await conn.ws.send_str(frame)
            task = asyncio.create_task(self._close_after_grace(conn))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self._notify()

    async def _close_after_grace(self, conn: Connection) -> None:
        try:
            await asyncio.wait_for(conn.closed.wait(), self.disconnect_grace)
        except TimeoutError:
            await conn.ws.close(code=WSCloseCode.OK, message=b"disconnect")

    async def close_connections(self, code: int = WSCloseCode.GOING_AWAY, reason: str = "") -> None:
        """Close every socket with a close frame carrying ``code`` and ``reason``, as a
        server that goes away does (without the ``disconnect`` message Slack sends first
        when it can)."""
        for conn in list(self._connections):
            with contextlib.suppress(ConnectionError, RuntimeError):
                await conn.ws.close(code=code, message=reason.encode())

    async def drop_connections(self) -> None:
        """Abruptly drop every socket (TCP abort, no close handshake)."""
        conns = list(self._connections)
        for conn in conns:
            transport = conn.request.transport
            if transport is not None:
                transport.abort()
        for conn in conns:
            await conn.closed.wait()

    def freeze_connections(self) -> None:
        """Make every open socket half-open: pings, acks and other client frames are
        swallowed and deliveries to it vanish.  Client close frames are still honoured,
        so a client giving up on the socket is not left waiting."""
        for conn in self._connections:
            conn.frozen = True
        self._notify()

    def unfreeze_connections(self) -> None:
        for conn in self._connections:
            conn.frozen = False
        self._notify()

    async def _close_sockets(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for conn in list(self._connections):
            with contextlib.suppress(ConnectionError, RuntimeError):
                await conn.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server stopping")
