"""The Web API client against a plain HTTP server that answers whatever a test tells it:
what each kind of answer means (Slack's JSON, error pages, rate limits, nothing at all)
and what goes out (the token, JSON for posts, a form for the rest)."""

from __future__ import annotations

import json
import socket as sockets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from skbridge.config import SlackConfig
from skbridge.errors import MaybeSent, NotSent, RateLimited, Refused
from skbridge.health import Health
from skbridge.ids import ChannelId
from skbridge.slack.web import SYSTEM, SlackWeb

BOT = "xoxb-1111-2222-abcdefabcdef"


@dataclass
class Script:
    """The next answers, in order, and every request received."""

    answers: list[web.Response] = field(default_factory=list)
    seen: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)

    def json(self, body: Any, status: int = 200, **headers: str) -> None:
        self.answers.append(web.Response(text=json.dumps(body), status=status, headers=headers))

    def text(self, text: str, status: int) -> None:
        self.answers.append(web.Response(text=text, status=status))

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append(
            (request.match_info["method"], dict(request.headers), await request.read())
        )
        return self.answers.pop(0)


@dataclass
class Api:
    web: SlackWeb
    script: Script
    health: Health


def config(url: str) -> SlackConfig:
    return SlackConfig(
        bot_token=BOT,  # type: ignore[arg-type]
        app_token="xapp-1-A111-222-abcdef",  # type: ignore[arg-type]
        dispatch_channel="support",
        api_url=url,
        request_timeout=5,
    )


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    script = Script()
    app = web.Application()
    app.router.add_post("/api/{method}", script.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    health = Health()
    async with aiohttp.ClientSession() as session:
        yield Api(SlackWeb(config(f"http://127.0.0.1:{port}/api"), session, health), script, health)
    await runner.cleanup()


async def test_a_post_goes_as_json_with_the_bot_token_and_returns_its_ts(api: Api) -> None:
    api.script.json({"ok": True, "channel": "C1", "ts": "1700000000.000100"})
    ts = await api.web.post(ChannelId("C1"), "héllo", key="7.0", username="Ada")
    assert ts == "1700000000.000100"
    [(method, headers, body)] = api.script.seen
    assert method == "chat.postMessage"
    assert headers["Authorization"] == f"Bearer {BOT}"
    assert headers["Content-Type"].startswith("application/json")
    sent = json.loads(body)
    assert sent["text"] == "héllo" and sent["username"] == "Ada"
    assert sent["metadata"]["event_payload"] == {"key": "7.0"}
    assert api.health.outages == []


async def test_other_methods_go_form_encoded_and_auth_test_reads_the_scopes(api: Api) -> None:
    api.script.json(
        {"ok": True, "user_id": "UB", "bot_id": "B1", "team_id": "T1", "url": "https://x/"},
        **{"X-OAuth-Scopes": "chat:write, channels:manage"},
    )
    identity = await api.web.auth_test()
    assert identity.scopes == {"chat:write", "channels:manage"}
    api.script.json({"ok": True})
    await api.web.invite(ChannelId("C1"), [])
    _, headers, body = api.script.seen[-1]
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert body == b"channel=C1&users="


async def test_each_kind_of_answer_means_one_thing(api: Api) -> None:
    script, slack = api.script, api.web
    script.json({"ok": False, "error": "channel_not_found"})
    with pytest.raises(Refused, match="channel_not_found"):
        await slack.join(ChannelId("C1"))
    script.json({"ok": False, "error": "ratelimited"}, status=429, **{"Retry-After": "7"})
    with pytest.raises(RateLimited) as limited:
        await slack.join(ChannelId("C1"))
    assert limited.value.retry_after == 7.0
    script.text("<html>Service Unavailable</html>", status=503)
    with pytest.raises(MaybeSent, match="http_503"):
        await slack.join(ChannelId("C1"))
    script.json({"ok": False, "error": "internal_error"})
    with pytest.raises(MaybeSent, match="internal_error"):
        await slack.join(ChannelId("C1"))
    script.text("<html>not json</html>", status=200)  # a proxy's page: it may have gone through
    with pytest.raises(MaybeSent, match="bad_response"):
        await slack.join(ChannelId("C1"))
    script.text("Not Found", status=404)
    with pytest.raises(Refused, match="http_404"):
        await slack.join(ChannelId("C1"))


async def test_failures_count_against_slacks_health_refusals_do_not(api: Api) -> None:
    api.script.text("down", status=502)
    with pytest.raises(MaybeSent):
        await api.web.join(ChannelId("C1"))
    assert [o.system for o in api.health.outages] == [SYSTEM]
    api.script.json({"ok": False, "error": "not_in_channel"})
    with pytest.raises(Refused):
        await api.web.join(ChannelId("C1"))
    assert api.health.outages == []  # Slack answered


async def test_nobody_listening_is_not_sent() -> None:
    with sockets.socket() as unused:  # bound, never listening: connections are refused
        unused.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{unused.getsockname()[1]}/api"
        async with aiohttp.ClientSession() as session:
            with pytest.raises(NotSent, match="connect_failed"):
                await SlackWeb(config(url), session).join(ChannelId("C1"))
