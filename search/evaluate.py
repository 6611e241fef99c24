"""Offline relevance evaluation: a judgment list, ranking metrics, and a comparison of
polyshop's ranking with a stock baseline, both run on the same documents in one go.

Judgment file (CSV, UTF-8): a header line `query,sku,grade` (further columns, such as
a note, are allowed and ignored), then one judged product per line. `grade` is an
integer 0-10 (the sample set uses 3 exact, 1 partial, 0 irrelevant); a product not
listed for a query counts as grade 0. SKUs, not ids, name products so that a judgment
list survives a reseed. A malformed file is refused as a whole, with the line number.

Metrics, per query and as the mean over queries:
- nDCG@10: gain 2^grade - 1, discount log2(rank + 1), divided by the DCG of the ideal
  ordering of every judged product of that query;
- MRR: 1 / the rank of the first relevant hit (0 if none in the fetched hits);
- recall@100: relevant products in the top 100 / relevant products judged.
"Relevant" means grade >= `relevant_grade` (default 2).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from search.baseline import baseline_body, baseline_index_name, build_baseline
from search.engine import SearchEngine
from search.query import SearchParams, search_body

NDCG_AT = 10
RECALL_AT = 100
MAX_GRADE = 10
DEFAULT_RELEVANT_GRADE = 2
# a query "got worse" when its nDCG@10 dropped by more than this (float noise aside)
WORSE_EPSILON = 1e-9

REQUIRED_COLUMNS = ("query", "sku", "grade")


class JudgmentFileError(ValueError):
    """The judgment file is malformed; `line` is 1-based (0: the file as a whole)."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}" if line else reason)
        self.line = line
        self.reason = reason


# query -> sku -> grade, queries in file order
Judgments = dict[str, dict[str, int]]


def parse_judgments(text: str) -> Judgments:
    rows = csv.reader(text.splitlines())
    try:
        header = next(rows)
    except StopIteration:
        raise JudgmentFileError(
            0, "the file is empty (expected a header query,sku,grade)"
        ) from None
    names = [h.strip().lower() for h in header]
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise JudgmentFileError(
            1, f"header lacks {', '.join(missing)} (expected columns query,sku,grade)"
        )
    qi, si, gi = (names.index(c) for c in REQUIRED_COLUMNS)
    judged: Judgments = {}
    line = 1
    try:
        for line, row in enumerate(rows, start=2):
            if not row or all(not cell.strip() for cell in row):
                continue  # blank lines are fine
            if len(row) < len(names):
                raise JudgmentFileError(line, f"expected {len(names)} columns, found {len(row)}")
            query, sku, raw_grade = row[qi].strip(), row[si].strip(), row[gi].strip()
            if not query:
                raise JudgmentFileError(line, "query is empty")
            if not sku:
                raise JudgmentFileError(line, "sku is empty")
            try:
                grade = int(raw_grade)
            except ValueError:
                raise JudgmentFileError(line, f"grade {raw_grade!r} is not an integer") from None
            if not 0 <= grade <= MAX_GRADE:
                raise JudgmentFileError(line, f"grade {grade} is outside 0..{MAX_GRADE}")
            per_query = judged.setdefault(query, {})
            if sku in per_query and per_query[sku] != grade:
                raise JudgmentFileError(
                    line, f"{query!r} / {sku} graded twice ({per_query[sku]} and {grade})"
                )
            per_query[sku] = grade
    except csv.Error as exc:
        raise JudgmentFileError(line, f"not valid CSV: {exc}") from None
    if not judged:
        raise JudgmentFileError(0, "the file has a header but no judgments")
    return judged


def load_judgments(path: Path) -> Judgments:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise JudgmentFileError(0, f"{path} is not UTF-8 text: {exc.reason}") from None
    return parse_judgments(text)


# -- metrics (pure) -------------------------------------------------------------------


def dcg(grades: Sequence[int]) -> float:
    return float(sum((2**g - 1) / math.log2(rank + 1) for rank, g in enumerate(grades, start=1)))


def ndcg(ranked: Sequence[str], grades: Mapping[str, int], k: int = NDCG_AT) -> float:
    """nDCG@k of a ranked list of SKUs; 0 when nothing is judged above 0."""
    ideal = dcg(sorted(grades.values(), reverse=True)[:k])
    if ideal == 0:
        return 0.0
    return dcg([grades.get(sku, 0) for sku in ranked[:k]]) / ideal


def reciprocal_rank(
    ranked: Sequence[str], grades: Mapping[str, int], relevant: int = DEFAULT_RELEVANT_GRADE
) -> float:
    for rank, sku in enumerate(ranked, start=1):
        if grades.get(sku, 0) >= relevant:
            return 1.0 / rank
    return 0.0


