"""Feature clients: one interface over the HTTP service and over a local data directory.

The backtest pins one run for its whole life: the run given, or the one the first call resolves, and every
later call passes that `run_id`, so a backfill published mid-backtest cannot change its answers.
"""

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

import httpx
import orjson
import pandas as pd
import pyarrow as pa

from storage.read import FeatureStore
from vocabulary.time import iso


class CrossSectionLike(Protocol):
    """What the engine reads of a cross-section (`storage.read.CrossSection` is one)."""

    @property
    def as_of(self) -> pd.Timestamp: ...
    @property
    def run_id(self) -> str: ...
    @property
    def rows(self) -> pd.DataFrame: ...  # symbol, warm, the requested features; one row per visible symbol
    @property
    def stale(self) -> list[str]: ...


@dataclass(frozen=True)
class PinnedRun:
    run_id: str
    interval: str
    lag: pd.Timedelta
    symbols: list[str]


class FeatureClient(Protocol):
    run_id: str | None  # the pinned run; None until the first call pins one

    def pin(self, interval: str) -> PinnedRun:
        """The run every call reads: the pinned one, else the newest run of `interval` (pinned from now)."""
        ...

    def cross_sections(
        self,
        as_ofs: Sequence[pd.Timestamp],
        features: Sequence[str],
        symbols: Sequence[str] | None,
        *,
        max_staleness: int = 5,
    ) -> list[CrossSectionLike]:
        """One cross-section per `as_of`, in order, from the pinned run (pinning the latest if none yet)."""
        ...

    def close(self) -> None:
        """Release what the client holds open (a connection, for the HTTP one)."""
        ...


def bearer(token: str | None = None) -> dict[str, str] | None:
    """The Authorization header of `token`, else of `ASOF_API_TOKEN` from the environment (none if unset)."""
    token = token if token is not None else os.environ.get("ASOF_API_TOKEN")
    return {"Authorization": f"Bearer {token}"} if token else None


class FeatureServiceError(ConnectionError):
    """The feature service could not be reached or failed a request; the message says which and why."""


RETRIED: Final = (httpx.NetworkError, httpx.ConnectTimeout, httpx.RemoteProtocolError)
"""Transport failures worth another attempt: the request is a read, so repeating it is harmless."""


