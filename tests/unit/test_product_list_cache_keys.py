"""app/product_list_cache.py: page_key names one page of one data generation exactly,
from the query string as sent."""

from __future__ import annotations

from app.product_list_cache import page_key


def test_the_same_query_string_is_the_same_page() -> None:
    assert page_key("g1", b"limit=20&category=Lighting") == page_key(
        "g1", b"limit=20&category=Lighting"
    )
    assert len(page_key("g1", b"")) == 32
    # parameters the route does not read change nothing
    assert page_key("g1", b"limit=20&utm_source=mail") == page_key("g1", b"limit=20")
    # percent-escapes decode as Starlette decodes them: one value, one page
    assert page_key("g1", b"brand=Caf%C3%A9") == page_key("g1", b"brand=Caf%c3%a9")
    assert page_key("g1", b"brand=Oak+Chair") == page_key("g1", b"brand=Oak%20Chair")


def test_every_parameter_and_the_generation_name_another_page() -> None:
    base = b"limit=20&category=Lighting"
    variants = {
        page_key("g1", base),
        page_key("g2", base),  # a restore: never an older generation's page
        page_key("g1", b"limit=21&category=Lighting"),
        page_key("g1", base + b"&cursor=abc"),
        page_key("g1", b"limit=20&category=Lighting/Desk"),
        page_key("g1", base + b"&brand=Acme"),
        page_key("g1", base + b"&min_price=1.00"),
        page_key("g1", base + b"&max_price=1.00"),
        page_key("g1", base + b"&status=active"),
        page_key("g1", b"category=Lighting&limit=20"),  # another spelling: its own entry
        page_key("g1", base + b"&limit=5"),  # a repeated parameter is kept as sent
    }
    assert len(variants) == 11
