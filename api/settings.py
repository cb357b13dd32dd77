"""Where the service keeps its data and where it listens: environment variables, overridable by flags."""

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("data")
    host: str = "127.0.0.1"
    port: int = 8000

    @classmethod
    def from_env(cls) -> "Settings":
        """`ASOF_DATA_DIR` (default ./data), `ASOF_HOST` (127.0.0.1), `ASOF_PORT` (8000)."""
        port = os.environ.get("ASOF_PORT", str(cls.port))
        if not port.isdigit():
            raise ValueError(f"ASOF_PORT: expected a port number, got {port!r}")
        return cls(
            data_dir=Path(os.environ.get("ASOF_DATA_DIR", cls.data_dir)),
            host=os.environ.get("ASOF_HOST", cls.host),
            port=int(port),
        )
