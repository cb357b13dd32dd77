"""Point-in-time feature reads. Every one goes through `storage.read.FeatureStore`, the one read function
that applies the point-in-time rule; this module only parses requests and encodes answers."""

from typing import Annotated

import pandas as pd
from fastapi import APIRouter, Query, Response

from api.encode import MEDIA_TYPES, Format, cross_section_documents, frame_columns, json_rows, stack
from api.errors import ERROR_RESPONSES
from api.reads import ReadLimits
from api.responses import json_response, table_response
from api.schemas import (
    BatchIn,
    BatchOut,
    CrossSectionOut,
    FeaturesQuery,
    HistoryOut,
    HistoryQuery,
    ReadOptions,
    store_features,
)
from api.state import Cache, Reads, Store
from storage.catalog import RunInfo
from storage.read import FeatureStore, resolve_features
from vocabulary.time import iso, parse_interval

router = APIRouter(tags=["features"])
_TABLE_FORMATS = {
    200: {
        "content": {MEDIA_TYPES["arrow"]: {}, MEDIA_TYPES["csv"]: {}},
        "description": "JSON, or with `format=arrow|csv` the rows as an Arrow IPC stream or CSV",
    }
}
_RESPONSES = {**ERROR_RESPONSES, **_TABLE_FORMATS}


def _now() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC")


def _symbols(run: RunInfo, symbols: list[str] | None) -> int:
    return len(run.symbols) if symbols is None else len(set(symbols))


def _features(features: list[str] | None) -> list[str]:
    """The feature names a read answers with, resolved once: the limit, the answer and its key use them."""
    return resolve_features(store_features(features))


def _question(
    kind: str, run: RunInfo, instants: list[pd.Timestamp], options: ReadOptions, names: list[str], form: str
) -> tuple:
    """What an answer depends on: the same question to the same (immutable) run has the same bytes."""
    symbols = None if options.symbols is None else tuple(sorted(set(options.symbols)))
    moments = tuple(iso(instant) for instant in instants)  # exact whatever the unit (years past 2262)
    return (kind, run.run_id, moments, symbols, tuple(names), options.max_staleness, form)


@router.get("/features", response_model=CrossSectionOut, responses=_RESPONSES)
def cross_section(
    query: Annotated[FeaturesQuery, Query()], store: Store, reads: Reads, answers: Cache
) -> Response:
    """The cross-section as of `as_of`: per symbol, its newest row with `available_at <= as_of`, unless
    stale (listed under `stale` instead)."""
    run = store.run(query.run_id, query.dataset)  # resolved once: the limit and the read see the same run
    names = _features(query.features)
    reads.check(1, _symbols(run, query.symbols), len(names))
    if query.as_of is None:  # "now" is never asked again: nothing to keep
        return _cross_section(query, store, reads, run, names)
    question = _question("section", run, [query.as_of], query, names, query.format)
    if (answer := answers.get(question)) is not None:
        return answer.response()
    return answers.keep(question, _cross_section(query, store, reads, run, names))


def _cross_section(
    query: FeaturesQuery, store: FeatureStore, reads: ReadLimits, run: RunInfo, names: list[str]
) -> Response:
    with reads.slot():  # encoding included: it is where an answer's memory peaks
        section = store.cross_section(
            query.as_of or _now(),
            symbols=query.symbols,
            features=names,
            run_id=run.run_id,
            max_staleness=query.max_staleness,
        )
        if query.format == "json":
            return json_response(cross_section_documents([section])[0])
        metadata = {
            "as_of": iso(section.as_of),
            "run_id": section.run_id,
            "dataset": section.dataset,
            "interval": section.interval,
        }
        return table_response(section.rows, query.format, metadata | {"stale": section.stale})


@router.post("/features/batch", response_model=BatchOut, responses=_RESPONSES)
def batch(
    body: BatchIn, store: Store, reads: Reads, answers: Cache, format: Annotated[Format, Query()] = "json"
) -> Response:
    """One cross-section per `as_of`, all from one run (a whole rebalance schedule in one call). Arrow and
    CSV stack the rows under a leading `as_of` column."""
    run = store.run(body.run_id, body.dataset)
    names = _features(body.features)
    reads.check(len(body.as_of), _symbols(run, body.symbols), len(names))
    question = _question("batch", run, body.as_of, body, names, format)
    if (answer := answers.get(question)) is not None:
        return answer.response()
    return answers.keep(question, _batch(body, store, reads, run, names, format))


def _batch(
    body: BatchIn, store: FeatureStore, reads: ReadLimits, run: RunInfo, names: list[str], format: Format
) -> Response:
    with reads.slot():
        sections = store.batch(
            body.as_of,
            symbols=body.symbols,
            features=names,
            run_id=run.run_id,
            max_staleness=body.max_staleness,
        )
        if format == "json":
            return json_response({"results": cross_section_documents(sections)})
        rows = stack([section.rows for section in sections], [section.as_of for section in sections], "as_of")
        metadata = {
            "run_id": sections[0].run_id,
            "dataset": sections[0].dataset,
            "interval": sections[0].interval,
            "stale": {iso(section.as_of): section.stale for section in sections},
        }
        return table_response(rows, format, metadata)


@router.get("/features/{symbol}/history", response_model=HistoryOut, responses=_RESPONSES)
def history(symbol: str, query: Annotated[HistoryQuery, Query()], store: Store, reads: Reads) -> Response:
    """One symbol's rows with `ts` in `[start, end]`, as known at `as_of` (now when absent)."""
    as_of = query.as_of or _now()
    run = store.run(query.run_id, query.dataset)  # pinned (404 if unknown) or the dataset's newest
    names = _features(query.features)
    reads.check(_bars_between(run, query.start, query.end), 1, len(names))
    with reads.slot():
        rows = store.history(
            symbol, start=query.start, end=query.end, as_of=as_of, run_id=run.run_id, features=names
        )
        metadata = {
            "symbol": symbol,
            "as_of": iso(as_of),
            "run_id": run.run_id,
            "dataset": run.spec.dataset,
            "interval": run.interval,
        }
        if query.format == "json":
            return json_response(metadata | {"features": names, "rows": json_rows([frame_columns(rows)])[0]})
        return table_response(rows, query.format, metadata)


def _bars_between(run: RunInfo, start: pd.Timestamp | None, end: pd.Timestamp | None) -> int:
    """At most how many bars of one symbol the run holds with `ts` in [start, end]."""
    if run.start is None or run.end is None:
        return 0
    first = run.start if start is None else max(start, run.start)
    last = run.end if end is None else min(end, run.end)
    return parse_interval(run.interval).bars_between(first, last)
