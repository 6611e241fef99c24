"""TPC-H end to end: DuckDB's tpch extension generates sf 0.01 into Postgres, the ETL
copies it with the TPC-H table configuration, the 22 queries run through
POST /analytics/query and are compared with the published answers (`tpch_answers()`,
scale factor 0.01, shipped with the extension)."""

from __future__ import annotations

import asyncio
import math

import duckdb
import httpx
import pytest
from asgi_lifespan import LifespanManager

from analytics.extensions import load_extension
from app.etl_schedule import etl_job
from app.main import create_app
from app.settings import Settings
from app.stores import Stores
from etl.tables import TPCH
from tests.integration.test_etl import assert_parity
from tests.support.auth import bearer

SF = 0.01


def load_tpch_into_postgres(settings: Settings) -> tuple[list[str], dict[int, str]]:
    """Generate the data, copy it into the test's schema; return queries and answers."""
    with duckdb.connect() as con:
        load_extension(con, "tpch")
        load_extension(con, "postgres")
        con.execute(f"CALL dbgen(sf={SF})")
        url = settings.database_url.replace("'", "''")
        con.execute(f"ATTACH '{url}' AS pg (TYPE postgres)")
        # TPC-H has its own `orders`: the shop's order tables make room in this test's schema
        con.execute(
            "CALL postgres_execute('pg', "
            f'\'DROP TABLE "{settings.database_schema}".order_lines, '
            f'"{settings.database_schema}".orders CASCADE\')'
        )
        for spec in TPCH.tables:
            con.execute(
                f'CREATE TABLE pg."{settings.database_schema}"."{spec.name}" AS '
                f"SELECT * FROM {spec.name}"
            )
        con.execute("DETACH pg")
        listed = con.execute("SELECT query_nr, query FROM tpch_queries() ORDER BY 1").fetchall()
        queries = [q for _, q in listed]
        answers = dict(
            con.execute(
                "SELECT query_nr, answer FROM tpch_answers() WHERE scale_factor = ?", [SF]
            ).fetchall()
        )
    return queries, answers


def _same(got: object, want: str) -> bool:
    if got is None:
        return want in ("", "NULL")  # the answer files print NULL as an empty field
    text = str(got)
    if text == want:
        return True
    try:
        a, b = float(text), float(want)
    except ValueError:
        return text.strip() == want.strip()
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=0.01)


def matches(rows: list[list[object]], answer: str) -> bool:
    lines = answer.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    expected = [line.split("|") for line in lines[1:]]
    if len(rows) != len(expected):
        return False
    return all(
        len(r) == len(e) and all(_same(g, w) for g, w in zip(r, e, strict=True))
        for r, e in zip(rows, expected, strict=True)
    )


async def test_tpch_queries_through_the_sandbox_match_the_published_answers(
    settings: Settings, stores: Stores
) -> None:
    queries, answers = await asyncio.to_thread(load_tpch_into_postgres, settings)
    assert len(queries) == 22 and len(answers) == 22
    tpch = settings.model_copy(
        update={
            "etl_tables": "tpch",
            "analytics_query_timeout_s": 60,
            "analytics_max_rows": 100_000,
        }
    )
    result = await asyncio.to_thread(etl_job(tpch).run)
    assert result.status == "succeeded", result.error
    assert result.rows["lineitem"] > 50_000
    assert_parity(tpch, TPCH)

    admin = await bearer(stores, "admin")
    app = create_app(tpch)
    wrong = {}
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for nr, sql in enumerate(queries, start=1):
                response = await client.post("/analytics/query", headers=admin, json={"sql": sql})
                if response.status_code != 200:
                    wrong[nr] = response.text[:300]
                elif not matches(response.json()["rows"], answers[nr]):
                    wrong[nr] = f"rows differ: {response.json()['rows'][:2]}"
    assert wrong == {}


@pytest.mark.parametrize(
    ("rows", "answer", "ok"),
    [
        ([["A", 1.0000001]], "x|y\nA|1.0", True),
        ([["A", 2]], "x|y\nA|1", False),
        ([], "x|y\nA|1", False),
        ([[None]], "avg\n\n", True),
        ([[1]], "avg\n\n", False),
    ],
)
def test_answer_comparison_can_fail(rows: list[list[object]], answer: str, ok: bool) -> None:
    assert matches(rows, answer) is ok
