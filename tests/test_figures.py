"""The team's figures: first reply times, who waits, the daily digest, and the metrics."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import time
from contextlib import closing
from datetime import datetime
from pathlib import Path

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from skbridge.cli import main
from skbridge.config import load_config
from skbridge.errors import ConfigError
from skbridge.ops.status import read_status, to_text
from skbridge.testing.harness import (
    ADA,
    ALICE,
    Daemon,
    Fakes,
    dispatch_notices,
    first_message,
)

STORE_ENGINES = ("sqlite", "postgresql")

MINUTE = 60.0


class Clock:
    def __init__(self, start: float | None = None) -> None:
        self.offset = 0.0 if start is None else start - time.time()

    def __call__(self) -> float:
        return time.time() + self.offset

    def skip(self, seconds: float) -> None:
        self.offset += seconds


def with_options(config: Path, section: str, options: str) -> Path:
    text = config.read_text()
    if f"[{section}]\n" in text:
        text = text.replace(f"[{section}]\n", f"[{section}]\n{options}\n")
    else:
        text += f"\n[{section}]\n{options}\n"
    config.write_text(text)
    return config


async def test_first_reply_times_openings_and_who_waits_are_reported(
    world: Fakes, tmp_path: Path
) -> None:
    """A reply 4 min in, a customer left waiting 10 min, a reopen: status says so."""
    clock = Clock()
    daemon = Daemon(world.write_config(tmp_path), clock=clock)
    await daemon.start()
    try:
        channel = await first_message(world)
        clock.skip(4 * MINUTE)
        await world.slack.send_command(channel, ALICE, "hello Ada")
        await world.telegram.wait_for(lambda: bool(world.telegram.sent_to(ADA)))
        world.telegram.customer_says(2002, "anyone?", first_name="Grace")
        await world.slack.wait_for(lambda: world.slack.channel_by_name("sk-grace") is not None)
        await daemon.wait_idle()
        clock.skip(10 * MINUTE)
        await world.slack.user_archives(channel, ALICE)
        archive = next(e for e in world.slack.deliveries if e["type"] == "events_api")
        await world.slack.wait_ack(archive["envelope_id"])
        world.telegram.customer_says(ADA, "back", first_name="Ada", last_name="Lovelace")
        await world.slack.wait_for(lambda: len(dispatch_notices(world)) == 3)
        await daemon.wait_idle()
        status = await read_status(world.store_url or tmp_path / "skbridge.db", now=clock())
    finally:
        await daemon.stop()
    day = status.figures["last_24h"]
    assert (day["new"], day["reopened"], day["answered"]) == (2, 1, 1)
    assert day["median_first_response"] == pytest.approx(4 * MINUTE, abs=5)
    assert [w["customer"] for w in status.unanswered] == ["Grace", "Ada Lovelace"]
    assert status.unanswered[0]["waiting_seconds"] == pytest.approx(10 * MINUTE, abs=5)
    assert status.unanswered[1]["reopens"] == 1
    text = to_text(status)
    assert "last 24 h: 2 new, 1 reopened; first reply median 4 min, p90 4 min (1 answered)" in text
    assert "unanswered     2 waiting, oldest first: Grace (#sk-grace) for 10 min" in text


def local(hour: int, minute: int, day_offset: int = 0) -> float:
    today = datetime.now().astimezone().replace(hour=hour, minute=minute, second=0, microsecond=0)
    return today.timestamp() + day_offset * 86_400


async def test_the_daily_digest_comes_once_a_day_at_its_hour(world: Fakes, tmp_path: Path) -> None:
    """slack.digest_at: nothing before the hour, one digest after it, one the next day."""
    clock = Clock(local(8, 59))
    config = with_options(world.write_config(tmp_path), "slack", 'digest_at = "09:00"')
    daemon = Daemon(config, clock=clock)
    await daemon.start()
    try:
        await first_message(world)
        await world.slack.wait_for(lambda: len(dispatch_notices(world)) == 1)
        assert daemon.service is not None and daemon.service.chores is not None
        chores = daemon.service.chores
        assert not await chores.digest_once()
        clock.skip(2 * MINUTE)
        assert await chores.digest_once()
        assert not await chores.digest_once()
        await world.slack.wait_for(lambda: len(dispatch_notices(world)) == 2)
        digest = dispatch_notices(world)[-1].text
        assert "Last 24 hours: 1 new, 0 reopened; no first reply yet" in digest
        assert "Waiting for an answer now: 1, oldest first: Ada Lovelace" in digest
        await daemon.restart()
        assert not await daemon.service.chores.digest_once()  # type: ignore[union-attr]
        clock.skip(86_400)
        assert await daemon.service.chores.digest_once()  # type: ignore[union-attr]
    finally:
        await daemon.stop()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_metrics_are_printed_from_the_database(
    world: Fakes, daemon: Daemon, config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``skbridge metrics``: counters, histograms and gauges, in the Prometheus format."""
    channel = await first_message(world)
    world.telegram.customer_says(ADA, "more", first_name="Ada", last_name="Lovelace")
    await world.slack.wait_for(lambda: len(world.slack.messages(channel)) == 2)
    await world.slack.send_command(channel, ALICE, "hello")
    await world.telegram.wait_for(lambda: bool(world.telegram.sent_to(ADA)))
    await daemon.wait_idle()
    assert await asyncio.to_thread(main, ["metrics", "-c", str(config_path)]) == 0
    found = samples(capsys.readouterr().out)
    telegram = (("direction", "in"), ("source", "telegram"))
    assert found[("skbridge_messages_total", telegram)] == 2
    assert found[("skbridge_messages_total", (("direction", "out"), ("source", "telegram")))] == 1
    assert found[("skbridge_delivery_seconds_count", telegram)] == 2
    bucket = tuple(sorted((*telegram, ("le", "+Inf"))))
    assert found[("skbridge_delivery_seconds_bucket", bucket)] == 2
    assert found[("skbridge_first_response_seconds_count", (("source", "telegram"),))] == 1
    assert found[("skbridge_conversations", (("state", "open"),))] == 1
    assert found[("skbridge_backlog", (("direction", "in"),))] == 0
    assert found[("skbridge_unanswered", ())] == 0


