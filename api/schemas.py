"""Request and response shapes of the HTTP API, with the examples the OpenAPI page shows.

Feature responses are encoded by `api.encode` for speed; the models here document them and a test holds
the encoded JSON to them.
"""

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

import pandas as pd
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationInfo,
    WithJsonSchema,
)

from api.encode import Format
from service.jobs.store import KINDS, JobStatus
from storage.catalog import MADE_BY
from vocabulary.errors import InvalidInput
from vocabulary.features import FEATURES, RATINGS
from vocabulary.rules import DEFAULT_RULES, MAX_HISTORY_BARS, RULE_SETS
from vocabulary.spec import EXECUTORS
from vocabulary.time import INTERVALS, parse_instant, parse_interval

MAX_SYMBOLS = 20_000
MAX_INSTANTS = 1_000  # a long daily schedule per call; bounds the memory one request can take
MAX_STALENESS = 10_000
EXAMPLE_AS_OF = "2024-03-01T00:00:00Z"
EXAMPLE_RUN_ID = "20240302T000000Z-1a2b3c"


def _instant(value: object, info: ValidationInfo) -> pd.Timestamp:
    if not isinstance(
        value, str
    ):  # JSON numbers and the like are not instants, whatever pandas makes of them
        raise ValueError(f"{info.field_name}: expected an ISO-8601 string, not {type(value).__name__}")
    return parse_instant(value, name=info.field_name or "instant")


def _whole_number(value: object) -> object:
    """JSON `true`/`false` are not numbers, though pydantic's lax mode would take them as 1 and 0."""
    if isinstance(value, bool):
        raise ValueError("expected a whole number, not a boolean")
    return value


def _interval(name: str) -> str:
    """A name of INTERVALS; the error says intervals are case-sensitive and which name was meant."""
    try:
        return parse_interval(name).name
    except InvalidInput as error:
        raise ValueError(error.message) from None


def _feature(name: str) -> str:
    if name != "all" and name not in FEATURES:
        raise ValueError(f"unknown feature {name!r}; expected 'all' or names such as {', '.join(RATINGS)}")
    return name


def _split_commas(value: Any) -> Any:
    """`?symbols=A,B&symbols=C` -> [A, B, C]."""
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return [part.strip() for item in value for part in item.split(",") if part.strip()]
    return value


# A string on the wire (what clients send and the OpenAPI shows), a UTC pd.Timestamp once validated
# (parse_instant: a value it cannot parse is a 422 naming the field and the value), ISO text when dumped.
Instant = Annotated[
    pd.Timestamp,
    PlainValidator(_instant),
    PlainSerializer(lambda instant: instant.isoformat(), return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
    Field(
        description="ISO-8601 instant; an offset is converted to UTC, none means UTC, a bare date is 00:00Z",
        examples=[EXAMPLE_AS_OF],
    ),
]
# A string checked by parse_interval rather than a Literal: a near miss (`1w`) is told it is case-sensitive.
Interval = Annotated[
    str,
    AfterValidator(_interval),
    WithJsonSchema(
        {
            "type": "string",
            "enum": list(INTERVALS),
            "description": "bar interval, case-sensitive: 1m is a minute, 1M a month",
        }
    ),
]
RuleSet = Literal[RULE_SETS]  # type: ignore[valid-type]
FeatureName = Annotated[
    str, AfterValidator(_feature), WithJsonSchema({"type": "string", "enum": ["all", *FEATURES]})
]
Symbol = Annotated[str, Field(min_length=1, max_length=64, examples=["BINANCE:BTCUSDT"])]
Symbols = Annotated[
    Annotated[list[Symbol], Field(min_length=1, max_length=MAX_SYMBOLS)] | None,
    BeforeValidator(_split_commas),
    Field(
        description="symbols to return (repeat the parameter or separate with commas); all when absent",
        examples=[["BINANCE:BTCUSDT", "NASDAQ:AAPL"]],
    ),
]
Features = Annotated[
    list[FeatureName] | None,
    BeforeValidator(_split_commas),
    Field(
        description="feature names (comma-separated or repeated), or `all`; the three ratings when absent",
        examples=[list(RATINGS)],
    ),
]
RunId = Annotated[str | None, Field(max_length=64, description="pin one run; the newest run when absent")]
Dataset = Annotated[
    str | None,
    Field(
        max_length=64,
        description="the dataset whose newest run an unpinned read follows; needed when there are several "
        "and no ASOF_DEFAULT_DATASET",
    ),
]
MaxStaleness = Annotated[
    int,
    BeforeValidator(_whole_number),
    Field(
        ge=0,
        le=MAX_STALENESS,
        description="a symbol whose newest row is older than this many intervals is stale",
    ),
]
DataPath = Annotated[str, Field(min_length=1, max_length=4096)]


def store_features(features: list[str] | None) -> str | list[str] | None:
    """The `features` argument of `FeatureStore`: None (ratings), "all", or the names."""
    return "all" if features and "all" in features else features


class ReadOptions(BaseModel):
    """What every feature read accepts besides its instants."""

    model_config = ConfigDict(extra="forbid")

    symbols: Symbols = None
    features: Features = None
    run_id: RunId = None
    dataset: Dataset = None
    max_staleness: MaxStaleness = 5


class FeaturesQuery(ReadOptions):
    as_of: Instant | None = Field(
        None, description="the instant the cross-section stands at; now when absent"
    )
    format: Format = "json"


class BatchIn(ReadOptions):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"as_of": ["2024-01-01", "2024-02-01", "2024-03-01"], "features": list(RATINGS)}]
        }
    )

    as_of: list[Instant] = Field(
        min_length=1, max_length=MAX_INSTANTS, description="instants, one section each"
    )


class HistoryQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: Instant | None = Field(None, description="first `ts` to return")
    end: Instant | None = Field(None, description="last `ts` to return")
    as_of: Instant | None = Field(None, description="rows as known at this instant; now when absent")
    features: Features = None
    run_id: RunId = None
    dataset: Dataset = None
    format: Format = "json"


class BackfillIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"lake": "lake", "interval": "1d", "candidates": "portfolio_candidates.json"},
                {"lake": "lake", "interval": "1h", "symbols": ["BINANCE:BTCUSDT"], "lag": "PT5M"},
                {"lake": "lake", "interval": "1W", "from_interval": "1d"},
                {"lake": "lake", "interval": "15m", "rules": "chart", "history_bars": 700},
            ]
        },
    )

    lake: DataPath = Field(description="OHLCV folder (or one long file), relative to the data directory")
    interval: Interval
    symbols: list[Symbol] | None = Field(None, max_length=MAX_SYMBOLS, description="the universe to backfill")
    candidates: DataPath | None = Field(None, description="portfolio_candidates.json choosing the universe")
    returns: DataPath | None = Field(None, description="returns_matrix.parquet; its columns are the universe")
    start: Instant | None = None
    end: Instant | None = None
    lag: timedelta = Field(
        timedelta(0), ge=timedelta(0), le=timedelta(days=365), description="publication lag after bar close"
    )
    keep_zero_volume: bool = False
    dataset: str | None = Field(
        None,
        max_length=64,
        description="the line of runs this one joins; default `<lake name>_<interval>` (plus `_<rules>` when "
        "the rules are not the scanner's)",
    )
    from_interval: Interval | None = Field(
        None,
        description="build the `interval` bars from the lake's files of this finer interval (e.g. 1d for "
        "1W); only periods the lake covers completely are stored",
    )
    rules: RuleSet = Field(
        DEFAULT_RULES,
        description="TradingView's rules: scanner (the screener's, since December 2024), chart (the chart "
        "indicator's TechnicalRating library) or legacy (the screener's before December 2024)",
    )
    history_bars: int | None = Field(
        None,
        ge=1,
        le=MAX_HISTORY_BARS,
        description="rate each bar from at most this many bars up to it (warm-up included), as the scanner "
        "does intraday; all history when absent",
    )
    executor: Literal[EXECUTORS] = Field(  # type: ignore[valid-type]
        "local",
        description="where it computes: `local` (the server's cores) or `ray` (the Ray cluster the server "
        "is configured with, ASOF_RAY_ADDRESS); the run is the same either way, so a request differing only "
        "here is a duplicate",
    )


class UpdateIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{}, {"lake": "lake"}, {"dataset": "crypto_1d"}]},
    )

    lake: DataPath | None = Field(
        None,
        description="the OHLCV folder (or long file) to read, relative to the data dir; default: the run's",
    )
    dataset: str | None = Field(
        None,
        max_length=64,
        description="with the run id `newest`: the dataset whose newest run to update (default: the default "
        "dataset); with a run id: must be that run's",
    )
    executor: Literal[EXECUTORS] = Field(  # type: ignore[valid-type]
        "local", description="where it computes, as for a backfill"
    )


class CompactIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{}, {"dataset": "crypto_1d"}]})

    dataset: str | None = Field(
        None, max_length=64, description="with the run id `newest`: the dataset whose newest run to compact"
    )


class AuditIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"samples": 50, "seed": 7}]})

    samples: int = Field(20, ge=1, le=1000, description="samples per check")
    seed: int = Field(0, ge=0, description="seed of the samples; the same seed audits the same rows")


Kind = Literal[tuple(KINDS)]  # type: ignore[valid-type]


class Progress(BaseModel):
    done: int = Field(description="symbols done")
    total: int | None = Field(description="symbols in the universe, once known")


class JobOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "job_id": "5f0c2a9b7d1e",
                    "kind": "backfill",
                    "status": "running",
                    "params": {"lake": "/data/lake", "interval": "1d"},
                    "progress": {"done": 200, "total": 1000},
                    "errors": [],
                    "report": {},
                    "run_id": None,
                    "created": "2024-03-02T00:00:00Z",
                    "started": "2024-03-02T00:00:01Z",
                    "finished": None,
                    "message": None,
                }
            ]
        }
    )

    job_id: str
    kind: Kind
    status: JobStatus
    params: dict[str, Any] = Field(
        description="the job's work: a backfill spec, or the audit's run and samples"
    )
    progress: Progress
    errors: list[dict[str, Any]] = Field(description="status and reason of every symbol that failed")
    report: dict[str, Any] = Field(
        description="a backfill's cleaning counts, refusal reasons and timings; an audit's report"
    )
    run_id: str | None = Field(
        description="the run a backfill published (once succeeded) or an audit examines"
    )
    created: datetime
    started: datetime | None
    finished: datetime | None
    message: str | None


class FeatureRow(BaseModel):
    """One symbol's newest visible row; the requested features follow as extra keys (null = not counted)."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "symbol": "BINANCE:BTCUSDT",
                    "ts": "2024-02-29T00:00:00Z",
                    "available_at": "2024-03-01T00:00:00Z",
                    "bars": 2400,
                    "warm": True,
                    "Recommend.All": 0.42,
                    "Recommend.MA": 0.73,
                    "Recommend.Other": 0.09,
                }
            ]
        },
    )

    symbol: str
    ts: datetime
    available_at: datetime
    bars: int
    warm: bool


class CrossSectionOut(BaseModel):
    as_of: datetime = Field(examples=[EXAMPLE_AS_OF])
    run_id: str = Field(examples=[EXAMPLE_RUN_ID])
    dataset: str = Field(examples=["crypto_1d"])
    interval: str = Field(examples=["1d"])
    features: list[str] = Field(examples=[list(RATINGS)])
    rows: list[FeatureRow]
    stale: list[str] = Field(description="symbols left out because their newest row is too old")


class BatchOut(BaseModel):
    results: list[CrossSectionOut] = Field(description="one cross-section per requested as_of, in order")


class HistoryOut(BaseModel):
    symbol: str = Field(examples=["BINANCE:BTCUSDT"])
    as_of: datetime = Field(examples=[EXAMPLE_AS_OF])
    run_id: str = Field(examples=[EXAMPLE_RUN_ID])
    dataset: str = Field(examples=["crypto_1d"])
    interval: str = Field(examples=["1d"])
    features: list[str]
    rows: list[FeatureRow]


class RunOut(BaseModel):
    run_id: str = Field(examples=[EXAMPLE_RUN_ID])
    dataset: str = Field(examples=["crypto_1d"])
    interval: str
    lag: timedelta
    created_at: datetime
    code_version: str
    symbols: list[str]
    start: datetime | None = Field(description="first bar `ts` in the run")
    end: datetime | None = Field(description="last bar `ts` in the run")
    rows: int
    features: list[str]
    params: dict[str, Any]
    made_by: Literal[MADE_BY] = Field(  # type: ignore[valid-type]
        description="backfill; update (its parent's rows plus the new bars'); compact (rows rewritten)"
    )
    parent: str | None = Field(
        description="the run it was made from: an update's parent, a compaction's source"
    )
    ancestors: list[str] = Field(
        description="the chain it was made from, parent first (a run made by updates shares their files)"
    )


class DatasetOut(BaseModel):
    run_id: str = Field(description="the dataset's newest run: what unpinned reads follow")
    interval: str
    newest_bar: datetime | None = Field(description="`ts` of the newest bar it holds")
    age_seconds: float | None = Field(description="seconds since that bar became knowable (`available_at`)")


class HealthOut(BaseModel):
    status: Literal["ok", "unhealthy"] = "ok"
    problems: list[str] = Field(description="what is wrong when unhealthy (503)")
    pid: int = Field(description="the server process that answered")
    writer: bool = Field(description="whether it holds the data dir's writer lock and runs the jobs")
    runs: int | None = Field(description="published runs (null when the catalog cannot be read)")
    newest_run: str | None = Field(examples=[EXAMPLE_RUN_ID])
    datasets: dict[str, DatasetOut] = Field(description="per dataset, its newest run and bar and their age")
    jobs: dict[str, int] | None = Field(description="jobs per state", examples=[{"queued": 0, "running": 1}])


class ErrorOut(BaseModel):
    detail: Any = Field(examples=["unknown run '20240302T000000Z-1a2b3c'"])


class ConflictOut(ErrorOut):
    job_id: str | None = Field(None, description="the job the request conflicts with")
