"""Benchmark 2: agents' ``/sk`` replies, Slack Socket Mode -> Telegram ``sendMessage``.

Every agent answers in its own customer's channel (conversations seeded, open). The
fake Slack writes ``slash_commands`` envelopes to the daemon's socket; ack latency is
envelope written -> ack frame received by the fake, end-to-end latency is envelope
written -> the fake Telegram accepting the ``sendMessage``.

The daemon paces Telegram sends as Telegram requires (skbridge.upstreams.telegram):
1/s per chat with bursts of 3, and 30/s overall with bursts of 30. That bounds reply
throughput (:func:`telegram_ceiling`); end-to-end latency is therefore measured at an
offered load inside those limits, and ack latency at 200 commands/s, where replies
queue up behind the 30/s limit by design (that backlog is abandoned: the run ends with
SIGKILL).

Phases: warm-up (one ``/sk`` per agent, so names and avatars are cached as in steady
operation), bursts (M agents x K commands at once), a paced run inside Telegram's
limits (end to end), and the paced ack run.
"""

from __future__ import annotations

import asyncio
import math
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.common import Bridge, Options, bridge
from bench.stats import joined, latency_ms
from bench.world import Customer, World, customers, until, with_channels, world

CHAT_RATE, CHAT_BURST = 1.0, 3
OVERALL_RATE, OVERALL_BURST = 30.0, 30
"""The daemon's Telegram pacing (skbridge.upstreams.telegram.Telegram)."""


@dataclass(frozen=True, slots=True)
class Plan:
    sizes: tuple[int, ...] = (1, 100)
    per_agent: int = 3
    e2e_rate: float = 20.0
    e2e_seconds: float = 8.0
    ack_rate: float = 200.0
    ack_seconds: float = 5.0
    channels: int = 200

    @classmethod
    def for_options(cls, options: Options) -> Plan:
        return cls(e2e_seconds=4.0, ack_seconds=3.0) if options.quick else cls()


def telegram_ceiling(agents: int, per_agent: int) -> float:
    """Replies/s the daemon's Telegram pacing allows for one burst (inf: no bound)."""
    total = agents * per_agent
    seconds = max((total - OVERALL_BURST) / OVERALL_RATE, (per_agent - CHAT_BURST) / CHAT_RATE, 0.0)
    return math.inf if seconds == 0 else total / seconds


@dataclass
class Sent:
    envelopes: dict[str, str]
    """envelope ID -> command text"""

    @property
    def texts(self) -> list[str]:
        return list(self.envelopes.values())


async def command(world: World, agent: str, customer: Customer, text: str, sent: Sent) -> None:
    envelope = await world.slack.send_command(customer.channel_id, agent, text)
    sent.envelopes[str(envelope["envelope_id"])] = text


def measure(world: World, sent: Sent) -> dict[str, float]:
    """Ack and end-to-end latencies (ms) and the reply rate of one phase."""
    slack, telegram = world.slack, world.telegram
    envelope_ids = list(sent.envelopes)
    acks = joined(slack.envelope_sent, slack.ack_at, envelope_ids)
    sent_at = {sent.envelopes[e]: t for e, t in slack.envelope_sent.items() if e in sent.envelopes}
    ends = joined(sent_at, telegram.sent_at, sent.texts)
    first = min(slack.envelope_sent[e] for e in envelope_ids)
    last = max(telegram.sent_at[t] for t in sent.texts if t in telegram.sent_at)
    return {
        **latency_ms("ack", acks),
        **latency_ms("e2e", ends),
        "rate": len(ends) / (last - first) if last > first else math.nan,
    }


async def wait_replies(world: World, phase: str, total: int, timeout: float) -> None:  # noqa: ASYNC109
    await until(
        lambda: world.telegram.sent_by_phase[phase] >= total, timeout, f"{total} replies ({phase})"
    )


async def burst(
    world: World, agents: Sequence[str], people: Sequence[Customer], per_agent: int, phase: str
) -> dict[str, float]:
    """Agent i sends ``per_agent`` commands in customer i's channel, all at once."""
    sent = Sent({})
    await asyncio.gather(
        *(
            command(world, agent, people[i], f"{phase}-{i}-{k}", sent)
            for k in range(per_agent)
            for i, agent in enumerate(agents)
        )
    )
    total = len(sent.envelopes)
    ceiling = telegram_ceiling(len(agents), per_agent)
    await wait_replies(world, phase, total, 30 + (total / ceiling if ceiling < math.inf else 0))
    return measure(world, sent)


async def paced(
    world: World,
    agents: Sequence[str],
    people: Sequence[Customer],
    rate: float,
    seconds: float,
    phase: str,
    *,
    wait_for_replies: bool,
) -> dict[str, float]:
    """Offer ``rate`` commands/s, agent and channel round-robin, for ``seconds``."""
    total = int(rate * seconds)
    sent = Sent({})
    start = time.monotonic()
    n = 0
    while n < total:
        due = min(total, int((time.monotonic() - start) * rate) + 1)
        while n < due:
            await command(
                world, agents[n % len(agents)], people[n % len(people)], f"{phase}-{n}", sent
            )
            n += 1
        await asyncio.sleep(0.002)
    offered = total / (time.monotonic() - start)
    acked = world.slack.ack_at
    await until(lambda: all(e in acked for e in sent.envelopes), 30, f"acks ({phase})", 0.05)
    if wait_for_replies:
        await wait_replies(world, phase, total, 30 + seconds)
    found = measure(world, sent)
    if not wait_for_replies:
        found = {k: v for k, v in found.items() if k.startswith("ack")}
    return {"offered": offered, **found}


async def run(kind: Bridge, options: Options, name: str) -> dict[str, float]:
    plan = Plan.for_options(options)
    async with world() as w:
        agents = w.add_agents(max(plan.sizes))
        people = with_channels(w, customers(plan.channels))
        with tempfile.TemporaryDirectory(prefix="skbench-") as tmp:
            async with bridge(
                kind, w, people, Path(tmp), options, mode="replies", name=name, kill=True
            ) as running:
                metrics: dict[str, float] = {"ready_s": running.ready_seconds}
                # Warm-up in the channels the bursts do not use; then let the pacers refill.
                warm = people[len(people) - len(agents) :]
                await burst(w, agents, warm, 1, "w")
                await running.settle()
                await asyncio.sleep(1.0)
                for m in plan.sizes:
                    found = await burst(w, agents[:m], people[:m], plan.per_agent, f"b{m}")
                    metrics.update({f"m{m}_{k}": v for k, v in found.items()})
                    metrics[f"m{m}_ceiling"] = telegram_ceiling(m, plan.per_agent)
                    await running.settle()
                    await asyncio.sleep(1.0)
                found = await paced(
                    w, agents, people, plan.e2e_rate, plan.e2e_seconds, "e", wait_for_replies=True
                )
                metrics.update({f"e2e_{k}": v for k, v in found.items()})
                await running.settle()
                found = await paced(
                    w, agents, people, plan.ack_rate, plan.ack_seconds, "a", wait_for_replies=False
                )
                metrics.update({f"acks_{k}": v for k, v in found.items()})
    return metrics
