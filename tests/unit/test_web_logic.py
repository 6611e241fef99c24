"""Pure logic of the web pages: the cart cookie, form parsing, redirects, chart choice."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa
from starlette.datastructures import FormData

from web import cart, charts, forms
from web.routes.signin import _safe_next
from web.routes.storefront import _price_range


def test_cart_cookie_round_trips_and_ignores_garbage() -> None:
    assert cart.parse(cart.encode({3: 2, 17: 1})) == {3: 2, 17: 1}
    assert cart.parse("3x2.abc.5x0.7x-1.9x500") == {3: 2, 9: cart.MAX_QUANTITY}
    assert cart.parse("x" * 5000) == {}
    assert cart.parse(None) == {}


def _form(**values: str) -> FormData:
    base = {"sku": "S-1", "name": "Lamp", "price": "19.99", "stock": "3", "status": "active"}
    return FormData({**base, **values})


def test_product_form_values_and_errors_by_field() -> None:
    values, errors = forms.product_changes(_form())
    assert errors == {}
    assert values["price_minor"] == 1999 and values["stock"] == 3
    _, errors = forms.product_changes(_form(price="1.234", stock="-1", name="", status="gone"))
    assert set(errors) == {"price", "stock", "name", "status"}


def test_next_is_only_a_path_on_this_site() -> None:
    assert _safe_next("/shop/orders?x=1") == "/shop/orders?x=1"
    for bad in ("//evil.example/", "https://evil.example/", "/\\evil.example", "javascript:x"):
        assert _safe_next(bad) == ""


def test_ticked_price_buckets_make_one_covering_range() -> None:
    buckets: list[dict[str, Any]] = [
        {"key": "*-2500", "from_minor": None, "to_minor": 2500},
        {"key": "2500-5000", "from_minor": 2500, "to_minor": 5000},
        {"key": "10000-*", "from_minor": 10000, "to_minor": None},
    ]
    assert _price_range(["2500-5000"], buckets) == (2500, 5000)
    assert _price_range(["*-2500", "2500-5000"], buckets) == (None, 5000)
    assert _price_range(["2500-5000", "10000-*"], buckets) == (2500, None)
    assert _price_range([], buckets) == (None, None)


def test_chart_kind_follows_the_column_types() -> None:
    by_day = pa.table({"day": [dt.date(2026, 1, 1), dt.date(2026, 1, 2)], "revenue": [1.5, 2.0]})
    by_name = pa.table({"name": ["<b>a</b>", "b"], "units": [3, 4]})
    text_only = pa.table({"a": ["x"], "b": ["y"]})
    assert charts.pick(by_day.schema) == ("line", "day", "revenue")
    assert charts.pick(by_name.schema) == ("bar", "name", "units")
    assert charts.pick(text_only.schema) is None
    chart = charts.render(by_name, "Units")
    assert chart is not None and chart.svg.count("<rect") == 2
    assert "<b>a</b>" not in chart.svg and "&lt;b&gt;a&lt;/b&gt;" in chart.svg
