"""Agent avatars: cached answers, cached failures, never a slow reply."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import httpx
import pytest

from skbridge import gravatar as gravatar_module
from skbridge.config import GravatarConfig
from skbridge.gravatar import Gravatar, email_hash
from skbridge.testing.fake_gravatar import FakeGravatar
from skbridge.testing.harness import ADA, ALICE, Daemon, Fakes, first_message

EMAIL = "alice@example.com"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def fake() -> AsyncIterator[FakeGravatar]:
    async with FakeGravatar() as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as client:
        yield client


def gravatar_for(url: str, http: httpx.AsyncClient, clock: Clock) -> Gravatar:
    return Gravatar(GravatarConfig(url=url), http, clock)


async def test_a_failed_lookup_is_cached_and_warned_about_once_an_hour(
    fake: FakeGravatar, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Gravatar failing: one request per backoff, not per reply; one warning an hour."""
    clock = Clock()
    avatars = gravatar_for(fake.url, http, clock)
    fake.add(EMAIL)
    fake.fail_next(503, times=100)
    with caplog.at_level(logging.WARNING, logger="skbridge.gravatar"):
        for _ in range(5):
            assert await avatars.avatar(EMAIL) is None
        assert len(fake.requests) == 1
        for _ in range(6):  # each backoff runs out; the refresh fails again
            clock.now += 600
            await avatars.avatar(EMAIL)
            await avatars.refresh()
    warnings = [r for r in caplog.records if "gravatar lookup failed" in r.getMessage()]
    assert len(warnings) == 2  # at 0 s and once the hour had passed
    assert len(fake.requests) == 6  # after backoffs of 1, 2, 4, 8 and 16 minutes


async def test_a_stale_answer_is_used_at_once_and_refreshed_in_the_background(
    fake: FakeGravatar, http: httpx.AsyncClient
) -> None:
    """A day later the known picture is returned without waiting; the refresh comes after."""
    clock = Clock()
    avatars = gravatar_for(fake.url, http, clock)
    fake.add(EMAIL)
    known = await avatars.avatar(EMAIL)
    assert known == f"{fake.url}/avatar/{email_hash(EMAIL)}?s=128"
    clock.now += 2 * 24 * 3600
    fake.fail_next(503)
    assert await avatars.avatar(EMAIL) == known
    assert len(fake.requests) == 1  # nothing asked on the reply's path
    assert await avatars.refresh() == 1
    assert len(fake.requests) == 2
    assert await avatars.avatar(EMAIL) == known  # the failed refresh kept the last answer
    assert await avatars.refresh() == 0


async def black_hole() -> asyncio.Server:
    """A server that accepts connections and never answers, like a dropping firewall."""

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    return await asyncio.start_server(hold, "127.0.0.1", 0)


async def test_a_reply_does_not_wait_for_an_unreachable_gravatar(
    world: Fakes, tmp_path: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Gravatar never answering: the reply reaches the customer; the echo uses Slack's picture."""
    monkeypatch.setattr(gravatar_module, "FIRST_LOOKUP", 0.05)
    server = await black_hole()
    port = server.sockets[0].getsockname()[1]
    config = world.write_config(tmp_path)  # type: ignore[arg-type]
    config.write_text(config.read_text().replace(world.gravatar.url, f"http://127.0.0.1:{port}"))
    daemon = Daemon(config)
    await daemon.start()
    try:
        channel = await first_message(world)
        await world.slack.send_command(channel, ALICE, "hello")
        await world.telegram.wait_for(lambda: world.telegram.sent_to(ADA) == ["Alice: hello"])
        await world.slack.wait_for(lambda: len(world.slack.messages(channel)) == 2)
        assert world.slack.messages(channel)[-1].icon_url == "https://img.example/alice.png"
    finally:
        await daemon.stop()
        server.close()
