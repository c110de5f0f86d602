"""Shared base for every record: strict on unknown fields, fast JSON both ways."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Self

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict


_ZERO = timedelta(0)


def _require_utc(value: datetime) -> datetime:
    # Naive datetimes are ambiguous across four vendors' clocks; refuse them
    # at the contract rather than guess a zone. A time already at UTC (the parsers' own, or
    # read from JSON with "Z" / "+00:00") is kept as it is: equal, hashed, formatted and
    # serialized as its timezone.utc form, without a conversion.
    offset = value.utcoffset()
    if offset is None:
        raise ValueError("datetime must carry a timezone (UTC offset)")
    return value if offset == _ZERO else value.astimezone(timezone.utc)


UtcDatetime = Annotated[datetime, AfterValidator(_require_utc)]


def dumps(record: BaseModel) -> bytes:
    """A record's JSON bytes, by pydantic's own serializer: how every topic value and table
    value is written (``pipeline.codecs``, ``pipeline.sends``)."""
    return record.__pydantic_serializer__.to_json(record)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def stable_id(*parts: Any, prefix: str = "") -> str:
    """A deterministic id from its parts: replays and retries produce the same id."""
    digest = hashlib.blake2b("\x1f".join(str(p) for p in parts).encode(), digest_size=12).hexdigest()
    return f"{prefix}{digest}"


class Record(BaseModel):
    """Base of every topic value: JSON on the wire, validated on the way in."""

    model_config = ConfigDict(extra="forbid", frozen=False, populate_by_name=True)

    def to_json(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json", exclude_none=False))

    @classmethod
    def from_json(cls, data: bytes | str) -> Self:
        return cls.model_validate_json(data)
