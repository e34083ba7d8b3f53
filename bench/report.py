"""The table: one row per figure, median and spread over the runs, floor, target, verdict.

Verdicts judge the median of the runs (each run's p99 is over its own messages).
``x floor`` is bridge / floor for the same figure measured in the same runs (for
latency: how many times slower; for throughput: the fraction of the floor's rate); it is
left out where the daemon's pacing, not its overhead, sets the figure.
"""

from __future__ import annotations

import math
import operator
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from bench.stats import median_spread

Runs = Sequence[Mapping[str, float]]


@dataclass(frozen=True, slots=True)
class Target:
    op: str  # "<=", ">=", "=="
    value: float

    def met(self, measured: float) -> bool:
        check: Callable[[float, float], bool] = {
            "<=": operator.le,
            ">=": operator.ge,
            "==": operator.eq,
        }[self.op]
        return not math.isnan(measured) and check(measured, self.value)


@dataclass(frozen=True, slots=True)
class Row:
    label: str
    key: str
    unit: str
    floor: bool = False
    target: Target | None = None
    note: str = ""
    ratio: bool = True
    """Show bridge / floor (off where the daemon's pacing, not its overhead, sets the figure)."""
    versus: Target | None = None
    """A target on bridge / floor rather than on the figure itself."""


@dataclass(frozen=True, slots=True)
class Section:
    title: str
    source: str
    """Which results the rows read: upstream, replies, limits or footprint."""
    rows: tuple[Row, ...]


def upstream_sections(per_customer: int, paced_rate: float) -> list[Section]:
    burst = f"x{per_customer} msgs"
    return [
        Section(
            "1. Upstream -> Slack (fake Slack limits off; daemon paces 1 post/s/channel, "
            "burst 3)",
            "upstream",
            (
                Row(f"N=1 {burst}: throughput", "n1_rate", "msg/s", True, ratio=False,
                    note="pacing-bound by design: ceiling {n1_ceiling}"),
                Row(f"N=1 {burst}: latency p50", "n1_lat_p50", "ms", True),
                Row(f"N=1 {burst}: latency p99", "n1_lat_p99", "ms", True, ratio=False,
                    note="msgs 4-5 wait for the channel's pacer"),
                Row(f"N=100 {burst}: throughput", "n100_rate", "msg/s", True, ratio=False,
                    note="pacing-bound by design: ceiling {n100_ceiling}"),
                Row(f"N=100 {burst}: latency p50", "n100_lat_p50", "ms", True),
                Row(f"N=100 {burst}: latency p99", "n100_lat_p99", "ms", True, ratio=False),
                Row(f"N=1000 {burst}: throughput", "n1000_rate", "msg/s", True,
                    Target(">=", 1000), note="pacing ceiling {n1000_ceiling}"),
                Row(f"N=1000 {burst}: latency p50", "n1000_lat_p50", "ms", True),
                Row(f"N=1000 {burst}: latency p99", "n1000_lat_p99", "ms", True),
                Row(f"paced {paced_rate:.0f} msg/s: achieved", "paced_rate", "msg/s", True),
                Row(f"paced {paced_rate:.0f} msg/s: added latency p50", "paced_lat_p50", "ms",
                    True),
                Row(f"paced {paced_rate:.0f} msg/s: added latency p99", "paced_lat_p99", "ms",
                    True, Target("<=", 25)),
                Row(f"paced {paced_rate:.0f} msg/s: added latency max", "paced_lat_max", "ms",
                    True),
                Row("lost, doubled or out of order", "integrity", "msgs", True, Target("==", 0)),
                Row("daemon RSS after the run", "rss_mb", "MB"),
            ),
        )
    ]  # fmt: skip


