"""The floor: the same round trips through the same fakes, by a bare script with no bridge.

No persistence, no routing, no pacing, no retries: a static map from Telegram chat to
Slack channel (and back) that the benchmark writes, and plain aiohttp calls.

* ``upstream``: long-poll ``getUpdates``; for each update, ``chat.postMessage`` to the
  customer's channel (at most 64 posts in flight, like the outbox), and poll again
  without waiting for the posts.
* ``replies``: open Socket Mode (``apps.connections.open`` then the websocket); ack
  every envelope at once, then ``sendMessage`` the ``/sk`` text to the customer.

Run by the benchmark as ``python -m bench.floor <mode> <spec.json>``; prints ``ready``
and stops by itself after ``max_seconds``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

import aiohttp

CONCURRENCY = 64


class Floor:
    def __init__(self, spec: dict[str, Any], session: aiohttp.ClientSession) -> None:
        self.spec = spec
        self.session = session
        self.slots = asyncio.Semaphore(CONCURRENCY)
        self.tasks: set[asyncio.Task[None]] = set()
        self.telegram = f"{spec['telegram_url']}/bot{spec['telegram_token']}"
        self.slack = str(spec["slack_api"])
        self.channel_of: dict[str, str] = spec["channels"]
        self.chat_of: dict[str, str] = {v: k for k, v in self.channel_of.items()}

    def spawn(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def slack_call(self, method: str, token: str, body: dict[str, Any]) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"}
        async with self.session.post(f"{self.slack}{method}", json=body, headers=headers) as r:
            data: dict[str, Any] = await r.json()
            return data

    # --- upstream -> Slack ---------------------------------------------------------------

    async def upstream(self) -> None:
        offset = 0
        print("ready", flush=True)
        while True:
            params = {"offset": offset, "limit": 100, "timeout": 20}
            async with self.session.post(f"{self.telegram}/getUpdates", json=params) as r:
                updates: list[dict[str, Any]] = (await r.json())["result"]
            for update in updates:
                offset = max(offset, int(update["update_id"]) + 1)
                message = update.get("message") or {}
                await self.slots.acquire()
                self.spawn(self.post(message))

    async def post(self, message: dict[str, Any]) -> None:
        try:
            sender = message.get("from") or {}
            name = " ".join(p for p in (sender.get("first_name"), sender.get("last_name")) if p)
            body = {
                "channel": self.channel_of[str(message["chat"]["id"])],
                "text": message.get("text", ""),
                "username": name,
            }
            await self.slack_call("chat.postMessage", self.spec["bot_token"], body)
        finally:
            self.slots.release()

    # --- /sk -> Telegram -----------------------------------------------------------------

    async def replies(self) -> None:
        opened = await self.slack_call("apps.connections.open", self.spec["app_token"], {})
        async with self.session.ws_connect(opened["url"]) as ws:
            await ws.receive()  # hello
            print("ready", flush=True)
            async for frame in ws:
                if frame.type is not aiohttp.WSMsgType.TEXT:
                    continue
                envelope = json.loads(frame.data)
                envelope_id = envelope.get("envelope_id")
                if not isinstance(envelope_id, str):
                    continue
                await ws.send_str(json.dumps({"envelope_id": envelope_id}))
                payload = envelope.get("payload") or {}
                self.spawn(self.send(payload))

    async def send(self, payload: dict[str, Any]) -> None:
        chat = self.chat_of[str(payload["channel_id"])]
        text = f"{payload.get('user_name', '')}: {payload.get('text', '')}"
        body = {"chat_id": int(chat), "text": text}
        async with self.session.post(f"{self.telegram}/sendMessage", json=body) as r:
            await r.read()


async def run(mode: str, spec: dict[str, Any]) -> None:
    async with aiohttp.ClientSession() as session:
        floor = Floor(spec, session)
        work = floor.upstream() if mode == "upstream" else floor.replies()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(float(spec.get("max_seconds", 600))):
                await work


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("upstream", "replies"):
        print("usage: python -m bench.floor upstream|replies SPEC.json", file=sys.stderr)
        return 2
    spec = json.loads(Path(argv[1]).read_text())
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(argv[0], spec))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
