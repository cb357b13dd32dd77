"""Server paths as a client may see them: relative to the data directory, never absolute. Clients name
files relative to the data dir, so that is how the service speaks of them too; a file the CLI's user named
outside it shows only its name."""

from pathlib import Path
from typing import Any

OUTSIDE = "(outside the data directory)"
PATH_FIELDS = ("lake", "candidates", "returns")


def public_path(path: str | None, data_dir: Path) -> str | None:
    if path is None or not Path(path).is_absolute():
        return path
    root = data_dir.resolve()
    resolved = Path(path).resolve()
    return (
        resolved.relative_to(root).as_posix()
        if resolved.is_relative_to(root)
        else f"{OUTSIDE}/{resolved.name}"
    )


def public_spec(record: dict[str, Any], data_dir: Path) -> dict[str, Any]:
    """A spec's record with its paths made public."""
    return record | {name: public_path(record.get(name), data_dir) for name in PATH_FIELDS if name in record}


def public_text(text: str | None, data_dir: Path) -> str | None:
    """A message with the data dir's absolute prefix taken off the paths it mentions."""
    if text is None:
        return None
    for prefix in dict.fromkeys((str(data_dir.resolve()), str(data_dir.absolute()))):
        text = text.replace(f"{prefix}/", "")
    return text
