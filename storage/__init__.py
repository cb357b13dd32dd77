"""Point-in-time feature storage: immutable runs as Parquet (`runs`), the catalog that publishes them
(`catalog`), and the one as-of read (`read`, with its in-memory index in `index`)."""
