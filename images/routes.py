"""Product images: upload (multipart or presigned direct upload), list, reorder, delete.

The router is built by `build_router` with the app's dependencies (how to reach the
stores, who is an admin, the request transaction): this package does not import app/.
Writes run in the request transaction, whose connection is checked out only once the
upload is received and processed; blobs put by a transaction that then rolls back are
deleted again after the rollback (`ContentPuts.undo`).
"""

import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, status

from images import content, repository, service, uploads
from images.blobs import ImageBlobs, MultipartRejected, incoming_key
from images.context import ImageStores
from images.metrics import IMAGE_UPLOAD_BYTES
from images.problems import ContentTooLarge, UnsupportedMediaType
from images.processing.process import ProcessedImage
from images.receive import FILE_FIELD, SPOOL_MEMORY_BYTES, receive_form
from images.schemas import (
    DirectUploadComplete,
    DirectUploadIn,
    DirectUploadOut,
    ImageList,
    ImageOut,
    ImagePatch,
)
from kit.json_types import TEXT_PATTERN
from kit.problems import Conflict, InvalidField, NotFound, render_problem
from kit.transaction import Conn, RequestTransaction

StoresDependency = Callable[..., Awaitable[ImageStores]]
AdminDependency = Callable[..., Awaitable[object]]
TransactionDependency = Callable[..., AsyncIterator[RequestTransaction]]
ReadDependency = Callable[..., AsyncIterator[Conn]]

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing or invalid API key"},
    403: {"description": "not an admin key"},
    404: {"description": "no such product"},
    503: {"description": "the blob store is down; nothing was stored"},
}

_MULTIPART_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [FILE_FIELD],
                    "properties": {
                        FILE_FIELD: {"type": "string", "format": "binary"},
                        "alt_text": {
                            "type": "string",
                            "maxLength": 1000,
                            "pattern": TEXT_PATTERN,
                        },
                        "position": {"type": "integer", "minimum": 0, "maximum": 1_000_000},
                    },
                }
            }
        },
    }
}


def _position(raw: str | None) -> int | None:
    if raw is None or raw.strip() == "":
        return None
    try:
        value = int(raw)
    except ValueError as exc:
        raise InvalidField("position", "must be an integer") from exc
    if not 0 <= value <= 1_000_000:
        raise InvalidField("position", "must be between 0 and 1000000")
    return value


def _alt_text(raw: str | None) -> str:
    text = (raw or "").strip()
    if len(text) > 1000:
        raise InvalidField("alt_text", "at most 1000 characters")
    if "\x00" in text:  # Postgres text cannot hold it
        raise InvalidField("alt_text", "must not contain NUL characters")
    return text


