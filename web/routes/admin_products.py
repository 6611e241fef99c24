"""Admin: products list and edit (optimistic concurrency shown to the person), images.

The edit form carries the version it was rendered from (the product's ETag). Saving
writes with that version as the precondition; when someone else saved in between, the
form comes back with the person's values and two ways on: reload (take theirs) or
overwrite (save mine over theirs, now against the current version).
"""

from __future__ import annotations

import asyncio
import tempfile

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.datastructures import FormData, UploadFile

from images import content, repository
from images.processing.process import ImageRejected, process
from images.service import image_blobs
from storage import products
from storage.postgres import read_connection
from web import forms, media
from web.backend import invalidate
from web.context import Page, PageDep
from web.errors import PageRoute

router = APIRouter(route_class=PageRoute)

PAGE = 50


@router.get("/staff/products")
async def product_list(page: PageDep, after: int = Query(0, ge=0, lt=2**63)) -> Response:
    page.require("admin")
    async with read_connection(page.stores.pg) as conn:
        rows = await products.list_page(
            conn, after_id=after or None, limit=PAGE + 1, where=products.ProductFilter()
        )
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    return page.render(
        "staff/products.html",
        {"products": rows, "next_after": rows[-1].id if more and rows else None},
    )


async def _load(page: Page, product_id: int) -> products.Product:
    if not 1 <= product_id < 2**63:
        raise HTTPException(404, "no such product")
    async with read_connection(page.stores.pg) as conn:
        product = await products.get(conn, product_id)
    if product is None:
        raise HTTPException(404, "no such product")
    return product


async def _edit_page(
    page: Page,
    product: products.Product,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    conflict: products.Product | None = None,
    status: int = 200,
    moved: tuple[int, str] | None = None,
) -> Response:
    async with read_connection(page.stores.pg) as conn:
        rows = await repository.list_images(conn, product.id)
    shown = values or {
        "sku": product.sku,
        "name": product.name,
        "brand": product.brand,
        "category": product.category,
        "description": product.description,
        "price": f"{product.price_minor / 100:.2f}",
        "stock": str(product.stock),
        "status": product.status,
    }
    return page.render(
        "staff/product_edit.html",
        {
            "product": product,
            "v": shown,
            "errors": errors or {},
            "conflict": conflict,
            "version": conflict.version if conflict else product.version,
            "pictures": [media.picture(r) for r in rows],
            "statuses": forms.STATUSES,
            "moved": moved[0] if moved else None,
            "moved_dir": moved[1] if moved else None,
        },
        status=status,
    )


@router.get("/staff/products/{product_id}")
async def edit_form(
    product_id: int,
    page: PageDep,
    moved: int = Query(0, ge=0, lt=2**63),
    dir: str = Query("", max_length=4),
) -> Response:
    page.require("admin")
    # after a move the same button of the moved image has the focus (keyboard use)
    return await _edit_page(
        page, await _load(page, product_id), moved=(moved, dir) if moved else None
    )


@router.post("/staff/products/{product_id}")
async def save(product_id: int, page: PageDep) -> Response:
    form = await page.form()
    page.require("admin")
    product = await _load(page, product_id)
    changes, errors = forms.product_changes(form)
    typed = {
        k: str(form.get(k) or "")
        for k in ("sku", "name", "brand", "category", "description", "price", "stock", "status")
    }
    version = str(form.get("version") or "")
    if not version.isdigit():
        errors["version"] = "reload the page"
    if errors:
        return await _edit_page(page, product, values=typed, errors=errors, status=422)
    try:
        async with page.stores.pg.connection() as conn, conn.transaction():
            saved = await products.update(conn, product_id, changes, expected_version=int(version))
    except products.VersionMismatch:
        current = await _load(page, product_id)
        return await _edit_page(page, product, values=typed, conflict=current, status=409)
    except products.DuplicateSku:
        errors["sku"] = "another product already has this SKU"
        return await _edit_page(page, product, values=typed, errors=errors, status=409)
    await invalidate(page.request, [(saved.id, saved.version)])
    return RedirectResponse(f"/staff/products/{product_id}?saved={saved.version}", 303)


@router.post("/staff/products/{product_id}/images")
async def upload(product_id: int, page: PageDep) -> Response:
    """Multipart `file` (the page sends it with XHR for its progress bar): JSON answer."""
    form = await page.form()
    try:
        return await _upload(page, product_id, form)
    finally:
        await form.close()  # the spooled file of the multipart body


async def _upload(page: Page, product_id: int, form: FormData) -> Response:
    page.require("admin")
    file = form.get("file")
    settings = page.stores.settings
    if not isinstance(file, UploadFile) or not file.size:
        return JSONResponse({"errors": [{"field": "file", "message": "choose an image"}]}, 422)
    if file.size > settings.image_max_bytes:
        return JSONResponse(
            {"errors": [{"field": "file", "message": "the image is too large"}]}, 413
        )
    with tempfile.SpooledTemporaryFile(max_size=1 << 20) as spool:
        spool.write(await file.read())
        spool.seek(0)
        try:
            processed = await asyncio.to_thread(
                process,
                spool,
                max_pixels=settings.image_max_pixels,
                rendition_widths=settings.image_rendition_widths,
            )
        except ImageRejected as exc:
            return JSONResponse({"errors": [{"field": "file", "message": str(exc)}]}, 422)
    alt = str(form.get("alt_text") or "").strip()[:1000].replace("\x00", "")
    try:
        saved = await content.save_image(
            page.stores.pg,
            image_blobs(page.stores),
            product_id,
            processed,
            settings.image_rendition_widths,
            alt_text=alt,
        )
    except repository.ProductNotFound as exc:
        raise HTTPException(404, "no such product") from exc
    if saved.product_version is not None:
        await invalidate(page.request, [(product_id, saved.product_version)])
    return JSONResponse({"image": media.picture(saved.row)}, 201 if saved.created else 200)


@router.post("/staff/products/{product_id}/images/{image_id}/delete")
async def delete_image(product_id: int, image_id: int, page: PageDep) -> Response:
    await page.form()
    page.require("admin")
    async with page.stores.pg.connection() as conn, conn.transaction():
        sha, version = await content.delete_image_row(conn, product_id, image_id)
    if sha is None:
        raise HTTPException(404, "no such image")
    if version is not None:
        await invalidate(page.request, [(product_id, version)])
    await content.release_blobs(page.stores.pg, image_blobs(page.stores), [sha])
    return RedirectResponse(f"/staff/products/{product_id}", 303)


@router.post("/staff/products/{product_id}/images/{image_id}/move")
async def move_image(product_id: int, image_id: int, page: PageDep) -> Response:
    """The move up/down buttons: the image goes to place `position` (0 = primary)."""
    form = await page.form()
    page.require("admin")
    product = await _load(page, product_id)
    raw = str(form.get("position") or "").strip()
    if not raw.isdigit() or int(raw) > 1_000_000:
        return await _edit_page(
            page, product, errors={"position": "a place from 0 (the primary image)"}, status=422
        )
    try:
        async with page.stores.pg.connection() as conn, conn.transaction():
            moved = await content.move_image(conn, product_id, image_id, int(raw))
    except content.PositionOutOfRange as exc:
        return await _edit_page(page, product, errors={"position": str(exc)}, status=422)
    if moved is None:
        raise HTTPException(404, "no such image")
    await invalidate(page.request, [(product_id, moved[1])])
    direction = str(form.get("dir") or "")
    direction = direction if direction in ("up", "down") else ""
    return RedirectResponse(f"/staff/products/{product_id}?moved={image_id}&dir={direction}", 303)
