"""Turning a report into text: an aligned table for people, CSV for sheets, JSON for tools.

``table`` prints every section with durations and ratios made readable;
``csv`` prints the report's first (primary) section with raw values, one header
row, ready for a spreadsheet; ``json`` prints the whole report.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from datetime import datetime
from typing import Any, Literal

import orjson

from pipeline.readmodel.queries import Report

Format = Literal["table", "csv", "json"]
FORMATS: tuple[Format, ...] = ("table", "csv", "json")
_RATIOS = {"conversion", "compliance", "churn_rate"}


def render(report: Report, fmt: Format = "table") -> str:
    if fmt == "json":
        return to_json(report).decode()
    if fmt == "csv":
        return _csv(report)
    if fmt == "table":
        return _table(report)
    raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def to_json(report: Report) -> bytes:
    return orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS)


def _csv(report: Report) -> str:
    section = report.sections()[0]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(section.columns)
    for row in section.rows:
        writer.writerow([_raw(getattr(row, c)) for c in section.columns])
    return out.getvalue()


def _raw(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return value


def _table(report: Report) -> str:
    lines = [report.title]
    meta = [
        f"{f.name}: {_human(f.name, getattr(report, f.name))}"
        for f in dataclasses.fields(report)
        if not isinstance(getattr(report, f.name), (list, dict))
    ]
    if meta:
        lines.append("  ".join(meta))
    for section in report.sections():
        lines.append("")
        lines.append(f"[{section.name}]")
        columns = section.columns
        if not section.rows:
            lines.append("(none)")
            continue
        cells = [[_human(c, getattr(r, c)) for c in columns] for r in section.rows]
        widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
        lines.append("  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip())
        lines.append("  ".join("-" * w for w in widths))
        for row in cells:
            lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
    return "\n".join(lines) + "\n"


def _human(name: str, value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%SZ")
    if name in _RATIOS and isinstance(value, (int, float)):
        return f"{value * 100:.1f}%"
    if name.endswith("seconds") and isinstance(value, (int, float)):
        return human_duration(value)
    return str(value)


def human_duration(seconds: float) -> str:
    """``93784`` → ``1d 2h``: precise enough for RevOps, short enough for a table."""
    sign, s = ("-" if seconds < 0 else ""), abs(int(round(seconds)))
    days, rem = divmod(s, 86400)
    hours, rem = divmod(rem, 3600)
    minutes, secs = divmod(rem, 60)
    if days:
        text = f"{days}d {hours}h" if hours else f"{days}d"
    elif hours:
        text = f"{hours}h {minutes}m" if minutes else f"{hours}h"
    elif minutes:
        text = f"{minutes}m"
    else:
        text = f"{secs}s"
    return sign + text
