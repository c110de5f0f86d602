"""Structured JSON logs: one object per line, with event and account ids when known,
and no personal data: email addresses are redacted from every message."""

from __future__ import annotations

import logging
import re
from datetime import datetime, timezone
from typing import Any

import orjson

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
CONTEXT_FIELDS = ("account_id", "event_id", "vendor", "source", "topic", "partition", "offset", "reason")


def redact(text: str) -> str:
    return EMAIL.sub("<email>", text)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
            "pid": record.process,
        }
        for key in CONTEXT_FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                data[key] = value
        if record.exc_info:
            data["exc"] = redact(self.formatException(record.exc_info))
        return orjson.dumps(data, default=str).decode()


def level_name(level: str) -> str:
    """``LIFECYCLE_LOG_LEVEL`` (``warn``, ``info``, ...) as the name ``logging`` knows."""
    return {"warn": "WARNING", "crit": "CRITICAL"}.get(level.lower(), level.upper())


def logging_config(level: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for workers and connectors."""
    lvl = level_name(level)
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"default": {"class": "logging.StreamHandler", "formatter": "json",
                                 "stream": "ext://sys.stderr", "level": lvl}},
        "root": {"level": lvl, "handlers": ["default"]},
    }


def restore_root_level(level: str) -> None:
    """Put the root logger back at the configured level.

    Faust's Worker lowers it to DEBUG so that its terminal spinner sees every record;
    then every aiokafka and Faust ``log.debug`` call on the hot path builds a record
    only for the handler to drop it.
    """
    logging.getLogger().setLevel(level_name(level))
