"""``skbridge status``: the database read read-only while the daemon runs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest

from skbridge.cli import main
from skbridge.ops.status import read_status, to_text
from skbridge.testing.harness import (
    ADA,
    ALICE,
    Daemon,
    Fakes,
    customer_channel,
    dispatch_notices,
    first_message,
    texts,
)

GRACE = 2002


@pytest.fixture
async def crashable(config_path: Path) -> AsyncIterator[Daemon]:
    """The daemon, killed at the end: work left hanging on purpose needs no drain."""
    daemon = Daemon(config_path)
    await daemon.start()
    try:
        yield daemon
    finally:
        await daemon.kill()


def say(world: Fakes, text: str, user: int = ADA, name: str = "Ada") -> int:
    return world.telegram.customer_says(user, text, first_name=name, last_name="Lovelace")


async def status(config_path: Path, capsys: pytest.CaptureFixture[str], *flags: str) -> str:
    """``skbridge status`` in a thread, so the daemon keeps running in this loop meanwhile."""
    code = await asyncio.to_thread(main, ["status", "-c", str(config_path), *flags])
    out = capsys.readouterr().out
    assert code == 0, out
    return out


async def test_status_while_running_shows_states_backlog_replies_and_parked_work(
    world: Fakes, crashable: Daemon, config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every figure of the text report, from a daemon with work stuck, failed and parked."""
    channel = await first_message(world, "m0")
    world.telegram.block(ADA)
    await world.slack.send_command(channel, ALICE, "hello?")
    await world.slack.wait_for(lambda: "Not delivered" in texts(world.slack, channel)[-1])

    world.slack.fail_next("chat.postMessage", status=200, error="invalid_blocks")
    say(world, "poison")
    world.telegram.push_update({"message": {"chat": "nonsense"}})
    say(world, "m2")
    await world.slack.wait_for(lambda: texts(world.slack, channel)[-1] == "m2")
    await world.slack.wait_for(lambda: len(dispatch_notices(world)) == 2)

    say(world, "hi", user=GRACE, name="Grace")
    await world.slack.wait_for(lambda: world.slack.channel_by_name("sk-grace-lovelace") is not None)
    await crashable.wait_idle()
    await world.slack.user_archives(customer_channel(world.slack, "sk-grace-lovelace"), ALICE)
    await world.slack.wait_for(
        lambda: all(e["envelope_id"] in world.slack.acks for e in world.slack.deliveries)
    )

    world.telegram.unblock(ADA)
    world.telegram.hang_next("sendMessage")
    await world.slack.send_command(channel, ALICE, "stuck on its way")
    await world.telegram.wait_for(lambda: bool(world.telegram.calls_to("sendMessage")))
    queued = await world.slack.send_command(channel, ALICE, "waits behind it")
    await world.slack.wait_ack(queued["envelope_id"])
    update = say(world, "m3")
    await world.telegram.wait_for(lambda: world.telegram.confirmed_offset > update)

    lines = (await status(config_path, capsys)).splitlines()
    assert lines[0] == f"database       {config_path.parent / 'skbridge.db'}"
    assert lines[1] == "conversations  1 open, 1 archived, 0 opening, 0 reopening, 0 gone"
    assert lines[2] == "backlog        2 to customers, 1 to Slack"
    assert lines[3] == "replies        0 uncertain, 1 failed (not yet sent again)"
    assert lines[4] == "parked work    1"
    assert lines[5].startswith("  #")
    assert "post_customer_message (conversation 1, Ada Lovelace) at " in lines[5]
    assert lines[5].endswith(": invalid_blocks: chat.postMessage")
    assert lines[6] == "parked input   1"
    assert "telegram at " in lines[7] and "malformed message" in lines[7]
    assert lines[8] == "  by kind: 1 × a message skbridge cannot read from Telegram"
    assert lines[9] == "figures        last 24 h: 2 new, 0 reopened; no first reply yet"
    assert lines[10] == "               last 7 d : 2 new, 0 reopened; no first reply yet"
    assert lines[11].startswith(
        "unanswered     1 waiting, oldest first: Ada Lovelace (#sk-ada-lovelace) for "
    )
    assert lines[12].startswith("last activity  20") and lines[12].endswith("(0 minutes ago)")
    assert lines[13].startswith("instance       ")
    assert ": upstream:telegram; " in lines[13]  # it polls; lanes are counted on PostgreSQL


async def test_status_json_is_the_same_report(
    world: Fakes, daemon: Daemon, config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--json prints the same figures as JSON; the last activity is an ISO time."""
    await first_message(world)
    await daemon.wait_idle()
    report = json.loads(await status(config_path, capsys, "--json"))
    last = report.pop("last_activity")
    [instance] = report.pop("instances")
    assert ": upstream:telegram; " in instance  # this daemon polls Telegram
    assert report == {
        "database": str(config_path.parent / "skbridge.db"),
        "conversations": {"open": 1, "archived": 0, "opening": 0, "reopening": 0, "gone": 0},
        "backlog": {"to_customers": 0, "to_slack": 0},
        "replies": {"uncertain": 0, "failed": 0},
        "parked_outbox": [],
        "parked_input": [],
        "parked_kinds": {},
        "ignored": {},
        "minutes_since_activity": 0,
        "outages": [],
        "figures": {
            period: {
                "new": 1,
                "reopened": 0,
                "answered": 0,
                "median_first_response": None,
                "p90_first_response": None,
            }
            for period in ("last_24h", "last_7d")
        },
        "unanswered": [
            {
                "customer": "Ada Lovelace",
                "channel": "sk-ada-lovelace",
                "waiting_seconds": report["unanswered"][0]["waiting_seconds"],
                "messages_in": 1,
                "replies": 0,
                "reopens": 0,
            }
        ],
        "unanswered_total": 1,
    }
    later = datetime.fromisoformat(last).timestamp() + 185
    text = to_text(await read_status(config_path.parent / "skbridge.db", now=later))
    assert f"last activity  {last} (3 minutes ago)\ninstance       " in text
    assert "parked work    none\nparked input   none" in text
