"""Business-day calendar for SLA deadlines and handoff windows.

"Kickoff within 5 business days" means something only in a place: a time zone,
its weekend, its holidays. Deadlines are computed in that local time and returned
in UTC, so "Friday 16:00 plus 5 business days" is the next Friday at 16:00 local
even when a DST change falls in between.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from functools import cached_property
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holidays_lib
from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from pipeline.core.durations import Duration, Unit

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class CalendarConfig(BaseModel):
    """Where business days are counted: ``calendar:`` in the journey file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str = "UTC"
    weekend: tuple[Weekday, ...] = ("sat", "sun")
    holidays: tuple[date, ...] = ()
    holiday_country: str | None = None
    holiday_subdivision: str | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}; use an IANA name such as 'America/New_York'") from None
        return v

    @field_validator("weekend", mode="before")
    @classmethod
    def _weekday_names(cls, v: Any) -> Any:
        # Accept "Saturday" as well as "sat".
        if isinstance(v, (list, tuple)):
            return tuple(d.strip().lower()[:3] if isinstance(d, str) else d for d in v)
        return v

    @model_validator(mode="after")
    def _usable(self) -> CalendarConfig:
        if len(set(self.weekend)) >= len(WEEKDAYS):
            raise ValueError("weekend cannot cover every day of the week")
        if self.holiday_country is not None:
            try:
                holidays_lib.country_holidays(self.holiday_country, subdiv=self.holiday_subdivision)
            except NotImplementedError as exc:
                raise ValueError(f"holiday_country {self.holiday_country!r}"
                                 f"{' / ' + repr(self.holiday_subdivision) if self.holiday_subdivision else ''}"
                                 f" is not known to the holidays package: {exc}") from None
        return self


class BusinessCalendar:
    """Deadline arithmetic in the calendar's local time. Every result is UTC."""

    def __init__(self, config: CalendarConfig | None = None) -> None:
        self.config = config or CalendarConfig()
        self.tz = ZoneInfo(self.config.timezone)
        self._weekend = frozenset(WEEKDAYS.index(d) for d in self.config.weekend)
        self._explicit = frozenset(self.config.holidays)

    @cached_property
    def _country(self) -> holidays_lib.HolidayBase | None:
        if self.config.holiday_country is None:
            return None
        return holidays_lib.country_holidays(self.config.holiday_country, subdiv=self.config.holiday_subdivision)

    def is_business_day(self, day: date) -> bool:
        if day.weekday() in self._weekend or day in self._explicit:
            return False
        return self._country is None or day not in self._country

    def add(self, start: datetime, amount: int, unit: Unit | str) -> datetime:
        """``start`` moved by ``amount`` (negative: back) of ``unit``.

        minutes/hours are elapsed time; days keep the local wall-clock time;
        business_days count in local time from ``start``, or from the start of the
        next business day if ``start`` is not one, and keep the wall-clock time.
        A wall-clock time that does not exist on the target day (DST gap) lands
        just after the gap.
        """
        if start.tzinfo is None:
            raise ValueError("start must carry a timezone")
        unit = Unit(unit)
        # Elapsed time is added in UTC: Python adds to an aware local time on the wall clock.
        if unit is Unit.MINUTES:
            return start.astimezone(timezone.utc) + timedelta(minutes=amount)
        if unit is Unit.HOURS:
            return start.astimezone(timezone.utc) + timedelta(hours=amount)
        local = start.astimezone(self.tz)
        day, wall = local.date(), local.time()
        if unit is Unit.DAYS:
            return self._at(day + timedelta(days=amount), wall)
        if not self.is_business_day(day):
            day, wall = self._step(day, 1), time(0)
        step = 1 if amount >= 0 else -1
        for _ in range(abs(amount)):
            day = self._step(day, step)
        return self._at(day, wall)

    def after(self, start: datetime, duration: Duration) -> datetime:
        return self.add(start, duration.amount, duration.unit)

    def before(self, end: datetime, duration: Duration) -> datetime:
        return self.add(end, -duration.amount, duration.unit)

    def localize(self, naive: datetime) -> datetime:
        """A wall-clock time with no zone (e.g. a contract end date) read in the calendar's zone."""
        return self._at(naive.date(), naive.time())

    def _step(self, day: date, step: int) -> date:
        """The next business day after ``day`` in direction ``step``."""
        day += timedelta(days=step)
        while not self.is_business_day(day):
            day += timedelta(days=step)
        return day

    def _at(self, day: date, wall: time) -> datetime:
        # Round-trip through UTC: normalizes a non-existent local time (DST gap).
        return datetime.combine(day, wall, tzinfo=self.tz).astimezone(timezone.utc)