def replies_sections(per_agent: int, e2e_rate: float, ack_rate: float) -> list[Section]:
    burst = f"x{per_agent} /sk"
    return [
        Section(
            "2. /sk replies (daemon paces Telegram: 1/s/chat burst 3, 30/s overall)",
            "replies",
            (
                Row(f"M=1 {burst}: ack p50", "m1_ack_p50", "ms", True),
                Row(f"M=1 {burst}: ack p99", "m1_ack_p99", "ms", True),
                Row(f"M=1 {burst}: end-to-end p50", "m1_e2e_p50", "ms", True),
                Row(f"M=1 {burst}: end-to-end p99", "m1_e2e_p99", "ms", True),
                Row(f"M=100 {burst}: ack p50", "m100_ack_p50", "ms", True,
                    note="300 envelopes at once"),
                Row(f"M=100 {burst}: ack p99", "m100_ack_p99", "ms", True),
                Row(f"M=100 {burst}: ack max", "m100_ack_max", "ms", True, Target("<=", 150),
                    note="all acked within"),
                Row(f"M=100 {burst}: end-to-end p50", "m100_e2e_p50", "ms", True, ratio=False),
                Row(f"M=100 {burst}: end-to-end p99", "m100_e2e_p99", "ms", True, ratio=False,
                    note="queued behind Telegram's 30/s"),
                Row(f"M=100 {burst}: replies/s", "m100_rate", "msg/s", True, ratio=False,
                    note="Telegram-bound by design: ceiling {m100_ceiling}"),
                Row(f"paced {e2e_rate:.0f} /sk/s: end-to-end p50", "e2e_e2e_p50", "ms", True),
                Row(f"paced {e2e_rate:.0f} /sk/s: end-to-end p99", "e2e_e2e_p99", "ms", True),
                Row(f"paced {e2e_rate:.0f} /sk/s: ack p99", "e2e_ack_p99", "ms", True),
                Row(f"paced {ack_rate:.0f} /sk/s: offered", "acks_offered", "cmd/s", True),
                Row(f"paced {ack_rate:.0f} /sk/s: ack p50", "acks_ack_p50", "ms", True),
                Row(f"paced {ack_rate:.0f} /sk/s: ack p99", "acks_ack_p99", "ms", True,
                    Target("<=", 10)),
                Row(f"paced {ack_rate:.0f} /sk/s: ack max", "acks_ack_max", "ms", True),
            ),
        )
    ]  # fmt: skip


def relay_sections(customers: int, rate: float, per_customer: int) -> list[Section]:
    queued = f"burst {customers * per_customer:,} queued"
    return [
        Section(
            f"5. Beside a bare relay: {customers} customers, the daemon's Slack pacing lifted "
            "(targets on x floor)",
            "relay",
            (
                Row(f"paced {rate:.0f} msg/s: achieved", "paced_rate", "msg/s", True),
                Row(f"paced {rate:.0f} msg/s: added latency p50", "paced_lat_p50", "ms", True),
                Row(f"paced {rate:.0f} msg/s: added latency p99", "paced_lat_p99", "ms", True,
                    versus=Target("<=", 3)),
                Row(f"paced {rate:.0f} msg/s: added latency max", "paced_lat_max", "ms", True),
                Row(f"{queued}: throughput", "burst_rate", "msg/s", True,
                    versus=Target(">=", 0.8)),
                Row(f"{queued}: latency p99", "burst_lat_p99", "ms", True),
                Row("lost, doubled or out of order", "integrity", "msgs", True, Target("==", 0)),
                Row("daemon RSS after the run", "rss_mb", "MB", target=Target("<=", 60)),
            ),
        )
    ]  # fmt: skip


def limits_sections(customers: int, per_customer: int) -> list[Section]:
    scaled = "" if customers == 200 else f"  [SCALED: {customers} customers, not 200]"
    return [
        Section(
            f"3. Under Slack's real limits: {customers} new customers x {per_customer} msgs "
            f"(fake: posts 1/s/channel burst 4, creates 20/min){scaled}",
            "limits",
            (
                Row("time until all delivered", "seconds", "s"),
                Row("shortest the limits allow", "shortest", "s"),
                Row("efficiency (shortest / measured)", "efficiency", "", target=Target(">=", 0.9)),
                Row("last channel created at", "last_create", "s",
                    note="creation limit alone: {create_bound} s"),
                Row("429 answers: conversations.create", "ratelimited_creates", "count"),
                Row("429 answers: chat.postMessage", "ratelimited_posts", "count"),
                Row("lost + doubled + out of order", "integrity", "msgs", target=Target("==", 0)),
            ),
        )
    ]  # fmt: skip


def footprint_sections(sizes: Sequence[int]) -> list[Section]:
    rows: list[Row] = []
    for size in sizes:
        label = f"{size // 1000}k conversations"
        rows += [
            Row(f"{label}: ready after spawn", f"c{size}_ready_s", "s", target=Target("<=", 1.0)),
            Row(f"{label}: RSS after start", f"c{size}_rss_start", "MB"),
            Row(f"{label}: RSS under load", f"c{size}_rss_load", "MB", target=Target("<=", 80)),
            Row(f"{label}: added latency p99 at 200 msg/s", f"c{size}_lat_p99", "ms"),
        ]
    rows.append(
        Row("RSS under load, largest vs smallest size", "rss_growth", "%", target=Target("<=", 10))
    )
    return [Section("4. Footprint (daemon process, VmRSS)", "footprint", tuple(rows))]