def recall(
    ranked: Sequence[str],
    grades: Mapping[str, int],
    k: int = RECALL_AT,
    relevant: int = DEFAULT_RELEVANT_GRADE,
) -> float | None:
    """Share of the relevant products found in the top k; None if none is relevant."""
    wanted = {sku for sku, g in grades.items() if g >= relevant}
    if not wanted:
        return None
    return len(wanted.intersection(ranked[:k])) / len(wanted)


@dataclass(frozen=True)
class Scores:
    ndcg: float
    mrr: float
    recall: float | None


def score(
    ranked: Sequence[str], grades: Mapping[str, int], relevant: int = DEFAULT_RELEVANT_GRADE
) -> Scores:
    return Scores(
        ndcg(ranked, grades),
        reciprocal_rank(ranked, grades, relevant),
        recall(ranked, grades, relevant=relevant),
    )


def mean_scores(scores: Sequence[Scores]) -> Scores:
    """Means over queries (recall over the queries that have a relevant product)."""
    if not scores:
        return Scores(0.0, 0.0, None)
    recalls = [s.recall for s in scores if s.recall is not None]
    return Scores(
        sum(s.ndcg for s in scores) / len(scores),
        sum(s.mrr for s in scores) / len(scores),
        sum(recalls) / len(recalls) if recalls else None,
    )


@dataclass(frozen=True)
class QueryResult:
    query: str
    polyshop: Scores
    baseline: Scores

    @property
    def delta(self) -> float:
        return self.polyshop.ndcg - self.baseline.ndcg


@dataclass(frozen=True)
class Evaluation:
    queries: list[QueryResult]
    polyshop: Scores
    baseline: Scores
    missing_skus: int  # judged SKUs that are not in the index at all

    @property
    def worse(self) -> list[QueryResult]:
        return sorted((q for q in self.queries if q.delta < -WORSE_EPSILON), key=lambda q: q.delta)

    @property
    def gain(self) -> float | None:
        """Relative nDCG@10 gain over the baseline (0.1 = 10 % better)."""
        if self.baseline.ndcg == 0:
            return None
        return self.polyshop.ndcg / self.baseline.ndcg - 1


def compare(
    judgments: Judgments,
    polyshop: Mapping[str, Sequence[str]],
    baseline: Mapping[str, Sequence[str]],
    *,
    relevant: int = DEFAULT_RELEVANT_GRADE,
    indexed_skus: set[str] | None = None,
) -> Evaluation:
    """Score both rankings (query -> SKUs, best first) against the judgments."""
    results = [
        QueryResult(
            q,
            score(polyshop.get(q, []), grades, relevant),
            score(baseline.get(q, []), grades, relevant),
        )
        for q, grades in judgments.items()
    ]
    judged = {sku for grades in judgments.values() for sku in grades}
    missing = len(judged - indexed_skus) if indexed_skus is not None else 0
    return Evaluation(
        results,
        mean_scores([r.polyshop for r in results]),
        mean_scores([r.baseline for r in results]),
        missing,
    )


# -- running the queries --------------------------------------------------------------


async def rank(
    engine: SearchEngine,
    index: str,
    queries: Sequence[str],
    body_of: Callable[[str, int], dict[str, Any]],
    size: int = RECALL_AT,
) -> dict[str, list[str]]:
    """query -> the SKUs of its top `size` hits."""
    ranked: dict[str, list[str]] = {}
    for q in queries:
        body = body_of(q, size)
        body["_source"] = ["sku"]
        body["track_total_hits"] = False
        response = await engine.search(index, body)
        ranked[q] = [h["_source"]["sku"] for h in response["hits"]["hits"]]
    return ranked


def polyshop_body(q: str, size: int) -> dict[str, Any]:
    """The production query of /search/products for `q`, without facets and highlights."""
    body = search_body(SearchParams(q=q, limit=size))
    for part in ("aggs", "highlight", "post_filter"):
        body.pop(part, None)
    return body


async def evaluate(
    engine: SearchEngine,
    alias: str,
    judgments: Judgments,
    *,
    relevant: int = DEFAULT_RELEVANT_GRADE,
) -> Evaluation:
    """Rank every judged query on the live index and on a baseline index built from the
    same documents (removed afterwards), then compare."""
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S%f")
    name = baseline_index_name(alias, stamp)
    try:
        skus = await build_baseline(engine, alias, name)
        queries = list(judgments)
        ours = await rank(engine, alias, queries, polyshop_body)
        theirs = await rank(engine, name, queries, baseline_body)
    finally:
        await engine.delete_indices([name])
    return compare(judgments, ours, theirs, relevant=relevant, indexed_skus=skus)
