"""Malformed input is parked and acknowledged, never fatal to the daemon.

Values SQLite cannot store (a lone UTF-16 surrogate, an integer past 64 bits), broken
interactive payloads, and a bug in handling one envelope: each is set aside where
``skbridge status`` shows it, confirmed to its sender, and the next message flows.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from skbridge.core.model import Customer, CustomerMessage
from skbridge.ids import ChannelId, OutboxId, SlackUserId, UpstreamUserId
from skbridge.intake import Intake, cursor_key
from skbridge.slack import envelopes
from skbridge.slack.envelopes import Malformed
from skbridge.store import queries as q
from skbridge.store.sqlite import SqliteStore
from skbridge.testing.harness import (
    ADA,
    ALICE,
    Daemon,
    Fakes,
    first_message,
    parked_input,
    say,
    texts,
)
from skbridge.upstreams import Arrival
from skbridge.upstreams.telegram import SOURCE, parse_update

LONE = "\ud83d"
"""Half of a surrogate pair: valid in JSON (``"\\ud83d"``), not encodable as UTF-8."""


def storable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# --- values SQLite cannot store --------------------------------------------------------


def test_telegram_update_with_a_lone_surrogate_anywhere_is_unreadable() -> None:
    """parse_update turns unencodable text into an error arrival with an escaped raw copy."""
    message = {"message_id": 1, "chat": {"id": 7, "type": "private"}, "from": {"id": 7}}
    for update in (
        {"update_id": 5, "message": {**message, "text": LONE}},
        {"update_id": 5, "message": {**message, "text": "hi", "from": {"first_name": LONE}}},
        {"update_id": 5, "message": {**message, "text": "hi"}, "extra": [LONE]},
    ):
        arrival = parse_update(update)
        assert arrival.key == "telegram:5" and arrival.message is None
        assert arrival.error is not None and "surrogate" in arrival.error
        assert storable(arrival.raw) and json.loads(arrival.raw) == update
    odd = parse_update(LONE)
    assert odd.message is None and storable(odd.raw) and storable(odd.key)


def test_envelope_with_a_lone_surrogate_anywhere_is_malformed() -> None:
    """envelopes.parse refuses unencodable text; the dedupe key is always storable."""
    command = {
        "envelope_id": "e1",
        "type": "slash_commands",
        "payload": {"command": "/sk", "channel_id": "C1", "user_id": "U1", "text": LONE},
    }
    parsed = envelopes.parse(command)
    assert isinstance(parsed, Malformed) and "surrogate" in parsed.error
    rename = {
        "envelope_id": "e2",
        "type": "events_api",
        "payload": {
            "event_id": f"Ev{LONE}",
            "event": {"type": "channel_rename", "channel": {"id": "C1", "name": LONE}},
        },
    }
    assert isinstance(envelopes.parse(rename), Malformed)
    key = envelopes.dedupe_key(rename)
    assert key is not None and storable(key)
    key = envelopes.dedupe_key({"envelope_id": LONE, "type": "interactive", "payload": {}})
    assert key is not None and storable(key)


async def test_unstorable_telegram_text_or_name_is_parked_and_confirmed(
    world: Fakes, daemon: Daemon
) -> None:
    """A lone surrogate in a text or a first name is parked; Telegram is confirmed past it."""
    channel = await first_message(world, "m0")
    world.telegram.customer_says(ADA, f"broken {LONE}", first_name="Ada", last_name="Lovelace")
    bad_name = world.telegram.customer_says(2002, "hello", first_name=LONE)
    say(world, "m1")
    await world.slack.wait_for(lambda: texts(world.slack, channel) == ["m0", "m1"])
    await world.telegram.wait_for(lambda: world.telegram.confirmed_offset > bad_name)
    parked = await parked_input(daemon)
    assert [(origin, "surrogate" in error) for origin, _, error in parked] == [
        ("telegram", True),
        ("telegram", True),
    ]
    assert json.loads(parked[0][1])["message"]["text"] == f"broken {LONE}"
    assert world.slack.channel_by_name("sk-2002") is None


async def test_unstorable_command_text_is_parked_and_acked(world: Fakes, daemon: Daemon) -> None:
    """/sk with a lone surrogate is acked and parked; the next /sk is delivered."""
    channel = await first_message(world)
    bad = await world.slack.send_command(channel, ALICE, f"hi {LONE}")
    await world.slack.wait_ack(bad["envelope_id"])
    good = await world.slack.send_command(channel, ALICE, "still works")
    await world.slack.wait_ack(good["envelope_id"])
    await world.telegram.wait_for(lambda: world.telegram.sent_to(ADA) == ["Alice: still works"])
    [(origin, payload, error)] = await parked_input(daemon)
    assert origin == "slack" and "surrogate" in error
    assert json.loads(payload)["payload"]["text"] == f"hi {LONE}"


async def test_unstorable_channel_name_or_ids_are_parked_and_acked(
    world: Fakes, daemon: Daemon
) -> None:
    """A channel_rename to an unencodable name, or such an envelope or event id: acked, parked."""
    channel = await first_message(world)
    rename = await world.slack.send_event(
        {"type": "channel_rename", "channel": {"id": channel, "name": f"sk-{LONE}"}}
    )
    await world.slack.wait_ack(rename["envelope_id"])
    archive = {"type": "channel_archive", "channel": channel, "user": ALICE}
    odd_ids = {
        "envelope_id": f"env-{LONE}",
        "type": "events_api",
        "accepts_response_payload": False,
        "payload": {"event_id": f"Ev{LONE}", "type": "event_callback", "event": archive},
    }
    await world.slack.send_raw(json.dumps(odd_ids))
    await world.slack.wait_ack(f"env-{LONE}")
    say(world, "still open")
    await world.slack.wait_for(lambda: texts(world.slack, channel) == ["Hello", "still open"])
    parked = await parked_input(daemon)
    assert [origin for origin, _, _ in parked] == ["slack", "slack"]
    assert all("surrogate" in error for _, _, error in parked)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    database = await SqliteStore.open(tmp_path / "skbridge.db")
    yield database
    await database.close()


def arrival(n: int, name: str) -> Arrival:
    customer = Customer(SOURCE, UpstreamUserId(str(n)), name)
    return Arrival(f"telegram:{n}", CustomerMessage(customer, "hi", str(n)), raw=f'"{name}"')


async def test_intake_parks_an_unstorable_arrival_alone(db: SqliteStore) -> None:
    """Belt: an arrival its parser let through is parked; the rest and the cursor are stored."""
    submitted: list[q.OutboxRow] = []
    intake = Intake(db, submitted.extend)
    batch = [arrival(1, "Ada"), arrival(2, LONE), arrival(3, "Grace")]
    await intake.upstream_batch(SOURCE, batch, "4")
    await intake.upstream_batch(SOURCE, batch, "4")  # served again: nothing twice
    names = await db.all("SELECT customer_name FROM conversations ORDER BY id")
    assert [r[0] for r in names] == ["Ada", "Grace"]
    [parked] = await db.all("SELECT origin, payload, error FROM parked_input")
    assert parked[0] == "telegram" and parked[1] == '"\\ud83d"' and "cannot be stored" in parked[2]
    assert await q.get_setting(db, cursor_key(SOURCE)) == "4"
    assert submitted


async def test_intake_parks_an_envelope_it_cannot_store(
    db: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Belt: an envelope its parser let through with an unstorable value is parked, acked."""
    click = envelopes.JoinClicked(ChannelId(LONE), SlackUserId("U1"))
    monkeypatch.setattr(envelopes, "parse", lambda envelope: click)  # a parser bug
    intake = Intake(db, lambda rows: None)
    envelope = {"envelope_id": "e1", "type": "interactive", "payload": {"value": LONE}}
    assert await intake.envelope(envelope) is None
    [parked] = await db.all("SELECT origin, payload, error FROM parked_input")
    assert parked[0] == "slack" and json.loads(parked[1]) == envelope
    assert "cannot be stored" in parked[2]


