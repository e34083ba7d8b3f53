"""``python -m bench``: run the benchmarks, print the table.

Default: upstream, replies and footprint three times each (each run with its floor),
the real-limits benchmark once with 200 customers (~10 minutes by nature); about 16
minutes in all. ``--quick``: one run of each, shorter paced phases, and the limits
benchmark SCALED to 12 customers (about 2.5 minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from bench import footprint, limits, proc, relay, replies, report, upstream
from bench.common import Options

NAMES = ("upstream", "replies", "relay", "limits", "footprint")
QUICK_LIMITS_CUSTOMERS = 12


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="Benchmark the real skbridge daemon against fakes."
    )
    parser.add_argument("--quick", action="store_true", help="one short run of each (~2.5 min)")
    parser.add_argument("--runs", type=int, default=None, help="runs per benchmark (default 3)")
    parser.add_argument("--only", default="", help=f"comma-separated subset of {','.join(NAMES)}")
    parser.add_argument("--skip", default="", help="comma-separated benchmarks to leave out")
    parser.add_argument(
        "--limits-customers",
        type=int,
        default=None,
        help="customers in the limits benchmark (default 200; --quick: "
        f"{QUICK_LIMITS_CUSTOMERS}, labelled SCALED)",
    )
    parser.add_argument("--limits-runs", type=int, default=1, help="runs of the limits benchmark")
    parser.add_argument(
        "--profile", type=Path, default=None, metavar="DIR",
        help="attach py-spy to every daemon; collapsed stacks go to DIR "
        "(summarise with python -m bench.profile FILE)",
    )  # fmt: skip
    parser.add_argument(
        "--store", choices=("sqlite", "postgresql"), default="sqlite",
        help="the daemon's database: an SQLite file, or a PostgreSQL server started here",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, default=None, help="also write raw results here")
    parser.add_argument(
        "--render", type=Path, default=None, metavar="JSON",
        help="print the table of results saved with --json, without running anything",
    )  # fmt: skip
    return parser


def _selected(only: str, skip: str) -> list[str]:
    chosen = [n.strip() for n in only.split(",") if n.strip()] or list(NAMES)
    dropped = {n.strip() for n in skip.split(",") if n.strip()}
    unknown = (set(chosen) | dropped) - set(NAMES)
    if unknown:
        raise SystemExit(f"unknown benchmark(s): {', '.join(sorted(unknown))}; know {NAMES}")
    return [n for n in NAMES if n in chosen and n not in dropped]


async def _measured(work: Callable[[], Awaitable[dict[str, float]]]) -> dict[str, float]:
    """Run one benchmark with this process's garbage collector paused.

    The fakes live in this process; a full collection here would stall them and show up
    as the daemon's latency. Objects made during the run are collected afterwards.
    """
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        return await work()
    finally:
        gc.enable()
        gc.unfreeze()
        gc.collect()


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def _main(args: argparse.Namespace) -> int:
    names = _selected(args.only, args.skip)
    runs = args.runs or (1 if args.quick else 3)
    limits_customers = args.limits_customers or (
        QUICK_LIMITS_CUSTOMERS if args.quick else limits.Plan().customers
    )
    options = Options(quick=args.quick, profile_dir=args.profile)
    results: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    floors: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    started = time.monotonic()
    proc.prime_bytecode()

    for name in names:
        count = args.limits_runs if name == "limits" else runs
        for n in range(1, count + 1):
            tag = f"{name}-{n}"
            begun = time.monotonic()
            if name in ("upstream", "replies", "relay"):
                module = {"upstream": upstream, "replies": replies, "relay": relay}[name]
                results[name].append(await _measured(partial(module.run, "daemon", options, tag)))
                floors[name].append(await _measured(partial(module.run, "floor", options, tag)))
            elif name == "footprint":
                results[name].append(await _measured(partial(footprint.run, options, tag)))
            else:
                plan = limits.Plan(customers=limits_customers)
                shortest = limits.shortest_seconds(plan.customers, plan.per_customer)
                _say(f"  limits: {plan.customers} customers; shortest possible {shortest:.0f} s")
                results[name].append(await _measured(partial(limits.run, options, tag, plan)))
            _say(f"{name}: run {n}/{count} done in {time.monotonic() - begun:.0f} s")

    meta = {
        "store": args.store,
        "quick": args.quick,
        "runs": runs,
        "limits_customers": limits_customers,
        "minutes": (time.monotonic() - started) / 60,
    }
    if args.json is not None:
        document = {"meta": meta, "results": results, "floors": floors}
        args.json.write_text(json.dumps(document, indent=1))
    print(_table(meta, results, floors))
    return 0


def _table(
    meta: dict[str, Any],
    results: dict[str, list[dict[str, float]]],
    floors: dict[str, list[dict[str, float]]],
) -> str:
    options = Options(quick=bool(meta["quick"]))
    up, rp, rl, fp = (
        upstream.Plan.for_options(options),
        replies.Plan.for_options(options),
        relay.Plan.for_options(options),
        footprint.Plan.for_options(options),
    )
    sections = [
        *report.upstream_sections(up.per_customer, up.paced_rate),
        *report.replies_sections(rp.per_agent, rp.e2e_rate, rp.ack_rate),
        *report.relay_sections(rl.customers, rl.rate, rl.per_customer),
        *report.limits_sections(int(meta["limits_customers"]), limits.Plan().per_customer),
        *report.footprint_sections(fp.sizes),
    ]
    header = _header(float(meta["minutes"]), int(meta["runs"]), options.quick)
    return report.render(sections, results, floors, header)


def _header(minutes: float, runs: int, quick: bool) -> Sequence[str]:
    tmp = tempfile.gettempdir()
    try:
        fs = subprocess.run(
            ["df", "--output=fstype", tmp], capture_output=True, text=True, check=False
        ).stdout.split()[-1]
    except (OSError, IndexError):
        fs = "?"
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=False, cwd=Path(__file__).parent,
        ).stdout.strip()  # fmt: skip
    except OSError:
        commit = ""
    return [
        f"skbridge benchmarks{' --quick' if quick else ''}: {runs} run(s) each, "
        f"{minutes:.1f} min; commit {commit or '?'}",
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"database in {tmp} ({fs}); py-spy {'found' if shutil.which('py-spy') else 'absent'}",
        "floor = the same fake round trips by a bare aiohttp script (python -m bench.floor); "
        "x floor = bridge / floor",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.render is not None:
        saved = json.loads(args.render.read_text())
        print(_table(saved["meta"], saved["results"], saved["floors"]))
        return 0
    if args.store != "postgresql":
        return asyncio.run(_main(args))
    from bench.world import use_postgresql
    from skbridge.testing.postgres import PostgresServer

    server = PostgresServer()
    server.start()
    use_postgresql(server)
    try:
        return asyncio.run(_main(args))
    finally:
        server.close()
