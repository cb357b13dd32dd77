"""The ground floor: the words every layer shares (feature names, intervals and instants, the backfill
specification, the error kinds). It imports nothing else of asof, so any layer may import it."""