class HttpFeatures:
    """Features from the HTTP service: one keep-alive connection, `POST /features/batch` in chunks of
    `chunk` instants, `attempts` tries per request with exponential backoff on connection errors."""

    def __init__(
        self,
        base_url: str,
        *,
        run_id: str | None = None,
        dataset: str | None = None,
        token: str | None = None,
        chunk: int = 64,
        attempts: int = 4,
        backoff: float = 0.25,
        timeout: float = 120.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.run_id = run_id
        self.dataset = dataset
        self.chunk = chunk
        self.attempts = attempts
        self.backoff = backoff
        self._http = httpx.Client(
            base_url=self.base_url, timeout=httpx.Timeout(timeout, connect=5.0), headers=bearer(token)
        )

    def pin(self, interval: str) -> PinnedRun:
        if self.run_id is None:
            listed = self._request("GET", "/runs", params={"dataset": self.dataset} if self.dataset else None)
            runs = [run for run in listed.json() if run["interval"] == interval]
            if not runs:
                raise LookupError(f"the service at {self.base_url} has no published run of {interval} bars")
            datasets = sorted({run["dataset"] for run in runs})
            if len(datasets) > 1:
                raise ValueError(
                    f"the service holds several datasets of {interval} bars ({', '.join(datasets)}): name one"
                )
            self.run_id = runs[0]["run_id"]  # /runs lists the newest published first, as the store reads
        run = self._request("GET", f"/runs/{self.run_id}").json()
        return PinnedRun(run["run_id"], run["interval"], pd.Timedelta(run["lag"]), list(run["symbols"]))

    def cross_sections(
        self,
        as_ofs: Sequence[pd.Timestamp],
        features: Sequence[str],
        symbols: Sequence[str] | None,
        *,
        max_staleness: int = 5,
    ) -> list[CrossSectionLike]:
        instants = list(dict.fromkeys(iso(as_of) for as_of in as_ofs))  # each distinct instant asked once
        found: dict[str, _Section] = {}
        for start in range(0, len(instants), self.chunk):
            body = {
                "as_of": instants[start : start + self.chunk],
                "features": list(features),
                "symbols": None if symbols is None else list(symbols),
                "run_id": self.run_id,
                "max_staleness": max_staleness,
            }
            response = self._request("POST", "/features/batch", params={"format": "arrow"}, json=body)
            found |= _sections(response.content, body["as_of"])
            self.run_id = next(iter(found.values())).run_id
        return [found[iso(as_of)] for as_of in as_ofs]

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        """A 200 answer; LookupError on 404, ValueError on 422, FeatureServiceError otherwise."""
        for attempt in range(self.attempts):
            try:
                response = self._http.request(method, path, **kwargs)
                break
            except RETRIED as error:
                if attempt == self.attempts - 1:
                    raise FeatureServiceError(
                        f"cannot reach the feature service at {self.base_url} "
                        f"after {self.attempts} attempts: {error}"
                    ) from None
                time.sleep(self.backoff * 2**attempt)
        if response.status_code == 200:
            return response
        detail = _detail(response)
        if response.status_code == 404:
            raise LookupError(detail)
        if response.status_code == 422:
            raise ValueError(detail)
        raise FeatureServiceError(f"{method} {path} answered {response.status_code}: {detail}")


class LocalFeatures:
    """Features from a data directory, read through `storage.read.FeatureStore` in one batch."""

    def __init__(
        self, data_dir: Path | str, *, run_id: str | None = None, dataset: str | None = None
    ) -> None:
        if not Path(data_dir).is_dir():
            raise ValueError(f"data directory {str(data_dir)!r} does not exist")
        self.data_dir = Path(data_dir)
        self.store = FeatureStore(data_dir)
        self.run_id = run_id
        self.dataset = dataset

    def pin(self, interval: str) -> PinnedRun:
        """The pinned run, else the newest of the dataset (the only one when none is named)."""
        run = self.store.run(self.run_id, self.dataset)
        self.run_id = run.run_id
        return PinnedRun(run.run_id, run.interval, run.lag, list(run.symbols))

    def cross_sections(
        self,
        as_ofs: Sequence[pd.Timestamp],
        features: Sequence[str],
        symbols: Sequence[str] | None,
        *,
        max_staleness: int = 5,
    ) -> list[CrossSectionLike]:
        sections = self.store.batch(
            list(as_ofs),
            symbols=symbols,
            features=list(features),
            run_id=self.run_id,
            max_staleness=max_staleness,
        )
        if sections:
            self.run_id = sections[0].run_id
        return sections

    def close(self) -> None:
        """Nothing to release: the store holds no connection."""


@dataclass(frozen=True)
class _Section:
    """A cross-section decoded from the service's Arrow answer, with the local store's column types."""

    as_of: pd.Timestamp
    run_id: str
    interval: str
    rows: pd.DataFrame
    stale: list[str]


def _sections(content: bytes, instants: list[str]) -> dict[str, _Section]:
    """Split a batch's Arrow stream (every section's rows under a leading `as_of` column, the envelope in
    the schema metadata) back into one cross-section per requested instant (ISO strings, distinct)."""
    table = pa.ipc.open_stream(content).read_all()
    metadata = table.schema.metadata or {}
    envelope = {key: orjson.loads(metadata[key.encode()]) for key in ("run_id", "interval", "stale")}
    rows = table.to_pandas(types_mapper={pa.int8(): pd.Int8Dtype()}.get)  # votes stay nullable integers
    groups = {iso(as_of): group for as_of, group in rows.groupby("as_of", sort=False)}
    empty = rows.iloc[:0]
    return {
        instant: _Section(
            as_of=pd.Timestamp(instant),
            run_id=envelope["run_id"],
            interval=envelope["interval"],
            rows=groups.get(instant, empty).drop(columns="as_of").reset_index(drop=True),
            stale=envelope["stale"][instant],
        )
        for instant in instants
    }


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        detail = response.text
    return detail if isinstance(detail, str) else str(detail)


def open_features(
    service: str | None, data_dir: Path | str | None, *, run_id: str | None = None, dataset: str | None = None
) -> FeatureClient:
    """The HTTP client of `service` when one is given, else the local one of `data_dir`."""
    if service:
        return HttpFeatures(service, run_id=run_id, dataset=dataset)
    return LocalFeatures(data_dir, run_id=run_id, dataset=dataset)
