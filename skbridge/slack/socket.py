"""Slack Socket Mode: one websocket, envelopes handled in order, acked after they are durable.

slack_sdk's own Socket Mode clients spawn an unowned task per frame (so order is lost)
and a client whose session closed can loop forever; this small loop keeps the
properties skbridge needs instead:

* every (re)connect uses a fresh single-use URL from ``apps.connections.open``;
* each envelope is handed to ``handle`` and acked only after ``handle`` returns (the
  envelope is durable by then); if the database cannot take it, it is not acked and
  Slack delivers it again. Envelopes already waiting when the handler is free are
  handed over together, in order, so that they share one commit (under load, hundreds
  of ``/sk`` arrive within milliseconds), and are then acked one by one;
* an envelope ``handle`` crashes on (a bug) is logged and parked, then acked: one bad
  envelope neither stops the daemon nor comes back forever;
* websocket pings every ``heartbeat`` seconds notice a dead or half-open connection,
  which is replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from skbridge import retry
from skbridge.errors import ConfigError, DeliveryError, Refused, StoreUnavailable, TooLate
from skbridge.slack import errors as slack_errors
from skbridge.slack.envelopes import Handled, Received
from skbridge.slack.web import SlackWeb

log = logging.getLogger(__name__)

Envelope = dict[str, Any]
Handler = Callable[[list[Received]], Awaitable[list[Handled]]]
"""Makes envelopes durable, in order; says for each how it went (its ack's payload)."""
Parker = Callable[[Envelope, str], Awaitable[None]]
"""Sets an envelope aside, durably, with an error; raises when the database cannot."""

HELLO_TIMEOUT = 30.0
GROUP_MAX = 500
"""The most envelopes handed over at once."""


class SocketMode:
    def __init__(
        self,
        web: SlackWeb,
        session: aiohttp.ClientSession,
        handle: Handler,
        *,
        park: Parker,
        heartbeat: float = 10.0,
        on_state: Callable[[str], None] = lambda state: None,
    ) -> None:
        self._web = web
        self._session = session
        self._handle = handle
        self._park = park
        self._heartbeat = heartbeat
        self._on_state = on_state
        self.connected = asyncio.Event()
        self.disconnected = asyncio.Event()
        self.connections = 0
        self._degraded = False
        self._disconnect_reason: str | None = None

    async def run(self) -> None:
        """Stay connected until cancelled."""
        failures = 0
        while True:
            try:
                url = await self._open_url()
                await self._connection(url)
                failures = 0
                if self._disconnect_reason in slack_errors.SOCKET_REFUSED:
                    # Another instance holds the connections, or Socket Mode was turned off.
                    failures = 3
                    log.error(
                        "slack refused this connection; is another skbridge running?",
                        extra={"reason": self._disconnect_reason},
                    )
                    self._on_state("reconnecting")
                    await retry.wait(retry.RECONNECT.delay(failures))
            except (DeliveryError, aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
                failures += 1
                delay = retry.RECONNECT.delay(failures)
                log.warning(
                    "socket mode connection failed",
                    extra={"error": str(exc) or type(exc).__name__, "retry_in": round(delay, 1)},
                )
                self._on_state("reconnecting")
                await retry.wait(delay)
            finally:
                self.connected.clear()
                self.disconnected.set()

    async def _open_url(self) -> str:
        try:
            return await self._web.socket_url()
        except Refused as exc:
            if exc.code in slack_errors.BAD_TOKEN:
                raise ConfigError("slack.app_token", f"Slack refused it ({exc.code})") from None
            raise

    async def _connection(self, url: str) -> None:
        async with self._session.ws_connect(
            url, heartbeat=self._heartbeat, autoping=True, max_msg_size=16 * 2**20
        ) as ws:
            hello = await asyncio.wait_for(ws.receive(), HELLO_TIMEOUT)
            if hello.type is not aiohttp.WSMsgType.TEXT or _type_of(hello.data) != "hello":
                raise ConnectionError(f"expected hello, got {hello.type.name}")
            self.connections += 1
            self._disconnect_reason = None
            self.disconnected.clear()
            self.connected.set()
            self._on_state("connected")
            log.info("socket mode connected", extra={"connection": self.connections})
            frames: asyncio.Queue[tuple[float, aiohttp.WSMessage]] = asyncio.Queue()
            reader = asyncio.create_task(_read(ws, frames), name="socket mode reader")
            try:
                await self._handle_frames(ws, frames)
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader

    async def _handle_frames(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        frames: asyncio.Queue[tuple[float, aiohttp.WSMessage]],
    ) -> None:
        """Handle frames in the order they came, until the connection ends; those already
        waiting go together."""
        while True:
            waiting = [await frames.get()]
            while len(waiting) < GROUP_MAX and not frames.empty():
                waiting.append(frames.get_nowait())
            group: list[Received] = []
            for received, message in waiting:
                if message.type is not aiohttp.WSMsgType.TEXT:
                    await self._envelopes(ws, group)
                    group = []
                    if message.type in _ENDED:
                        _log_end(message)
                        return
                    continue
                envelope = self._envelope_of(message.data)
                if envelope is _DISCONNECT:
                    await self._envelopes(ws, group)
                    reason = {"reason": self._disconnect_reason}
                    log.info("socket mode connection closing on request", extra=reason)
                    return
                if envelope is not None:
                    group.append((envelope, received))
            await self._envelopes(ws, group)

    def _envelope_of(self, data: str) -> Envelope | None:
        """The envelope a frame carries; None for anything else; ``_DISCONNECT`` when
        Slack asks for the connection to be replaced."""
        try:
            frame = json.loads(data)
            if not isinstance(frame, dict):
                raise TypeError("frame is not an object")
        except (ValueError, TypeError, RecursionError):  # RecursionError: nested too deep
            log.warning("socket mode frame is not JSON", extra={"frame": data[:200]})
            return None
        kind = frame.get("type")
        if kind == "disconnect":
            self._disconnect_reason = str(frame.get("reason"))
            log.info("socket mode disconnect requested", extra={"reason": frame.get("reason")})
            return _DISCONNECT
        if not isinstance(frame.get("envelope_id"), str):
            log.debug("socket mode frame ignored", extra={"kind": kind})
            return None
        return frame

    async def _envelopes(self, ws: aiohttp.ClientWebSocketResponse, group: list[Received]) -> None:
        """Hand ``group`` over, then ack each envelope that was stored."""
        if not group:
            return
        try:
            results = await self._handle(group)
        except Exception as exc:  # the whole group; CancelledError is no Exception
            results = [Handled(failed=exc)] * len(group)
        for (envelope, _), handled in zip(group, results, strict=True):
            await self._answer(ws, envelope, handled)

    async def _answer(
        self, ws: aiohttp.ClientWebSocketResponse, envelope: Envelope, handled: Handled
    ) -> None:
        envelope_id = envelope["envelope_id"]
        payload = handled.ack
        if isinstance(handled.failed, StoreUnavailable):
            exc = handled.failed
            self._degraded = True
            self._on_state(f"degraded: {exc}")
            why = "not stored in time" if isinstance(exc, TooLate) else "database unavailable"
            log.error(
                f"envelope not acked: {why}", extra={"envelope": envelope_id, "error": str(exc)}
            )
            return
        if handled.failed is not None:
            if not await self._set_aside(envelope, handled.failed):
                return
            payload = None
        if self._degraded:
            self._degraded = False
            self._on_state("connected")
        ack: dict[str, Any] = {"envelope_id": envelope_id}
        if payload is not None:
            ack["payload"] = payload
        await ws.send_str(json.dumps(ack))

    async def _set_aside(self, frame: Envelope, exc: Exception) -> bool:
        """After ``handle`` crashed on ``frame``: park it; True when it may now be acked.

        A crash inside the handler's transaction rolls it back: nothing of the envelope
        is stored. Leaving it unacked would not save it: the same bug fails each of
        Slack's retries (and commands and clicks are not retried at all), so it would be
        lost, only later. Parked, it is kept where ``skbridge status`` shows it, and the
        ack ends the retries. Only when parking fails too is it left unacked, for Slack
        to deliver again.
        """
        envelope_id = frame.get("envelope_id")
        log.error("envelope handler failed", exc_info=exc, extra={"envelope": envelope_id})
        try:
            await self._park(frame, f"{type(exc).__name__}: {exc}")
        except Exception as park_exc:
            log.error(
                "envelope not acked: it could not be parked either",
                extra={"envelope": envelope_id, "error": str(park_exc)},
            )
            return False
        return True


async def _read(
    ws: aiohttp.ClientWebSocketResponse, frames: asyncio.Queue[tuple[float, aiohttp.WSMessage]]
) -> None:
    """Read frames as they come, stamped with when they came.

    Reading apart from handling keeps each envelope's true age while it waits behind a
    slow one (ack deadlines count from here), and keeps answering Slack's pings while
    the handler waits for the database.
    """
    loop = asyncio.get_running_loop()
    while True:
        # receive(), not ``async for``, which swallows the close frame and its reason.
        try:
            message = await ws.receive()
        except Exception as exc:
            message = aiohttp.WSMessage(aiohttp.WSMsgType.ERROR, exc, None)
        frames.put_nowait((loop.time(), message))
        if message.type in _ENDED:
            return


_DISCONNECT: Envelope = {"type": "disconnect"}
"""What :meth:`SocketMode._envelope_of` returns for a disconnect request."""
_WS = aiohttp.WSMsgType
_ENDED = frozenset({_WS.CLOSE, _WS.CLOSING, _WS.CLOSED, _WS.ERROR})


def _log_end(message: aiohttp.WSMessage) -> None:
    """How the connection ended: the close frame's code and reason when the server sent
    one (``ws.close_code`` has no reason, and says 1006 or None when TCP just dropped)."""
    if message.type is _WS.CLOSE:
        extra: dict[str, object] = {"code": message.data}
        if message.extra:
            extra["reason"] = message.extra
        log.info("socket mode connection closed", extra=extra)
        return
    error = message.data if message.type is _WS.ERROR else None
    extra = {"error": f"{type(error).__name__}: {error}"} if error is not None else {}
    log.info("socket mode connection closed without a close frame", extra=extra)


def _type_of(data: str) -> str | None:
    try:
        frame = json.loads(data)
    except (ValueError, RecursionError):
        return None
    return frame.get("type") if isinstance(frame, dict) else None
