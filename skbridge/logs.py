"""Logging: one event per line with structured fields, and never a token.

Text lines read ``LEVEL logger: event key=value ...``; JSON lines on request. Under
systemd (``$JOURNAL_STREAM``) each line starts with its syslog priority (``<3>``) so
journald records the level. Every formatted line, exception text from libraries
included, passes through :func:`redact` before it is written.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Iterable

from skbridge.upstreams.registry import SOURCES

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
_SLACK_TOKENS = (r"xox[abposr]-[A-Za-z0-9-]+", r"xapp-[A-Za-z0-9-]+")
_TOKEN_PATTERNS = re.compile("|".join((*_SLACK_TOKENS, *(s.mask for s in SOURCES))))
"""Token shapes masked even when nobody registered the value (a library's error text)."""
_PRIORITY = {"DEBUG": 7, "INFO": 6, "WARNING": 4, "ERROR": 3, "CRITICAL": 2}
_secrets: set[str] = set()


def add_secrets(values: Iterable[str]) -> None:
    """Register secret values (tokens) to be masked wherever they appear."""
    _secrets.update(v for v in values if len(v) >= 6)


def redact(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, "[redacted]")
    return _TOKEN_PATTERNS.sub("[redacted]", text)


def _fields(record: logging.LogRecord) -> dict[str, object]:
    return {
        k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")
    }


class TextFormatter(logging.Formatter):
    def __init__(self, journal: bool) -> None:
        super().__init__()
        self._journal = journal

    def format(self, record: logging.LogRecord) -> str:
        parts = [f"{record.levelname} {record.name}: {record.getMessage()}"]
        parts += [f"{k}={_value(v)}" for k, v in _fields(record).items()]
        if record.exc_info:
            parts.append("exc=" + json.dumps(self.formatException(record.exc_info)))
        line = redact(" ".join(parts)).replace("\n", "\\n")
        return f"<{_PRIORITY.get(record.levelname, 6)}>{line}" if self._journal else line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, object] = {
            "time": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "event": record.getMessage(),
        }
        event.update(
            {
                k: v if isinstance(v, int | float | bool) else str(v)
                for k, v in _fields(record).items()
            }
        )
        if record.exc_info:
            event["exc"] = self.formatException(record.exc_info)
        return redact(json.dumps(event, ensure_ascii=False))


def _value(value: object) -> str:
    text = str(value)
    return json.dumps(text) if (not text or " " in text or '"' in text) else text


def setup(level: str = "INFO", fmt: str = "text") -> None:
    """Configure the root logger to write to stderr; safe to call again (SIGHUP)."""
    handler = logging.StreamHandler(sys.stderr)
    journal = bool(os.environ.get("JOURNAL_STREAM"))
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter(journal))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Libraries speak at our level or quieter; their DEBUG output is redacted like ours.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
