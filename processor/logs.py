"""Audit-style logging: one line per state change, as text or (PROCESSOR_LOG_FORMAT=json) as JSON."""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

logger = logging.getLogger("processor")
# Names a LogRecord has already: logging refuses them in `extra`, and the refusal would lose the whole line.
_RESERVED = {*logging.LogRecord("", 0, "", 0, None, None, None).__dict__, "message", "asctime"}


def log_event(event: str, level: int = logging.INFO, **fields: object) -> None:
    """Log one state change; the fields become JSON keys, or key=value pairs in text."""
    pairs = " ".join(f"{key}={value}" for key, value in fields.items())
    extra = {f"field_{key}" if key in _RESERVED else key: value for key, value in fields.items()}
    logger.log(level, "%s %s", event, pairs, extra={"event": event, **extra})


def configure_logging(format: str = "text", level: str | None = None, default_level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if format == "json":
        handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s", timestamp=False))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logger.handlers[:] = [handler]
    logger.setLevel((level or default_level).upper())
    logger.propagate = False
