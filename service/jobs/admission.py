"""What a job asked for over HTTP must satisfy before it is queued. A client names files on the server, so
every path must resolve inside the data directory and exist (regular files for candidates and returns, a
FIFO would block a worker forever), and a candidates file must name a universe. The admitted spec keeps the
paths relative to the data directory: a relative path in a spec is a data-dir path, read confined to it
(`service.backfill.located`), while the CLI records absolute paths of its user's own files."""

import errno
from dataclasses import replace
from importlib.util import find_spec
from pathlib import Path

from service.sources.lake import read_candidates
from vocabulary.errors import InvalidInput
from vocabulary.spec import BackfillSpec


def admit_backfill(data_dir: Path | str, spec: BackfillSpec) -> BackfillSpec:
    """`spec` with its paths checked and made relative to `data_dir`; InvalidInput naming the field
    otherwise."""
    root = Path(data_dir).resolve()
    if spec.executor == "ray" and find_spec("ray") is None:
        raise InvalidInput("the ray executor needs Ray on the server: install asof[ray]", field="executor")
    admitted = replace(
        spec,
        lake=_inside(root, "lake", spec.lake, files_only=False),
        candidates=None if spec.candidates is None else _inside(root, "candidates", spec.candidates),
        returns=None if spec.returns is None else _inside(root, "returns", spec.returns),
    )
    if admitted.candidates is not None:
        try:
            universe = read_candidates(root / admitted.candidates)
        except InvalidInput as error:
            raise InvalidInput(error.message, field="candidates") from None
        if not universe:
            raise InvalidInput(f"empty universe: {spec.candidates!r} lists no symbol", field="candidates")
    return admitted


def resolve_inside(data_dir: Path | str, path: Path | str) -> Path:
    """`path` (relative paths are taken from `data_dir`) resolved, symlinks included, inside `data_dir`;
    InvalidInput when it resolves outside, loops, holds a NUL, or has a name too long for the file system."""
    root = Path(data_dir).resolve()
    try:
        resolved = (root / path).resolve()
    except RuntimeError:  # Python raises it for a symlink loop
        raise InvalidInput(f"path {str(path)!r} is a symlink loop") from None
    except ValueError:  # a NUL character, which no file system path may hold
        raise InvalidInput(f"path {str(path)!r} holds a NUL character") from None
    except OSError as error:
        raise InvalidInput(f"path {str(path)!r} cannot be resolved ({_reason(error)})") from None
    if not resolved.is_relative_to(root):
        raise InvalidInput(f"path {str(path)!r} resolves outside the data directory")
    return resolved


def _inside(root: Path, name: str, value: str, *, files_only: bool = True) -> str:
    """The data-dir-relative form of `value`, which must exist inside `root` (a regular file, or with
    `files_only=False` a folder too)."""
    try:
        path = resolve_inside(root, value)
        kind = "regular file" if files_only else "folder or regular file"
        if not (path.is_file() or (not files_only and path.is_dir())):
            missing = not path.exists()
            raise InvalidInput(
                f"{value!r} {'does not exist in the data directory' if missing else f'is not a {kind}'}"
            )
    except InvalidInput as error:
        raise InvalidInput(error.message, field=name) from None
    except OSError as error:
        raise InvalidInput(f"{value!r} cannot be checked ({_reason(error)})", field=name) from None
    return path.relative_to(root).as_posix()


def _reason(error: OSError) -> str:
    return (
        "a name is too long"
        if error.errno == errno.ENAMETOOLONG
        else (error.strerror or type(error).__name__)
    )
