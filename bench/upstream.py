"""Benchmark 1: customers on Telegram -> their Slack channels, rate limits off.

Every customer's conversation already exists (open, with its channel) in the seeded
database and in the fake Slack: the messages measured are never a customer's first, so
no ``conversations.create`` (paced at ~20/min by the daemon) is involved. The daemon
still paces ``chat.postMessage`` per channel at Slack's rate (1/s, bursts of 3), which
bounds what one customer can push through; :func:`pacing_ceiling` says by how much.

Phases, in one daemon (each on its own customers, so every channel starts with a full
burst; the next phase starts once the daemon's outbox is empty): a warm-up, then bursts
(N customers x K messages written at once), then a paced run at a fixed offered load.
Added latency = fake Slack receiving the post - the fake Telegram handing the update out
in a ``getUpdates`` answer.
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
from bench.proc import rss_mb
from bench.stats import joined, latency_ms
from bench.world import Customer, World, customers, say, until, with_channels, world

POST_RATE = 1.0
POST_BURST = 3
"""The daemon's own per-channel pacing of chat.postMessage (skbridge.slack.web.SlackWeb)."""


@dataclass(frozen=True, slots=True)
class Plan:
    sizes: tuple[int, ...] = (1, 100, 1000)
    per_customer: int = 5
    paced_rate: float = 200.0
    paced_seconds: float = 10.0
    paced_customers: int = 1000
    warmup_customers: int = 20

    @classmethod
    def for_options(cls, options: Options) -> Plan:
        return cls(paced_seconds=5.0) if options.quick else cls()


def pacing_time(per_customer: int) -> float:
    """The least time one channel needs for ``per_customer`` posts at the daemon's pace."""
    return max(0.0, (per_customer - POST_BURST) / POST_RATE)


def pacing_ceiling(customers: int, per_customer: int) -> float:
    """Messages/s the daemon's per-channel pacing allows for one burst (inf: no bound)."""
    seconds = pacing_time(per_customer)
    return math.inf if seconds == 0 else customers * per_customer / seconds


def misordered(world: World, people: Sequence[Customer], phase: str, texts: Sequence[str]) -> int:
    """Customers whose channel does not show exactly their ``texts`` of ``phase``, in order."""
    expected: dict[int, list[str]] = {}
    for text in texts:
        expected.setdefault(int(text.split("-")[1]), []).append(text)
    bad = 0
    for c in people:
        posted = [m.text for m in world.slack.channels[c.channel_id].messages]
        mine = [t for t in posted if t.startswith(f"{phase}-{c.number}-")]
        if mine != expected.get(c.number, []):
            bad += 1
    return bad


async def burst(
    world: World, people: Sequence[Customer], per_customer: int, phase: str
) -> dict[str, float]:
    """Every customer writes ``per_customer`` messages at once; wait for all to be posted."""
    texts: list[str] = []
    for k in range(per_customer):
        for c in people:
            text = f"{phase}-{c.number}-{k}"
            say(world, c, text)
            texts.append(text)
    total = len(texts)
    slowest = 30 + 2 * pacing_time(per_customer) + total / 200
    await until(
        lambda: world.slack.received_by_phase[phase] >= total, slowest, f"{total} posts ({phase})"
    )
    handed, received = world.telegram.handed_out, world.slack.received_at
    elapsed = max(received[t] for t in texts) - min(handed[t] for t in texts)
    return {
        "rate": total / elapsed,
        **latency_ms("lat", joined(handed, received, texts)),
        "misordered": misordered(world, people, phase, texts),
    }


async def paced(
    world: World, people: Sequence[Customer], rate: float, seconds: float, phase: str
) -> dict[str, float]:
    """Offer ``rate`` messages/s round-robin over ``people`` for ``seconds``."""
    total = int(rate * seconds)
    texts: list[str] = []
    start = time.monotonic()
    while len(texts) < total:
        due = min(total, int((time.monotonic() - start) * rate) + 1)
        while len(texts) < due:
            n = len(texts)
            c = people[n % len(people)]
            text = f"{phase}-{c.number}-{n // len(people)}"
            say(world, c, text)
            texts.append(text)
        await asyncio.sleep(0.002)
    offered = total / (time.monotonic() - start)
    await until(
        lambda: world.slack.received_by_phase[phase] >= total, 60, f"{total} posts ({phase})"
    )
    handed, received = world.telegram.handed_out, world.slack.received_at
    elapsed = max(received[t] for t in texts) - min(handed[t] for t in texts)
    return {
        "offered": offered,
        "rate": total / elapsed,
        **latency_ms("lat", joined(handed, received, texts)),
        "misordered": misordered(world, people, phase, texts),
    }


async def run(kind: Bridge, options: Options, name: str) -> dict[str, float]:
    """One run: warm-up, the bursts, the paced phase; returns its metrics."""
    plan = Plan.for_options(options)
    async with world() as w:
        groups: dict[str, list[Customer]] = {}
        start = 0
        for label, count in (
            ("w", plan.warmup_customers),
            *((f"b{n}", n) for n in plan.sizes),
            ("p", plan.paced_customers),
        ):
            groups[label] = customers(count, start=start)
            start += count
        everyone = with_channels(w, [c for group in groups.values() for c in group])
        by_number = {c.number: c for c in everyone}
        groups = {k: [by_number[c.number] for c in v] for k, v in groups.items()}
        with tempfile.TemporaryDirectory(prefix="skbench-") as tmp:
            async with bridge(kind, w, everyone, Path(tmp), options, name=name) as running:
                metrics: dict[str, float] = {"ready_s": running.ready_seconds}
                await burst(w, groups["w"], 1, "w")
                for n in plan.sizes:
                    await running.settle()
                    found = await burst(w, groups[f"b{n}"], plan.per_customer, f"b{n}")
                    metrics.update({f"n{n}_{k}": v for k, v in found.items()})
                    metrics[f"n{n}_ceiling"] = pacing_ceiling(n, plan.per_customer)
                await running.settle()
                found = await paced(w, groups["p"], plan.paced_rate, plan.paced_seconds, "p")
                metrics.update({f"paced_{k}": v for k, v in found.items()})
                metrics["duplicates"] = w.slack.duplicates
                if kind == "daemon":
                    metrics["rss_mb"] = rss_mb(running.child.pid)
    return metrics
