"""The product-image domain: routes (routes.py, built by app/ with its dependencies),
schemas, the row queries (repository.py), the blob/row lock protocol (content.py),
direct uploads (uploads.py), deferred renditions and orphan GC with their worker tasks
(renditions.py, gc.py), the blob store's side (blobs.py), and in processing/ the pure
image code: sniffing, JPEG segment handling, decode and re-encode (no I/O). See
docs/images.md."""
