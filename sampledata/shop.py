"""Sample data: a realistic, deterministic catalog, customers and a year of orders,
streamed into Postgres with COPY (1M products take memory for one row at a time).

Seeding writes no outbox events: a million events would only be a slow way to build the
derived stores. The cache fills itself on reads; the search index and the analytical
copy are built from Postgres by their own rebuild commands after seeding. Seeded
products start at version 1. Everything happens in one transaction, so an interrupted
seed leaves nothing behind and `--if-empty` can simply run again.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import psycopg

from kit import passwords
from storage import locks

CURRENCY = "USD"
BATCH = 1000  # rows between progress reports

# top -> sub -> leaves; a leaf is "Singular" (plural adds "s") or "Singular|Plural"
CATEGORY_TREE: dict[str, dict[str, list[str]]] = {
    "Furniture": {
        "Chairs": ["Office Chair", "Dining Chair", "Armchair"],
        "Tables": ["Desk", "Dining Table", "Coffee Table"],
        "Storage": ["Bookcase", "Wardrobe", "Shelving Unit"],
    },
    "Electronics": {
        "Audio": ["Headphone", "Speaker", "Soundbar"],
        "Computers": ["Laptop", "Monitor", "Keyboard"],
        "Phones": ["Smartphone", "Phone Case", "Charger"],
    },
    "Kitchen": {
        "Cookware": ["Frying Pan", "Saucepan", "Dutch Oven"],
        "Appliances": ["Blender", "Coffee Maker", "Toaster"],
        "Tableware": ["Plate", "Mug", "Glass|Glasses"],
    },
    "Outdoor": {
        "Garden": ["Planter", "Pruner", "Garden Hose"],
        "Camping": ["Tent", "Sleeping Bag", "Backpack"],
        "Grills": ["Gas Grill", "Charcoal Grill", "Grill Brush|Grill Brushes"],
    },
    "Clothing": {
        "Men": ["T-Shirt", "Jacket", "Jeans|Jeans"],
        "Women": ["Dress|Dresses", "Sweater", "Coat"],
        "Shoes": ["Sneaker", "Boot", "Sandal"],
    },
    "Sports": {
        "Fitness": ["Yoga Mat", "Dumbbell", "Resistance Band"],
        "Cycling": ["Bike Helmet", "Bike Light", "Bike Lock"],
        "Team Sports": ["Football", "Basketball", "Jersey"],
    },
    "Home": {
        "Lighting": ["Desk Lamp", "Floor Lamp", "Pendant Light"],
        "Textiles": ["Rug", "Cushion", "Blanket"],
        "Decor": ["Vase", "Wall Clock", "Picture Frame"],
    },
    "Toys": {
        "Building": ["Block Set", "Marble Run", "Construction Kit"],
        "Games": ["Board Game", "Puzzle", "Card Game"],
        "Outdoor Play": ["Kite", "Water Blaster", "Scooter"],
    },
}

BRANDS: dict[str, list[str]] = {
    "Furniture": ["Nordwood", "Oakhaven", "Sitwell", "Lumo", "Casa Verde", "Brightline"],
    "Electronics": ["Voltix", "Soundwave", "Pixelcore", "Nexa", "Auralis", "Quantum"],
    "Kitchen": ["Chef's Pride", "Copperleaf", "Brewster", "Panworks", "Kitchenly", "Saveur"],
    "Outdoor": ["Trailhead", "Greenfield", "Summit", "Emberline", "Wildroot", "Campfire"],
    "Clothing": ["Threadline", "Urbanite", "Northstitch", "Loom & Co", "Solace", "Denimwerk"],
    "Sports": ["Stridex", "Peakform", "Velo", "Ironclad", "Flexa", "Goalpost"],
    "Home": ["Hearth", "Lumina", "Softnest", "Aura Living", "Woven", "Tidehome"],
    "Toys": ["Playwise", "Brickly", "Funforge", "Tinker Tots", "Kiddo", "Jumpstart"],
}

PRICE_RANGE: dict[str, tuple[int, int]] = {  # whole dollars
    "Furniture": (39, 1499),
    "Electronics": (9, 2499),
    "Kitchen": (5, 399),
    "Outdoor": (9, 899),
    "Clothing": (9, 299),
    "Sports": (5, 499),
    "Home": (5, 599),
    "Toys": (5, 199),
}

MATERIALS: dict[str, list[str]] = {
    "Furniture": ["oak", "walnut", "steel", "mesh", "leather", "pine"],
    "Electronics": ["aluminium", "plastic", "glass", "silicone"],
    "Kitchen": ["stainless steel", "cast iron", "ceramic", "copper", "glass"],
    "Outdoor": ["nylon", "polyester", "steel", "aluminium", "rubber"],
    "Clothing": ["cotton", "wool", "linen", "denim", "polyester"],
    "Sports": ["rubber", "neoprene", "carbon", "foam", "steel"],
    "Home": ["cotton", "wool", "ceramic", "glass", "brass", "jute"],
    "Toys": ["wood", "plastic", "cardboard", "foam"],
}
SIZES: dict[str, list[str]] = {
    "Clothing": ["XS", "S", "M", "L", "XL", "XXL"],
    "Furniture": ["small", "medium", "large"],
    "Home": ["small", "medium", "large"],
}
COLORS = ["black", "white", "grey", "navy", "red", "green", "beige", "brown", "blue", "yellow"]
ADJECTIVES = [
    "Classic", "Modern", "Ergonomic", "Compact", "Premium", "Essential", "Deluxe", "Eco",
    "Urban", "Vintage", "Pro", "Lightweight", "Heavy-Duty", "Smart", "Cozy", "Sleek",
    "Rustic", "Nordic", "Foldable", "Wireless",
]  # fmt: skip
PRAISE = [
    "Built to last", "Designed for everyday use", "A customer favourite",
    "Thoughtfully engineered", "Made with care", "Easy to clean and maintain",
]  # fmt: skip
FIRST_NAMES = [
    "Emma", "Liam", "Olivia", "Noah", "Ava", "Lucas", "Mia", "Leon", "Sofia", "Elias",
    "Hannah", "Mateo", "Lea", "Finn", "Zoe", "Jonas", "Aisha", "Yuki", "Chen", "Priya",
]  # fmt: skip
LAST_NAMES = [
    "Smith", "Müller", "Garcia", "Rossi", "Nguyen", "Kowalski", "Johnson", "Silva",
    "Dubois", "Andersson", "Tanaka", "Kim", "Patel", "Schmidt", "Brown", "Novak",
]  # fmt: skip
COUNTRIES = ["US"] * 6 + ["DE"] * 3 + ["GB"] * 2 + ["FR", "NL", "SE", "PL", "ES", "IT", "CA"]


@dataclass(frozen=True)
class Leaf:
    path: str  # "Furniture/Chairs/Office Chairs"
    top: str
    noun: str  # "Office Chair"


def leaves() -> list[Leaf]:
    result = []
    for top, subs in CATEGORY_TREE.items():
        for sub, names in subs.items():
            for name in names:
                singular, _, plural = name.partition("|")
                result.append(Leaf(f"{top}/{sub}/{plural or singular + 's'}", top, singular))
    return result


class Progress(Protocol):
    def start(self, stage: str, total: int) -> None: ...
    def advance(self, stage: str, n: int) -> None: ...


class _Silent:
    def start(self, stage: str, total: int) -> None:
        pass

    def advance(self, stage: str, n: int) -> None:
        pass


DEMO_CUSTOMERS = 5


@dataclass(frozen=True)
class SeedResult:
    skipped: bool
    products: int = 0
    customers: int = 0
    orders: int = 0
    order_lines: int = 0
    product_offset: int = 0  # products that were there before (sku numbers start here)
    demo_emails: tuple[str, ...] = ()  # customers who sign in with passwords.DEMO_PASSWORD


def _price_minor(rng: random.Random, top: str) -> int:
    low, high = PRICE_RANGE[top]
    dollars = math.exp(rng.uniform(math.log(low), math.log(high)))  # many cheap, few dear
    cents = rng.choice((99, 99, 99, 49, 0, 95))
    return max(1, int(dollars)) * 100 + cents


# Sizes in product names, the way real catalogs write them: one quantity in several
# spellings ('27"', "27 in.", "27-inch"), so search has to normalise units. A leaf
# noun -> (unit, values); "dim" values are "AxB" dimensions in the unit after the colon.
SPECS: dict[str, tuple[str, tuple[str, ...]]] = {
    "Monitor": ("inch", ("24", "27", "32")),
    "Laptop": ("inch", ("13", "14", "16")),
    "Frying Pan": ("inch", ("8", "10", "12")),
    "Planter": ("inch", ("8", "12", "16")),
    "Saucepan": ("quart", ("1", "2", "3")),
    "Dutch Oven": ("quart", ("4", "6", "7")),
    "Mug": ("ounce", ("12", "16")),
    "Garden Hose": ("foot", ("25", "50", "100")),
    "Backpack": ("liter", ("20", "30", "40")),
    "Yoga Mat": ("mm", ("4", "6", "8")),
    "Dumbbell": ("pound", ("5", "10", "20")),
    "Charger": ("watt", ("20", "45", "65")),
    "Speaker": ("watt", ("20", "40", "60")),
    "Picture Frame": ("dim:inch", ("4x6", "5x7", "8x10")),
    "Rug": ("dim:foot", ("3x5", "5x8", "8x10")),
    "Blanket": ("dim:inch", ("50x60", "60x80")),
}
SPELLINGS: dict[str, tuple[str, ...]] = {
    "inch": ('{v}"', "{v} in.", "{v}-inch", "{v}in", "{v} Inch"),
    "foot": ("{v} ft.", "{v}ft", "{v}-foot", "{v}'", "{v} feet"),
    "quart": ("{v} qt.", "{v}-quart", "{v}qt", "{v} Quart"),
    "ounce": ("{v} oz.", "{v}oz", "{v}-ounce", "{v} fl oz"),
    "liter": ("{v}L", "{v} liter", "{v}-liter", "{v} l"),
    "mm": ("{v}mm", "{v} mm"),
    "pound": ("{v} lb.", "{v}lb", "{v} lbs", "{v}-pound"),
    "watt": ("{v}W", "{v} watt", "{v}-watt", "{v} W"),
}


def spec_text(rng: random.Random, unit: str, value: str) -> str:
    """`value` of `unit` in one of the spellings catalogs use ("8x10" for dimensions)."""
    if unit.startswith("dim:"):
        a, b = value.split("x")
        form = rng.choice(("{a}x{b}", "{a} x {b}", "{a}{u} x {b}{u}", "{a}x{b}{u}"))
        u = rng.choice(SPELLINGS[unit[4:]]).format(v="")
        return form.format(a=a, b=b, u=u if form.count("{u}") == 1 else u.rstrip("."))
    return rng.choice(SPELLINGS[unit]).format(v=value)


@dataclass(frozen=True)
class ProductFacts:
    """What a sample product is, beside its row: the ground truth judgments use."""

    sku: str
    noun: str  # the product type, the leaf noun ("Office Chair")
    brand: str
    model: str
    attributes: dict[str, str]
    spec: str | None  # the size's canonical value ("27", "8x10"), if the type has one
    searchable: bool


def _products(
    rng: random.Random, n: int, offset: int, now: datetime
) -> Iterator[tuple[tuple[Any, ...], ProductFacts]]:
    tree = leaves()
    for i in range(offset, offset + n):
        leaf = rng.choice(tree)
        brand = rng.choice(BRANDS[leaf.top])
        adjective = rng.choice(ADJECTIVES)
        model = f"{rng.choice('ABCDEFGHKLMNPRSTVXZ')}{rng.randint(1, 99) * 10}"
        color = rng.choice(COLORS)
        material = rng.choice(MATERIALS[leaf.top])
        attributes = {"color": color, "material": material}
        if leaf.top in SIZES:
            attributes["size"] = rng.choice(SIZES[leaf.top])
        name = f"{brand} {adjective} {leaf.noun} {model}"
        spec = None
        if leaf.noun in SPECS:
            # its own generator: the main stream (and so every other seeded value) stays
            # what it was before sizes were added
            spec_rng = random.Random(f"spec-{i}")
            unit, values = SPECS[leaf.noun]
            spec = spec_rng.choice(values)
            name = f"{name}, {spec_text(spec_rng, unit, spec)}"
        description = (
            f"The {adjective.lower()} {leaf.noun.lower()} from {brand} in {color}, "
            f"made of {material}. {rng.choice(PRAISE)}."
        )
        roll = rng.random()
        status = "active" if roll < 0.95 else ("draft" if roll < 0.98 else "archived")
        stock = 0 if rng.random() < 0.05 else int(rng.paretovariate(1.2) * 10) % 1000
        rating = None if rng.random() < 0.15 else round(min(5.0, max(1.0, rng.gauss(4.1, 0.6))), 1)
        created = now - timedelta(days=rng.uniform(30, 730))
        sku = f"PS-{i:08d}"
        row = (
            sku,
            name,
            description,
            brand,
            leaf.path,
            _price_minor(rng, leaf.top),
            CURRENCY,
            stock,
            json.dumps(attributes),
            status,
            rating,
            1,
            created,
            created,
        )
        yield row, ProductFacts(sku, leaf.noun, brand, model, attributes, spec, status == "active")


def product_rows(
    rng: random.Random, n: int, offset: int, now: datetime
) -> Iterator[tuple[Any, ...]]:
    """Rows for COPY products (see PRODUCT_COLUMNS), one at a time."""
    for row, _facts in _products(rng, n, offset, now):
        yield row


def product_facts(products: int, seed: int = 42, offset: int = 0) -> Iterator[ProductFacts]:
    """The facts of the products `seed(products=..., seed=...)` adds to a catalog of
    `offset` products (the product stream is drawn first from the seed's generator)."""
    rng = random.Random(seed)
    for _row, facts in _products(rng, products, offset, datetime.now(UTC)):
        yield facts


PRODUCT_COLUMNS = (
    "sku, name, description, brand, category, price_minor, currency, stock, attributes,"
    " status, rating, version, created_at, updated_at"
)


def customer_rows(
    rng: random.Random, n: int, offset: int, now: datetime
) -> Iterator[tuple[Any, ...]]:
    for i in range(offset, offset + n):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        created = now - timedelta(days=rng.uniform(0, 730))
        email = f"{first}.{last}.{i}@example.com".lower().replace("ü", "ue")
        yield (email, f"{first} {last}", rng.choice(COUNTRIES), created, created)


def _order_status(rng: random.Random, age: timedelta) -> str:
    """Old orders have mostly shipped; recent ones are still pending or paid."""
    roll = rng.random()
    if age > timedelta(days=14):
        return "shipped" if roll < 0.90 else ("cancelled" if roll < 0.97 else "paid")
    if age > timedelta(days=3):
        return (
            "shipped"
            if roll < 0.60
            else ("paid" if roll < 0.85 else ("cancelled" if roll < 0.93 else "pending"))
        )
    return (
        "pending"
        if roll < 0.45
        else ("paid" if roll < 0.85 else ("shipped" if roll < 0.95 else "cancelled"))
    )


def _order_time(rng: random.Random, now: datetime) -> datetime:
    # a growing shop: later days are busier (density rises linearly over the year);
    # evenings busier than nights
    days_ago = 365 * (1 - math.sqrt(rng.random()))
    day = (now - timedelta(days=days_ago)).replace(hour=0, minute=0, second=0, microsecond=0)
    hour = rng.choices(
        range(24), weights=[1, 1, 1, 1, 1, 2, 3, 4, 5, 6, 6, 6, 7, 7, 6, 6, 6, 7, 8, 9, 9, 7, 4, 2]
    )[0]
    when = day + timedelta(hours=hour, seconds=rng.uniform(0, 3600))
    return min(when, now - timedelta(seconds=1))


def order_rows(
    rng: random.Random,
    n: int,
    now: datetime,
    customer_ids: Sequence[int],
    product_ids: Sequence[int],
) -> Iterator[tuple[tuple[Any, ...], list[tuple[Any, ...]]]]:
    """(order row, its line rows) for the staging tables; products and customers are
    picked with a long tail (a few are popular, most are not)."""
    for number in range(n):
        created = _order_time(rng, now)
        status = _order_status(rng, now - created)
        customer = customer_ids[int(len(customer_ids) * rng.random() ** 1.5)]
        n_lines = min(len(product_ids), rng.choices((1, 2, 3, 4, 5), (55, 25, 12, 5, 3))[0])
        chosen: set[int] = set()
        while len(chosen) < n_lines:
            chosen.add(product_ids[int(len(product_ids) * rng.random() ** 2.5)])
        lines = [
            (number, line_no, product_id, rng.choices((1, 2, 3), (80, 15, 5))[0])
            for line_no, product_id in enumerate(sorted(chosen), start=1)
        ]
        yield (number, customer, status, created), lines


def seed(
    conn: psycopg.Connection[Any],
    *,
    products: int,
    customers: int,
    orders: int,
    seed: int = 42,
    if_empty: bool = False,
    progress: Progress | None = None,
    now: datetime | None = None,
) -> SeedResult:
    """Load sample data in one transaction. With `if_empty`, do nothing if the catalog
    already has products (several replicas starting at once: the first one seeds)."""
    bar = progress or _Silent()
    now = now or datetime.now(UTC)
    rng = random.Random(seed)
    with conn.transaction():
        conn.execute(f"SELECT pg_advisory_xact_lock({locks.KEY_SQL})", ("seed",))
        if if_empty and conn.execute("SELECT EXISTS (SELECT 1 FROM products)").fetchone() == (
            True,
        ):
            return SeedResult(skipped=True)
        product_offset = _count(conn, "products")
        customer_offset = _count(conn, "customers")

        bar.start("products", products)
        _copy(
            conn,
            f"COPY products ({PRODUCT_COLUMNS}) FROM STDIN",
            product_rows(rng, products, product_offset, now),
            bar,
            "products",
        )
        bar.start("customers", customers)
        _copy(
            conn,
            "COPY customers (email, name, country, created_at, updated_at) FROM STDIN",
            customer_rows(rng, customers, customer_offset, now),
            bar,
            "customers",
        )

        demo = _demo_passwords(conn, customer_offset, min(customers, DEMO_CUSTOMERS))

        n_lines = 0
        if orders:
            n_lines = _load_orders(conn, rng, orders, now, bar)
        for table in ("products", "customers", "orders", "order_lines"):
            conn.execute(f"ANALYZE {table}")
    return SeedResult(
        False, products, customers, orders if n_lines else 0, n_lines, product_offset, demo
    )


def _demo_passwords(conn: psycopg.Connection[Any], offset: int, n: int) -> tuple[str, ...]:
    """The first `n` new customers get the documented demo password (each its own salt),
    so the storefront can be tried with e-mail and password; the others have none."""
    rows = conn.execute(
        "SELECT id, email FROM customers ORDER BY id OFFSET %s LIMIT %s", (offset, n)
    ).fetchall()
    for customer_id, _ in rows:
        conn.execute(
            "UPDATE customers SET password_hash = %s WHERE id = %s",
            (passwords.hash_password(passwords.DEMO_PASSWORD), customer_id),
        )
    return tuple(email for _, email in rows)


def _load_orders(
    conn: psycopg.Connection[Any], rng: random.Random, n: int, now: datetime, bar: Progress
) -> int:
    """Orders go through staging tables: order lines need the orders' ids, which only
    exist once the identity sequence hands them out; prices and totals come from the
    products in SQL, so a total always equals the sum of its lines."""
    customer_ids = [r[0] for r in conn.execute("SELECT id FROM customers ORDER BY id")]
    product_ids = [
        r[0] for r in conn.execute("SELECT id FROM products WHERE deleted_at IS NULL ORDER BY id")
    ]
    if not customer_ids or not product_ids:
        raise ValueError("orders need at least one customer and one product")
    # one staging row per line, its order's fields repeated: a connection runs one COPY
    conn.execute(
        "CREATE TEMP TABLE seed_lines (n bigint, customer_id bigint, status text,"
        " created_at timestamptz, line_no int, product_id bigint, quantity int) ON COMMIT DROP"
    )
    bar.start("orders", n)
    with conn.cursor().copy("COPY seed_lines FROM STDIN") as copy:
        for done, (order, lines) in enumerate(
            order_rows(rng, n, now, customer_ids, product_ids), start=1
        ):
            for line in lines:
                copy.write_row((*order, *line[1:]))
            if done % BATCH == 0:
                bar.advance("orders", BATCH)
    bar.advance("orders", n % BATCH)
    conn.execute(
        """
        CREATE TEMP TABLE seed_orders ON COMMIT DROP AS
        SELECT l.n, min(l.customer_id) AS customer_id, min(l.status) AS status,
               min(l.created_at) AS created_at, sum(p.price_minor * l.quantity) AS total,
               nextval(pg_get_serial_sequence('orders', 'id')) AS id
          FROM seed_lines l JOIN products p ON p.id = l.product_id
         GROUP BY l.n
        """
    )
    conn.execute(
        """
        INSERT INTO orders (id, customer_id, status, currency, total_minor, version,
                            created_at, updated_at)
        OVERRIDING SYSTEM VALUE
        SELECT o.id, o.customer_id, o.status, %s, o.total, v.version, o.created_at,
               o.created_at + CASE o.status WHEN 'pending' THEN interval '0'
                                            WHEN 'paid' THEN interval '20 minutes'
                                            ELSE interval '2 days' END
          FROM seed_orders o
          JOIN (VALUES ('pending', 1), ('paid', 2), ('cancelled', 2), ('shipped', 3))
               AS v(status, version) ON v.status = o.status
         ORDER BY o.n
        """,
        (CURRENCY,),
    )
    cur = conn.execute(
        """
        INSERT INTO order_lines (order_id, line_no, product_id, sku, name, quantity,
                                 unit_price_minor, currency)
        SELECT o.id, l.line_no, p.id, p.sku, p.name, l.quantity, p.price_minor, p.currency
          FROM seed_lines l JOIN seed_orders o ON o.n = l.n JOIN products p ON p.id = l.product_id
        """
    )
    return cur.rowcount


def _copy(
    conn: psycopg.Connection[Any],
    statement: str,
    rows: Iterator[tuple[Any, ...]],
    bar: Progress,
    stage: str,
) -> None:
    done = 0
    with conn.cursor().copy(statement) as copy:
        for row in rows:
            copy.write_row(row)
            done += 1
            if done % BATCH == 0:
                bar.advance(stage, BATCH)
    bar.advance(stage, done % BATCH)


def _count(conn: psycopg.Connection[Any], table: str) -> int:
    row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(row[0]) if row else 0
