"""Each benchmark run gets a Postgres schema, Redis prefix, search index prefix, bucket,
lake catalog, broker prefix and DuckDB file of its own, and removes them afterwards: a
bench never touches the shop's data, keys or indices, whatever the environment points at.
The names and their removal are `app/scratch_stores.py`'s, shared with the tests."""

from __future__ import annotations

import tempfile
from pathlib import Path

from app.scratch_stores import (
    drop_scratch_indices,
    drop_scratch_state,
    scratch_env,
    scratch_names,
    scratch_stores,
    scratch_tag,
)
from app.settings import Settings

bench_env = scratch_env
drop_bench_state = drop_scratch_state
drop_bench_indices = drop_scratch_indices
bench_stores = scratch_stores


def bench_settings(
    base: Settings, name: str, keep: str | None = None, **overrides: object
) -> Settings:
    """`base` with every store name replaced by one of this run's own. `keep` names a
    data set that outlives the run (the same names each time, for a benchmark split into
    several invocations; the caller drops it when done)."""
    tag = f"bench_{name}_keep_{keep}" if keep else scratch_tag(f"bench_{name}")
    path = Path(tempfile.gettempdir()) / f"{tag}.duckdb"
    return base.model_copy(update={**scratch_names(tag, path), **overrides})
