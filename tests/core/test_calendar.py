"""Business-day calendar and duration grammar: weekends, holidays, zones, DST."""

from __future__ import annotations

from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from pipeline.core.calendar import BusinessCalendar, CalendarConfig
from pipeline.core.durations import Duration, DurationError, Unit
from pipeline.journey import JourneyError, load_journey, parse_journey

NY = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")


def ny(*args: int) -> datetime:
    return datetime(*args, tzinfo=NY)


def cal(**kw) -> BusinessCalendar:
    return BusinessCalendar(CalendarConfig(**kw))


# ---- durations ---------------------------------------------------------------------------
@pytest.mark.parametrize("text, amount, unit", [
    ("5 business days", 5, Unit.BUSINESS_DAYS),
    ("1 business day", 1, Unit.BUSINESS_DAYS),
    ("24 hours", 24, Unit.HOURS),
    ("1 hour", 1, Unit.HOURS),
    ("48h", 48, Unit.HOURS),
    ("30 days", 30, Unit.DAYS),
    ("2 weeks", 14, Unit.DAYS),
    ("90 minutes", 90, Unit.MINUTES),
    ("  3  Working Days ", 3, Unit.BUSINESS_DAYS),
])
def test_duration_grammar(text, amount, unit):
    d = Duration.parse(text)
    assert (d.amount, d.unit) == (amount, unit)
    assert Duration.parse(str(d)) == d


@pytest.mark.parametrize("bad", ["5 bussiness days", "soon", "-1 days", "1.5 hours", "hours 5", ""])
def test_bad_duration_names_the_text(bad):
    with pytest.raises(DurationError, match=repr(bad)):
        Duration.parse(bad)


def test_duration_round_trips_as_text_in_json():
    assert Duration.parse("5 business days").model_dump() == "5 business days"
    assert Duration.model_validate_json('"24 hours"') == Duration(amount=24, unit=Unit.HOURS)


def test_bad_duration_in_journey_file_is_a_clear_load_error():
    data = {"name": "j", "stages": [{"id": "MQL", "owner": "marketing", "rank": 1,
                                     "entry": [{"kind": "crm.lead_qualified"}]}],
            "slas": [{"id": "x", "name": "X", "owner": "sales", "start": {"stage": "MQL"},
                      "expect": {"stage": "MQL"}, "within": "5 bussiness days"}]}
    with pytest.raises(JourneyError) as err:
        parse_journey(data, "j.yaml")
    assert "j.yaml: slas[0].within: cannot read duration '5 bussiness days'" in str(err.value)


# ---- configuration -----------------------------------------------------------------------
def test_config_errors_are_explicit():
    with pytest.raises(ValidationError, match="unknown time zone 'Mars/Olympus'"):
        CalendarConfig(timezone="Mars/Olympus")
    with pytest.raises(ValidationError, match="holiday_country 'XX'"):
        CalendarConfig(holiday_country="XX")
    with pytest.raises(ValidationError, match="every day"):
        CalendarConfig(weekend=["mon", "tue", "wed", "thu", "fri", "sat", "sun"])
    assert CalendarConfig(weekend=["Friday", "Saturday"]).weekend == ("fri", "sat")


def test_default_journey_calendar_loads():
    c = BusinessCalendar(load_journey().calendar)
    assert not c.is_business_day(date(2025, 7, 4))   # US Independence Day
    assert c.is_business_day(date(2025, 7, 3))


# ---- business days -----------------------------------------------------------------------
def test_weekends_are_skipped_and_wall_clock_kept():
    c = cal(timezone="America/New_York")
    # Wednesday 10:00 + 5 business days = next Wednesday 10:00
    assert c.add(ny(2025, 6, 4, 10), 5, "business_days") == ny(2025, 6, 11, 10)
    # Friday 16:00 + 1 business day = Monday 16:00
    assert c.add(ny(2025, 6, 6, 16), 1, "business_days") == ny(2025, 6, 9, 16)


def test_start_on_weekend_counts_from_next_business_day_start():
    c = cal(timezone="America/New_York")
    # Saturday 15:00 → counted from Monday 00:00 → +5 business days = next Monday 00:00
    assert c.add(ny(2025, 6, 7, 15), 5, "business_days") == ny(2025, 6, 16, 0)
    assert c.add(ny(2025, 6, 8, 23), 1, "business_days") == ny(2025, 6, 10, 0)


def test_weekend_is_configurable():
    c = cal(timezone="Asia/Dubai", weekend=["sat", "sun"])
    gulf = cal(timezone="Asia/Riyadh", weekend=["fri", "sat"])
    thursday = datetime(2025, 6, 5, 9, tzinfo=ZoneInfo("Asia/Riyadh"))
    assert gulf.add(thursday, 1, "business_days") == datetime(2025, 6, 8, 9, tzinfo=ZoneInfo("Asia/Riyadh"))
    assert c.is_business_day(date(2025, 6, 6)) and not gulf.is_business_day(date(2025, 6, 6))


