# Every target does its own set-up: uv (installed with pip when missing), then the locked environment.
# python3 is 3.12 through .python-version (pyenv).
UV := python3 -m uv
RUN := $(UV) run --frozen

.PHONY: setup demo test bench lint serve clean

setup:
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	@$(UV) sync --frozen --quiet
	@$(RUN) python -m compileall -q -j 0 api backtest bench cli service storage vocabulary

demo: setup
	$(RUN) asof demo

test: setup
	$(RUN) ruff check .
	$(RUN) lint-imports
	$(RUN) pytest

bench: setup
	$(RUN) python -m bench

lint: setup
	$(RUN) ruff check .
	$(RUN) ruff format --check .

serve: setup
	$(RUN) asof serve

clean:
	rm -rf data .venv .pytest_cache .hypothesis
