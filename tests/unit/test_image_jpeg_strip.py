"""Lossless JPEG metadata stripping: what goes, what stays, what is refused."""

from __future__ import annotations

import io

import pytest
from PIL import ExifTags, Image

from images.processing.jpeg_strip import JpegStructureError, strip_jpeg_metadata
from images.processing.process import process


def _photo(**save: object) -> bytes:
    image = Image.linear_gradient("L").resize((160, 120)).convert("RGB")
    image.paste((200, 40, 40), (10, 10, 60, 60))
    exif = Image.Exif()
    exif[ExifTags.Base.Model] = "Secret Phone"
    exif.get_ifd(ExifTags.IFD.GPSInfo)[ExifTags.GPS.GPSLatitude] = (1.0, 2.0, 3.0)
    out = io.BytesIO()
    image.save(
        out,
        "JPEG",
        exif=exif,
        comment=b"hidden comment",
        xmp=b"<x:xmpmeta>secret xmp</x:xmpmeta>",
        quality=90,
        **save,
    )
    return out.getvalue()


def _pixels(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        return image.tobytes()


@pytest.mark.parametrize(
    "save", [{}, {"progressive": True}, {"restart_marker_blocks": 4}, {"subsampling": 0}]
)
def test_metadata_goes_and_pixels_stay_identical(save: dict[str, object]) -> None:
    source = _photo(**save)
    assert b"Secret Phone" in source and b"secret xmp" in source  # the test's premise
    stripped = strip_jpeg_metadata(source + b"<html>appended after the image</html>")
    for secret in (b"Exif", b"Secret Phone", b"secret xmp", b"hidden comment", b"<html>"):
        assert secret not in stripped
    assert _pixels(stripped) == _pixels(source)  # lossless: same entropy-coded data
    assert len(stripped) < len(source)


def test_icc_profile_is_kept() -> None:
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(out, "JPEG", icc_profile=icc)
    with Image.open(io.BytesIO(strip_jpeg_metadata(out.getvalue()))) as image:
        assert image.info.get("icc_profile") == icc


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff\xd8",
        b"\xff\xd8\xff\xe1\x00",  # truncated length
        b"\xff\xd8\xff\xe1\x00\x40abc",  # length past the end
        b"\xff\xd8\x00\x00",  # not a marker
    ],
)
def test_broken_structure_is_refused(data: bytes) -> None:
    with pytest.raises(JpegStructureError):
        strip_jpeg_metadata(data)


def test_truncated_scan_is_refused() -> None:
    source = _photo()
    with pytest.raises(JpegStructureError):
        strip_jpeg_metadata(source[: len(source) - 200])


def test_upright_jpegs_are_stored_without_reencoding() -> None:
    source = _photo()
    result = process(io.BytesIO(source), max_pixels=10_000_000, rendition_widths=(200, 800))
    assert result.data == strip_jpeg_metadata(source)
    assert (result.width, result.height) == (160, 120)
    assert [(r.width, r.height) for r in result.renditions] == [(160, 120), (160, 120)]