def test_explicit_holidays_are_skipped():
    c = cal(timezone="America/New_York", holidays=["2025-12-24", date(2025, 12, 26)])
    assert not c.is_business_day(date(2025, 12, 24))
    # Tue 12-23 10:00 + 1 → (24 holiday, 25 plain weekday here) Thu 12-25 10:00
    assert c.add(ny(2025, 12, 23, 10), 1, "business_days") == ny(2025, 12, 25, 10)
    # + 2 → skips 26 (holiday) and the weekend → Mon 12-29
    assert c.add(ny(2025, 12, 23, 10), 2, "business_days") == ny(2025, 12, 29, 10)


def test_country_holidays_are_skipped():
    us = cal(timezone="America/New_York", holiday_country="US")
    assert not us.is_business_day(date(2025, 11, 27))   # Thanksgiving
    # Wed 11-26 09:00 + 1 business day skips Thanksgiving → Fri 11-28 09:00
    assert us.add(ny(2025, 11, 26, 9), 1, "business_days") == ny(2025, 11, 28, 9)
    de = cal(timezone="Europe/Berlin", holiday_country="DE")
    assert not de.is_business_day(date(2025, 10, 3))    # Tag der Deutschen Einheit
    assert us.is_business_day(date(2025, 10, 3))


def test_business_days_are_counted_in_local_time_not_utc():
    c = cal(timezone="America/New_York")
    # Friday 22:00 in New York is already Saturday 03:00 UTC: still a Friday start locally.
    start = datetime(2025, 6, 7, 2, tzinfo=timezone.utc)
    assert start.astimezone(NY).weekday() == 4
    assert c.add(start, 1, "business_days") == ny(2025, 6, 9, 22)
    assert cal(timezone="UTC").add(start, 1, "business_days") == datetime(2025, 6, 10, 0, tzinfo=timezone.utc)


def test_dst_spring_forward_keeps_local_wall_clock():
    c = cal(timezone="America/New_York")
    start = ny(2025, 3, 7, 16)                      # Fri 16:00 EST (UTC-5)
    deadline = c.add(start, 5, "business_days")     # DST starts Sun 03-09
    assert deadline == ny(2025, 3, 14, 16)          # Fri 16:00 EDT (UTC-4)
    assert deadline == datetime(2025, 3, 14, 20, tzinfo=timezone.utc)
    assert (deadline - start).total_seconds() == 7 * 86400 - 3600
    assert c.add(start, 7, "days") == ny(2025, 3, 14, 16)
    # Hours are elapsed time: 168 hours later is 17:00 local.
    assert c.add(start, 168, "hours") == ny(2025, 3, 14, 17)


def test_dst_fall_back_keeps_local_wall_clock():
    c = cal(timezone="America/New_York")
    start = ny(2025, 10, 31, 9)                     # Fri 09:00 EDT
    deadline = c.add(start, 1, "business_days")     # DST ends Sun 11-02
    assert deadline == ny(2025, 11, 3, 9)
    assert deadline == datetime(2025, 11, 3, 14, tzinfo=timezone.utc)
    assert c.add(start, 3, "days") == datetime(2025, 11, 3, 14, tzinfo=timezone.utc)


def test_wall_clock_time_in_a_dst_gap_lands_after_it():
    c = cal(timezone="America/New_York")
    start = ny(2025, 3, 8, 2, 30)                   # Saturday 02:30 EST exists
    assert c.add(start, 1, "days") == datetime(2025, 3, 9, 7, 30, tzinfo=timezone.utc)  # 03:30 EDT


def test_other_zone_dst():
    c = cal(timezone="Europe/Berlin")
    start = datetime(2025, 3, 28, 17, tzinfo=BERLIN)  # Fri 17:00 CET; CEST from Sun 03-30
    assert c.add(start, 1, "business_days") == datetime(2025, 3, 31, 15, tzinfo=timezone.utc)


def test_negative_amounts_count_back():
    c = cal(timezone="America/New_York", holiday_country="US")
    assert c.add(ny(2025, 6, 9, 10), -1, "business_days") == ny(2025, 6, 6, 10)
    end = ny(2026, 3, 7)
    assert c.before(end, Duration.parse("90 days")) == ny(2025, 12, 7)
    assert c.after(ny(2025, 12, 7), Duration.parse("90 days")) == end


def test_results_are_utc_and_naive_input_is_refused():
    c = cal(timezone="America/New_York")
    assert c.add(ny(2025, 6, 4, 10), 1, "hours").tzinfo == timezone.utc
    with pytest.raises(ValueError):
        c.add(datetime(2025, 6, 4, 10), 1, "hours")
    assert c.localize(datetime(2026, 3, 7)) == ny(2026, 3, 7)
