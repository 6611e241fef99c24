"""Benchmarks: `uv run python -m bench.<area>`; figures go to docs/benchmarks.md."""
