"""A chart of a query result as inline SVG, rendered here (no charting script to ship).

The kind comes from the column types: a time column on x makes a line, a text column a
bar chart; the first numeric column (other than x) is the value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from markupsafe import Markup, escape

WIDTH, HEIGHT = 640, 280
PAD_L, PAD_R, PAD_T, PAD_B = 64, 16, 16, 64
MAX_BARS = 40


@dataclass(frozen=True)
class Chart:
    kind: str  # "line" or "bar"
    x: str
    y: str
    svg: Markup


def _numeric(t: pa.DataType) -> bool:
    return bool(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t))


def _temporal(t: pa.DataType) -> bool:
    return bool(pa.types.is_temporal(t))


def pick(schema: pa.Schema) -> tuple[str, str, str] | None:
    """(kind, x column, y column) for this result, or None when nothing fits."""
    fields = list(schema)
    x = next((f for f in fields if _temporal(f.type)), None)
    kind = "line"
    if x is None:
        x = next(
            (f for f in fields if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)),
            None,
        )
        kind = "bar"
    if x is None and len(fields) >= 2 and _numeric(fields[0].type):
        x, kind = fields[0], "bar"  # e.g. hour of day -> orders
    if x is None:
        return None
    y = next((f for f in fields if f.name != x.name and _numeric(f.type)), None)
    return (kind, x.name, y.name) if y is not None else None


def _label(value: Any) -> str:
    text = value.isoformat()[:10] if hasattr(value, "isoformat") else str(value)
    return text if len(text) <= 14 else text[:13] + "…"


def render(table: pa.Table, title: str) -> Chart | None:
    chosen = pick(table.schema)
    if chosen is None or table.num_rows == 0:
        return None
    kind, x_name, y_name = chosen
    xs = table.column(x_name).to_pylist()
    ys = [float(v) if v is not None else 0.0 for v in table.column(y_name).to_pylist()]
    if kind == "bar":
        xs, ys = xs[:MAX_BARS], ys[:MAX_BARS]
    top = max(max(ys), 0.0) or 1.0
    low = min(min(ys), 0.0)
    plot_w, plot_h = WIDTH - PAD_L - PAD_R, HEIGHT - PAD_T - PAD_B

    def sy(v: float) -> float:
        return PAD_T + plot_h * (1 - (v - low) / (top - low))

    n = len(xs)
    parts: list[str] = []
    for i in range(5):  # grid and y ticks
        v = low + (top - low) * i / 4
        y = sy(v)
        parts.append(
            f'<line x1="{PAD_L}" x2="{WIDTH - PAD_R}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e3e3e8"/>'
            f'<text x="{PAD_L - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">'
            f"{v:,.0f}</text>"
        )
    step = plot_w / max(n, 1)
    every = max(1, n // 10)
    if kind == "bar":
        for i, (xv, yv) in enumerate(zip(xs, ys, strict=True)):
            x0 = PAD_L + i * step + step * 0.1
            top_y, base = sy(max(yv, 0)), sy(min(yv, 0))
            parts.append(
                f'<rect x="{x0:.1f}" y="{top_y:.1f}" width="{step * 0.8:.1f}" '
                f'height="{max(base - top_y, 0.5):.1f}" fill="#0b57d0">'
                f"<title>{escape(_label(xv))}: {yv:,.2f}</title></rect>"
            )
    else:
        points = " ".join(f"{PAD_L + (i + 0.5) * step:.1f},{sy(yv):.1f}" for i, yv in enumerate(ys))
        parts.append(f'<polyline points="{points}" fill="none" stroke="#0b57d0" stroke-width="2"/>')
        for i, (xv, yv) in enumerate(zip(xs, ys, strict=True)):  # a point per row
            parts.append(
                f'<circle cx="{PAD_L + (i + 0.5) * step:.1f}" cy="{sy(yv):.1f}" r="3" '
                f'fill="#0b57d0"><title>{escape(_label(xv))}: {yv:,.2f}</title></circle>'
            )
    for i in range(0, n, every):
        cx = PAD_L + (i + 0.5) * step
        parts.append(
            f'<text x="{cx:.1f}" y="{HEIGHT - PAD_B + 14}" font-size="11" text-anchor="end" '
            f'transform="rotate(-35 {cx:.1f} {HEIGHT - PAD_B + 14})">{escape(_label(xs[i]))}</text>'
        )
    label = f"{title}: {y_name} by {x_name} ({kind} chart)"
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(label)}" data-kind="{kind}"><title>{escape(label)}</title>'
        + "".join(parts)
        + "</svg>"
    )
    return Chart(kind, x_name, y_name, Markup(svg))
