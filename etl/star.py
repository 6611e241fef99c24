"""The shop's star schema, built in DuckDB on top of the copied tables.

    fact_order_lines   one row per order line: order, line, date, customer, product keys,
                       quantity, unit price and revenue (major units), order status
    dim_product        product attributes, top-level category, soft-delete flag
    dim_customer       customer attributes, first order time
    dim_date           one row per calendar day (UTC) from the first to the last order

Views over the copied tables (so they can never disagree with them), except `dim_date`,
a small table rebuilt every run. The ETL lands every timestamp as a naive UTC `TIMESTAMP`,
so bucketing into UTC days is a plain cast (no time-zone arithmetic).
"""

from __future__ import annotations

import duckdb

STAR_SQL = """
CREATE OR REPLACE VIEW dim_product AS
SELECT id AS product_key, sku, name, brand, category,
       split_part(category, '/', 1) AS top_category,
       CAST(price_minor AS DECIMAL(18, 2)) / 100 AS list_price, currency, status,
       deleted_at IS NOT NULL AS is_deleted, created_at, updated_at
  FROM products;

CREATE OR REPLACE VIEW dim_customer AS
SELECT c.id AS customer_key, c.email, c.name, c.country, c.created_at,
       (SELECT min(o.created_at) FROM orders o WHERE o.customer_id = c.id) AS first_order_at
  FROM customers c;

CREATE OR REPLACE VIEW fact_order_lines AS
SELECT ol.order_id, ol.line_no,
       CAST(o.created_at AS DATE) AS date_key,
       o.customer_id AS customer_key, ol.product_id AS product_key,
       o.status AS order_status, o.created_at AS ordered_at,
       ol.quantity,
       CAST(ol.unit_price_minor AS DECIMAL(18, 2)) / 100 AS unit_price,
       CAST(ol.quantity * ol.unit_price_minor AS DECIMAL(18, 2)) / 100 AS revenue,
       ol.currency
  FROM order_lines ol JOIN orders o ON o.id = ol.order_id;

CREATE OR REPLACE TABLE dim_date AS
WITH bounds AS (
    SELECT coalesce(min(CAST(created_at AS DATE)), current_date) AS lo,
           coalesce(max(CAST(created_at AS DATE)), current_date) AS hi
      FROM orders
)
SELECT CAST(d AS DATE) AS date_key, year(d) AS year, quarter(d) AS quarter,
       month(d) AS month, monthname(d) AS month_name, day(d) AS day,
       isodow(d) AS iso_weekday, dayname(d) AS day_name, isodow(d) >= 6 AS is_weekend
  FROM bounds,
       range(CAST(lo AS TIMESTAMP), CAST(hi AS TIMESTAMP) + INTERVAL 1 DAY, INTERVAL 1 DAY) t(d);
"""


def build_star_schema(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(STAR_SQL)
