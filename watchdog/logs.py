"""Logging setup: promslog-style lines on stderr, logfmt or JSON, exactly one line per event.

    time=2026-01-01T12:00:00.000Z level=INFO source=daemon.py:97 msg="vpn-watchdog running" exporters=2

Levels are promslog's (DEBUG, INFO, WARN, ERROR). Key/value fields come from `extra={"fields": {...}}`.
A traceback, when there is one, is folded into the same line (`exc=...`), so a log shipper that reads
line by line never sees a half event. No I/O beyond the stream handler.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

# Accepted spellings -> the logging level name; promslog's `warn` and the stdlib's `warning` both work.
LEVELS = {"DEBUG": "DEBUG", "INFO": "INFO", "WARN": "WARNING", "WARNING": "WARNING", "ERROR": "ERROR"}
FORMATS = ("logfmt", "json")

_PROMSLOG_LEVEL = {"WARNING": "WARN", "CRITICAL": "ERROR"}


def _timestamp(record: logging.LogRecord) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


def _fields(record: logging.LogRecord, formatter: logging.Formatter) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "time": _timestamp(record),
        "level": _PROMSLOG_LEVEL.get(record.levelname, record.levelname),
        "source": f"{record.filename}:{record.lineno}",
        "logger": record.name,
        "msg": record.getMessage(),
    }
    extra = getattr(record, "fields", None)
    if isinstance(extra, dict):
        for key, value in extra.items():
            entry.setdefault(str(key), value)
    if record.exc_info:
        entry["exc"] = formatter.formatException(record.exc_info)
    return entry


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, source, logger, msg, fields (+ exc)."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_fields(record, self), ensure_ascii=False, default=str)


def logfmt_value(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value) if isinstance(value, bool) else str(value)
    if text and not any(c in text for c in ' ="\\\n\r\t') and text.isprintable():
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return '"' + escaped.replace("\t", "\\t") + '"'


class LogfmtFormatter(logging.Formatter):
    """`key=value` pairs on one line, values quoted and escaped when they need it."""

    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{key}={logfmt_value(value)}" for key, value in _fields(record, self).items())


def parse_level(value: str) -> str:
    """`debug|info|warn|warning|error` (any case) -> the logging level name; ValueError otherwise."""
    level = LEVELS.get(value.upper())
    if level is None:
        raise ValueError(f"invalid log level {value!r} (choose from debug, info, warn, error)")
    return level


def setup_logging(fmt: str = "logfmt", level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(parse_level(level))
    # The SDKs are chatty at INFO (credential lookups, retries); their warnings still show.
    for noisy in ("botocore", "boto3", "urllib3", "google", "apscheduler", "scapy.runtime", "tzlocal", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
