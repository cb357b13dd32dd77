"""What comes in from outside: OHLCV files read and cleaned into bar frames (`bars`), and the lake, candidates
and returns files that name a backfill's universe (`lake`)."""
