"""Prometheus metrics of the image domain (served by the process's /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

IMAGE_UPLOAD_STAGE = Histogram(
    "polyshop_image_upload_stage_seconds",
    "Time per image upload stage: receive, decode, encode, resize, store (put: its blob puts)",
    ["stage"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
IMAGE_GC_DELETED = Counter("polyshop_image_gc_deleted_total", "Orphan image blobs deleted by GC")
IMAGE_UPLOAD_BYTES = Counter(
    "polyshop_image_upload_bytes_total",
    "Bytes of accepted image uploads as received (multipart and direct), before re-encoding",
)
