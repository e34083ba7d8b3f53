"""The ``skbridge`` command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from skbridge import __version__, logs
from skbridge.config import DEFAULT_CONFIG_PATH, Config, load_config
from skbridge.errors import ConfigError, SkbridgeError
from skbridge.notify import Notifier
from skbridge.slack.manifest import manifest_json

EX_CONFIG = 78
"""sysexits' EX_CONFIG; the systemd unit never restarts on it."""

log = logging.getLogger("skbridge")


def _default_config() -> Path:
    return Path(os.environ.get("SKBRIDGE_CONFIG") or DEFAULT_CONFIG_PATH)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="skbridge", description="Customer support from Slack: one channel per customer."
    )
    parser.add_argument("--version", action="version", version=f"skbridge {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument(
            "-c",
            "--config",
            type=Path,
            default=None,
            help=f"config file (default: $SKBRIDGE_CONFIG, else {DEFAULT_CONFIG_PATH})",
        )
        return sub

    with_config("run", "run the daemon in the foreground until SIGTERM/SIGINT")
    commands.add_parser("manifest", help="print the Slack app manifest (JSON)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "manifest":
        print(manifest_json())
        return 0
    path: Path = args.config or _default_config()
    try:
        config = load_config(path)
    except ConfigError as exc:
        return _config_failure(exc)
    logs.setup(config.log.level, config.log.format)
    try:
        if args.command == "run":
            return asyncio.run(_run(config, path))
    except ConfigError as exc:
        return _config_failure(exc)
    except KeyboardInterrupt:
        return 130
    return 2


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
        raise _first_config_error(group) or group from None
    except ConfigError:
        raise
    except SkbridgeError as exc:
        log.critical("stopped by an error", extra={"error": str(exc)})
        return 1
    return 0


def _first_config_error(group: BaseExceptionGroup[BaseException]) -> ConfigError | None:
    for exc in group.exceptions:
        if isinstance(exc, ConfigError):
            return exc
        if isinstance(exc, BaseExceptionGroup) and (found := _first_config_error(exc)):
            return found
    return None
