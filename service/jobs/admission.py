"""What a job asked for over HTTP must satisfy before it is queued. A client names files on the server, so
every path must resolve inside the data directory and exist (regular files for candidates and returns, a
FIFO would block a worker forever), and a candidates file must name a universe. The admitted spec keeps the
paths relative to the data directory: a relative path in a spec is a data-dir path, read confined to it
(`service.backfill.located`), while the CLI records absolute paths of its user's own files. An update or a
compaction must name a published run (`newest` becomes the newest of a named dataset, the default one
otherwise), and an update's run must carry the state it continues from."""

import errno
from dataclasses import replace
from importlib.util import find_spec
from pathlib import Path

from service.sources.lake import read_candidates
from service.update import updatable
from storage.read import FeatureStore
from vocabulary.errors import InvalidInput
from vocabulary.spec import NEWEST, BackfillSpec, CompactSpec, UpdateSpec


def admit_backfill(data_dir: Path | str, spec: BackfillSpec) -> BackfillSpec:
    """`spec` with its paths checked and made relative to `data_dir`; InvalidInput naming the field
    otherwise."""
    root = Path(data_dir).resolve()
    _check_executor(spec.executor)
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


def admit_update(store: FeatureStore, spec: UpdateSpec) -> UpdateSpec:
    """`spec` naming its run's dataset when it names the newest run, its lake (if given) checked and made
    relative to the store's data dir; NotFound for an unknown run or dataset, CarriesNoState for a run
    without a carried state, InvalidInput naming the field otherwise."""
    _check_executor(spec.executor)
    run = updatable(store.run(None if spec.run_id == NEWEST else spec.run_id, spec.dataset))
    root = store.catalog.data_dir.resolve()
    return replace(
        spec,
        dataset=run.spec.dataset if spec.run_id == NEWEST else spec.dataset,
        lake=None if spec.lake is None else _inside(root, "lake", spec.lake, files_only=False),
    )


def admit_compaction(store: FeatureStore, spec: CompactSpec) -> CompactSpec:
    """`spec` naming its run's dataset when it names the newest run; NotFound for an unknown run or
    dataset."""
    run = store.run(None if spec.run_id == NEWEST else spec.run_id, spec.dataset)
    return replace(spec, dataset=run.spec.dataset) if spec.run_id == NEWEST else spec


def _check_executor(executor: str) -> None:
    if executor == "ray" and find_spec("ray") is None:
        raise InvalidInput("the ray executor needs Ray on the server: install asof[ray]", field="executor")


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