def build_router(
    *,
    stores: StoresDependency,
    admin: AdminDependency,
    transaction: TransactionDependency,
    read_connection: ReadDependency,
) -> APIRouter:
    """The image routes on the app's dependencies. (No `from __future__ import
    annotations` in this module: FastAPI reads these closures' annotations at runtime.)"""
    router = APIRouter(tags=["images"])
    StoresDep = Annotated[ImageStores, Depends(stores)]
    AdminDep = Annotated[object, Depends(admin)]
    TransactionDep = Annotated[RequestTransaction, Depends(transaction, scope="function")]
    ReadDep = Annotated[Conn, Depends(read_connection, scope="function")]

    @router.post(
        "/products/{product_id}/images",
        response_model=ImageOut,
        status_code=status.HTTP_201_CREATED,
        summary="Upload a product image (multipart field `file`: JPEG, PNG or WebP)",
        description=(
            "The type is read from the bytes, never from the file name or Content-Type. "
            "The image is re-encoded without metadata (EXIF/GPS removed, orientation "
            "applied) and stored under its sha256; 200 and 800 px WebP renditions are made "
            "inline. Uploading the same image to the same product again answers 200 with "
            "the existing image. 413: too large; 415: not a JPEG/PNG/WebP; 422: empty, "
            "truncated, corrupt, or more pixels than allowed (decompression bomb), or a "
            "missing `file` field."
        ),
        responses={
            **_ERRORS,
            200: {"description": "this product already has this image", "model": ImageOut},
            413: {"description": "larger than the size limit"},
            415: {"description": "not a JPEG, PNG or WebP image (by its bytes)"},
            422: {"description": "empty, truncated, corrupt, too many pixels, or no `file`"},
        },
        openapi_extra=_MULTIPART_BODY,
    )
    async def upload_image(
        product_id: int,
        request: Request,
        response: Response,
        stores: StoresDep,
        _admin: AdminDep,
        tx: TransactionDep,
    ) -> ImageOut:
        settings = stores.settings
        # The product is checked in the transaction that stores the image, before any
        # put (a separate check first cost a pool checkout and three round trips).
        async with receive_form(request, max_bytes=settings.image_max_bytes) as form:
            if form.file is None:
                raise InvalidField(FILE_FIELD, "field required")
            if form.file_size == 0:
                raise InvalidField(FILE_FIELD, "the file is empty")
            position = _position(form.fields.get("position"))
            alt_text = _alt_text(form.fields.get("alt_text"))
            processed = await service.process_file(stores, form.file)
            timings = {"receive": form.receive_s, **processed.timings}
            received = form.file_size
        saved = await _store(stores, tx, product_id, processed, alt_text, position, timings)
        service.observe(timings)
        IMAGE_UPLOAD_BYTES.inc(received)
        if not saved.created:
            response.status_code = status.HTTP_200_OK
        return service.image_out(stores, saved.row)

    @router.get(
        "/products/{product_id}/images",
        response_model=ImageList,
        summary="A product's images, primary first, with a URL per rendition",
        responses={404: {"description": "no such product"}},
    )
    async def list_images(product_id: int, stores: StoresDep, conn: ReadDep) -> ImageList:
        await service.ensure_product(conn, product_id)
        rows = await repository.list_images(conn, product_id)
        return ImageList(items=[service.image_out(stores, row) for row in rows])

    # `:int` (digits only): `DELETE .../images/uploads` is then no image id but the
    # uploads resource, which has no DELETE: 405, not a 422 about image_id
    @router.delete(
        "/products/{product_id}/images/{image_id:int}",
        status_code=status.HTTP_204_NO_CONTENT,
        summary="Delete an image; its blobs go too when no other image uses them",
        responses={**_ERRORS, 404: {"description": "no such image on this product"}},
    )
    async def delete_image(
        product_id: int, image_id: int, stores: StoresDep, _admin: AdminDep, tx: TransactionDep
    ) -> Response:
        sha, version = await content.delete_image_row(await tx.connection(), product_id, image_id)
        if sha is None:
            raise NotFound(f"product {product_id} has no image {image_id}")
        tx.product_changed(product_id, version)
        tx.after_commit(lambda: service.release_blobs(stores, [sha]))
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.patch(
        "/products/{product_id}/images/{image_id:int}",
        response_model=ImageList,
        summary="Reorder: move an image to another place (0 = the primary image)",
        description=(
            "The other images keep their order; every image's `position` becomes its "
            "place (0..n-1). Answers the product's images in their new order. 422 names "
            "`position` when it is past the last image."
        ),
        responses={
            **_ERRORS,
            404: {"description": "no such image on this product"},
            422: {"description": "`position` is not a place in the product's images"},
        },
    )
    async def move_image(
        product_id: int,
        image_id: int,
        body: ImagePatch,
        stores: StoresDep,
        _admin: AdminDep,
        tx: TransactionDep,
    ) -> ImageList:
        try:
            moved = await content.move_image(
                await tx.connection(), product_id, image_id, body.position
            )
        except content.PositionOutOfRange as exc:
            raise InvalidField("position", str(exc)) from exc
        if moved is None:
            raise NotFound(f"product {product_id} has no image {image_id}")
        rows, version = moved
        tx.product_changed(product_id, version)
        return ImageList(items=[service.image_out(stores, row) for row in rows])

    @router.post(
        "/products/{product_id}/images/uploads",
        response_model=DirectUploadOut,
        status_code=status.HTTP_201_CREATED,
        summary="Start a direct upload: presigned PUT URL(s) straight to the blob store",
        description=(
            "For large files: PUT the bytes to `url` (or, with `parts` > 1, each part to "
            "its `part_urls` entry, keeping the ETags), then POST to `complete_url` (with "
            "the parts and ETags for a multipart upload). Nothing refers to the uploaded "
            "object until the completion call has verified it (size, type by its bytes, "
            "decode); a failed verification deletes it."
        ),
        responses=_ERRORS,
    )
    async def start_direct_upload(
        product_id: int,
        stores: StoresDep,
        _admin: AdminDep,
        tx: TransactionDep,
        body: DirectUploadIn | None = None,
    ) -> DirectUploadOut:
        settings = stores.settings
        body = body or DirectUploadIn()
        blobs = service.image_blobs(stores)
        expiry_s = settings.image_upload_expiry_s
        conn = await tx.connection()
        await service.ensure_product(conn, product_id)
        await blobs.ensure_bucket()
        upload_id = uploads.new_upload_id()
        key = incoming_key(str(upload_id))
        s3_upload_id = await blobs.start_multipart(key) if body.parts > 1 else None
        if s3_upload_id:
            tx.after_rollback(lambda: blobs.abort_multipart(key, s3_upload_id))
        try:
            upload = await uploads.create_upload(
                conn,
                product_id,
                upload_id,
                alt_text=body.alt_text.strip(),
                position=body.position,
                expiry_s=expiry_s,
                s3_upload_id=s3_upload_id,
            )
        except repository.ProductNotFound as exc:
            raise NotFound(f"product {product_id} does not exist") from exc
        return DirectUploadOut(
            upload_id=upload.id,
            url=None if s3_upload_id else blobs.presigned_put(key, expiry_s=expiry_s),
            part_urls=[
                blobs.presigned_part(key, s3_upload_id, n, expiry_s=expiry_s)
                for n in range(1, body.parts + 1)
            ]
            if s3_upload_id
            else [],
            max_bytes=settings.image_direct_max_bytes,
            expires_at=upload.expires_at,
            complete_url=f"/products/{product_id}/images/uploads/{upload.id}/complete",
        )

    @router.post(
        "/products/{product_id}/images/uploads/{upload_id}/complete",
        response_model=ImageOut,
        status_code=status.HTTP_201_CREATED,
        summary="Finish a direct upload: verify the object, then store it as an image",
        responses={
            **_ERRORS,
            404: {"description": "no such live upload for this product"},
            409: {"description": "nothing was uploaded to the URL yet"},
            413: {"description": "larger than the direct-upload limit (object deleted)"},
            415: {"description": "not a JPEG, PNG or WebP image (object deleted)"},
            422: {"description": "empty, truncated, corrupt or too many pixels (object deleted)"},
        },
    )
    async def complete_direct_upload(
        product_id: int,
        upload_id: uuid.UUID,
        request: Request,
        response: Response,
        stores: StoresDep,
        _admin: AdminDep,
        tx: TransactionDep,
        body: DirectUploadComplete | None = None,
    ) -> Response | ImageOut:
        blobs = service.image_blobs(stores)
        # The upload row stays locked until the commit: a second completion call waits
        # and then finds it gone. If the blob store is down, the rollback keeps the
        # upload so the client can call again. The image is stored on this same
        # connection: a second checkout while holding this one could starve the pool.
        conn = await tx.connection()
        upload = await uploads.lock_upload(conn, product_id, upload_id)
        if upload is None:
            raise NotFound(f"no live upload {upload_id} for product {product_id}")
        if upload.s3_upload_id:
            await _finish_multipart(blobs, upload, body or DirectUploadComplete())
        incoming = await blobs.stat(upload.object_key)
        if incoming is None:
            raise Conflict("nothing has been uploaded to the presigned URL yet")
        # Committed: no row refers to the incoming object any more. If this delete
        # fails, the GC job collects it (it has no live upload row).
        tx.after_commit(lambda: service.discard(blobs, upload.object_key))
        try:
            processed, timings = await _verify(stores, upload.object_key, incoming.size)
        except (ContentTooLarge, InvalidField, UnsupportedMediaType) as verdict:
            # verification failed: forget the upload and its object for good (committed,
            # so the refusal is answered, not raised: raising would roll back)
            await uploads.delete_upload(conn, upload.id)
            return render_problem(request, verdict)
        saved = await _store(
            stores, tx, product_id, processed, upload.alt_text, upload.position, timings
        )
        await uploads.delete_upload(conn, upload.id)
        service.observe(timings)
        IMAGE_UPLOAD_BYTES.inc(incoming.size)
        if not saved.created:
            response.status_code = status.HTTP_200_OK
        return service.image_out(stores, saved.row)

    return router


