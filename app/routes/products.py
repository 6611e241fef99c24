"""Catalog API: products CRUD with optimistic concurrency and a cached single-product read.

Concurrency: every response carries `ETag: "<version>"`. PATCH and DELETE honour
`If-Match`; a mismatch, or losing the race to a concurrent writer, answers 412. Without
`If-Match` the last writer wins (each write still gets its own version and event).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Header, Query, Request, Response
from fastapi import Path as PathParam
from pydantic import WithJsonSchema

from app.auth import AdminDep
from app.deps import StoresDep
from app.problems import Conflict, InvalidField, NotFound, PreconditionFailed
from app.product_list_cache import KIND as LIST_KIND
from app.product_list_cache import page_key
from app.product_prefetch import prefetched_of
from app.schemas.products import (
    PRICE_PATTERN,
    ProductIn,
    ProductOut,
    ProductPage,
    ProductPatch,
    Status,
)
from app.stores import Stores
from app.transaction import TransactionDep, postgres_errors
from images import service as product_images
from storage import products
from storage.cursor import InvalidCursor, decode_cursor, encode_cursor
from storage.errors import StoreUnavailable
from storage.money import to_minor
from storage.postgres import read_connection
from storage.product_cache import Entry, Prefetched

log = structlog.get_logger()

router = APIRouter(prefix="/products", tags=["products"])
bench_router = APIRouter(include_in_schema=False)

MAX_PAGE = 200
_CURSOR_KIND = "products"
BIGINT_MAX = 2**63 - 1

ProductId = Annotated[int, PathParam(ge=1, le=BIGINT_MAX, description="product id")]
# One entity tag of ours (strong or weak) or `*`. A malformed value is refused with 422
# naming the header; a well-formed tag of another version is a 412. Documented as a
# string (no null: an absent header is "no precondition") that is `*` or matches the
# tag pattern; `*` stands apart because schemathesis' coverage phase finds no value
# for the combined pattern and seeds the header with an invalid one.
ENTITY_TAG_PATTERN = r'^(W/)?"[0-9]{1,19}"$'
_ENTITY_TAG = re.compile(ENTITY_TAG_PATTERN)
IfMatch = Annotated[
    str | None,
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "const": "*"},
                {"type": "string", "pattern": ENTITY_TAG_PATTERN},
            ]
        }
    ),
    Header(description='`"<version>"` from the ETag, or `*`; 412 if the product has moved on'),
]

_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "no such product (or deleted)"}}
_PRECONDITION: dict[int | str, dict[str, Any]] = {
    412: {"description": "If-Match does not match the current version"}
}


@contextlib.contextmanager
def _write_errors() -> Iterator[None]:
    """The 4xx answering a product write the data does not allow."""
    try:
        yield
    except products.DuplicateSku as exc:
        raise Conflict(f"sku {exc.sku!r} is already used by another product", field="sku") from exc
    except products.ProductNotFound as exc:
        raise NotFound(f"product {exc.product_id} not found") from exc
    except products.VersionMismatch as exc:
        raise PreconditionFailed(
            f"product {exc.product_id} is at version {exc.current}",
            current_etag=_etag(exc.current),
        ) from exc


def _etag(version: int) -> str:
    return f'"{version}"'


def _body(product: products.Product, primary_image: dict[str, Any] | None = None) -> bytes:
    return ProductOut.of(product, primary_image).model_dump_json().encode()


def _respond(entry: Entry, status: int = 200, **headers: str) -> Response:
    return Response(
        entry.body,
        status_code=status,
        media_type="application/json",
        headers={"ETag": _etag(entry.version), **headers},
    )


def _expected_version(if_match: str | None) -> int | None:
    """The version named by If-Match (None: no precondition). `*` only needs the product
    to exist. A tag beyond any version (> bigint) is -1, which matches none: 412."""
    if if_match is None:
        return None
    value = if_match.strip()
    if value == "*":
        return None
    if not _ENTITY_TAG.match(value):
        raise InvalidField("If-Match", 'must be `*` or one entity tag such as `"3"`', "header")
    version = int(value.removeprefix("W/").strip('"'))
    return version if version <= BIGINT_MAX else -1


def _check_currency(currency: str, stores: Stores) -> None:
    """Only the shop's currencies (settings.currencies: all with 2 decimal places)."""
    allowed = stores.settings.currencies
    if currency not in allowed:
        raise InvalidField("currency", f"not one of the shop's currencies ({', '.join(allowed)})")


