"""`asof serve` takes its settings from the environment (ASOF_DATA_DIR, ASOF_HOST, ASOF_PORT) and flags."""

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.server import free_port

ASOF = Path(sys.executable).with_name("asof")


def test_serve_reads_the_environment_and_its_flags(tmp_path):
    port = free_port()
    environment = {**os.environ, "ASOF_DATA_DIR": str(tmp_path / "data"), "ASOF_PORT": "1"}
    process = subprocess.Popen(  # the flag overrides ASOF_PORT; the data dir comes from the environment
        [ASOF, "serve", "--port", str(port)],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, process.communicate()[0].decode()
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1.0).json()
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "asof serve did not answer /health"
                time.sleep(0.1)
        assert (answer["status"], answer["runs"], answer["newest_run"]) == ("ok", 0, None)
        assert (tmp_path / "data" / "catalog.duckdb").exists()
    finally:
        process.terminate()
        process.wait(30)
