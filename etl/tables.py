"""Declared table lists: what the ETL copies. The shop is one configuration, TPC-H another.

Each table names its key (used to apply changes) and, optionally, a backfill predicate:
SQL over the table's own columns with `{start}` / `{end}` (timestamp literals) and
`{schema}` (where sibling tables live) placeholders, valid in Postgres and DuckDB alike.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TableSpec:
    name: str
    key: tuple[str, ...]
    backfill_predicate: str | None = None


@dataclass(frozen=True)
class Configuration:
    name: str
    tables: tuple[TableSpec, ...]
    star_schema: bool = False  # build the shop's star schema views on top


_CREATED = "created_at >= {start} AND created_at < {end}"

SHOP = Configuration(
    "shop",
    (
        TableSpec("customers", ("id",), _CREATED),
        TableSpec("products", ("id",), _CREATED),  # soft deletes arrive as updates
        TableSpec("orders", ("id",), _CREATED),
        TableSpec(
            "order_lines",
            ("order_id", "line_no"),
            "order_id IN (SELECT id FROM {schema}.orders WHERE " + _CREATED + ")",
        ),
    ),
    star_schema=True,
)

TPCH = Configuration(
    "tpch",
    (
        TableSpec("region", ("r_regionkey",)),
        TableSpec("nation", ("n_nationkey",)),
        TableSpec("supplier", ("s_suppkey",)),
        TableSpec("customer", ("c_custkey",)),
        TableSpec("part", ("p_partkey",)),
        TableSpec("partsupp", ("ps_partkey", "ps_suppkey")),
        TableSpec("orders", ("o_orderkey",), "o_orderdate >= {start} AND o_orderdate < {end}"),
        TableSpec(
            "lineitem",
            ("l_orderkey", "l_linenumber"),
            "l_shipdate >= {start} AND l_shipdate < {end}",
        ),
    ),
)

CONFIGURATIONS = {c.name: c for c in (SHOP, TPCH)}
