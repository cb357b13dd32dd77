"""`make bench`: every benchmark section, each printing its figures and ratios measured side by side.

`python -m bench [section ...]` runs the named sections only.
"""

import importlib
import sys

SECTIONS = ("ratings", "store", "backfill", "update", "http", "load", "backtest")


def main(argv: list[str]) -> None:
    for name in argv or SECTIONS:
        if name not in SECTIONS:
            raise SystemExit(f"unknown bench section {name!r}; expected one of {', '.join(SECTIONS)}")
        print(f"\n== {name} ==", flush=True)
        importlib.import_module(f"bench.{name}").main()


if __name__ == "__main__":
    main(sys.argv[1:])
