"""The baseline `make bench` holds `asof backfill` against: a plain per-symbol script, as one would write it
with pandas-ta. For each file of the lake: read it, clean it (`clean_bars`), rate it with the project's
pandas-ta oracle (`service.ratings.oracle.rate_frame`), then write every row into one Parquet file.

Run as its own process, like the CLI it is compared with: `python -m bench.baseline LAKE OUT.parquet`.
"""

import sys
from pathlib import Path

import pandas as pd

from service.ratings.oracle import rate_frame
from service.sources.bars import clean_bars, read_bars


def main(lake: Path, out: Path) -> None:
    frames = []
    for file in sorted(lake.glob("*.parquet")):
        exchange, ticker, _ = file.stem.split("_", 2)
        bars, _ = clean_bars(read_bars(file))
        rated = rate_frame(bars)
        rated.insert(0, "symbol", f"{exchange}:{ticker}")
        frames.append(rated)
    pd.concat(frames, ignore_index=True).to_parquet(out, compression="zstd", index=False)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
