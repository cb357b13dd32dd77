"""What a job asked for over HTTP must satisfy before it is queued: a client names files on the server, so
every path resolves inside the data directory and exists, and a candidates file must name a universe."""

from dataclasses import replace
from pathlib import Path

from service.sources.lake import read_candidates
from vocabulary.errors import InvalidInput
from vocabulary.spec import BackfillSpec


def admit_backfill(data_dir: Path | str, spec: BackfillSpec) -> BackfillSpec:
    """`spec` with its paths resolved inside `data_dir` (absolute, so the run records where its inputs are);
    InvalidInput naming the field otherwise."""
    admitted = replace(
        spec,
        **{
            name: None if getattr(spec, name) is None else str(_existing(data_dir, name, getattr(spec, name)))
            for name in ("lake", "candidates", "returns")
        },
    )
    if admitted.candidates is not None:
        try:
            universe = read_candidates(admitted.candidates)
        except OSError as error:
            raise InvalidInput(
                f"cannot read {spec.candidates!r}: {error.strerror}", field="candidates"
            ) from None
        except InvalidInput as error:
            raise InvalidInput(error.message, field="candidates") from None
        if not universe:
            raise InvalidInput(f"empty universe: {spec.candidates!r} lists no symbol", field="candidates")
    return admitted


def resolve_inside(data_dir: Path | str, path: Path | str) -> Path:
    """`path` (relative paths are taken from `data_dir`) resolved, symlinks included, inside `data_dir`."""
    root = Path(data_dir).resolve()
    resolved = (root / path).resolve()
    if not resolved.is_relative_to(root):
        raise InvalidInput(f"path {str(path)!r} resolves outside the data directory")
    return resolved


def _existing(data_dir: Path | str, name: str, value: str) -> Path:
    try:
        path = resolve_inside(data_dir, value)
    except InvalidInput as error:
        raise InvalidInput(error.message, field=name) from None
    if not path.exists():
        raise InvalidInput(f"{value!r} does not exist in the data directory", field=name)
    return path
