"""Audit-style logging: one line per state change, as text or (PROCESSOR_LOG_FORMAT=json) as JSON."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime

from pydantic import ValidationError
from pythonjsonlogger.json import JsonFormatter

from processor.times import format_time

logger = logging.getLogger("processor")
# Names a LogRecord has already: logging refuses them in `extra`, and the refusal would lose the whole line.
_RESERVED = {*logging.LogRecord("", 0, "", 0, None, None, None).__dict__, "message", "asctime"}
FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s"


def log_event(event: str, level: int = logging.INFO, **fields: object) -> None:
    """Log one state change; the fields become JSON keys, or key=value pairs in text."""
    pairs = " ".join(f"{key}={value}" for key, value in fields.items())
    extra = {f"field_{key}" if key in _RESERVED else key: value for key, value in fields.items()}
    logger.log(level, "%s %s", event, pairs, extra={"event": event, **extra})


class Rfc3339Time:
    """Mixed into a formatter: `asctime` in RFC 3339 with its offset, as every time the project shows."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        moment = datetime.fromtimestamp(record.created, UTC)
        try:
            return format_time(moment, "milliseconds")
        except ValidationError:
            # A line logged before the settings were checked must not be lost for want of the configured zone.
            return moment.isoformat(timespec="milliseconds")


class TextFormatter(Rfc3339Time, logging.Formatter):
    pass


class JsonLineFormatter(Rfc3339Time, JsonFormatter):
    """One JSON object per record: the time, level, logger and message, and every field of `extra`."""

    def __init__(self, fields: str = FIELDS) -> None:
        super().__init__(fields, timestamp=False)


def formatter(format: str) -> logging.Formatter:
    return JsonLineFormatter() if format == "json" else TextFormatter(FIELDS)


def configure_logging(format: str = "text", level: str | None = None, default_level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(format))
    logger.handlers[:] = [handler]
    logger.setLevel((level or default_level).upper())
    logger.propagate = False
