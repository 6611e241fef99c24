"""Helpers of the search tests: product rows written with direct SQL + their outbox event
(as the products API does), draining the "search" consumer, and comparing the index with
Postgres. Also a TCP proxy that can cut the connection to the engine."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from app.stores import Stores
from search.consumer import SearchIndexConsumer
from search.engine import SearchEngine
from search.index_admin import alias_name
from storage import outbox

_sku = itertools.count(1)

ENGINES = ("opensearch", "elasticsearch")
# `pytestmark = ON_EACH_ENGINE`: every test of the module runs once per engine (the
# `settings` fixture points the app, the stores and the index at that engine's node).
ON_EACH_ENGINE = pytest.mark.parametrize("search_engine", ENGINES, indirect=True)


async def insert_product(
    conn: AsyncConnection[dict[str, Any]], *, emit: bool = True, **fields: Any
) -> int:
    """Insert a product and its product.upserted event in ONE transaction; its id.
    `emit=False` simulates a lost event."""
    values: dict[str, Any] = {
        "sku": f"T-{next(_sku):06d}",
        "name": "Thing",
        "description": "",
        "brand": "Acme",
        "category": "Misc",
        "price_minor": 1000,
        "stock": 1,
        "attributes": {},
        "status": "active",
        "rating": None,
    }
    values.update(fields)
    values["attributes"] = Jsonb(values["attributes"])
    cols = ", ".join(values)
    marks = ", ".join(f"%({k})s" for k in values)
    async with conn.transaction():
        cur = await conn.execute(
            f"INSERT INTO products ({cols}) VALUES ({marks}) RETURNING id, version", values
        )
        row = await cur.fetchone()
        assert row is not None
        if emit:
            await outbox.emit(
                conn,
                aggregate="product",
                aggregate_id=row["id"],
                event_type="product.upserted",
                version=row["version"],
            )
    return int(row["id"])


async def update_product(
    conn: AsyncConnection[dict[str, Any]], product_id: int, *, emit: bool = True, **fields: Any
) -> int:
    """Change a product (version + 1) and emit product.upserted; the new version."""
    if "attributes" in fields:
        fields["attributes"] = Jsonb(fields["attributes"])
    sets = "".join(f"{k} = %({k})s, " for k in fields)
    async with conn.transaction():
        cur = await conn.execute(
            f"UPDATE products SET {sets}version = version + 1, updated_at = now()"
            " WHERE id = %(id)s RETURNING version",
            {**fields, "id": product_id},
        )
        row = await cur.fetchone()
        assert row is not None
        if emit:
            await outbox.emit(
                conn,
                aggregate="product",
                aggregate_id=product_id,
                event_type="product.upserted",
                version=row["version"],
            )
    return int(row["version"])


async def delete_product(conn: AsyncConnection[dict[str, Any]], product_id: int) -> int:
    """Soft-delete (version + 1) and emit product.deleted; the new version."""
    async with conn.transaction():
        cur = await conn.execute(
            "UPDATE products SET deleted_at = now(), updated_at = now(), version = version + 1"
            " WHERE id = %s RETURNING version",
            (product_id,),
        )
        row = await cur.fetchone()
        assert row is not None
        await outbox.emit(
            conn,
            aggregate="product",
            aggregate_id=product_id,
            event_type="product.deleted",
            version=row["version"],
        )
    return int(row["version"])


def consumer_for(stores: Stores, engine: SearchEngine | None = None) -> SearchIndexConsumer:
    """The consumer as the worker builds it: it bumps the search cache's generation once a
    batch is visible (so a test's next search sees the batch, cached or not)."""
    return SearchIndexConsumer(
        stores.pg,
        engine or stores.search,
        stores.settings.search_index_prefix,
        on_visible=stores.search_cache.bump,
    )


async def drain(stores: Stores, consumer: SearchIndexConsumer, batch: int = 200) -> int:
    """Claim, apply and ack the consumer's due events until none is left; how many."""
    total = 0
    while True:
        async with stores.pg.connection() as conn, conn.transaction():
            events = await outbox.claim(conn, consumer.name, batch)
            if not events:
                return total
            await consumer.apply(events)
            await outbox.ack(conn, consumer.name, [e.id for e in events])
            total += len(events)


async def pending(stores: Stores, consumer: str = "search") -> int:
    async with stores.pg.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) AS n FROM outbox_pending WHERE consumer = %s", (consumer,)
        )
        row = await cur.fetchone()
    assert row is not None
    return int(row["n"])


async def pg_versions(stores: Stores) -> dict[int, int]:
    """id -> version of every searchable product in Postgres."""
    async with stores.pg.connection() as conn:
        cur = await conn.execute(
            "SELECT id, version FROM products WHERE deleted_at IS NULL AND status = 'active'"
        )
        return {int(r["id"]): int(r["version"]) for r in await cur.fetchall()}


async def index_versions(stores: Stores) -> dict[int, int]:
    """id -> _version of every document behind the alias (after a refresh)."""
    index = alias_name(stores.settings.search_index_prefix)
    await stores.search.refresh(index)
    found: dict[int, int] = {}
    after: list[Any] | None = None
    while True:
        body: dict[str, Any] = {
            "query": {"match_all": {}},
            "sort": [{"id": "asc"}],
            "_source": False,
            "version": True,
            "size": 1000,
        }
        if after:
            body["search_after"] = after
        hits = (await stores.search.search(index, body))["hits"]["hits"]
        found.update({int(h["_id"]): int(h["_version"]) for h in hits})
        if len(hits) < 1000:
            return found
        after = hits[-1]["sort"]


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target; `cut()` refuses and drops every connection
    (the engine looks down to clients using the proxy), `restore()` serves again."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for w in list(self._writers):
            w.close()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def restore(self) -> None:
        await self.start()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        t1 = asyncio.create_task(self._pipe(reader, up_writer))
        t2 = asyncio.create_task(self._pipe(up_reader, writer))
        self._tasks.update((t1, t2))
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(t1, t2, return_exceptions=True)
        self._tasks.difference_update((t1, t2))
        self._writers.difference_update((writer, up_writer))

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


@contextlib.asynccontextmanager
async def proxy_to(url: str) -> AsyncIterator[TcpProxy]:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 9200)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.cut()
