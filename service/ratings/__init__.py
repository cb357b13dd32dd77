"""TradingView's Technical Ratings rebuilt bar by bar (RATINGS_SPEC.md): the Pine primitives (`pine`), the
panel engine that rates many symbols at once (`engine`), and the per-asset pandas-ta oracle it is held to
(`oracle`). The feature names are the ground floor's (`vocabulary.features`)."""
