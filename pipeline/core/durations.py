"""Durations as RevOps write them: ``"5 business days"``, ``"24 hours"``, ``"90 minutes"``.

One grammar for the journey file (SLA ``within``, handoff acceptance windows) and
for promises a CRM deal carries (``promised_time_to_value: "48 hours"``), so a
typo fails the same way everywhere: with the bad text in the message.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_serializer, model_validator


class Unit(StrEnum):
    MINUTES = "minutes"
    HOURS = "hours"
    DAYS = "days"                  # calendar days, local wall-clock time preserved
    BUSINESS_DAYS = "business_days"


_UNIT_WORDS: dict[str, tuple[Unit, int]] = {
    **dict.fromkeys(("minute", "minutes", "min", "mins"), (Unit.MINUTES, 1)),
    **dict.fromkeys(("hour", "hours", "hr", "hrs", "h"), (Unit.HOURS, 1)),
    **dict.fromkeys(("day", "days", "d", "calendar day", "calendar days"), (Unit.DAYS, 1)),
    **dict.fromkeys(("week", "weeks"), (Unit.DAYS, 7)),
    **dict.fromkeys(("business day", "business days", "working day", "working days"), (Unit.BUSINESS_DAYS, 1)),
}
_TEXT = re.compile(r"^\s*(\d+)\s*([a-z][a-z _-]*?)\s*$", re.IGNORECASE)
_EXAMPLES = "'5 business days', '24 hours', '1 hour', '30 days', '90 minutes'"


class DurationError(ValueError):
    """A duration text that does not follow the grammar; the message quotes it."""


class Duration(BaseModel):
    """An amount of a unit. Validates from text, serializes back to text."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    amount: int = Field(ge=0)
    unit: Unit

    @classmethod
    def parse(cls, text: str) -> Duration:
        """``Duration.parse("5 business days")``; raises :class:`DurationError` naming the text."""
        return cls.model_validate(_split(text))

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            return _split(value)
        return value

    @model_serializer
    def _to_text(self) -> str:
        return str(self)

    def __str__(self) -> str:
        word = self.unit.value.replace("_", " ")
        return f"{self.amount} {word[:-1] if self.amount == 1 else word}"


def _split(text: str) -> dict[str, Any]:
    match = _TEXT.match(text)
    unit = _UNIT_WORDS.get(re.sub(r"[\s_-]+", " ", match.group(2).lower())) if match else None
    if match is None or unit is None:
        raise DurationError(f"cannot read duration {text!r}: expected '<whole number> <unit>' with unit "
                            f"minutes, hours, days, weeks or business days, e.g. {_EXAMPLES}")
    kind, factor = unit
    return {"amount": int(match.group(1)) * factor, "unit": kind}
