"""The ``skbridge`` command line: ``run`` the daemon, and the operator commands of
:mod:`skbridge.ops` (``check``, ``status``, ``backup``, ``demo``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from skbridge import __version__, logs
from skbridge.config import DEFAULT_CONFIG_PATH, Config, load_config
from skbridge.errors import ConfigError, SkbridgeError, StoreError, StoreUnusable
from skbridge.notify import Notifier
from skbridge.slack.manifest import manifest_json

EX_CONFIG = 78
"""sysexits' EX_CONFIG: the config or the database file needs the operator; the systemd
unit never restarts on it."""

log = logging.getLogger("skbridge")


_CHECK_HELP = """Validate the config (exit 78 on a bad one), then try every token live: Slack's
bot token and its scopes, the app token (a Socket Mode connection, closed right after
Slack's hello), the user token if set, the dispatch channel (looked up, never joined),
the workspace owner, each upstream, and the database (path, pages, permissions). One line
per check; exit 0 when all pass, 1 otherwise. Safe while the daemon runs."""
_STATUS_HELP = """What the database holds: conversations by state, the outbox backlog each way,
uncertain and failed replies, parked work and parked input, and the last activity.
Reads the database read-only; safe while the daemon runs. Exit 1 if it is missing, 78 if
the file is damaged or unreadable (the line says what to do)."""
_BACKUP_HELP = """Write a consistent copy of the database to DEST (SQLite's VACUUM INTO, never a
file copy), safe while the daemon runs; then run PRAGMA integrity_check on the copy.
Never overwrites DEST. Exit 0 when the copy is written and checks ok, 78 if the database
itself is damaged or unreadable."""
_METRICS_HELP = """Print skbridge's metrics in the Prometheus text format, read from the database
(read-only; safe while the daemon runs): messages in and out by source, delivery and
first-response times, backlog, parked items, uncertain sends, reconnects. The daemon can
also serve them on a local address: [metrics] listen."""
_STORE_HELP = """`store copy --to postgresql://user@host/db` moves an installation to PostgreSQL:
stop skbridge, copy (the configured store is read, the new database must be empty; the
password comes from the URL, PGPASSWORD or ~/.pgpass), then set [store] url and start
skbridge on every machine. All rows or none; leases and claims are not copied."""
_DEMO_HELP = """Watch skbridge work without tokens or config: runs the real daemon against
in-process fakes of Slack, Telegram and Gravatar and plays one customer's conversation,
step by step. Leaves nothing on disk."""


def _default_config() -> Path:
    return Path(os.environ.get("SKBRIDGE_CONFIG") or DEFAULT_CONFIG_PATH)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="skbridge", description="Customer support from Slack: one channel per customer."
    )
    parser.add_argument("--version", action="version", version=f"skbridge {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(
        name: str, help_text: str, description: str = "", under: Any = commands
    ) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = under.add_parser(
            name, help=help_text, description=description or help_text
        )
        sub.add_argument(
            "-c",
            "--config",
            type=Path,
            default=None,
            help=f"config file (default: $SKBRIDGE_CONFIG, else {DEFAULT_CONFIG_PATH})",
        )
        return sub

    with_config("run", "run the daemon in the foreground until SIGTERM/SIGINT")
    with_config("check", "check the config and every token against the live services", _CHECK_HELP)
    status = with_config("status", "show conversations, backlog and parked work", _STATUS_HELP)
    status.add_argument("--json", action="store_true", help="print the same as JSON")
    with_config("metrics", "print the metrics for monitoring (Prometheus text)", _METRICS_HELP)
    backup = with_config("backup", "copy the database safely, even while running", _BACKUP_HELP)
    backup.add_argument("dest", type=Path, metavar="DEST", help="where to write the copy (new)")
    store = commands.add_parser(
        "store", help="move the database to a server", description=_STORE_HELP
    )
    actions = store.add_subparsers(dest="store_command", required=True, metavar="ACTION")
    copy = with_config("copy", "copy every row into a new, empty database", _STORE_HELP, actions)
    copy.add_argument(
        "--to", required=True, metavar="URL", help="postgresql://user@host/db (PGPASSWORD)"
    )
    commands.add_parser("manifest", help="print the Slack app manifest (JSON)")
    commands.add_parser(
        "demo", help="a scripted conversation against fakes", description=_DEMO_HELP
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "manifest":
        print(manifest_json())
        return 0
    if args.command == "demo":
        return _demo()
    path: Path = args.config or _default_config()
    try:
        config = load_config(path)
    except ConfigError as exc:
        return _config_failure(exc)
    level = config.log.level if args.command == "run" else _report_level(config.log.level)
    logs.setup(level, config.log.format)
    try:
        return _command(args, config, path)
    except ConfigError as exc:
        return _config_failure(exc)
    except StoreError as exc:
        print(f"skbridge: {exc}", file=sys.stderr)
        return EX_CONFIG if isinstance(exc, StoreUnusable) else 1
    except KeyboardInterrupt:
        return 130


def _command(args: argparse.Namespace, config: Config, path: Path) -> int:
    # The ops modules are imported on use: `skbridge manifest` stays light.
    if args.command == "check":
        from skbridge.ops import check

        return asyncio.run(check.command(config))
    if args.command == "status":
        from skbridge.ops import status

        return status.command(config.store.location, args.json)
    if args.command == "metrics":
        from skbridge.ops import metrics

        return metrics.command(config.store.location)
    if args.command == "backup":
        from skbridge.ops import backup

        return backup.command(config.store.location, args.dest)
    if args.command == "store":
        from skbridge.ops import copy

        return copy.command(config.store.location, args.to)
    if args.command == "run":
        return asyncio.run(_run(config, path))
    return 2


def _report_level(level: str) -> str:
    """A report owns the terminal: the daemon's INFO events would only clutter it."""
    return "WARNING" if level == "INFO" else level


def _demo() -> int:
    from skbridge.ops import demo

    logs.setup("WARNING")
    try:
        return asyncio.run(demo.run())
    except KeyboardInterrupt:
        return 130


def _config_failure(exc: ConfigError) -> int:
    print(f"skbridge: config error: {exc}", file=sys.stderr)
    return EX_CONFIG


async def _run(config: Config, path: Path) -> int:
    from skbridge.service import Service, install_signals

    service = Service(config, config_path=path, notifier=Notifier())
    install_signals(service)
    try:
        await service.run()
    except BaseExceptionGroup as group:
        raise _needs_operator(group, config.store.file) or group from None
    except StoreUnusable as exc:
        raise _at(exc, config.store.file) from None  # a failed query does not know the file
    except ConfigError:
        raise
    except SkbridgeError as exc:
        log.critical("stopped by an error", extra={"error": str(exc)})
        return 1
    return 0


def _at(exc: StoreUnusable, db_path: Path | None) -> StoreUnusable:
    return exc.at(db_path) if db_path else exc


def _needs_operator(
    group: BaseExceptionGroup[BaseException], db_path: Path | None
) -> ConfigError | StoreUnusable | None:
    """The first error in a crashed task group that only the operator can fix (exit 78)."""
    for exc in group.exceptions:
        if isinstance(exc, ConfigError):
            return exc
        if isinstance(exc, StoreUnusable):
            return _at(exc, db_path)
        if isinstance(exc, BaseExceptionGroup) and (found := _needs_operator(exc, db_path)):
            return found
    return None