async def _store(
    stores: ImageStores,
    tx: RequestTransaction,
    product_id: int,
    processed: ProcessedImage,
    alt_text: str,
    position: int | None,
    timings: dict[str, float],
) -> repository.SavedImage:
    """Store the processed image in the request transaction; its blobs are deleted again
    if the transaction rolls back, and the product's cached JSON after it commits."""
    puts = content.ContentPuts()
    tx.after_rollback(lambda: puts.undo(stores.pg, service.image_blobs(stores)))
    saved = await service.store_processed(
        stores,
        await tx.connection(),
        product_id,
        processed,
        puts=puts,
        alt_text=alt_text,
        position=position,
        timings=timings,
    )
    tx.product_changed(product_id, saved.product_version)
    return saved


async def _finish_multipart(
    blobs: ImageBlobs, upload: uploads.Upload, body: DirectUploadComplete
) -> None:
    """Assemble the parts. A second call after a success (the first one's transaction
    rolled back later) finds the upload gone and the object in place: that is fine."""
    assert upload.s3_upload_id is not None
    if not body.parts:
        raise InvalidField("parts", "a multipart upload needs its parts and their ETags")
    try:
        await blobs.complete_multipart(
            upload.object_key,
            upload.s3_upload_id,
            [(p.part_number, p.etag.strip('"')) for p in body.parts],
        )
    except MultipartRejected as exc:
        if exc.code == "NoSuchUpload" and await blobs.stat(upload.object_key) is not None:
            return
        raise InvalidField("parts", f"the blob store refused the parts: {exc}") from exc


async def _verify(
    stores: ImageStores, key: str, size: int
) -> tuple[ProcessedImage, dict[str, float]]:
    """Download (bounded) and process the incoming object; raise the 4xx problem if unfit."""
    limit = stores.settings.image_direct_max_bytes
    if size > limit:
        raise ContentTooLarge(f"the image is larger than {limit} bytes")
    if size == 0:
        raise InvalidField(FILE_FIELD, "the file is empty")
    started = time.perf_counter()
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES) as spool:
        copied = await service.image_blobs(stores).download_to(key, spool, limit=limit)
        if copied > limit:  # replaced by a larger object since the stat
            raise ContentTooLarge(f"the image is larger than {limit} bytes")
        timings = {"receive": time.perf_counter() - started}
        processed = await service.process_file(stores, spool, direct=True)
    return processed, {**timings, **processed.timings}
