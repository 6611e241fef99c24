"""Pure logic of the ETL: the SQL it sends to Postgres and the declared configurations."""

from __future__ import annotations

from pathlib import Path

import pytest

from etl.runner import EtlConfig, EtlJob, _needs_sort
from etl.tables import CONFIGURATIONS, SHOP, TPCH, TableSpec
from etl.tracking import SourceColumn, Watermark

MARK = Watermark("1000", "1000:1005:1002")


def job() -> EtlJob:
    return EtlJob(EtlConfig("postgresql://x/y", "t_abc", Path("/tmp/none.duckdb"), SHOP))


def test_changed_keys_cast_back_to_the_key_types_and_skip_what_was_seen() -> None:
    spec = next(t for t in SHOP.tables if t.name == "order_lines")
    sql = job()._changed_keys_sql(
        spec, [SourceColumn("order_id", "bigint"), SourceColumn("line_no", "integer")], MARK
    )
    assert "(key->>'order_id')::bigint AS \"order_id\"" in sql
    assert "(key->>'line_no')::integer AS \"line_no\"" in sql
    assert "txid >= '1000'::xid8" in sql
    assert "NOT pg_visible_in_snapshot(txid, '1000:1005:1002'::pg_snapshot)" in sql
    assert '"t_abc".etl_changes' in sql


ORDER_LINE_COLUMNS = [
    SourceColumn("order_id", "bigint"),
    SourceColumn("line_no", "integer"),
    SourceColumn("quantity", "integer"),
]


def test_changed_rows_are_one_statement_probing_the_key_index_when_there_is_one() -> None:
    spec = next(t for t in SHOP.tables if t.name == "order_lines")
    keys = job()._changed_keys_sql(spec, ORDER_LINE_COLUMNS, MARK)
    sql = job()._changed_rows_sql(spec, ORDER_LINE_COLUMNS, MARK, indexed=True)
    # the keys are read once, in the same statement (one Postgres snapshot)
    assert sql.count(keys) == 1
    assert 'k."order_id" AS "_etl_k_order_id", k."line_no" AS "_etl_k_line_no"' in sql
    assert 'r._etl_present, r."order_id", r."line_no", r."quantity"' in sql
    # a LATERAL subquery Postgres cannot flatten into a hash join: one probe per key
    assert "LEFT JOIN LATERAL (SELECT true AS _etl_present" in sql
    assert 'WHERE t."order_id" = k."order_id" AND t."line_no" = k."line_no" OFFSET 0) r' in sql
    assert 'FROM "t_abc"."order_lines" t' in sql


def test_changed_rows_without_a_key_index_leave_the_join_to_the_planner() -> None:
    spec = next(t for t in SHOP.tables if t.name == "order_lines")
    sql = job()._changed_rows_sql(spec, ORDER_LINE_COLUMNS, MARK, indexed=False)
    assert "LATERAL" not in sql and "OFFSET 0" not in sql
    assert 'ON r."order_id" = k."order_id" AND r."line_no" = k."line_no"' in sql


def test_every_declared_key_is_a_column_name_and_predicates_have_placeholders() -> None:
    for configuration in (SHOP, TPCH):
        names = [t.name for t in configuration.tables]
        assert len(names) == len(set(names))
        for spec in configuration.tables:
            assert spec.key
            if spec.backfill_predicate:
                assert "{start}" in spec.backfill_predicate and "{end}" in spec.backfill_predicate
    assert set(CONFIGURATIONS) == {"shop", "tpch"}


def test_backfill_needs_a_range() -> None:
    with pytest.raises(ValueError, match="time range"):
        job().begin("backfill")


def test_cron_setting_is_parsed_by_croniter() -> None:
    from datetime import UTC, datetime

    from croniter import croniter

    from app.settings import Settings

    cron = Settings.model_validate({}).etl_cron
    start = datetime(2026, 1, 1, 0, 1, tzinfo=UTC)
    assert croniter(cron, start).get_next(datetime) == datetime(2026, 1, 1, 0, 15, tzinfo=UTC)


def test_timestamptz_lands_as_the_same_instant_in_naive_utc() -> None:
    from datetime import datetime

    import duckdb

    from etl.runner import _landed

    tz_col = SourceColumn("created_at", "timestamp with time zone")
    assert _landed(SourceColumn("id", "bigint"), "t.") == 't."id"'
    assert _landed(tz_col) == 'make_timestamp(epoch_us("created_at")) AS "created_at"'
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'America/New_York'")  # the session zone plays no part
        row = con.execute(
            f"SELECT {_landed(tz_col)}, typeof({_landed(tz_col).split(' AS ')[0]}) "
            "FROM (SELECT TIMESTAMPTZ '2024-03-01 23:30:00+02' AS created_at)"
        ).fetchone()
    assert row == (datetime(2024, 3, 1, 21, 30), "TIMESTAMP")


def test_backfill_bounds_are_utc_timestamps_and_naive_means_utc() -> None:
    from datetime import UTC, datetime, timedelta, timezone

    from etl.runner import _utc_timestamp

    paris = timezone(timedelta(hours=1))
    assert _utc_timestamp(datetime(2024, 1, 1, 0, 30, tzinfo=paris)) == (
        "CAST('2023-12-31T23:30:00' AS TIMESTAMP)"
    )
    assert _utc_timestamp(datetime(2024, 1, 1, 5)) == "CAST('2024-01-01T05:00:00' AS TIMESTAMP)"
    assert _utc_timestamp(datetime(2024, 1, 1, 5, tzinfo=UTC)) == (
        "CAST('2024-01-01T05:00:00' AS TIMESTAMP)"
    )


def test_a_copy_with_timestamptz_columns_is_not_the_same_columns() -> None:
    """A snapshot written before timestamps landed as UTC TIMESTAMP gets a full copy."""
    import duckdb

    columns = [SourceColumn("id", "bigint"), SourceColumn("created_at", "timestamp with time zone")]
    with duckdb.connect() as con:
        con.execute("CREATE TABLE old (id BIGINT, created_at TIMESTAMPTZ)")
        con.execute("CREATE TABLE new (id BIGINT, created_at TIMESTAMP)")
        con.execute("CREATE TABLE renamed (id BIGINT, created TIMESTAMP)")
        assert EtlJob._same_columns(con, "new", columns)
        assert not EtlJob._same_columns(con, "old", columns)
        assert not EtlJob._same_columns(con, "renamed", columns)
        assert not EtlJob._same_columns(con, "missing", columns)


def test_only_strings_with_many_values_are_stored_plain() -> None:
    from etl.runner import DICTIONARY_MAX_DISTINCT, _stored_plain

    assert _stored_plain(SourceColumn("sku", "text", DICTIONARY_MAX_DISTINCT + 1.0))
    assert not _stored_plain(SourceColumn("status", "text", 4.0))
    assert not _stored_plain(SourceColumn("name", "text", None))  # no statistics yet


@pytest.mark.parametrize(
    ("correlation", "sort"),
    [(None, True), (0.25, True), (-1.0, True), (0.97, True), (0.99, False), (1.0, False)],
)
def test_a_full_copy_sorts_unless_the_heap_is_in_key_order(
    correlation: float | None, sort: bool
) -> None:
    spec = TableSpec("order_lines", ("order_id", "line_no"))
    columns = [
        SourceColumn("order_id", "bigint", 1000.0, correlation),
        SourceColumn("line_no", "integer", 4.0, 1.0),  # only the first key column counts
    ]
    assert _needs_sort(spec, columns) is sort
    assert _needs_sort(spec, columns[1:]) is True  # key column not found: sort
