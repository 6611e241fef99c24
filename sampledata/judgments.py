"""A graded judgment list over the sample catalog, for `polyshop search evaluate`.

The queries are written by hand, grouped by what a shopper does (names a product type,
adds a colour or a size, misspells, uses another word, types a model number); the
grades are NOT hand-picked per product but derived from each product's facts
(`sampledata.shop.ProductFacts`) by fixed principles, the way ESCI-style human judgments
grade (Exact / Substitute / Complement / Irrelevant):

- 3 exact: the product is of the type the query asks for, and matches every attribute
  the query names (colour, material, size, brand, model number, SKU);
- 1 partial: the right type with a named attribute off (a substitute), or a type the
  query lists as related (a grill brush for "grill", a desk for "table");
- 0 (not written): everything else.

Format (CSV, UTF-8, one header line): `query,sku,grade`; products not listed for a
query count as grade 0. The SKU is the key, so the file survives a reseed that gives
the products other ids.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from sampledata.shop import ProductFacts

HEADER = ("query", "sku", "grade")
EXACT = 3
PARTIAL = 1


@dataclass(frozen=True)
class JudgedQuery:
    text: str
    types: tuple[str, ...] = ()  # leaf nouns that ARE what the query asks for
    related: tuple[str, ...] = ()  # leaf nouns that are close (grade 1)
    attributes: Mapping[str, str] = field(default_factory=dict)
    brand: str | None = None
    spec: str | None = None  # canonical size value ("27", "8x10")
    model: str | None = None
    sku: str | None = None


def _q(text: str, *types: str, **kw: object) -> JudgedQuery:
    return JudgedQuery(text, types, **kw)  # type: ignore[arg-type]


# By principle; the same query in several forms where shoppers write it several ways.
QUERIES: tuple[JudgedQuery, ...] = (
    # a product type, as the catalog names it
    _q("office chair", "Office Chair"),
    _q("coffee table", "Coffee Table"),
    _q("bookcase", "Bookcase"),
    _q("headphones", "Headphone"),
    _q("garden hose", "Garden Hose"),
    _q("sleeping bag", "Sleeping Bag"),
    _q("board game", "Board Game"),
    _q("floor lamp", "Floor Lamp"),
    _q("wall clock", "Wall Clock"),
    _q("phone case", "Phone Case"),
    _q("gas grill", "Gas Grill", related=("Charcoal Grill", "Grill Brush")),
    _q("coffee maker", "Coffee Maker"),
    # a generic head noun: every kind of it; neighbours and accessories are related
    _q("chair", "Office Chair", "Dining Chair", "Armchair"),
    _q("grill", "Gas Grill", "Charcoal Grill", related=("Grill Brush",)),
    _q("lamp", "Desk Lamp", "Floor Lamp", related=("Pendant Light",)),
    _q("table", "Dining Table", "Coffee Table", related=("Desk",)),
    _q("shoes", "Sneaker", "Boot", "Sandal"),
    _q("bike lock", "Bike Lock", related=("Bike Helmet", "Bike Light")),
    # attributes: colour, material, clothing size
    _q("black office chair", "Office Chair", attributes={"color": "black"}),
    _q("red dress", "Dress", attributes={"color": "red"}),
    _q("wool sweater", "Sweater", attributes={"material": "wool"}),
    _q("leather armchair", "Armchair", attributes={"material": "leather"}),
    _q("cast iron frying pan", "Frying Pan", attributes={"material": "cast iron"}),
    _q("stainless steel saucepan", "Saucepan", attributes={"material": "stainless steel"}),
    _q("white desk lamp", "Desk Lamp", attributes={"color": "white"}),
    _q("blue yoga mat", "Yoga Mat", attributes={"color": "blue"}),
    _q("oak bookcase", "Bookcase", attributes={"material": "oak"}),
    _q("navy coat xl", "Coat", attributes={"color": "navy", "size": "XL"}),
    _q("large jute rug", "Rug", attributes={"material": "jute", "size": "large"}),
    # brand and type
    _q("nordwood desk", "Desk", brand="Nordwood"),
    _q("voltix headphones", "Headphone", brand="Voltix"),
    _q("trailhead tent", "Tent", brand="Trailhead"),
    _q("chefs pride dutch oven", "Dutch Oven", brand="Chef's Pride"),
    # compound words and hyphens
    _q("tshirt", "T-Shirt"),
    _q("t shirt", "T-Shirt"),
    _q("cotton t-shirt", "T-Shirt", attributes={"material": "cotton"}),
    _q("arm chair", "Armchair"),
    _q("book case", "Bookcase"),
    _q("back pack", "Backpack"),
    # another word for the same thing
    _q("trainers", "Sneaker"),
    _q("jumper", "Sweater"),
    _q("rucksack", "Backpack"),
    _q("skillet", "Frying Pan"),
    _q("bicycle helmet", "Bike Helmet"),
    _q("bookshelf", "Bookcase"),
    _q("carpet", "Rug"),
    _q("bbq", "Gas Grill", "Charcoal Grill", related=("Grill Brush",)),
    _q("notebook computer", "Laptop"),
    _q("headset", "Headphone"),
    # typos
    _q("ofice chair", "Office Chair"),
    _q("bookcsae", "Bookcase"),
    _q("blendr", "Blender"),
    _q("hedphones", "Headphone"),
    _q("backpak", "Backpack"),
    _q("dumbell", "Dumbbell"),
    _q("sweter", "Sweater"),
    # sizes and units, written differently from the catalog's many spellings
    _q("27 inch monitor", "Monitor", spec="27"),
    _q('27" monitor', "Monitor", spec="27"),
    _q("monitor 32in", "Monitor", spec="32"),
    _q("10 inch frying pan", "Frying Pan", spec="10"),
    _q("12in skillet", "Frying Pan", spec="12"),
    _q("50 ft garden hose", "Garden Hose", spec="50"),
    _q("100 foot hose", "Garden Hose", spec="100"),
    _q("6mm yoga mat", "Yoga Mat", spec="6"),
    _q("10 lb dumbbell", "Dumbbell", spec="10"),
    _q("20lbs dumbbells", "Dumbbell", spec="20"),
    _q("5x8 rug", "Rug", spec="5x8"),
    _q("8 x 10 picture frame", "Picture Frame", spec="8x10"),
    _q("65w charger", "Charger", spec="65"),
    _q("45 watt charger", "Charger", spec="45"),
    _q("30 liter backpack", "Backpack", spec="30"),
    _q("6 quart dutch oven", "Dutch Oven", spec="6"),
    _q("16 oz mug", "Mug", spec="16"),
)

# Model numbers and SKUs are taken from the catalog itself (the products at these
# positions), each in the spellings people type.
MODEL_POSITIONS = (100, 2_000, 5_000)
SKU_POSITIONS = (42, 4_242)


def _model_queries(facts: list[ProductFacts]) -> Iterator[JudgedQuery]:
    for pos in MODEL_POSITIONS:
        if pos >= len(facts):
            continue
        p = facts[pos]
        letter, digits = p.model[0], p.model[1:]
        yield JudgedQuery(p.model.lower(), model=p.model)
        yield JudgedQuery(f"{letter}-{digits}", model=p.model)
        yield JudgedQuery(f"{p.noun.lower()} {p.model}", (p.noun,), model=p.model)
    for pos in SKU_POSITIONS:
        if pos < len(facts):
            sku = facts[pos].sku
            yield JudgedQuery(sku, sku=sku)
            yield JudgedQuery(sku.lower().replace("-", ""), sku=sku)


def grade(query: JudgedQuery, product: ProductFacts) -> int:
    """The grade of `product` for `query` by the principles of the module docstring."""
    if query.sku is not None:
        return EXACT if product.sku == query.sku else 0
    if query.model is not None and product.model != query.model:
        # a model number names one product line: another model is at best partial
        return PARTIAL if product.noun in query.types else 0
    if query.model is not None and not query.types:
        return EXACT
    if product.noun in query.types:
        named_ok = (
            all(product.attributes.get(k) == v for k, v in query.attributes.items())
            and (query.brand is None or product.brand == query.brand)
            and (query.spec is None or product.spec == query.spec)
        )
        return EXACT if named_ok else PARTIAL
    return PARTIAL if product.noun in query.related else 0


def judgments(facts: Iterable[ProductFacts]) -> Iterator[tuple[str, str, int]]:
    """(query, sku, grade) for every searchable product with a grade above 0."""
    products = list(facts)
    live = [p for p in products if p.searchable]
    for query in (*QUERIES, *_model_queries(products)):
        for p in live:
            g = grade(query, p)
            if g:
                yield query.text, p.sku, g


def judgments_csv(facts: Iterable[ProductFacts]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows(judgments(facts))
    return out.getvalue()
