"""Server paths as a client may see them: relative to the data directory, never absolute. Clients name
files relative to the data dir, so that is how the service speaks of them too; a file the CLI's user named
outside it shows only its name.

Resolving a path costs a system call per component, and `/runs` shows every run's paths on every request,
so what a path and the data dir resolve to is remembered (the data dir does not move under a server)."""

from functools import lru_cache
from pathlib import Path
from typing import Any

OUTSIDE = "(outside the data directory)"
PATH_FIELDS = ("lake", "candidates", "returns")


def public_path(path: str | None, data_dir: Path) -> str | None:
    if path is None or not Path(path).is_absolute():
        return path
    return _public(path, data_dir)


@lru_cache(maxsize=4096)
def _public(path: str, data_dir: Path) -> str:
    root = _root(data_dir)
    resolved = Path(path).resolve()
    return (
        resolved.relative_to(root).as_posix()
        if resolved.is_relative_to(root)
        else f"{OUTSIDE}/{resolved.name}"
    )


@lru_cache(maxsize=16)
def _root(data_dir: Path) -> Path:
    return data_dir.resolve()


def public_spec(record: dict[str, Any], data_dir: Path) -> dict[str, Any]:
    """A spec's record with its paths made public."""
    return record | {name: public_path(record.get(name), data_dir) for name in PATH_FIELDS if name in record}


def public_text(text: str | None, data_dir: Path) -> str | None:
    """A message with the data dir's absolute prefix taken off the paths it mentions."""
    if text is None:
        return None
    for prefix in dict.fromkeys((str(_root(data_dir)), str(data_dir.absolute()))):
        text = text.replace(f"{prefix}/", "")
    return text
