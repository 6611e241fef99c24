"""Pure image processing for product images: sniff, decode safely, normalise, make renditions.

No I/O besides the file object handed in, no store, no framework. Every function here
is CPU-bound and synchronous; async callers run it in a thread.

What "normalise" means:
- the type comes from the magic bytes only (JPEG, PNG, WebP); the client's Content-Type
  and file name are never looked at;
- the declared pixel count is checked *before* any pixel is decoded (decompression
  bombs), and Pillow is told to try only the sniffed format;
- the EXIF orientation is applied to the pixels, then every piece of metadata (EXIF
  with GPS, XMP, comments, text chunks) is dropped by re-encoding; an embedded ICC
  profile is converted to sRGB first so colours survive the profile's removal;
- the stored original keeps its format; renditions are WebP at fixed widths;
- an upright RGB/greyscale JPEG is not re-encoded at all: its metadata segments are cut
  out losslessly (storage/jpeg_strip.py), every header and table segment is checked as a
  decoder would (storage/jpeg_tables.py), and the result is decoded to prove its
  entropy-coded data whole - unless the caller defers that decode (`defer_decode`, used
  when the worker makes the renditions: it decodes the pixels anyway, and removes an
  image that fails there). Everything else (rotated, CMYK, PNG, WebP) is decoded and
  re-encoded.
"""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, Any, Literal

from PIL import ExifTags, Image, ImageCms, ImageOps, UnidentifiedImageError

from images.processing.jpeg_strip import JpegStructureError, strip_jpeg_metadata
from images.processing.jpeg_tables import JpegTables

ImageFormat = Literal["jpeg", "png", "webp"]

CONTENT_TYPES: dict[ImageFormat, str] = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
}
EXTENSIONS: dict[ImageFormat, str] = {"jpeg": "jpg", "png": "png", "webp": "webp"}
_PIL_FORMATS: dict[ImageFormat, str] = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}

SNIFF_BYTES = 16
# Larger JPEGs are re-encoded instead (the lossless path holds the file in memory).
LOSSLESS_JPEG_MAX_BYTES = 32 * 1024 * 1024
JPEG_QUALITY = 88
WEBP_QUALITY = 82


class ImageRejected(Exception):
    """The bytes are not an image we accept. `kind` says why (mapped to an HTTP status)."""

    def __init__(self, kind: Literal["type", "corrupt", "too_many_pixels", "empty"], msg: str):
        super().__init__(msg)
        self.kind = kind


@dataclass(frozen=True)
class Rendition:
    width: int
    height: int
    data: bytes
    content_type: str = "image/webp"


@dataclass(frozen=True)
class ProcessedImage:
    format: ImageFormat
    data: bytes
    width: int
    height: int
    renditions: tuple[Rendition, ...]
    # seconds spent per stage, for the benchmark's breakdown and the stage histogram
    timings: dict[str, float] = field(default_factory=dict)
    # False: checked up to the entropy-coded data, pixels not decoded yet (defer_decode)
    decoded: bool = True
    # of `data`: the content address. Computed here, in the caller's processing thread,
    # not later on the event loop (1 MB takes about a millisecond)
    sha256: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha256", hashlib.sha256(self.data).hexdigest())

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.format]


