"""Pure image processing: sniffing, bomb limits, metadata stripping, renditions."""

from __future__ import annotations

import io

import pytest
from PIL import ExifTags, Image, ImageCms

from images.processing.process import ImageRejected, process, sniff


def encode(image: Image.Image, fmt: str, **save: object) -> io.BytesIO:
    out = io.BytesIO()
    image.save(out, fmt, **save)
    out.seek(0)
    return out


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "jpeg"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "png"),
        (b"RIFF\x10\x00\x00\x00WEBPVP8 ", "webp"),
        (b"RIFF\x10\x00\x00\x00WAVEfmt ", None),
        (b"GIF89a", None),
        (b"<svg xmlns=", None),
        (b"<!DOCTYPE html>", None),
        (b"", None),
    ],
)
def test_sniff_reads_magic_bytes(head: bytes, expected: str | None) -> None:
    assert sniff(head) == expected


def test_declared_pixels_over_the_limit_are_rejected_before_decoding() -> None:
    bomb = encode(Image.new("L", (4000, 3000)), "PNG", compress_level=9)
    with pytest.raises(ImageRejected) as caught:
        process(bomb, max_pixels=1_000_000)
    assert caught.value.kind == "too_many_pixels"


def test_pillow_bomb_error_is_a_rejection_too() -> None:
    """Even with a generous own limit, Pillow's hard limit (2x MAX_IMAGE_PIXELS) holds."""
    saved = Image.MAX_IMAGE_PIXELS
    data = encode(Image.new("L", (2000, 2000)), "PNG")
    try:
        Image.MAX_IMAGE_PIXELS = 1_000_000  # 4M pixels > 2x this: DecompressionBombError
        with pytest.raises(ImageRejected) as caught:
            process(data, max_pixels=10**9)
    finally:
        Image.MAX_IMAGE_PIXELS = saved
    assert caught.value.kind == "too_many_pixels"


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"", "empty"),
        (b"plain text, not an image", "type"),
        (b"\x89PNG\r\n\x1a\n" + b"\xaa" * 100, "corrupt"),
        (b"\xff\xd8\xff" + b"\x00" * 100, "corrupt"),
        (b"RIFF\x10\x00\x00\x00WEBPVP8 " + b"\x01" * 50, "corrupt"),
    ],
)
def test_unfit_bytes_are_rejected_by_kind(data: bytes, kind: str) -> None:
    with pytest.raises(ImageRejected) as caught:
        process(io.BytesIO(data), max_pixels=10_000_000)
    assert caught.value.kind == kind


def test_png_with_a_bad_crc_is_corrupt() -> None:
    raw = bytearray(encode(Image.new("RGB", (32, 32), (1, 2, 3)), "PNG").getvalue())
    idat = raw.index(b"IDAT")
    raw[idat + 6] ^= 0xFF  # flip bits inside the compressed pixel data
    with pytest.raises(ImageRejected) as caught:
        process(io.BytesIO(bytes(raw)), max_pixels=10_000_000)
    assert caught.value.kind == "corrupt"


def test_exif_orientation_is_applied_and_all_metadata_dropped() -> None:
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    image.paste((0, 0, 255), (0, 0, 10, 20))  # blue left edge
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    exif[ExifTags.Base.Model] = "Secret Phone"
    exif.get_ifd(ExifTags.IFD.GPSInfo)[ExifTags.GPS.GPSLatitude] = (1.0, 2.0, 3.0)
    source = encode(image, "JPEG", exif=exif, quality=95, comment=b"hidden comment")

    result = process(source, max_pixels=10_000_000, rendition_widths=(200,))
    assert (result.width, result.height) == (20, 40)
    assert b"Secret Phone" not in result.data
    assert b"hidden comment" not in result.data
    with Image.open(io.BytesIO(result.data)) as stored:
        assert len(stored.getexif()) == 0
        assert "comment" not in stored.info
        top = stored.getpixel((10, 2))
    assert isinstance(top, tuple)
    assert top[2] > 200 and top[0] < 60  # the blue edge is now at the top


def test_icc_profile_is_converted_to_srgb_and_dropped() -> None:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    source = encode(Image.new("RGB", (16, 16), (100, 150, 200)), "PNG", icc_profile=srgb)
    result = process(source, max_pixels=10_000_000)
    with Image.open(io.BytesIO(result.data)) as stored:
        assert "icc_profile" not in stored.info
        pixel = stored.getpixel((8, 8))
    assert isinstance(pixel, tuple)
    assert all(abs(a - b) <= 3 for a, b in zip(pixel, (100, 150, 200), strict=True))


@pytest.mark.parametrize(
    ("mode", "fmt", "color"),
    [
        ("P", "PNG", 3),
        ("LA", "PNG", (100, 128)),
        ("I;16", "PNG", 40000),
        ("CMYK", "JPEG", (0, 100, 200, 10)),
        ("L", "JPEG", 90),
        ("RGBA", "WEBP", (1, 2, 3, 128)),
    ],
)
def test_unusual_modes_are_normalised(mode: str, fmt: str, color: object) -> None:
    image = Image.new(mode, (30, 20), color)  # type: ignore[arg-type]
    result = process(encode(image, fmt), max_pixels=10_000_000)
    assert result.format == fmt.lower()
    with Image.open(io.BytesIO(result.data)) as stored:
        assert stored.size == (30, 20)
    for rendition in result.renditions:
        with Image.open(io.BytesIO(rendition.data)) as r:
            assert r.format == "WEBP"
            assert r.mode in ("RGB", "RGBA")


def test_png_transparency_survives() -> None:
    image = Image.new("RGBA", (10, 10), (255, 0, 0, 0))
    result = process(encode(image, "PNG"), max_pixels=10_000_000)
    with Image.open(io.BytesIO(result.data)) as stored:
        alpha = stored.getpixel((5, 5))
    assert isinstance(alpha, tuple)
    assert alpha[3] == 0


def test_renditions_keep_aspect_and_are_deterministic() -> None:
    image = Image.new("RGB", (1600, 900), (20, 40, 60))
    first = process(encode(image, "JPEG"), max_pixels=10_000_000, rendition_widths=(800, 200))
    second = process(encode(image, "JPEG"), max_pixels=10_000_000, rendition_widths=(200, 800))
    assert [(r.width, r.height) for r in first.renditions] == [(200, 112), (800, 450)]
    assert first.data == second.data  # same input, same stored bytes: dedup by hash works
    assert [r.data for r in first.renditions] == [r.data for r in second.renditions]
    assert set(first.timings) == {"decode", "encode", "resize"}
