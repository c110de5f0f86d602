"""Business-day calendar for SLA deadlines (weekends, holidays, time zone).

PLACEHOLDER MODEL: the SLA work fills in BusinessCalendar.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class CalendarConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str = "UTC"
    weekend: tuple[str, ...] = ("sat", "sun")
    holidays: tuple[str, ...] = ()
    holiday_country: str | None = None