# --- interactive payloads --------------------------------------------------------------


def block_actions(actions: Any, user: Any = None) -> dict[str, Any]:
    return {
        "envelope_id": "e1",
        "type": "interactive",
        "payload": {
            "type": "block_actions",
            "user": {"id": "U1"} if user is None else user,
            "channel": {"id": "C1"},
            "actions": actions,
        },
    }


RESEND = "resend_reply"
JOIN = "join_conversation"


@pytest.mark.parametrize(
    ("actions", "user", "error"),
    [
        pytest.param([], None, "no actions", id="empty"),
        pytest.param("click", None, "no actions", id="not a list"),
        pytest.param(["click"], None, "action is not an object", id="action not an object"),
        pytest.param(
            [{"action_id": RESEND, "value": str(10**23)}], None, "out of range", id="huge"
        ),
        pytest.param([{"action_id": RESEND, "value": 10**23}], None, "out of range", id="huge int"),
        pytest.param([{"action_id": RESEND, "value": "0"}], None, "out of range", id="zero"),
        pytest.param([{"action_id": RESEND, "value": "seven"}], None, "not a row id", id="words"),
        pytest.param([{"action_id": RESEND, "value": True}], None, "not a row id", id="bool"),
        pytest.param([{"action_id": JOIN, "value": {"id": "C1"}}], None, "value", id="join value"),
        pytest.param([{"action_id": JOIN, "value": "C1"}], {"id": 7}, "user.id", id="user id"),
        pytest.param([{"action_id": JOIN, "value": "C1"}], "U1", "user.id", id="user"),
    ],
)
def test_non_conforming_block_actions_are_malformed(actions: Any, user: Any, error: str) -> None:
    """Every block_actions payload skbridge cannot use becomes Malformed, saying why."""
    parsed = envelopes.parse(block_actions(actions, user))
    assert isinstance(parsed, Malformed)
    assert error in parsed.error