def sniff(head: bytes) -> ImageFormat | None:
    """The image type from the first bytes of the file, or None if it is none we accept."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def process(
    fp: IO[bytes],
    *,
    max_pixels: int,
    rendition_widths: Sequence[int] = (200, 800),
    defer_decode: bool = False,
) -> ProcessedImage:
    """Validate and normalise the image in `fp` (seekable); raise ImageRejected if unfit.

    `defer_decode`: when nothing here needs the pixels (no renditions, a JPEG kept
    as it is), stop after the header and table checks; `ProcessedImage.decoded` is then
    False and whoever decodes it later must treat a failure as a rejection."""
    timings: dict[str, float] = {}
    started = time.perf_counter()
    fp.seek(0)
    head = fp.read(SNIFF_BYTES)
    if not head:
        raise ImageRejected("empty", "the file is empty")
    fmt = sniff(head)
    if fmt is None:
        raise ImageRejected("type", "the file is not a JPEG, PNG or WebP image")
    if fmt == "jpeg":
        lossless = _jpeg_without_reencoding(
            fp, max_pixels, rendition_widths, timings, started, defer_decode=defer_decode
        )
        if lossless is not None:
            return lossless
        started = time.perf_counter()
    image = _decode(fp, fmt, max_pixels)
    timings["decode"] = time.perf_counter() - started

    started = time.perf_counter()
    image = _normalise_pixels(image)
    data = _encode(image, fmt)
    timings["encode"] = time.perf_counter() - started

    started = time.perf_counter()
    renditions = tuple(make_renditions(image, rendition_widths))
    timings["resize"] = time.perf_counter() - started
    return ProcessedImage(fmt, data, image.width, image.height, renditions, timings)


def _jpeg_without_reencoding(
    fp: IO[bytes],
    max_pixels: int,
    widths: Sequence[int],
    timings: dict[str, float],
    started: float,
    *,
    defer_decode: bool,
) -> ProcessedImage | None:
    """The fast path for the common JPEG (upright, RGB or greyscale): cut the metadata
    segments out instead of re-encoding (lossless, and about as fast as a copy), then
    decode the result to prove it is a whole image. Decoding at a reduced scale (DCT
    scaling) still reads every entropy-coded byte, and gives the renditions' source.
    None means: take the re-encoding path (rotated, CMYK, very large)."""
    width, height, orientation, mode = _probe(fp, "jpeg", max_pixels)
    if orientation not in (None, 1) or mode not in ("RGB", "L"):
        return None
    fp.seek(0)
    raw = fp.read(LOSSLESS_JPEG_MAX_BYTES + 1)
    if len(raw) > LOSSLESS_JPEG_MAX_BYTES:
        return None
    encode_started = time.perf_counter()
    tables = JpegTables()
    try:
        stripped = strip_jpeg_metadata(raw, tables)
    except JpegStructureError as exc:
        raise ImageRejected("corrupt", f"the image cannot be decoded: {exc}") from exc
    timings["encode"] = time.perf_counter() - encode_started
    if defer_decode and not widths and tables.checked:
        timings["decode"] = time.perf_counter() - started - timings["encode"]
        return ProcessedImage("jpeg", stripped, width, height, (), timings, decoded=False)
    target = max(widths, default=1)  # no renditions: decode at 1/8, just to validate
    draft = (target, max(1, -(-height * target // width)))
    image = _decode(io.BytesIO(stripped), "jpeg", max_pixels, draft=draft)
    image = _normalise_pixels(image)
    timings["decode"] = time.perf_counter() - started - timings["encode"]
    resize_started = time.perf_counter()
    renditions = tuple(make_renditions(image, widths))
    timings["resize"] = time.perf_counter() - resize_started
    return ProcessedImage("jpeg", stripped, width, height, renditions, timings)


def _probe(fp: IO[bytes], fmt: ImageFormat, max_pixels: int) -> tuple[int, int, int | None, str]:
    """(width, height, EXIF orientation, mode) from the header, with the pixel limit."""
    try:
        fp.seek(0)
        with Image.open(fp, formats=[_PIL_FORMATS[fmt]]) as probe:
            _check_pixels(probe.size, max_pixels)
            try:
                orientation = probe.getexif().get(ExifTags.Base.Orientation)
            except Exception:  # unreadable EXIF: let the re-encoding path deal with it
                orientation = -1
            return probe.width, probe.height, orientation, probe.mode
    except ImageRejected:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageRejected("too_many_pixels", str(exc)) from exc
    except Exception as exc:
        raise ImageRejected("corrupt", f"the image cannot be decoded: {exc}") from exc


def _check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise ImageRejected("corrupt", "the image has no pixels")
    if width * height > max_pixels:
        raise ImageRejected(
            "too_many_pixels",
            f"the image is {width}x{height} pixels, more than the limit of {max_pixels}",
        )


def _decode(
    fp: IO[bytes],
    fmt: ImageFormat,
    max_pixels: int,
    *,
    draft: tuple[int, int] | None = None,
) -> Image.Image:
    formats = [_PIL_FORMATS[fmt]]
    try:
        fp.seek(0)
        # Opening reads only the header: the size is known before any pixel is decoded.
        with Image.open(fp, formats=formats) as probe:
            _check_pixels(probe.size, max_pixels)
            probe.verify()  # structure and checksums (PNG CRCs), no pixel data kept
        fp.seek(0)
        # verify() leaves the image unusable: open again to decode the pixels.
        image = Image.open(fp, formats=formats)
        if draft is not None:
            image.draft(None, draft)  # JPEG: decode at the smallest scale >= draft
        image.load()
    except ImageRejected:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageRejected("too_many_pixels", str(exc)) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        # Truncated files end up here ("image file is truncated"), as do bad chunks.
        raise ImageRejected("corrupt", f"the image cannot be decoded: {exc}") from exc
    except Exception as exc:  # decoders raise a zoo of types on hostile input
        raise ImageRejected("corrupt", f"the image cannot be decoded: {exc!r}") from exc
    return image


def _normalise_pixels(image: Image.Image) -> Image.Image:
    """Apply orientation, convert to sRGB, keep pixels + transparency, drop all metadata."""
    try:
        oriented = ImageOps.exif_transpose(image)
        image = oriented if oriented is not None else image
    except Exception:  # a broken EXIF block must not stop the upload; it is dropped anyway
        pass
    icc = image.info.get("icc_profile")
    if icc and image.mode in ("RGB", "RGBA", "CMYK", "L", "LA"):
        image = _to_srgb(image, icc)
    if image.mode == "CMYK":
        image = image.convert("RGB")
    elif image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        image = image.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    kept: dict[str | tuple[int, int], Any] = {
        k: v for k, v in image.info.items() if k == "transparency"
    }  # not metadata: PNG transparency must survive
    image.info = kept  # the image is ours (decoded or transposed here): no copy needed
    return image


def _to_srgb(image: Image.Image, icc: bytes) -> Image.Image:
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        target = ImageCms.createProfile("sRGB")
        out_mode = "RGBA" if "A" in image.mode else "RGB"
        if image.mode in ("L", "LA"):
            image = image.convert(out_mode)
        converted = ImageCms.profileToProfile(image, source, target, outputMode=out_mode)
        return converted if converted is not None else image
    except Exception:  # an unusable profile: keep the pixels as they are, drop the profile
        return image


def _encode(image: Image.Image, fmt: ImageFormat) -> bytes:
    out = io.BytesIO()
    if fmt == "jpeg":
        if image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        image.save(out, "JPEG", quality=JPEG_QUALITY, exif=b"", icc_profile=None)
    elif fmt == "png":
        image.save(out, "PNG", compress_level=6)
    else:
        image = image if image.mode in ("RGB", "RGBA") else _webp_mode(image)
        image.save(out, "WEBP", quality=WEBP_QUALITY, method=4, exif=b"", xmp="")
    return out.getvalue()


def _webp_mode(image: Image.Image) -> Image.Image:
    has_alpha = "A" in image.mode or "transparency" in image.info
    return image.convert("RGBA" if has_alpha else "RGB")


def make_renditions(image: Image.Image, widths: Sequence[int]) -> list[Rendition]:
    """WebP renditions, one per width (never upscaled: a small image keeps its width).
    The largest is made first and each smaller one is resized from it, which is faster
    and looks the same."""
    source = _webp_mode(image) if image.mode not in ("RGB", "RGBA") else image
    made: dict[int, Rendition] = {}
    for width in sorted(set(widths), reverse=True):
        w = min(width, source.width)
        h = max(1, round(source.height * w / source.width))
        if (w, h) != source.size:
            source = source.resize((w, h), Image.Resampling.LANCZOS, reducing_gap=3.0)
        out = io.BytesIO()
        # method 2: half the encoding time of the default 4 for about the same size
        source.save(out, "WEBP", quality=WEBP_QUALITY, method=2)
        made[width] = Rendition(w, h, out.getvalue())
    return [made[w] for w in sorted(made)]


def renditions_of_stored(
    fp: IO[bytes], fmt: ImageFormat, *, max_pixels: int, widths: Sequence[int]
) -> list[Rendition]:
    """Renditions of an original this module stored earlier (already normalised); the
    worker uses this when renditions are deferred. Still decoded with the same limits."""
    image = _decode(fp, fmt, max_pixels)
    return make_renditions(image, widths)