RECONNECTS = "SELECT value FROM counters WHERE name = 'skbridge_socket_reconnects_total'"


def reconnects(world: Fakes, tmp_path: Path) -> float:
    """The recorded count, read as a second process would (a sync predicate for wait_for)."""
    if world.store_url is not None:
        with psycopg.connect(world.store_url) as pg:
            row = pg.execute(RECONNECTS).fetchone()
    else:
        uri = f"file:{tmp_path / 'skbridge.db'}?mode=ro"
        with closing(sqlite3.connect(uri, uri=True)) as conn:
            row = conn.execute(RECONNECTS).fetchone()
    return float(row[0]) if row else 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_the_daemon_serves_metrics_on_a_loopback_address(
    world: Fakes, tmp_path: Path
) -> None:
    """[metrics] listen: the same figures over HTTP, counting Socket Mode reconnects."""
    port = free_port()
    config = with_options(world.write_config(tmp_path), "metrics", f'listen = "127.0.0.1:{port}"')
    daemon = Daemon(config)
    await daemon.start()
    try:
        await first_message(world)
        opened = world.slack.connections_opened
        await world.slack.drop_connections()
        await world.slack.wait_for(lambda: world.slack.connections_opened > opened)
        # The reconnect is recorded just after it happens.
        await world.slack.wait_for(lambda: reconnects(world, tmp_path) == 1)
        async with httpx.AsyncClient() as client:
            found = samples((await client.get(f"http://127.0.0.1:{port}/metrics")).text)
        assert found[("skbridge_messages_total", (("direction", "in"), ("source", "telegram")))]
        assert found[("skbridge_socket_reconnects_total", ())] == 1
    finally:
        await daemon.stop()


def test_metrics_on_a_remote_address_need_allow_remote(world: Fakes, tmp_path: Path) -> None:
    """The endpoint has no authentication: a non-loopback address is refused unless allowed."""
    config = with_options(world.write_config(tmp_path), "metrics", 'listen = "192.0.2.7:9464"')
    with pytest.raises(ConfigError, match=r"metrics\.listen: 192\.0\.2\.7 is not a loopback"):
        load_config(config, environ={})
    with_options(config, "metrics", "allow_remote = true")
    assert load_config(config, environ={}).metrics.address == ("192.0.2.7", 9464)