def test_conforming_block_actions_still_parse() -> None:
    """The clicks skbridge offers parse as before."""
    resend = block_actions([{"action_id": "resend_reply", "value": "42"}])
    assert envelopes.parse(resend) == envelopes.ResendClicked(
        OutboxId(42), ChannelId("C1"), SlackUserId("U1")
    )
    join = block_actions([{"action_id": "join_conversation", "value": "C9"}])
    assert isinstance(envelopes.parse(join), envelopes.JoinClicked)


async def test_empty_or_out_of_range_interactions_are_parked_and_acked(
    world: Fakes, daemon: Daemon
) -> None:
    """A click with no actions, or a resend of row 10**23: acked, parked, the daemon goes on."""
    channel = await first_message(world)
    huge = await world.slack.send_block_action(channel, ALICE, "resend_reply", str(10**23))
    await world.slack.wait_ack(huge["envelope_id"])
    empty = {
        "envelope_id": "no-actions",
        "type": "interactive",
        "accepts_response_payload": False,
        "payload": {**huge["payload"], "actions": []},
    }
    await world.slack.send_raw(json.dumps(empty))
    await world.slack.wait_ack("no-actions")
    good = await world.slack.send_command(channel, ALICE, "still works")
    await world.slack.wait_ack(good["envelope_id"])
    await world.telegram.wait_for(lambda: world.telegram.sent_to(ADA) == ["Alice: still works"])
    errors = [error for _, _, error in await parked_input(daemon)]
    assert len(errors) == 2
    assert "out of range" in errors[0] and "no actions" in errors[1]


# --- a bug in handling one envelope ----------------------------------------------------


async def test_a_handler_bug_for_one_envelope_is_logged_parked_and_acked(
    world: Fakes, daemon: Daemon, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An unexpected exception while handling one envelope: traceback logged, parked, acked."""
    real_parse = envelopes.parse

    def buggy(envelope: dict[str, Any]) -> envelopes.Parsed:
        if envelope.get("payload", {}).get("text") == "trigger":
            raise RuntimeError("a bug in skbridge")
        return real_parse(envelope)

    channel = await first_message(world)
    monkeypatch.setattr(envelopes, "parse", buggy)  # the seam: a bug no input can cause today
    bad = await world.slack.send_command(channel, ALICE, "trigger")
    await world.slack.wait_ack(bad["envelope_id"])
    good = await world.slack.send_command(channel, ALICE, "still works")
    await world.slack.wait_ack(good["envelope_id"])
    await world.telegram.wait_for(lambda: world.telegram.sent_to(ADA) == ["Alice: still works"])

    [(origin, payload, error)] = await parked_input(daemon)
    assert origin == "slack" and error == "RuntimeError: a bug in skbridge"
    assert json.loads(payload)["envelope_id"] == bad["envelope_id"]
    [record] = [r for r in caplog.records if r.name == "skbridge.slack.socket" and r.exc_info]
    assert record.levelno == logging.ERROR
    assert record.__dict__["envelope"] == bad["envelope_id"]


async def test_json_nested_past_pythons_stack_harms_nothing(world: Fakes, daemon: Daemon) -> None:
    """A frame or an error body nested 100,000 deep is dropped; both receivers go on."""
    channel = await first_message(world, "m0")
    deep = "[" * 100_000 + "]" * 100_000
    await world.slack.send_raw(deep)
    world.telegram.fail_next("getUpdates", status=502, body=deep)
    say(world, "m1")
    await world.slack.wait_for(lambda: texts(world.slack, channel) == ["m0", "m1"])
    envelope = await world.slack.send_command(channel, ALICE, "still here")
    await world.slack.wait_ack(envelope["envelope_id"])
