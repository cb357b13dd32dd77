# asof feature service: Python 3.12 slim, locked install, non-root, data on a volume.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_LINK_MODE=copy \
    UV_PROJECT_ENVIRONMENT=/app/.venv

RUN pip install --no-cache-dir uv

WORKDIR /app
# Dependencies first, from the lock file only, so code changes do not rebuild them.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY api ./api
COPY backtest ./backtest
COPY cli ./cli
COPY service ./service
COPY storage ./storage
COPY vocabulary ./vocabulary
# The project is installed editable, and /app is read-only at run time: compile its bytecode now, so no
# process (server, worker, job child) compiles it at every start. Dependencies are compiled by uv
# (`compile-bytecode` in pyproject.toml).
RUN uv sync --frozen --no-dev \
    && .venv/bin/python -m compileall -q -j 0 api backtest cli service storage vocabulary

RUN useradd --create-home --uid 10001 asof && mkdir /data /app/numba-cache \
    && chown asof:asof /data /app/numba-cache
USER asof
ENV PATH=/app/.venv/bin:$PATH \
    ASOF_DATA_DIR=/data \
    ASOF_HOST=0.0.0.0 \
    ASOF_PORT=8000 \
    MPLCONFIGDIR=/tmp/matplotlib \
    NUMBA_CACHE_DIR=/app/numba-cache
# Compile the ratings engine once at build time into NUMBA_CACHE_DIR, so neither the service nor a backfill
# child compiles at run time (the code itself stays read-only).
RUN python -c "from service.sample import SyntheticUniverse; from service.ratings.engine import rate; \
    rate({s: f[f.volume > 0] for s, f in SyntheticUniverse(n_symbols=2, n_bars=300).frames().items()})"

VOLUME ["/data"]
EXPOSE 8000

HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=5 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=3)"]

CMD ["asof", "serve"]
