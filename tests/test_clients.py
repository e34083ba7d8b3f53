"""The daemon's HTTP clients honour the standard proxy variables: behind a firewall that
lets traffic out only through a proxy, Slack's Web API, Telegram and file transfers go
through it; ``NO_PROXY`` keeps a host direct."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from skbridge import clients
from skbridge.config import load_config
from skbridge.slack.web import SlackWeb
from skbridge.testing.harness import Fakes


class RecordingProxy:
    """A forward proxy for plain-HTTP targets (absolute-form requests), noting each
    request's target before passing it on."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.url = ""

    async def forward(self, request: web.Request) -> web.Response:
        self.seen.append(str(request.url))
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                request.method, request.url, headers=request.headers, data=await request.read()
            ) as answer,
        ):
            return web.Response(
                body=await answer.read(),
                status=answer.status,
                content_type=answer.content_type,
            )


@pytest.fixture
async def proxy() -> AsyncIterator[RecordingProxy]:
    recording = RecordingProxy()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", recording.forward)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    recording.url = f"http://127.0.0.1:{port}"
    yield recording
    await runner.cleanup()


async def test_web_api_and_file_calls_go_through_the_proxy_in_the_environment(
    world: Fakes, tmp_path: Path, proxy: RecordingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    config = load_config(world.write_config(tmp_path))
    async with clients.opened(5) as (session, http):
        await SlackWeb(config.slack, session).auth_test()
        await http.get(f"{world.gravatar.url}/avatar/0123456789abcdef?d=404")
    assert [url.rsplit("/", 1)[-1] for url in proxy.seen[:1]] == ["auth.test"]
    assert any("/avatar/" in url for url in proxy.seen), proxy.seen


async def test_no_proxy_keeps_a_host_direct(
    world: Fakes, tmp_path: Path, proxy: RecordingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    config = load_config(world.write_config(tmp_path))
    async with clients.opened(5) as (session, _):
        await SlackWeb(config.slack, session).auth_test()
    assert proxy.seen == []


async def test_without_a_proxy_aiohttp_does_not_look_one_up_per_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Told to trust the environment, aiohttp reads it in a thread for every request."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "WS_PROXY", "WSS_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    async with clients.opened(5) as (session, _):
        assert session.trust_env is False
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    async with clients.opened(5) as (session, _):
        assert session.trust_env is True
