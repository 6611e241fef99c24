"""Pictures for the sample catalog: one drawing per top-level category and colour, made
with Pillow, stored through the upload's own processing and storing functions (so the
renditions, the content addressing and the rows are exactly what an upload makes).

Identical drawings are one blob in MinIO (content-addressed): 10 colours x 8 categories
are at most 80 originals however many products get a picture.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import Any

from PIL import Image, ImageDraw, ImageFont
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from images import content
from images.blobs import ImageBlobs
from images.processing.process import ProcessedImage, process

Pool = AsyncConnectionPool[AsyncConnection[dict[str, Any]]]
SIZE = 640

COLOR_RGB: dict[str, tuple[int, int, int]] = {
    "black": (40, 40, 44),
    "white": (236, 236, 232),
    "grey": (150, 152, 158),
    "navy": (30, 44, 92),
    "red": (196, 44, 44),
    "green": (52, 132, 76),
    "beige": (222, 204, 170),
    "brown": (120, 78, 46),
    "blue": (48, 112, 210),
    "yellow": (236, 196, 48),
}


def _shape(draw: ImageDraw.ImageDraw, category: str, fg: tuple[int, int, int]) -> None:
    """A simple silhouette per category, so a grid of products reads as a shop."""
    c, r = SIZE // 2, SIZE // 4
    if category == "Furniture":  # a chair
        draw.rectangle((c - r, c - r, c + r // 3, c + r // 6), fill=fg)
        draw.rectangle((c - r, c, c + r, c + r // 4), fill=fg)
        for x in (c - r, c + r - 24):
            draw.rectangle((x, c, x + 24, c + r + 40), fill=fg)
    elif category == "Electronics":  # a screen
        draw.rounded_rectangle((c - r - 40, c - r, c + r + 40, c + r // 2), 18, fill=fg)
        draw.rectangle((c - 14, c + r // 2, c + 14, c + r), fill=fg)
        draw.rectangle((c - r // 2, c + r, c + r // 2, c + r + 18), fill=fg)
    elif category == "Kitchen":  # a pan
        draw.ellipse((c - r, c - r, c + r, c + r), fill=fg)
        draw.rectangle((c + r - 10, c - 14, c + 2 * r, c + 14), fill=fg)
    elif category == "Outdoor":  # a tent
        draw.polygon([(c - r - 40, c + r), (c, c - r), (c + r + 40, c + r)], fill=fg)
    elif category == "Clothing":  # a t-shirt
        draw.polygon(
            [
                (c - r, c - r),
                (c - r - 60, c - r // 2),
                (c - r // 2 - 30, c - 20),
                (c - r // 2, c - 20),
                (c - r // 2, c + r),
                (c + r // 2, c + r),
                (c + r // 2, c - 20),
                (c + r // 2 + 30, c - 20),
                (c + r + 60, c - r // 2),
                (c + r, c - r),
            ],
            fill=fg,
        )
    elif category == "Sports":  # a ball
        draw.ellipse((c - r, c - r, c + r, c + r), fill=fg)
        draw.arc((c - r, c - r // 2, c + r, c + r // 2), 0, 360, fill=(255, 255, 255), width=6)
    elif category == "Toys":  # blocks
        s = r // 2 + 10
        for dx, dy in ((-s, 0), (0, 0), (-s // 2, -s)):
            draw.rectangle((c + dx - s // 2, c + dy, c + dx + s // 2, c + dy + s), fill=fg)
    else:  # Home and anything new: a lamp
        draw.polygon([(c - r, c), (c - r // 3, c - r), (c + r // 3, c - r), (c + r, c)], fill=fg)
        draw.rectangle((c - 10, c, c + 10, c + r), fill=fg)
        draw.rectangle((c - r // 2, c + r, c + r // 2, c + r + 16), fill=fg)


def draw(category: str, color: str) -> bytes:
    """A PNG for a product of this top-level category and colour (deterministic)."""
    fg = COLOR_RGB.get(color, (120, 120, 120))
    light = sum(fg) > 450
    bg = (70, 72, 80) if light else (246, 244, 240)
    image = Image.new("RGB", (SIZE, SIZE), bg)
    pen = ImageDraw.Draw(image)
    _shape(pen, category, fg)
    font = ImageFont.load_default(size=36)
    pen.text(
        (24, SIZE - 64),
        f"{category} · {color}",
        fill=(200, 200, 200) if light else (60, 60, 60),
        font=font,
    )
    out = io.BytesIO()
    image.save(out, "PNG", optimize=True)
    return out.getvalue()


async def attach(
    pool: Pool,
    blobs: ImageBlobs,
    *,
    limit: int,
    rendition_widths: Sequence[int],
    max_pixels: int,
    progress: Callable[[int], None] = lambda n: None,
) -> int:
    """Give up to `limit` products without an image their category's picture in their
    colour; how many got one. Products are taken in id order, so a rerun continues."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT p.id, split_part(p.category, '/', 1) AS top, p.name,"
            " coalesce(p.attributes->>'color', 'grey') AS color"
            " FROM products p WHERE p.deleted_at IS NULL AND NOT EXISTS"
            " (SELECT 1 FROM product_images i WHERE i.product_id = p.id)"
            " ORDER BY p.id LIMIT %s",
            (limit,),
        )
        rows = await cur.fetchall()
    made: dict[tuple[str, str], ProcessedImage] = {}
    for n, row in enumerate(rows, 1):
        key = (row["top"], row["color"])
        if key not in made:
            made[key] = process(
                io.BytesIO(draw(*key)), max_pixels=max_pixels, rendition_widths=rendition_widths
            )
        await content.save_image(
            pool, blobs, row["id"], made[key], rendition_widths, alt_text=row["name"]
        )
        progress(n)
    return len(rows)
