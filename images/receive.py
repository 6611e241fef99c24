"""Receive a multipart image upload from the request stream with bounded memory.

FastAPI's `UploadFile` would have python-multipart spool the *whole* body before the
endpoint runs, so a size limit could only be checked afterwards. Here the request
stream is fed to python-multipart's streaming parser chunk by chunk: the `file` part
goes to a spooled temporary file (memory up to SPOOL_MEMORY_BYTES, then disk) and the
upload is refused with 413 the moment it passes the limit, without reading the rest.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import IO

from fastapi import Request
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect

from images.problems import ContentTooLarge, UnsupportedMediaType
from kit.problems import InvalidField, Problem

FILE_FIELD = "file"
TEXT_FIELDS = ("alt_text", "position")
MAX_TEXT_FIELD_BYTES = 4096
# Headers, boundaries and the small text fields on top of the file itself.
FORM_OVERHEAD_BYTES = 64 * 1024
SPOOL_MEMORY_BYTES = 1024 * 1024


@dataclass
class ReceivedForm:
    file: IO[bytes] | None = None
    file_size: int = 0
    fields: dict[str, str] = field(default_factory=dict)
    receive_s: float = 0.0


class _Collector:
    """python-multipart callbacks: route each part to the file or a small text buffer."""

    def __init__(self, form: ReceivedForm, max_bytes: int) -> None:
        self.form = form
        self.max_bytes = max_bytes
        self.header_field = bytearray()
        self.header_value = bytearray()
        self.name: str | None = None
        self.target: str | None = None
        self.text = bytearray()

    def on_part_begin(self) -> None:
        self.name = None
        self.target = None

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        if bytes(self.header_field).lower() == b"content-disposition":
            _, options = parse_options_header(bytes(self.header_value))
            raw = options.get(b"name")
            self.name = raw.decode("utf-8", "replace") if raw is not None else None
        self.header_field.clear()
        self.header_value.clear()

    def on_headers_finished(self) -> None:
        # The part's own Content-Type is deliberately ignored: the bytes decide.
        if self.name == FILE_FIELD:
            if self.form.file is not None:
                raise InvalidField(FILE_FIELD, "send exactly one file")
            # closed by receive_form when the request is done with it
            self.form.file = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES)  # noqa: SIM115
            self.target = "file"
        elif self.name in TEXT_FIELDS:
            self.text.clear()
            self.target = "text"
        else:
            self.target = None  # unknown parts are skipped, not stored

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.target == "file":
            assert self.form.file is not None
            self.form.file_size += end - start
            if self.form.file_size > self.max_bytes:
                raise ContentTooLarge(f"the image is larger than {self.max_bytes} bytes")
            self.form.file.write(data[start:end])
        elif self.target == "text":
            if len(self.text) + end - start > MAX_TEXT_FIELD_BYTES:
                raise InvalidField(str(self.name), f"longer than {MAX_TEXT_FIELD_BYTES} bytes")
            self.text += data[start:end]

    def on_part_end(self) -> None:
        if self.target == "text" and self.name is not None:
            try:
                self.form.fields[self.name] = self.text.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidField(self.name, "not UTF-8 text") from exc


@contextlib.asynccontextmanager
async def receive_form(request: Request, *, max_bytes: int) -> AsyncIterator[ReceivedForm]:
    """Parse the multipart body; the spooled file is closed when the block exits."""
    started = time.perf_counter()
    content_type = request.headers.get("content-type", "")
    mime, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if mime != b"multipart/form-data" or not boundary:
        raise UnsupportedMediaType("send the image as multipart/form-data (field `file`)")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes + FORM_OVERHEAD_BYTES:
        raise ContentTooLarge(f"the upload is larger than {max_bytes} bytes")

    form = ReceivedForm()
    collector = _Collector(form, max_bytes)
    parser = MultipartParser(
        boundary,
        callbacks={
            "on_part_begin": collector.on_part_begin,
            "on_header_field": collector.on_header_field,
            "on_header_value": collector.on_header_value,
            "on_header_end": collector.on_header_end,
            "on_headers_finished": collector.on_headers_finished,
            "on_part_data": collector.on_part_data,
            "on_part_end": collector.on_part_end,
        },
    )
    try:
        try:
            async for chunk in request.stream():
                parser.write(chunk)
            parser.finalize()
        except MultipartParseError as exc:
            raise InvalidField("body", f"malformed multipart body: {exc}") from exc
        except ClientDisconnect as exc:  # nobody reads the answer; keep it out of the 500s
            raise Problem("the upload was interrupted", status=400, title="Bad Request") from exc
        form.receive_s = time.perf_counter() - started
        yield form
    finally:
        if form.file is not None:
            form.file.close()
