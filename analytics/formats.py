"""Serialise a query result as JSON, CSV, Parquet or Arrow IPC, chunk by chunk."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import io
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

JSON = "application/json"
CSV = "text/csv"
PARQUET = "application/vnd.apache.parquet"
ARROW = "application/vnd.apache.arrow.stream"

ALIASES = {
    "application/json": JSON,
    "text/csv": CSV,
    "application/vnd.apache.parquet": PARQUET,
    "application/parquet": PARQUET,
    "application/x-parquet": PARQUET,
    "application/vnd.apache.arrow.stream": ARROW,
    "application/vnd.apache.arrow.file": ARROW,
}

CHUNK_ROWS = 1000


def negotiate(accept: str | None) -> str | None:
    """The format named first in Accept (q-values ignored); JSON for */* or none."""
    if not accept:
        return JSON
    for part in accept.split(","):
        media = part.split(";")[0].strip().lower()
        if media in ALIASES:
            return ALIASES[media]
        if media in ("*/*", "application/*"):
            return JSON
    return None


def json_value(value: Any) -> Any:
    """Decimals as strings (exact), times in ISO 8601, bytes in base64."""
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def table_rows(table: pa.Table) -> list[list[Any]]:
    names = table.column_names
    return [[row[n] for n in names] for row in table.to_pylist()]


def json_chunks(table: pa.Table, truncated: bool) -> Iterator[bytes]:
    yield b'{"columns":' + json.dumps(table.column_names).encode() + b',"rows":['
    first = True
    for batch in table.to_batches(max_chunksize=CHUNK_ROWS):
        rows = table_rows(pa.Table.from_batches([batch]))
        if not rows:
            continue
        body = ",".join(json.dumps(r, default=json_value, allow_nan=False) for r in rows)
        yield (b"" if first else b",") + body.encode()
        first = False
    yield b'],"truncated":' + (b"true" if truncated else b"false") + b"}"


def _drain(buf: io.BytesIO) -> bytes:
    data = buf.getvalue()
    buf.seek(0)
    buf.truncate()
    return data


def csv_chunks(table: pa.Table) -> Iterator[bytes]:
    buf = io.BytesIO()
    with pacsv.CSVWriter(buf, table.schema) as writer:
        for batch in table.to_batches(max_chunksize=CHUNK_ROWS):
            writer.write_batch(batch)
            yield _drain(buf)
    yield _drain(buf)


def arrow_chunks(table: pa.Table) -> Iterator[bytes]:
    buf = io.BytesIO()
    with pa.ipc.new_stream(buf, table.schema) as writer:
        for batch in table.to_batches(max_chunksize=CHUNK_ROWS):
            writer.write_batch(batch)
            yield _drain(buf)
    yield _drain(buf)


def parquet_chunks(table: pa.Table) -> Iterator[bytes]:
    buf = io.BytesIO()
    with pq.ParquetWriter(buf, table.schema) as writer:
        for batch in table.to_batches(max_chunksize=CHUNK_ROWS * 10):
            writer.write_batch(batch)
            yield _drain(buf)
    yield _drain(buf)


def chunks(table: pa.Table, media_type: str, truncated: bool) -> Iterator[bytes]:
    if media_type == CSV:
        return csv_chunks(table)
    if media_type == ARROW:
        return arrow_chunks(table)
    if media_type == PARQUET:
        return parquet_chunks(table)
    return json_chunks(table, truncated)