# --- derived figures --------------------------------------------------------------------


def derive(source: str, run: Mapping[str, float]) -> dict[str, float]:
    """Figures computed from a run's raw ones (integrity counts, RSS growth)."""
    out = dict(run)
    if source in ("upstream", "relay"):
        out["integrity"] = sum(v for k, v in run.items() if k.endswith("misordered")) + run.get(
            "duplicates", 0
        )
    elif source == "limits":
        out["integrity"] = (
            run.get("lost", 0) + run.get("doubled", 0) + run.get("misordered", 0)
        ) + run.get("duplicates", 0)
    elif source == "footprint":
        loads = [v for k, v in run.items() if k.endswith("_rss_load")]
        if loads:
            out["rss_growth"] = (max(loads) / min(loads) - 1) * 100
    return out


# --- rendering --------------------------------------------------------------------------


def fmt(value: float, unit: str) -> str:
    if math.isnan(value):
        return "-"
    if math.isinf(value):
        return "none"
    if unit in ("msgs", "count") or (unit == "" and value == int(value) and abs(value) >= 1):
        return f"{value:,.0f}"
    if unit in ("msg/s", "cmd/s"):
        return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if unit == "s":
        return f"{value:.2f}" if value < 100 else f"{value:.0f}"
    if unit == "":
        return f"{value:.3f}"
    return f"{value:.1f}"


def render(
    sections: Sequence[Section],
    results: Mapping[str, Runs],
    floors: Mapping[str, Runs],
    header: Sequence[str] = (),
) -> str:
    table: list[list[str]] = []
    titles: dict[int, str] = {}
    verdicts: list[tuple[str, bool]] = []
    for section in sections:
        runs = [derive(section.source, r) for r in results.get(section.source, [])]
        if not runs:
            continue
        floor_runs = [derive(section.source, r) for r in floors.get(section.source, [])]
        titles[len(table)] = f"{section.title}  ({len(runs)} run{'s' * (len(runs) != 1)})"
        for row in section.rows:
            med, low, high = median_spread([r.get(row.key, math.nan) for r in runs])
            floor = math.nan
            if row.floor and floor_runs:
                floor = median_spread([r.get(row.key, math.nan) for r in floor_runs])[0]
            ratio = med / floor if row.ratio and floor and not math.isnan(floor) else math.nan
            target = verdict = ""
            if row.target is not None:
                shown = fmt(row.target.value, "count" if row.target.op == "==" else row.unit)
                target = f"{row.target.op} {shown} {row.unit}".strip()
                ok = row.target.met(med)
                verdict = "PASS" if ok else "MISS"
                verdicts.append((row.label, ok))
            elif row.versus is not None:
                target = f"{row.versus.op} {row.versus.value:g}x floor"
                ok = row.versus.met(ratio)
                verdict = "PASS" if ok else "MISS"
                verdicts.append((f"{row.label} (x floor)", ok))
            note = row.note.format(
                **{k: fmt(median_spread([r.get(k, math.nan) for r in runs])[0], "msg/s") for k in
                   _fields(row.note)}
            )  # fmt: skip
            unit = "" if row.unit == "count" else row.unit
            table.append(
                [
                    row.label,
                    f"{fmt(med, row.unit)} {unit}".strip(),
                    "" if len(runs) < 2 else f"{fmt(low, row.unit)}-{fmt(high, row.unit)}",
                    "" if math.isnan(floor) else fmt(floor, row.unit),
                    "" if math.isnan(ratio) or math.isinf(ratio) else f"{ratio:.2f}x",
                    target,
                    verdict,
                    note,
                ]
            )
    heads = ["figure", "median", "spread (min-max)", "floor", "x floor", "target", "", "note"]
    widths = [max(len(r[i]) for r in [heads, *table]) for i in range(len(heads))]
    aligns = ["<", ">", ">", ">", ">", "<", "<", "<"]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(f"{c:{a}{w}}" for c, a, w in zip(cells, aligns, widths, strict=True))

    out = [*header, "", line(heads), "-" * len(line(heads))]
    for i, cells in enumerate(table):
        if i in titles:
            out += ["", titles[i]]
        out.append(line(cells).rstrip())
    missed = [label for label, ok in verdicts if not ok]
    out += [
        "",
        f"targets: {len(verdicts) - len(missed)} PASS, {len(missed)} MISS"
        + (": " + "; ".join(missed) if missed else ""),
    ]
    return "\n".join(out)


def _fields(template: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]
