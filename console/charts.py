"""Inline SVG charts that read without colour: each series has its own fill pattern and label.

``withheld_chart`` draws children withheld by reason over a destination's recent runs as
stacked bars; every bar carries its total and a ``<title>`` per segment, and the legend pairs
each reason's pattern with its plain-words description.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from markupsafe import Markup, escape

from pipelines.reports import reason_description

# pattern id -> SVG pattern body (black on white, distinct without colour)
_PATTERNS = [
    ("solid", '<rect width="8" height="8" fill="#333"/>'),
    ("diag", '<rect width="8" height="8" fill="#fff"/><path d="M0,8 L8,0" stroke="#000"/>'),
    ("dots", '<rect width="8" height="8" fill="#fff"/><circle cx="4" cy="4" r="1.6" fill="#000"/>'),
    ("horiz", '<rect width="8" height="8" fill="#fff"/><path d="M0,4 H8" stroke="#000"/>'),
    ("vert", '<rect width="8" height="8" fill="#fff"/><path d="M4,0 V8" stroke="#000"/>'),
    (
        "cross",
        '<rect width="8" height="8" fill="#ddd"/><path d="M0,0 L8,8 M8,0 L0,8" stroke="#000"/>',
    ),
    ("grid", '<rect width="8" height="8" fill="#fff"/><path d="M0,4 H8 M4,0 V8" stroke="#000"/>'),
    ("back", '<rect width="8" height="8" fill="#bbb"/><path d="M0,0 L8,8" stroke="#000"/>'),
    ("light", '<rect width="8" height="8" fill="#999"/>'),
]


def withheld_chart(series: Sequence[dict[str, Any]], title: str) -> Markup:
    """Stacked bars of withheld children by reason, one bar per run (oldest left)."""
    reasons = sorted({r for run in series for r in run["withheld"]})
    if not series or not reasons:
        return Markup('<p class="empty">No withheld children in these runs.</p>')
    style = {r: _PATTERNS[i % len(_PATTERNS)][0] for i, r in enumerate(reasons)}
    bar, gap, height, top, left = 22, 8, 180, 20, 40
    peak = max(sum(run["withheld"].values()) for run in series) or 1
    width = left + len(series) * (bar + gap) + gap
    parts = [
        f'<svg role="img" aria-labelledby="chart-title" viewBox="0 0 {width} {height + 70}" '
        f'width="{width}" height="{height + 70}" class="chart" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="chart-title">{escape(title)}</title><defs>',
        *(
            f'<pattern id="p-{name}" width="8" height="8" patternUnits="userSpaceOnUse">{body}'
            "</pattern>"
            for name, body in _PATTERNS
        ),
        "</defs>",
        f'<line x1="{left}" y1="{top + height}" x2="{width}" y2="{top + height}" stroke="#000"/>',
        f'<text x="{left - 4}" y="{top + 4}" text-anchor="end" font-size="10">{peak}</text>',
        f'<text x="{left - 4}" y="{top + height}" text-anchor="end" font-size="10">0</text>',
    ]
    for i, run in enumerate(series):
        x = left + gap + i * (bar + gap)
        y = top + height
        total = sum(run["withheld"].values())
        for reason in reasons:
            count = run["withheld"].get(reason, 0)
            if not count:
                continue
            h = count / peak * height
            y -= h
            label = f"{run['run_date']}: {count} withheld, {reason_description(reason)}"
            parts.append(
                f'<rect x="{x}" y="{y:.1f}" width="{bar}" height="{h:.1f}" '
                f'fill="url(#p-{style[reason]})" stroke="#000" stroke-width="0.5">'
                f"<title>{escape(label)}</title></rect>"
            )
        parts.append(
            f'<text x="{x + bar / 2}" y="{y - 3:.1f}" text-anchor="middle" '
            f'font-size="9">{total}</text>'
        )
        parts.append(
            f'<text x="{x + bar / 2}" y="{top + height + 12}" font-size="9" text-anchor="end" '
            f'transform="rotate(-45 {x + bar / 2} {top + height + 12})">'
            f"{escape(run['run_date'][5:])}{' (dry)' if run.get('dry_run') else ''}</text>"
        )
    parts.append("</svg>")
    legend = ['<ul class="legend">']
    for reason in reasons:
        legend.append(
            f'<li><svg width="16" height="16" aria-hidden="true"><rect width="16" height="16" '
            f'fill="url(#p-{style[reason]})" stroke="#000"/></svg> <code>{escape(reason)}</code>: '
            f"{escape(reason_description(reason))}</li>"
        )
    legend.append("</ul>")
    return Markup("".join(parts) + "".join(legend))
