"""Envelopes that arrive together are stored together: one commit for the group, then
an ack for each, in order; what the daemon does not act on is acked without a write."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from skbridge.intake import Intake, _Envelope
from skbridge.slack.envelopes import Handled
from skbridge.store import Store
from skbridge.testing.harness import ADA, ALICE, Daemon, Fakes, first_message, parked_input

STORE_ENGINES = ("sqlite", "postgresql")


def db_of(daemon: Daemon) -> Store:
    assert daemon.service is not None and daemon.service.db is not None
    return daemon.service.db


class Gate:
    """Records the size of each group the intake stores; holds the first one until opened,
    so that the envelopes sent meanwhile wait together."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sizes: list[int] = []
        self.opened = asyncio.Event()
        original = Intake._store_envelopes

        async def gated(intake: Intake, items: list[_Envelope], *, apart: bool = False) -> Any:
            if not apart:
                self.sizes.append(len(items))
            if len(self.sizes) == 1:
                await self.opened.wait()
            return await original(intake, items, apart=apart)

        monkeypatch.setattr(Intake, "_store_envelopes", gated)


async def commands(world: Fakes, channel: str, texts: list[str]) -> list[str]:
    return [(await world.slack.send_command(channel, ALICE, t))["envelope_id"] for t in texts]


async def test_commands_that_arrive_together_share_one_commit_and_keep_their_order(
    world: Fakes, daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel = await first_message(world)
    gate = Gate(monkeypatch)
    [first] = await commands(world, channel, ["r0"])
    await world.slack.wait_for(lambda: gate.sizes == [1])
    rest = await commands(world, channel, [f"r{n}" for n in range(1, 5)])
    gate.opened.set()
    for envelope_id in [first, *rest]:
        await world.slack.wait_ack(envelope_id)
    await world.telegram.wait_for(lambda: len(world.telegram.sent_to(ADA)) == 5)
    await daemon.wait_idle()
    assert world.telegram.sent_to(ADA) == [f"Alice: r{n}" for n in range(5)]
    assert sum(gate.sizes) == 5
    assert len(gate.sizes) < 5, gate.sizes  # those sent while the first waited: grouped


async def test_a_bug_on_one_envelope_of_a_group_sets_only_that_one_aside(
    world: Fakes, daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel = await first_message(world)
    gate = Gate(monkeypatch)
    original = Intake._command

    async def buggy(intake: Intake, tx: Any, command: Any, now: float) -> Any:
        if command.text == "boom":
            raise RuntimeError("a bug in skbridge")
        return await original(intake, tx, command, now)

    monkeypatch.setattr(Intake, "_command", buggy)
    [first] = await commands(world, channel, ["a"])
    await world.slack.wait_for(lambda: gate.sizes == [1])
    rest = await commands(world, channel, ["b", "boom", "c"])
    gate.opened.set()
    for envelope_id in [first, *rest]:
        await world.slack.wait_ack(envelope_id)  # the bad one too: parked, then acked
    await world.telegram.wait_for(lambda: len(world.telegram.sent_to(ADA)) == 3)
    await daemon.wait_idle()
    assert world.telegram.sent_to(ADA) == ["Alice: a", "Alice: b", "Alice: c"]
    [(origin, payload, error)] = await parked_input(daemon)
    assert origin == "slack" and '"boom"' in payload and "a bug in skbridge" in error


async def test_an_event_the_daemon_does_not_act_on_is_acked_without_a_write(
    world: Fakes, daemon: Daemon
) -> None:
    """The team's own talk in a customer channel: nothing to deduplicate, nothing stored."""
    channel = await first_message(world)
    await daemon.wait_idle()
    before = await db_of(daemon).all("SELECT key FROM received ORDER BY key")
    await world.slack.user_posts(channel, ALICE, "internal note")
    envelope = world.slack.deliveries[-1]
    assert envelope["payload"]["event"]["type"] == "message"
    await world.slack.wait_ack(envelope["envelope_id"])
    assert await db_of(daemon).all("SELECT key FROM received ORDER BY key") == before
    assert world.telegram.sent_to(ADA) == []


def test_handled_defaults_to_a_bare_ack() -> None:
    assert Handled() == Handled(ack=None, failed=None)
