"""POST /analytics/query and GET /analytics/reports/{name} against a real ETL'd copy."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from asgi_lifespan import LifespanManager

from analytics.reports import REPORTS
from app.etl_schedule import etl_job
from app.main import create_app
from app.settings import Settings
from app.stores import Stores
from tests.integration.test_etl import seed_shop
from tests.support.auth import bearer
from tests.unit.test_sandbox import REFUSED_STATEMENTS, RUNTIME_ESCAPES


@pytest.fixture
async def admin(settings: Settings, stores: Stores) -> dict[str, str]:
    seed_shop(settings, customers=4, products=6, orders=10)
    result = await asyncio.to_thread(etl_job(settings).run)
    assert result.status == "succeeded", result.error
    return await bearer(stores, "admin")


async def test_query_answers_json_with_params(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    response = await client.post(
        "/analytics/query",
        headers=admin,
        json={
            "sql": "SELECT id, price_minor FROM products WHERE id <= ? ORDER BY id",
            "params": [2],
        },
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "columns": ["id", "price_minor"],
        "rows": [[1, 100], [2, 200]],
        "truncated": False,
    }


async def test_row_cap_and_formats(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    body = {"sql": "SELECT * FROM order_lines ORDER BY order_id, line_no", "max_rows": 5}
    as_json = await client.post("/analytics/query", headers=admin, json=body)
    assert as_json.json()["truncated"] is True and len(as_json.json()["rows"]) == 5
    csv = await client.post("/analytics/query", headers={**admin, "Accept": "text/csv"}, json=body)
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.headers["x-truncated"] == "true"
    assert csv.text.splitlines()[0].startswith('"order_id","line_no"')
    assert len(csv.text.strip().splitlines()) == 6
    parquet = await client.post(
        "/analytics/query",
        headers={**admin, "Accept": "application/vnd.apache.parquet"},
        json=body,
    )
    assert pq.read_table(io.BytesIO(parquet.content)).num_rows == 5
    arrow = await client.post(
        "/analytics/query",
        headers={**admin, "Accept": "application/vnd.apache.arrow.stream"},
        json=body,
    )
    table = pa.ipc.open_stream(arrow.content).read_all()
    assert table.column_names[:2] == ["order_id", "line_no"] and table.num_rows == 5
    refused = await client.post(
        "/analytics/query", headers={**admin, "Accept": "image/png"}, json=body
    )
    assert refused.status_code == 406


async def test_the_escape_battery_is_refused_with_4xx(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    wrong = {}
    for sql in REFUSED_STATEMENTS + RUNTIME_ESCAPES:
        response = await client.post("/analytics/query", headers=admin, json={"sql": sql})
        ok = (
            400 <= response.status_code < 500
            and response.headers["content-type"].startswith("application/problem+json")
            and (response.json().get("reason") or response.json().get("errors"))
        )
        if not ok:
            wrong[sql] = (response.status_code, response.text[:200])
    assert wrong == {}
    # and the copy is untouched
    response = await client.post(
        "/analytics/query", headers=admin, json={"sql": "SELECT count(*) FROM products"}
    )
    assert response.json()["rows"] == [[6]]


async def test_access_needs_an_admin(
    client: httpx.AsyncClient, stores: Stores, admin: dict[str, str]
) -> None:
    body = {"sql": "SELECT 1"}
    assert (await client.post("/analytics/query", json=body)).status_code == 401
    customer = await bearer(stores, "customer")
    assert (await client.post("/analytics/query", headers=customer, json=body)).status_code == 403
    assert (
        await client.get("/analytics/reports/top_products", headers=customer)
    ).status_code == 403


@pytest.fixture
async def impatient_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings.model_copy(update={"analytics_query_timeout_s": 0.5}))
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            yield c


async def test_the_timeout_stops_a_heavy_query(
    impatient_client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    response = await impatient_client.post(
        "/analytics/query",
        headers=admin,
        json={"sql": "SELECT sum(a.range * b.range) FROM range(300000) a, range(300000) b"},
    )
    assert response.status_code == 422, response.text
    assert response.json()["reason"] == "timeout"
    after = await impatient_client.post(
        "/analytics/query", headers=admin, json={"sql": "SELECT 42"}
    )
    assert after.json()["rows"] == [[42]]


async def test_every_report_answers(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    listing = await client.get("/analytics/reports", headers=admin)
    assert set(listing.json()) == set(REPORTS)
    for name in REPORTS:
        response = await client.get(f"/analytics/reports/{name}", headers=admin)
        assert response.status_code == 200, (name, response.text)
        body = response.json()
        assert body["name"] == name and body["rows"], name
        assert body["chart"]["mark"] and body["chart"]["encoding"]
        assert set(body["columns"]) >= {e["field"] for e in body["chart"]["encoding"].values()}
    assert (await client.get("/analytics/reports/nope", headers=admin)).status_code == 404


async def test_report_figures_match_postgres(
    client: httpx.AsyncClient, stores: Stores, admin: dict[str, str]
) -> None:
    async with stores.pg.connection() as conn:
        cur = await conn.execute(
            "SELECT sum(total_minor) AS revenue, count(*) AS n FROM orders "
            "WHERE status <> 'cancelled'"
        )
        expected = await cur.fetchone()
    assert expected is not None
    body = (await client.get("/analytics/reports/revenue_by_day", headers=admin)).json()
    i = body["columns"].index("revenue")
    from decimal import Decimal

    assert sum(Decimal(r[i]) for r in body["rows"]) * 100 == expected["revenue"]
    aov = (await client.get("/analytics/reports/average_order_value", headers=admin)).json()
    assert sum(r[aov["columns"].index("orders")] for r in aov["rows"]) == expected["n"]


async def test_no_snapshot_yet_is_503(client: httpx.AsyncClient, stores: Stores) -> None:
    admin = await bearer(stores, "admin")
    response = await client.post("/analytics/query", headers=admin, json={"sql": "SELECT 1"})
    assert response.status_code == 503
    assert "Retry-After" in response.headers
