"""Writing results: atomic files (temp + rename) so that a killed run never leaves half a CSV, and
output sets (staged in a hidden folder, renamed in together, their record last) so that a full disk
or a kill never leaves one run's files beside another's."""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
import yaml

from avaudit.errors import AvauditError, UsageError

QUOTED = ',"\n\r'  # characters that make the csv module quote a field (QUOTE_MINIMAL)
# A text cell that a spreadsheet would read as a formula: =, +, -, @, tab or CR first (after any
# apostrophes, so that the escape below is undone exactly).
FORMULA = r"'*[=+\-@\t\r]"
STALE_TEMP_S = 3600  # a temp file this old is a killed writer's (the cache's; an output set's from another host)
STAGING = "avaudit-outputs"  # name of the hidden folder an output set is staged in
READ_BLOCK = 100_000  # rows of an output CSV a block reader holds (read_csv_blocks)


class OutputError(AvauditError, OSError):
    """The outputs could not be written (full disk, no permission); the message says what is left.
    An OSError too, so that a writer that goes on without its file (the logit cache) still catches it."""


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda handle: handle.write(data))


def atomic_write(path: Path, write: Callable[[BinaryIO], object], *, durable: bool = False) -> None:
    """write(handle) into a temporary file beside `path` (.NAME.*.tmp), then rename it over `path`.

    A kill at any moment leaves the old file or the new one, whole. `durable` also fsyncs before
    the rename, for files a later run builds on (checkpoints, cache chunks). A write that fails (a
    full disk, a read-only folder) is an OutputError naming `path`, and leaves no temp file behind.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path.name), suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise output_error(f"{path}: cannot write it", err) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes files private; outputs are meant to be read
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError) and not isinstance(err, OutputError):
            raise output_error(f"{path}: writing it failed", err, "the file there is as it was") from None
        raise


def output_error(what: str, err: OSError, after: str = "") -> OutputError:
    """`what (the system's reason)[; after]` as an OutputError whose strerror is that reason, so that a
    caller wrapping it (output_set) names the reason, not the whole message again."""
    reason = err.strerror or str(err)
    error = OutputError(f"{what} ({reason})" + (f"; {after}" if after else ""))
    error.strerror = reason
    return error


def temp_prefix(name: str) -> str:
    """.NAME.PID.HOST. : a temp file's name says whose it is, so a later run can tell a killed
    writer's leftovers (clean_stale_temps) from a live writer's file."""
    return f".{name}.{os.getpid()}.{socket.gethostname()}."


def clean_stale_temps(folder: Path, name: str) -> list[Path]:
    """Remove the temp files (or staging folders) `.NAME.PID.HOST.*.tmp` in `folder` whose writer is
    gone: a process of this machine that no longer runs (or a day old: its pid was reused), or, from
    another machine, an hour old. Returns what was removed."""
    removed = []
    prefix, here = f".{name}.", socket.gethostname()
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for entry in entries:
        if not (entry.name.startswith(prefix) and entry.name.endswith(".tmp")):
            continue
        pid, _, rest = entry.name[len(prefix):].partition(".")
        host = rest.rsplit(".", 2)[0]
        try:
            if not pid.isdigit():
                continue
            age = time.time() - entry.lstat().st_mtime
            if (host == here and int(pid) != os.getpid() and not _alive(int(pid))) \
                    or age > STALE_TEMP_S * (24 if host == here else 1):
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
                removed.append(entry)
        except OSError:
            pass  # another process removed it first, or it is not ours to remove
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


@contextmanager
def output_set(folder: Path, *, record: str, remove: Sequence[str] = ()) -> Iterator[Path]:
    """Write a run's files together: the caller writes them into the staging folder this yields (a
    hidden folder inside `folder`, so renames stay on one file system); when all are written they
    are renamed into `folder`, the record (the run's `<command>_run.yaml`) last, after the old record
    and the `remove` files (ours, from an earlier run, that this one does not write) are deleted.

    A failure while writing (a full disk, a kill) leaves `folder` as it was; a kill during the
    renames leaves it without a record, which marks an incomplete set. Write errors are OutputError.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        clean_stale_temps(folder, STAGING)
        staging = Path(tempfile.mkdtemp(prefix=temp_prefix(STAGING), suffix=".tmp", dir=folder))
    except OSError as err:
        raise OutputError(f"{folder}: cannot write the outputs there ({err.strerror or err})") from None
    try:
        try:
            yield staging
        except OSError as err:
            raise OutputError(f"{folder}: writing the outputs failed ({err.strerror or err}); "
                              f"the files there are as they were") from None
        names = sorted(p.name for p in staging.iterdir() if p.name != record)
        try:
            (folder / record).unlink(missing_ok=True)
            for name in remove:
                (folder / name).unlink(missing_ok=True)
            for name in [*names, record]:
                os.replace(staging / name, folder / name)
        except OSError as err:
            raise OutputError(f"{folder}: moving the outputs in failed ({err.strerror or err}); the set "
                              f"there is incomplete (no {record}): run the command again") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def check_writes(writes: Sequence[Path], *, data: Path, model: Path | None = None,
                 media: pd.Series | None = None, inputs: Mapping[Path, str] | None = None) -> None:
    """Before any work: refuse outputs that would overwrite an input (DATA, the model, a listed video,
    or one of `inputs`, the other files the command reads and what each is, e.g. {path: "the class
    index"}), land inside a DATA folder, or name an existing folder, with a UsageError naming the path;
    and an output folder where no file can be made (read-only, no permission) with an OutputError."""
    data = Path(data)
    data_folder = os.path.realpath(data) if data.is_dir() else None
    sources = [("DATA", data), ("the model", model), *((what, path) for path, what in (inputs or {}).items())]
    probed: set[Path] = set()
    for path in map(Path, writes):
        # Where the write lands: links followed, and `..` after a folder that does not exist yet taken as
        # the mkdir that makes it will (`out/../data.csv` is data.csv).
        real = Path(os.path.realpath(path))
        if data_folder and real.is_relative_to(data_folder):
            raise UsageError(f"{path} is inside DATA {data}: avaudit never writes into DATA; "
                             f"choose an output path elsewhere")
        blocked = next((p for p in (path, *path.parents) if p.exists() or p.is_symlink()), None)
        if blocked is not None and blocked != path and not blocked.is_dir():
            raise UsageError(f"cannot write {path}: {blocked} is a file, not a folder")
        if path.is_dir():
            raise UsageError(f"{path} is a folder: name a file to write there")
        folder = Path(".") if blocked is None else path.parent if blocked == path else blocked
        if folder not in probed:
            probed.add(folder)
            _probe_writable(folder, path)
        if not real.exists():
            continue
        for what, source in sources:
            if source is not None and Path(source).is_file() and os.path.samefile(real, source):
                raise UsageError(f"{path} is {what} ({source}): refusing to overwrite an input; "
                                 f"choose another output path")
        if media is not None:  # the listed videos of its file name, found as text: no Python string a row
            for video in media[(media == real.name) | media.str.endswith("/" + real.name, na=False)].tolist():
                if os.path.exists(video) and os.path.samefile(real, video):
                    raise UsageError(f"{path} is a video listed in DATA: refusing to overwrite an input; "
                                     f"choose another output path")


def _probe_writable(folder: Path, path: Path) -> None:
    """Make and remove a file in `folder`, the nearest existing folder of output `path`: the one test
    that answers for permissions, read-only mounts and root alike, before any work is spent."""
    try:
        fd, probe = tempfile.mkstemp(prefix=temp_prefix("avaudit-probe"), suffix=".tmp", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise output_error(f"cannot write {path}: {folder} does not take new files", err) from None


def write_csv(frame: pd.DataFrame, path: Path, *, block: int = 20_000) -> None:
    """A report CSV: fixed float formatting (identical results give identical bytes), and text cells
    safe to open in a spreadsheet (spreadsheet_safe). Written `block` rows at a time, so a table of
    ten million rows never has its whole text in memory."""
    def write(handle) -> None:
        for start in range(0, max(len(frame), 1), block):
            text = csv_text(spreadsheet_safe(frame.iloc[start : start + block]))
            handle.write((text if start == 0 else text[text.index("\n") + 1 :]).encode("utf-8"))

    atomic_write(path, write)


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Text cells that a spreadsheet would run as a formula (`=cmd|...`, `+1`, `-2+3`, `@SUM(..)`) get a
    leading apostrophe, which spreadsheets take as "this is text". Numeric columns are left alone, so
    -0.5 stays a number. A cell that already starts with apostrophes before such a character gets one
    more, so read_csv undoes exactly what was added. Manifests (retarget's subsets) are not touched."""
    changed = {}
    for name in frame.columns:
        column = frame[name]
        if column.dtype.kind in "fiubcmM":
            continue
        arrow = isinstance(column.dtype, pd.StringDtype) and column.dtype.storage == "pyarrow"  # a C++ regex a cell
        risky = column.str.match(FORMULA, na=False).to_numpy(dtype=bool) if arrow or column.dtype.kind != "O" \
            else formula_cells(column)
        if risky.any():
            column = column.astype(object).copy()
            column[risky] = "'" + column[risky].astype(str)
            changed[name] = column
    return frame.assign(**changed) if changed else frame


def formula_cells(column: pd.Series) -> np.ndarray:
    """Which cells of an object or categorical column a spreadsheet would run as a formula (N,) bool: each distinct
    value tested once (a regular expression for every cell was most of the CPU time of writing bias_videos.csv).
    Text held by pyarrow is matched there instead: its ids and paths are distinct, and Python's regular expression
    a cell was 5 of the 7 CPU-s of writing a skipped list of a million rows."""
    codes, distinct = pd.factorize(column)
    tested = [isinstance(value, str) and re.match(FORMULA, value) is not None for value in distinct]
    return np.array([*tested, False])[codes]  # code -1, a missing cell: last


def read_csv(path: Path, **options) -> pd.DataFrame:
    """A CSV that write_csv wrote, as it was before spreadsheet_safe: empty cells as "" (not NaN)."""
    return unescaped(pd.read_csv(path, keep_default_na=False, **options))


def read_csv_blocks(path: Path, **options) -> Iterator[pd.DataFrame]:
    """read_csv's table READ_BLOCK rows at a time (at least one block, empty for a header alone): a reader that
    only counts or selects holds a block of a ten-million-row table, not its every row."""
    with pd.read_csv(path, keep_default_na=False, chunksize=READ_BLOCK, **options) as blocks:
        for frame in blocks:
            yield unescaped(frame)


def unescaped(frame: pd.DataFrame) -> pd.DataFrame:
    """Text cells as they were before spreadsheet_safe: its apostrophe taken off."""
    for name in frame.columns:
        column = frame[name]
        if column.dtype.kind in "OT" or isinstance(column.dtype, pd.StringDtype):
            escaped = column.astype(str).str.match("'" + FORMULA).to_numpy()
            if escaped.any():
                column = column.astype(object).copy()
                column[escaped] = column[escaped].astype(str).str[1:]
                frame[name] = column
    return frame


def write_json(data: dict, path: Path) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_yaml(data: dict, path: Path) -> None:
    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False))


def csv_text(frame: pd.DataFrame) -> str:
    """The text of frame.to_csv(index=False, float_format="%.6f", lineterminator="\n"), built a
    column at a time: pandas formats cell by cell (benchmarks/README.md)."""
    header = ",".join(_csv_field(str(name)) for name in frame.columns)
    if not len(frame):
        return header + "\n"
    columns = [_csv_column(frame[name]) for name in frame.columns]
    return header + "\n" + "\n".join(map(",".join, zip(*columns))) + "\n"


def _csv_field(text: str) -> str:
    """Python's csv QUOTE_MINIMAL, as pandas writes it."""
    if any(c in text for c in QUOTED):
        return '"' + text.replace('"', '""') + '"'
    return text


def _csv_column(series: pd.Series) -> list[str]:
    """One column's cells as text: floats as %.6f, missing values empty, quoted where needed."""
    values = series.to_numpy()
    if values.dtype.kind == "f":
        cells = list(map("%.6f".__mod__, values.tolist()))
        for i in np.flatnonzero(np.isnan(values)):
            cells[i] = ""
        return cells
    if values.dtype.kind in "iub":
        return list(map(str, values.tolist()))
    cells = series.astype(object).where(series.notna(), "").tolist()
    if not isinstance(series.dtype, pd.StringDtype) and not all(type(cell) is str for cell in cells):
        cells = list(map(str, cells))
    joined = "\0".join(cells)
    if any(c in joined for c in QUOTED):
        cells = [_csv_field(v) for v in cells]
    return cells
