"""Mapping, synonyms and documents built from rows: pure logic."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from search.index_admin import alias_name, new_index_name
from search.mapping import (
    MAPPING_VERSION,
    document,
    index_mappings,
    index_settings,
    is_searchable,
    load_synonyms,
    with_closed_compounds,
)
from search.sync import bulk_operations

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _row(**over: object) -> dict[str, object]:
    row: dict[str, object] = {
        "id": 7,
        "sku": "SKU-7",
        "name": "Chair",
        "description": "",
        "brand": "Acme",
        "category": "Furniture/Chairs",
        "price_minor": 1999,
        "currency": "USD",
        "stock": 0,
        "attributes": {"color": "red"},
        "status": "active",
        "rating": Decimal("4.5"),
        "version": 3,
        "created_at": NOW,
        "updated_at": NOW,
        "deleted_at": None,
    }
    row.update(over)
    return row


def test_synonyms_file_is_parsed_without_comments(tmp_path: Path) -> None:
    f = tmp_path / "syn.txt"
    f.write_text("# comment\n\nsofa, couch  # trailing\ntv => television\n")
    assert load_synonyms(f) == ["sofa, couch", "tv => television"]
    assert "sofa, couch, settee" in load_synonyms()


def test_settings_inline_synonyms_at_search_time_only() -> None:
    analysis = index_settings(synonyms=["a, b"])["analysis"]
    assert analysis["filter"]["product_synonyms"]["synonyms"] == ["a, b"]
    assert "product_synonyms" in analysis["analyzer"]["product_text_search"]["filter"]
    assert "product_synonyms" not in analysis["analyzer"]["product_text"]["filter"]


def test_mapping_uses_types_both_engines_share() -> None:
    props = index_mappings()["properties"]
    assert props["attributes"]["type"] == "object"  # not flattened / flat_object
    assert props["name"]["fields"]["autocomplete"]["analyzer"] == "autocomplete"
    assert props["price_minor"]["type"] == "long"


def test_document_of_a_row() -> None:
    doc = document(_row())
    assert doc["in_stock"] is False
    assert doc["rating"] == 4.5
    assert doc["category_path"] == "Furniture/Chairs"
    assert doc["created_at"] == NOW.isoformat()


def test_bulk_operations_use_external_versions_and_delete_unsearchable_rows() -> None:
    ops = bulk_operations(
        "idx",
        [_row(), _row(id=8, deleted_at=NOW, version=5), _row(id=9, status="draft")],
        {10: 4},
    )
    assert ops[0] == {
        "index": {"_index": "idx", "_id": "7", "version": 3, "version_type": "external"}
    }
    assert ops[1]["sku"] == "SKU-7"
    assert ops[2] == {
        "delete": {"_index": "idx", "_id": "8", "version": 5, "version_type": "external"}
    }
    assert ops[3]["delete"]["_id"] == "9"
    assert ops[4]["delete"] == {
        "_index": "idx",
        "_id": "10",
        "version": 4,
        "version_type": "external",
    }
    assert not is_searchable(_row(status="archived"))


def test_index_names_are_versioned_behind_the_alias() -> None:
    assert alias_name("shop") == "shop-products"
    assert new_index_name("shop", NOW) == f"shop-products-v{MAPPING_VERSION}-20260102030405000000"


def test_multi_word_synonyms_also_match_their_closed_compound() -> None:
    assert with_closed_compounds(["t shirt, tee, tee shirt", "fry pan => frying pan"]) == [
        "t shirt, tee, tee shirt, tshirt, teeshirt",
        "fry pan, frypan => frying pan",
    ]
    # a glued form the rule already lists is not repeated
    assert with_closed_compounds(["cell phone, cellphone"]) == ["cell phone, cellphone"]
    rules = index_settings()["analysis"]["filter"]["product_synonyms"]["synonyms"]
    assert any("tshirt" in rule.split(", ") for rule in rules)
