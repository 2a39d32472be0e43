"""Writing results: atomic files (temp + rename) so that a killed run never leaves half a CSV."""
from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

import numpy as np
import pandas as pd
import yaml

QUOTED = ',"\n\r'  # characters that make the csv module quote a field (QUOTE_MINIMAL)
# A text cell that a spreadsheet would read as a formula: =, +, -, @, tab or CR first (after any
# apostrophes, so that the escape below is undone exactly).
FORMULA = r"'*[=+\-@\t\r]"


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda handle: handle.write(data))


def atomic_write(path: Path, write: Callable[[BinaryIO], object], *, durable: bool = False) -> None:
    """write(handle) into a temporary file beside `path` (.NAME.*.tmp), then rename it over `path`.

    A kill at any moment leaves the old file or the new one, whole. `durable` also fsyncs before
    the rename, for files a later run builds on (checkpoints, cache chunks).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes files private; outputs are meant to be read
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """A report CSV: fixed float formatting (identical results give identical bytes), and text cells
    safe to open in a spreadsheet (spreadsheet_safe)."""
    atomic_write_text(path, csv_text(spreadsheet_safe(frame)))


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
        risky = column.str.match(FORMULA, na=False) if column.dtype.kind != "O" else \
            column.map(lambda v: isinstance(v, str) and re.match(FORMULA, v) is not None).astype(bool)
        if risky.any():
            column = column.astype(object).copy()
            column[risky.to_numpy()] = "'" + column[risky.to_numpy()].astype(str)
            changed[name] = column
    return frame.assign(**changed) if changed else frame


def read_csv(path: Path, **options) -> pd.DataFrame:
    """A CSV that write_csv wrote, as it was before spreadsheet_safe: empty cells as "" (not NaN)."""
    frame = pd.read_csv(path, keep_default_na=False, **options)
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
    column at a time: pandas formats cell by cell, 1.4 s for 100,000 rows of bias_videos.csv."""
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
