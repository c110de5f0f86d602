"""A what-if as one self-contained HTML page: inline SVG charts, no script, nothing fetched.

Two charts RevOps asked for: the funnel (accounts reaching each path stage, current vs
proposed) and SLA compliance per SLA as paired bars; then the side-by-side tables.
"""

from __future__ import annotations

from html import escape

from pipeline.whatif.compare import MetricRow, WhatIf
from pipeline.whatif.render import SECTIONS, delta_text, human

CURRENT, PROPOSED = "#8c96a8", "#2f6fde"
_BAR_H, _GAP, _LABEL_W, _PLOT_W = 14, 10, 190, 420


def render_html(result: WhatIf) -> str:
    funnel = [(r.key, r.baseline or 0, r.proposed or 0) for r in result.section("conversion") if r.metric == "reached"]
    compliance = [(r.key, r.baseline, r.proposed) for r in result.section("sla") if r.metric == "compliance"]
    breached = [(r.key, r.baseline or 0, r.proposed or 0) for r in result.section("sla") if r.metric == "breached"]
    parts = [
        "<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>What-if: {escape(result.proposed)} vs {escape(result.baseline)}</title>",
        "<style>body{font:14px system-ui,sans-serif;margin:24px;color:#1d2433}h1{font-size:20px}"
        "h2{font-size:16px;margin-top:28px}table{border-collapse:collapse;margin:8px 0}"
        "td,th{padding:3px 10px;border-bottom:1px solid #e3e6ee;text-align:left}"
        "td.n{text-align:right}tr.changed td{background:#fff6e0}.legend span{display:inline-block;width:12px;"
        "height:12px;margin:0 4px 0 12px;vertical-align:middle}svg text{font:12px system-ui,sans-serif}</style>",
        "</head><body>",
        f"<h1>What-if: <b>{escape(result.proposed)}</b> (proposed) vs {escape(result.baseline)} (current)</h1>",
        f"<p>Period {escape(str(result.since or 'beginning'))} .. {escape(str(result.until or 'now'))}; "
        f"replayed {result.records:,} records, {result.events:,} events in {result.seconds:.1f}s "
        f"({result.rate:,.0f} events/s).</p>",
        f'<p class="legend"><span style="background:{CURRENT}"></span>current'
        f'<span style="background:{PROPOSED}"></span>proposed</p>',
        "<h2>Funnel: accounts reaching each stage</h2>",
        paired_bars("funnel", funnel, lambda v: str(int(v))),
        "<h2>SLA compliance</h2>",
        paired_bars("sla-compliance", [(k, b or 0.0, p or 0.0) for k, b, p in compliance],
                    lambda v: f"{v * 100:.1f}%", scale=1.0),
        "<h2>SLA breaches</h2>",
        paired_bars("sla-breaches", breached, lambda v: str(int(v))),
    ]
    for section, title in SECTIONS.items():
        parts += [f"<h2>{escape(title)}</h2>", _table(result.section(section))]
    parts.append(f"<h2>Accounts that change stage ({len(result.accounts)})</h2>")
    parts.append(_rows_table(["account", "current", "proposed", "why now", "why proposed"],
                             [[a.account_id, a.baseline_stage or "-", a.proposed_stage or "-", a.baseline_rule,
                               a.proposed_rule] for a in result.accounts]))
    parts.append(f"<h2>SLA clocks whose outcome changes ({len(result.breaches)})</h2>")
    parts.append(_rows_table(["account", "sla", "clock started", "current", "proposed"],
                             [[b.account_id, b.sla_id, b.started_at.strftime("%Y-%m-%d %H:%M"), b.baseline,
                               b.proposed] for b in result.breaches]))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def paired_bars(chart_id: str, items: list[tuple[str, float, float]], label, scale: float | None = None) -> str:  # type: ignore[no-untyped-def]
    """Horizontal bars, current above proposed, one pair per item, as inline SVG."""
    top = max([scale or 0.0] + [max(b, p) for _, b, p in items]) or 1.0
    pair_h = 2 * _BAR_H + _GAP
    height = max(pair_h, len(items) * pair_h)
    width = _LABEL_W + _PLOT_W + 80
    out = [f'<svg id="{chart_id}" class="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" '
           f'height="{height}" viewBox="0 0 {width} {height}" role="img">']
    for i, (key, before, after) in enumerate(items):
        y = i * pair_h
        out.append(f'<text x="{_LABEL_W - 8}" y="{y + _BAR_H + 4}" text-anchor="end">{escape(key)}</text>')
        for j, (value, colour, side) in enumerate(((before, CURRENT, "current"), (after, PROPOSED, "proposed"))):
            w = round(_PLOT_W * value / top, 1)
            yy = y + j * _BAR_H
            out.append(f'<rect class="bar {side}" data-key="{escape(key)}" data-value="{value}" x="{_LABEL_W}" '
                       f'y="{yy}" width="{w}" height="{_BAR_H - 2}" fill="{colour}"/>')
            out.append(f'<text x="{_LABEL_W + w + 4}" y="{yy + _BAR_H - 3}">{escape(label(value))}</text>')
    out.append("</svg>")
    return "".join(out)


def _table(rows: list[MetricRow]) -> str:
    body = []
    for r in rows:
        cls = ' class="changed"' if r.changed else ""
        body.append(f"<tr{cls}><td>{escape(r.key)}</td><td>{escape(r.metric)}</td>"
                    f'<td class="n">{escape(human(r.metric, r.baseline))}</td>'
                    f'<td class="n">{escape(human(r.metric, r.proposed))}</td><td>{escape(delta_text(r))}</td></tr>')
    return ("<table><tr><th></th><th>metric</th><th>current</th><th>proposed</th><th>change</th></tr>"
            + "".join(body) + "</table>")


def _rows_table(header: list[str], rows: list[list[str]]) -> str:
    if not rows:
        return "<p>(none)</p>"
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"
