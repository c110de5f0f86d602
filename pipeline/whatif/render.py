"""A what-if as text: an aligned side-by-side table for people, CSV for sheets, JSON for tools."""

from __future__ import annotations

import csv
import dataclasses
import io
from typing import Any

import orjson

from pipeline.readmodel.render import FORMATS, Format, human_duration
from pipeline.whatif.compare import MetricRow, WhatIf

__all__ = ["FORMATS", "Format", "render"]

SECTIONS = {
    "stages": "Accounts per current stage",
    "conversion": "Conversion per step (cohort: first stage entry in the period)",
    "time_in_stage": "Time in stage",
    "sla": "SLA compliance per SLA",
    "sla_team": "SLA compliance per team",
    "handoffs": "Handoff health per team pair",
}
_RATIOS = {"conversion", "compliance"}


def render(result: WhatIf, fmt: Format = "table", *, only_changed: bool = False) -> str:
    if fmt == "json":
        return to_json(result).decode()
    if fmt == "csv":
        return _csv(result)
    if fmt == "table":
        return _table(result, only_changed)
    raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def to_json(result: WhatIf) -> bytes:
    data = {f.name: getattr(result, f.name) for f in dataclasses.fields(result) if f.name != "reports"}
    data["rows"] = [dataclasses.asdict(r) | {"delta": r.delta} for r in result.rows]
    data["rate_events_per_second"] = round(result.rate, 1)
    return orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS)


def _csv(result: WhatIf) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["section", "key", "metric", "baseline", "proposed", "delta"])
    for r in result.rows:
        writer.writerow([r.section, r.key, r.metric, _raw(r.baseline), _raw(r.proposed), _raw(r.delta)])
    for a in result.accounts:
        writer.writerow(["accounts", a.account_id, "stage", a.baseline_stage or "", a.proposed_stage or "", ""])
    for b in result.breaches:
        writer.writerow(["breaches", f"{b.account_id} {b.sla_id}", "outcome", b.baseline, b.proposed, ""])
    return out.getvalue()


def _raw(value: Any) -> Any:
    return "" if value is None else value


def human(metric: str, value: Any) -> str:
    """A number as RevOps reads it: ratios in percent, durations in days and hours."""
    if value is None:
        return "-"
    if metric in _RATIOS:
        return f"{value * 100:.1f}%"
    if metric.endswith("seconds"):
        return human_duration(value)
    return str(value)


def delta_text(row: MetricRow) -> str:
    d = row.delta
    if d is None:
        return "" if row.baseline == row.proposed else "changed"
    if d == 0:
        return ""
    if row.metric in _RATIOS:
        return f"{d * 100:+.1f} pt"
    if row.metric.endswith("seconds"):
        return ("+" if d > 0 else "") + human_duration(d)
    return f"{d:+g}"


def _grid(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip(), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    return lines


def _table(result: WhatIf, only_changed: bool) -> str:
    period = f"{result.since or 'beginning'} .. {result.until or 'now'}"
    lines = [f"What-if: {result.baseline} (current) vs {result.proposed} (proposed)",
             f"period: {period}  replayed: {result.records:,} records, {result.events:,} events in "
             f"{result.seconds:.1f}s ({result.rate:,.0f} events/s)"]
    for section, title in SECTIONS.items():
        rows = [r for r in result.section(section) if r.changed or not only_changed]
        lines += ["", f"[{title}]"]
        if not rows:
            lines.append("(no change)" if only_changed else "(none)")
            continue
        lines += _grid(["", "metric", "current", "proposed", "change"],
                       [[r.key, r.metric, human(r.metric, r.baseline), human(r.metric, r.proposed), delta_text(r)]
                        for r in rows])
    lines += ["", f"[Accounts that change stage: {len(result.accounts)}]"]
    if result.accounts:
        lines += _grid(["account", "current", "proposed", "why now", "why proposed"],
                       [[a.account_id, a.baseline_stage or "-", a.proposed_stage or "-", a.baseline_rule,
                         a.proposed_rule] for a in result.accounts])
    else:
        lines.append("(none)")
    lines += ["", f"[SLA clocks whose outcome changes: {len(result.breaches)}]"]
    if result.breaches:
        lines += _grid(["account", "sla", "clock started", "current", "proposed"],
                       [[b.account_id, b.sla_id, b.started_at.strftime("%Y-%m-%d %H:%M"), b.baseline, b.proposed]
                        for b in result.breaches])
    else:
        lines.append("(none)")
    return "\n".join(lines) + "\n"
