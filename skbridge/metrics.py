"""Metrics for monitoring, in the Prometheus text format, read from the database.

The counters are kept by the store as the work happens (:mod:`skbridge.store.figures`),
the gauges are read from its state, so ``skbridge metrics`` prints the same figures as
the daemon's optional local endpoint (``[metrics] listen``), whether or not the daemon
runs. The format is written by prometheus-client, never by hand. Nothing is served
unless configured, and then only on a loopback address unless ``allow_remote``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import Metric

from skbridge.core.states import OutboxState
from skbridge.store import Reader, Store, figures, report

log = logging.getLogger(__name__)

_HELP = {
    "skbridge_messages_total": "Messages carried, by direction (in: from customers) and source.",
    "skbridge_uncertain_sends_total": "Replies whose arrival could not be known.",
    "skbridge_socket_reconnects_total": "Slack Socket Mode connections opened after the first.",
    "skbridge_delivery_seconds": "Seconds from arrival to delivery, by direction and source.",
    "skbridge_first_response_seconds": "Seconds from a conversation (re)opening to its reply.",
}


class _Snapshot:
    """A prometheus-client collector over figures read beforehand (reading is async)."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        yield from self._families


async def render(reader: Reader) -> bytes:
    """Every metric, in the Prometheus text exposition format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(await families(reader)))
    return bytes(generate_latest(registry))


async def families(reader: Reader) -> list[Metric]:
    found: list[Metric] = [*_counters(await figures.counters(reader))]
    conversations = GaugeMetricFamily(
        "skbridge_conversations", "Conversations by state.", labels=["state"]
    )
    for conv_state, count in (await report.conversations_by_state(reader)).items():
        conversations.add_metric([str(conv_state)], count)
    to_customers, to_slack = await report.backlog(reader)
    backlog = GaugeMetricFamily(
        "skbridge_backlog", "Work not yet carried out, by direction.", labels=["direction"]
    )
    backlog.add_metric(["out"], to_customers)
    backlog.add_metric(["in"], to_slack)
    parked = GaugeMetricFamily("skbridge_parked_items", "Items set aside.", labels=["what"])
    parked.add_metric(["work"], len(await report.parked_work(reader)))
    parked.add_metric(["input"], len(await report.parked_input(reader)))
    outcomes = await report.reply_outcomes(reader, (OutboxState.UNCERTAIN, OutboxState.FAILED))
    replies = GaugeMetricFamily(
        "skbridge_replies_unresolved",
        "Replies uncertain or failed that nobody has sent again.",
        labels=["state"],
    )
    for state, count in outcomes.items():
        replies.add_metric([str(state)], count)
    _, waiting = await figures.unanswered(reader, limit=0)
    unanswered = GaugeMetricFamily(
        "skbridge_unanswered", "Conversations whose customer waits for an answer.", waiting
    )
    return [*found, conversations, backlog, parked, replies, unanswered]


def _counters(rows: Iterable[tuple[str, dict[str, str], float]]) -> Iterator[Metric]:
    """Counters as they are; histograms rebuilt from their stored buckets, sum and count."""
    plain: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    histograms: dict[str, dict[tuple[tuple[str, str], ...], dict[str, Any]]] = defaultdict(dict)
    for name, labels, value in rows:
        base, _, part = name.rpartition("_")
        if part in ("bucket", "sum", "count") and base in _HELP:
            le = labels.pop("le", None)
            entry = histograms[base].setdefault(tuple(sorted(labels.items())), {"buckets": {}})
            if part == "bucket" and le is not None:
                entry["buckets"][le] = value
            else:
                entry[part] = value
        else:
            plain[name].append((labels, value))
    for name, samples in sorted(plain.items()):
        names = sorted({key for labels, _ in samples for key in labels})
        family = CounterMetricFamily(
            name.removesuffix("_total"), _HELP.get(name, name), labels=names
        )
        for labels, value in samples:
            family.add_metric([labels.get(key, "") for key in names], value)
        yield family
    for name, series in sorted(histograms.items()):
        names = sorted({key for labels in series for key, _ in labels})
        histogram = HistogramMetricFamily(name, _HELP[name], labels=names)
        for key, entry in series.items():
            values = dict(key)
            buckets = sorted(
                entry["buckets"].items(),
                key=lambda b: float("inf") if b[0] == "+Inf" else float(b[0]),
            )
            histogram.add_metric(
                [values.get(key, "") for key in names], buckets, entry.get("sum", 0.0)
            )
        yield histogram


async def serve(store: Store, host: str, port: int) -> None:
    """Serve ``GET /metrics`` on ``host:port`` until cancelled."""

    async def metrics(request: web.Request) -> web.Response:
        body = await render(store)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        log.info("metrics served", extra={"listen": f"{host}:{port}"})
        await asyncio.Event().wait()  # until cancelled
    finally:
        await runner.cleanup()