@router.post(
    "",
    status_code=201,
    response_model=ProductOut,
    summary="Create a product (admin)",
    responses={409: {"description": "a live product already has this sku"}},
)
async def create_product(
    body: ProductIn, _admin: AdminDep, stores: StoresDep, tx: TransactionDep
) -> Response:
    row = body.to_row(default_currency=stores.settings.currencies[0])
    _check_currency(row["currency"], stores)
    with _write_errors():
        product = await products.create(await tx.connection(), row)
    # No cache invalidation needed: absent products are never cached.
    return _respond(Entry(product.version, _body(product)), 201, Location=f"/products/{product.id}")


@router.get(
    "/{product_id}",
    response_model=ProductOut,
    summary="One product (public, cached)",
    responses={**_NOT_FOUND, 304: {"description": "If-None-Match matches"}},
)
async def get_product(
    request: Request,
    product_id: ProductId,
    stores: StoresDep,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    # Served by the thin route (app/routes/product_read.py) for every well-formed id;
    # this route documents the operation and answers the ids it leaves to FastAPI.
    entry = await product_entry(stores, product_id, prefetched_of(request.scope))
    etag = _etag(entry.version)
    if names_tag(if_none_match, etag):
        return Response(status_code=304, headers={"ETag": etag})
    return _respond(entry)


async def product_entry(
    stores: Stores, product_id: int, prefetched: Prefetched | None = None
) -> Entry:
    """The product's response (the cache, or Postgres on a miss); NotFound if none."""

    async def load() -> Entry | None:
        with postgres_errors():
            async with read_connection(stores.pg) as conn:
                product = await products.get(conn, product_id)
                if product is None:
                    return None
                image = await product_images.primary_image(stores, conn, product_id)
        return Entry(product.version, _body(product, image))

    if stores.settings.cache_enabled:
        entry = await stores.product_cache.get_or_load(product_id, load, prefetched)
    else:
        entry = await load()
    if entry is None:
        raise NotFound(f"product {product_id} not found")
    return entry


def names_tag(if_none_match: str | None, etag: str) -> bool:
    """True if an If-None-Match value lists this entity tag."""
    return if_none_match is not None and etag in {t.strip() for t in if_none_match.split(",")}


@router.patch(
    "/{product_id}",
    response_model=ProductOut,
    summary="Change some fields of a product (admin)",
    description="Honours `If-Match`; without it the last writer wins.",
    responses={**_NOT_FOUND, **_PRECONDITION, 409: {"description": "sku taken"}},
)
async def update_product(
    product_id: ProductId,
    body: ProductPatch,
    _admin: AdminDep,
    stores: StoresDep,
    tx: TransactionDep,
    if_match: IfMatch = None,
) -> Response:
    changes = body.to_changes()
    if not changes:
        raise InvalidField("body", "no field to change")
    if "currency" in changes:
        _check_currency(changes["currency"], stores)
    expected = _expected_version(if_match)
    conn = await tx.connection()
    with _write_errors():
        product = await products.update(conn, product_id, changes, expected_version=expected)
    image = await product_images.primary_image(stores, conn, product_id)
    tx.product_changed(product.id, product.version)
    return _respond(Entry(product.version, _body(product, image)))


@router.delete(
    "/{product_id}",
    status_code=204,
    summary="Delete a product (admin; soft delete)",
    responses={**_NOT_FOUND, **_PRECONDITION},
)
async def delete_product(
    product_id: ProductId,
    _admin: AdminDep,
    stores: StoresDep,
    tx: TransactionDep,
    if_match: IfMatch = None,
) -> Response:
    expected = _expected_version(if_match)
    conn = await tx.connection()
    with _write_errors():
        # The product row is locked first (images lock it too): no deadlock.
        version = await products.delete(conn, product_id, expected_version=expected)
    released = await product_images.delete_product_images(conn, product_id)
    tx.product_changed(product_id, version)
    if released:

        async def release() -> None:
            # Best effort: blobs still referenced elsewhere stay; the GC job is the backstop.
            with contextlib.suppress(StoreUnavailable):
                await product_images.release_blobs(stores, released)

        tx.after_commit(release)
    return Response(status_code=204)


@router.get(
    "",
    response_model=ProductPage,
    summary="List products (public; keyset pagination by id)",
)
async def list_products(
    stores: StoresDep,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    category: Annotated[
        str | None, Query(max_length=500, description="path prefix, e.g. `Furniture/Chairs`")
    ] = None,
    brand: Annotated[str | None, Query(max_length=300)] = None,
    min_price: Annotated[str | None, Query(pattern=PRICE_PATTERN)] = None,
    max_price: Annotated[str | None, Query(pattern=PRICE_PATTERN)] = None,
    status: Status | None = None,
) -> Response:
    """Cached in Redis under the catalog generation (app/product_list_cache.py), which
    every product write moves before it answers."""
    where = products.ProductFilter(
        category=category,
        brand=brand,
        min_price_minor=None if min_price is None else to_minor(min_price),
        max_price_minor=None if max_price is None else to_minor(max_price),
        status=status,
    )
    after_id = _decode_cursor(cursor)

    async def load() -> bytes:
        with postgres_errors():
            async with read_connection(stores.pg) as conn:
                page = await products.list_page(
                    conn, after_id=after_id, limit=limit + 1, where=where
                )
                more = len(page) > limit
                page = page[:limit]
                images = await product_images.primary_images(stores, conn, [p.id for p in page])
        body = ProductPage(
            items=[ProductOut.of(p, images.get(p.id)) for p in page],
            next_cursor=_encode_cursor(page[-1].id) if more else None,
        )
        return body.model_dump_json().encode()

    try:
        # the data generation (restores, failovers), re-read every few seconds
        generation = await stores.product_cache.refresh_generation()
    except Exception:  # Postgres cannot be read now: the load answers (or fails) alone
        log.warning("product_list.generation_unreadable", exc_info=True)
        return Response(await load(), media_type="application/json")
    digest = page_key(generation, request.scope["query_string"])
    body = await stores.product_list_cache.get_or_load(LIST_KIND, digest, load)
    return Response(body, media_type="application/json")


def _encode_cursor(last_id: int) -> str:
    return encode_cursor(_CURSOR_KIND, [last_id])


def _decode_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    try:
        [after] = decode_cursor(cursor, _CURSOR_KIND, 1)
    except InvalidCursor:
        after = None
    if isinstance(after, int) and 0 <= after <= BIGINT_MAX:
        return after
    raise InvalidField("cursor", "not a cursor we issued", "query")


@bench_router.get("/_bench/bare/{product_id}")
async def bench_bare(product_id: ProductId, stores: StoresDep, request: Request) -> Response:
    """Benchmark baseline: the same bytes as GET /products/{id}, from process memory.
    Exists only with `bench_routes=true`."""
    if not stores.settings.bench_routes:
        raise NotFound()
    memo: dict[int, Entry] = request.app.state.__dict__.setdefault("bench_bare", {})
    entry = memo.get(product_id)
    if entry is None:
        async with stores.pg.connection() as conn:
            product = await products.get(conn, product_id)
        if product is None:
            raise NotFound(f"product {product_id} not found")
        entry = memo[product_id] = Entry(product.version, _body(product))
    return _respond(entry)
