"""The columns of a run's Parquet files and the row-group size they are written with."""

from typing import Final

import numpy as np
import pyarrow as pa

from vocabulary.features import FEATURES, VOTES

ROW_GROUP_ROWS: Final = 32_768
"""About a month of a 1000-symbol daily universe: a cross-section with the default staleness window reads
one or two row groups, and the file keeps few enough groups for DuckDB to plan a query in well under 1 ms."""

TIMESTAMP: Final = pa.timestamp("us", tz="UTC")
RUN_SCHEMA: Final = pa.schema(
    [
        ("symbol", pa.string()),
        ("ts", TIMESTAMP),
        ("available_at", TIMESTAMP),
        ("bars", pa.int64()),
        ("warm", pa.bool_()),
        *((name, pa.int8() if name in VOTES else pa.float64()) for name in FEATURES),
    ]
)
"""The columns of a run, in order: votes TINYINT (NULL = not counted), the rest DOUBLE (NULL = na)."""


def microseconds(instants: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Stored instants (`TIMESTAMP`) as int64 microseconds since the epoch: how the index and parts sort."""
    return instants.cast(pa.int64()).to_numpy()
