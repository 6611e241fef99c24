"""Built-in reports over the star schema: SQL plus a Vega-Lite chart spec.

Revenue counts every order that is not cancelled; amounts are in major currency units
(a shop with several currencies sees them summed per currency where that matters).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Report:
    name: str
    title: str
    sql: str
    chart: dict[str, Any]


def _chart(mark: str, x: tuple[str, str], y: tuple[str, str], **extra: Any) -> dict[str, Any]:
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "mark": mark,
        "encoding": {
            "x": {"field": x[0], "type": x[1]},
            "y": {"field": y[0], "type": y[1]},
            **extra,
        },
    }


_LIVE = "order_status <> 'cancelled'"

REPORTS: dict[str, Report] = {
    r.name: r
    for r in (
        Report(
            "revenue_by_day",
            "Revenue by day",
            f"""SELECT date_key AS day, currency, sum(revenue) AS revenue,
                       count(DISTINCT order_id) AS orders
                  FROM fact_order_lines WHERE {_LIVE}
                 GROUP BY ALL ORDER BY day, currency""",
            _chart(
                "line",
                ("day", "temporal"),
                ("revenue", "quantitative"),
                color={"field": "currency", "type": "nominal"},
            ),
        ),
        Report(
            "top_products",
            "Top 20 products by revenue",
            f"""SELECT p.product_key AS product_id, p.sku, p.name, sum(f.quantity) AS units,
                       sum(f.revenue) AS revenue
                  FROM fact_order_lines f JOIN dim_product p USING (product_key)
                 WHERE {_LIVE}
                 GROUP BY ALL ORDER BY revenue DESC, product_id LIMIT 20""",
            _chart("bar", ("revenue", "quantitative"), ("name", "nominal")),
        ),
        Report(
            "category_mix",
            "Revenue share by top-level category",
            f"""SELECT coalesce(nullif(p.top_category, ''), '(none)') AS category,
                       sum(f.revenue) AS revenue,
                       round(sum(f.revenue) / sum(sum(f.revenue)) OVER () * 100, 2) AS share_pct
                  FROM fact_order_lines f JOIN dim_product p USING (product_key)
                 WHERE {_LIVE}
                 GROUP BY ALL ORDER BY revenue DESC, category""",
            {
                "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
                "mark": "arc",
                "encoding": {
                    "theta": {"field": "revenue", "type": "quantitative"},
                    "color": {"field": "category", "type": "nominal"},
                },
            },
        ),
        Report(
            "repeat_customer_rate",
            "Share of ordering customers with more than one order",
            """WITH per_customer AS (
                   SELECT customer_id, count(*) AS orders FROM orders
                    WHERE status <> 'cancelled' GROUP BY customer_id)
               SELECT count(*) AS customers,
                      count(*) FILTER (WHERE orders > 1) AS repeat_customers,
                      round(coalesce(count(*) FILTER (WHERE orders > 1) / nullif(count(*), 0), 0)
                            * 100, 2) AS repeat_rate_pct
                 FROM per_customer""",
            _chart("bar", ("repeat_rate_pct", "quantitative"), ("customers", "quantitative")),
        ),
        Report(
            "average_order_value",
            "Average order value by month",
            """SELECT date_trunc('month', created_at)::DATE AS month, currency,
                      count(*) AS orders,
                      round(avg(total_minor) / 100, 2) AS average_order_value
                 FROM orders WHERE status <> 'cancelled'
                GROUP BY ALL ORDER BY month, currency""",
            _chart(
                "line",
                ("month", "temporal"),
                ("average_order_value", "quantitative"),
                color={"field": "currency", "type": "nominal"},
            ),
        ),
        Report(
            "orders_by_status",
            "Orders by status",
            """SELECT status, count(*) AS orders FROM orders
                GROUP BY ALL ORDER BY orders DESC, status""",
            _chart("bar", ("status", "nominal"), ("orders", "quantitative")),
        ),
        Report(
            "revenue_by_weekday",
            "Revenue by day of the week (UTC)",
            f"""SELECT d.iso_weekday, d.day_name, sum(f.revenue) AS revenue
                  FROM fact_order_lines f JOIN dim_date d USING (date_key)
                 WHERE {_LIVE}
                 GROUP BY ALL ORDER BY d.iso_weekday""",
            _chart("bar", ("day_name", "ordinal"), ("revenue", "quantitative")),
        ),
    )
}
