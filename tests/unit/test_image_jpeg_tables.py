"""The JPEG header and table checks: what every encoder writes passes, what a decoder would
refuse is refused before any pixel is decoded."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from images.processing.jpeg_strip import JpegStructureError, strip_jpeg_metadata
from images.processing.jpeg_tables import JpegTables
from images.processing.process import ImageRejected, process
from tests.support.images import well_formed_but_undecodable_jpeg


def _jpeg(mode: str = "RGB", **save: object) -> bytes:
    image = Image.merge(
        "RGB", [Image.effect_noise((40, 24), 30 + 9 * c).convert("L") for c in range(3)]
    )
    out = io.BytesIO()
    image.convert(mode).save(out, "JPEG", **save)
    return out.getvalue()


def _segment(data: bytes, marker: int) -> int:
    """Offset of the first segment with this marker (its 0xFF byte)."""
    return data.index(bytes((0xFF, marker)))


@pytest.mark.parametrize(
    ("mode", "save"),
    [
        ("RGB", {}),
        ("RGB", {"progressive": True}),
        ("RGB", {"progressive": True, "subsampling": 0}),
        ("RGB", {"subsampling": 2, "quality": 40}),
        ("RGB", {"restart_marker_blocks": 2}),
        ("RGB", {"optimize": True}),
        ("L", {}),
        ("L", {"progressive": True}),
        ("CMYK", {}),
    ],
)
def test_what_encoders_write_passes(mode: str, save: dict[str, object]) -> None:
    tables = JpegTables()
    strip_jpeg_metadata(_jpeg(mode, **save), tables)
    assert tables.checked
    assert tables.scans >= 1
    assert tables.quant and tables.components


def _with(data: bytes, offset: int, value: bytes) -> bytes:
    return data[:offset] + value + data[offset + len(value) :]


def _bad_cases() -> list[tuple[str, bytes]]:
    base = _jpeg()
    progressive = _jpeg(progressive=True)
    dht, dqt = _segment(base, 0xC4), _segment(base, 0xDB)
    sof, sos = _segment(base, 0xC0), _segment(base, 0xDA)
    psos = _segment(progressive, 0xDA)
    cases = [
        # three 1-bit codes cannot be told apart (libjpeg: "Bogus Huffman table")
        ("huffman code overflow", _with(base, dht + 5, b"\x03")),
        ("huffman table number 5", _with(base, dht + 4, b"\x05")),
        ("huffman class 2", _with(base, dht + 4, b"\x20")),
        ("quantisation table number 4", _with(base, dqt + 4, b"\x04")),
        ("no components", _with(base, sof + 9, b"\x00")),
        ("precision 12", _with(base, sof + 4, b"\x0c")),
        ("sampling factor 0", _with(base, sof + 11, b"\x00")),
        ("frame names quant table 3, never defined", _with(base, sof + 12, b"\x03")),
        ("scan names a component the frame lacks", _with(base, sos + 5, b"\x09")),
        ("scan uses AC table 2, never defined", _with(base, sos + 6, b"\x02")),
        ("scan uses DC table 3, never defined", _with(base, sos + 6, b"\x30")),
        # progressive DC scan (Ss=0) must end at 0
        ("progressive DC band with Se 5", _with(progressive, psos + 4 + 2 * 3 + 2, b"\x05")),
        ("no scan before the end", base[:sos] + b"\xff\xd9"),
    ]
    # a DC table whose symbols claim 16-bit differences
    counts_at = dht + 5
    total = sum(base[counts_at : counts_at + 16])
    cases.append(("DC symbol above 15", _with(base, counts_at + 16 + total - 1, b"\x10")))
    return cases


BAD_CASES = _bad_cases()


@pytest.mark.parametrize(("case", "data"), BAD_CASES, ids=[case for case, _ in BAD_CASES])
def test_what_a_decoder_refuses_is_refused(case: str, data: bytes) -> None:
    with pytest.raises(JpegStructureError):
        strip_jpeg_metadata(data)
    # and the same file as an upload, with the decode deferred: rejected, not accepted
    with pytest.raises(ImageRejected):
        process(io.BytesIO(data), max_pixels=10**6, rendition_widths=(), defer_decode=True)


def test_the_refused_cases_are_real_decoder_failures() -> None:
    """The premise of the cases above: Pillow (libjpeg) does refuse each of them (or, for
    the quantisation/sampling/precision ones, refuses to even open them)."""
    for case, data in BAD_CASES:
        with pytest.raises(Exception):  # noqa: B017 - any refusal will do
            with Image.open(io.BytesIO(data), formats=["JPEG"]) as image:
                image.load()
            raise AssertionError(f"{case}: decoded")


def test_deferred_decode_skips_only_the_pixels() -> None:
    data = _jpeg()
    deferred = process(io.BytesIO(data), max_pixels=10**6, rendition_widths=(), defer_decode=True)
    decoded = process(io.BytesIO(data), max_pixels=10**6, rendition_widths=())
    assert not deferred.decoded and decoded.decoded
    assert deferred.data == decoded.data  # the same stripped bytes, the same address
    assert deferred.sha256 == decoded.sha256
    assert (deferred.width, deferred.height) == (decoded.width, decoded.height) == (40, 24)


def test_deferred_decode_is_not_used_when_renditions_need_pixels() -> None:
    processed = process(
        io.BytesIO(_jpeg()), max_pixels=10**6, rendition_widths=(16,), defer_decode=True
    )
    assert processed.decoded and len(processed.renditions) == 1


def test_damage_only_a_decode_finds_passes_the_checks_and_fails_the_decode() -> None:
    damaged = well_formed_but_undecodable_jpeg()
    assert not process(
        io.BytesIO(damaged), max_pixels=10**6, rendition_widths=(), defer_decode=True
    ).decoded
    with pytest.raises(ImageRejected):
        process(io.BytesIO(damaged), max_pixels=10**6, rendition_widths=())
