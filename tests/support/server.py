"""The service in a child process on a free loopback port, for tests and benchmarks that need a real uvicorn
server (a real socket, a real event loop, a process that can be killed): `with running_server(data_dir) as
base_url:`, or `ServerProcess` for `kill()` (SIGKILL, a crash) and `stop()` (graceful); `wait_for_job` polls
a job until it has finished."""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from service.jobs.store import FINISHED


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


class ServerProcess:
    """`uvicorn api.app:create_app` serving `data_dir`; `start()` returns once /health answers."""

    def __init__(
        self,
        data_dir: Path | str,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.env = env or {}
        self.host = host
        self.port = port or free_port(host)
        self.url = f"http://{host}:{self.port}"
        self._log = tempfile.TemporaryFile()  # noqa: SIM115  (open while the server lives, read after)
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> str:
        command = [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory"]
        command += ["--host", self.host, "--port", str(self.port), "--log-level", "warning"]
        environment = {
            **os.environ,
            "ASOF_DATA_DIR": str(self.data_dir),
            "ASOF_HOST": self.host,
            "ASOF_PORT": str(self.port),
            **self.env,
        }
        self._process = subprocess.Popen(command, env=environment, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"the server exited with code {self._process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1.0).status_code in {200, 503}:
                    return self.url
            except httpx.TransportError:
                time.sleep(0.05)
        self.kill()
        raise TimeoutError(f"the server did not answer /health within {timeout} s:\n{self.log()}")

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def stop(self, timeout: float = 20.0) -> None:
        """A graceful stop (SIGTERM: uvicorn runs its shutdown), killing it if it does not end in time."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        """SIGKILL: the server dies at once, as in a crash."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()

    def log(self) -> str:
        """What the server has written to stdout and stderr."""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")


@contextmanager
def running_server(
    data_dir: Path | str, *, host: str = "127.0.0.1", env: dict[str, str] | None = None
) -> Iterator[str]:
    """`with running_server(data_dir) as base_url:` a real server for the duration of the block; `env`
    adds ASOF_* settings."""
    server = ServerProcess(data_dir, host=host, env=env)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def wait_for_job(client: httpx.Client, job_id: str, *, timeout: float = 180.0) -> dict:
    """The job's JSON once it has finished (any final state); TimeoutError naming its last state."""
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/jobs/{job_id}").raise_for_status().json()
        if job["status"] in FINISHED:
            return job
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still {job['status']} after {timeout} s: {job}")
        time.sleep(0.1)


def eventually[T](probe: Callable[[], T], *, timeout: float = 10.0) -> T:
    """`probe()` once it is truthy: for what the server reports with a bounded delay (/health and /runs come
    from a snapshot at most half a second old). AssertionError with the last value after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"still {value!r} after {timeout} s")
        time.sleep(0.05)
    return value
