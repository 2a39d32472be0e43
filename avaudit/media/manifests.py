"""Dataset manifests: every DATA form avaudit accepts, read into one table, and subsets written back.

A manifest is read line by line so that each row keeps its original text (``raw``); a subset is
written back as those very lines, so a retargeted Kinetics CSV is byte-compatible with the input.
Media are located with one ``os.scandir`` per directory, never a stat per row (manifests run to
250k rows).
"""
from __future__ import annotations

import csv
import functools
import io
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from avaudit.errors import AvauditError, UsageError
from avaudit.outputs import atomic_write_text, csv_text
from avaudit.vocab import SKIPPED_COLUMNS

FORMATS = ("folder", "flat", "kinetics", "vggsound", "ave", "llp", "generic")
MEDIA_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v")  # earlier ones win a tie
COLUMNS = ("video_id", "path", "labels", "start", "end", "split", "row", "raw")
KINETICS_HEADERS = (
    ("label", "youtube_id", "time_start", "time_end", "split", "is_cc"),
    ("label", "youtube_id", "time_start", "time_end", "split"),
    ("youtube_id", "time_start", "time_end", "split"),  # the older, label-less test file
)
AVE_HEADER = ("Category", "VideoID", "Quality", "StartTime", "EndTime")
LLP_HEADER = ("filename", "event_labels")
_FLOAT_COLUMNS = ("start", "end", "event_start", "event_end")
_EXPECTED = (
    "expected a folder of clips (DATA/<label>/<clip>.mp4 or DATA/<clip>.mp4; mp4 mkv webm avi mov m4v), "
    "a Kinetics CSV (label,youtube_id,time_start,time_end,split[,is_cc]), a headerless VGGSound CSV "
    "(ytid,start_seconds,label,split), AVE lines (Category&VideoID&Quality&StartTime&EndTime), "
    "an LLP TSV (filename<TAB>event_labels) or a CSV with a path,label header"
)


class ManifestError(AvauditError, ValueError):
    """DATA cannot be used; the message names the file and the reason."""


@dataclass
class Manifest:
    format: str  # one of FORMATS
    source: Path  # the DATA given: a folder or a manifest file
    root: Path  # absolute folder where media resolve
    table: pd.DataFrame  # COLUMNS (+ AVE: event_start,event_end; LLP: youtube_id), a row per usable input row
    skipped: pd.DataFrame  # SKIPPED_COLUMNS, one row per input row that is not usable
    header: str | None  # the header line as it was; None for folders and headerless manifests
    newline: str = "\n"  # the input's line ending, reused by write_subset


class _Parsed(NamedTuple):
    video_id: str
    labels: str  # ';'-joined
    split: str
    dirs: tuple[str, ...]  # absolute folders to look in, in order
    stem: str  # file name, completed by one of `exts`
    start: float = math.nan
    end: float = math.nan
    extras: tuple = ()
    exts: tuple[str, ...] = MEDIA_EXTENSIONS


@dataclass(frozen=True)
class _Format:
    name: str
    split: Callable[[str], list[str]]  # one physical line -> fields
    n_fields: int
    parse: Callable[[list[str], str], _Parsed]  # stripped fields, root -> row (ValueError if malformed)
    extras: tuple[str, ...] = ()


def _is_dir(entry: os.DirEntry) -> bool:
    """A symlink loop raises here; it is a (broken) file entry, and must not end the listing."""
    try:
        return entry.is_dir()
    except OSError:
        return False


class _Finder:
    """Directory listings, each read once with os.scandir."""

    def __init__(self) -> None:
        self._listings: dict[str, tuple[frozenset[str], list[str]]] = {}

    def scan(self, folder: str) -> tuple[frozenset[str], list[str]]:
        """(file names, sorted sub-folder names) of `folder`; empty when it does not exist."""
        if folder not in self._listings:
            files, dirs = set(), []
            try:
                with os.scandir(folder) as entries:
                    for e in entries:
                        (dirs.append if _is_dir(e) else files.add)(e.name)
            except OSError:
                pass
            self._listings[folder] = (frozenset(files), sorted(dirs))
        return self._listings[folder]

    def find(self, p: _Parsed) -> str | None:
        for folder in p.dirs:
            files = self.scan(folder)[0]
            for ext in p.exts:
                if p.stem + ext in files:
                    return os.path.join(folder, p.stem + ext)
        return None


def _csv_fields(line: str) -> list[str]:
    if '"' not in line:  # the common case, without csv.reader's per-call cost
        return line.split(",")
    return next(csv.reader([line], strict=True), [])


def _csv_line(fields: Sequence[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(fields)
    return buf.getvalue()[:-1]


def _int(value: str, name: str, kind: type = int) -> int | float:
    try:
        return kind(value)
    except ValueError:
        raise ValueError(f"{name} {value!r} is not {'an integer' if kind is int else 'a number'}") from None


def _join_labels(text: str, sep: str) -> str:
    return ";".join(s.strip() for s in text.split(sep) if s.strip())


@functools.cache
def _dirs(root: str, split: str = "", label: str = "", extra: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Where a dataset clip may lie: flat under root, then the usual sub-folders (split/label, ...)."""
    parts: list[tuple[str, ...]] = [(), *((e,) for e in extra)]
    for name in dict.fromkeys([label, label.replace(" ", "_")] if label else []):
        parts += [(split, name), (name,)] if split else [(name,)]
    if split:
        parts.append((split,))
    return tuple(dict.fromkeys(os.path.join(root, *p) for p in parts))


def _kinetics(cols: list[str]) -> _Format:
    ix = {c: i for i, c in enumerate(cols)}

    def parse(f: list[str], root: str) -> _Parsed:
        ytid, split = f[ix["youtube_id"]], f[ix["split"]]
        if not ytid:
            raise ValueError("empty youtube_id")
        label = f[ix["label"]] if "label" in ix else ""
        vid = f"{ytid}_{_int(f[ix['time_start']], 'time_start'):06d}_{_int(f[ix['time_end']], 'time_end'):06d}"
        return _Parsed(vid, label, split, _dirs(root, split, label), vid)

    return _Format("kinetics", _csv_fields, len(cols), parse)


def _vggsound(f: list[str], root: str) -> _Parsed:
    ytid, start, label, split = f
    if not ytid:
        raise ValueError("empty youtube_id")
    vid = f"{ytid}_{_int(start, 'start_seconds'):06d}"
    return _Parsed(vid, label, split, _dirs(root, split, label), vid)


def _ave(f: list[str], root: str) -> _Parsed:
    category, vid, _quality, start, end = f
    s, e = _int(start, "StartTime"), _int(end, "EndTime")
    if not vid or e < s:
        raise ValueError("empty VideoID" if not vid else f"EndTime {e} is before StartTime {s}")
    # The release ships the clips in an AVE/ folder beside Annotations.txt.
    return _Parsed(vid, category, "", _dirs(root, "", category, ("AVE",)), vid, extras=(float(s), float(e)))


def _llp(f: list[str], root: str) -> _Parsed:
    name, labels = f
    parts = name.rsplit("_", 2)  # ids may be shorter than 11 characters: split the window off the end
    if len(parts) != 3 or not parts[0]:
        raise ValueError(f"filename {name!r} is not <youtube_id>_<start>_<end>")
    _int(parts[1], "window start"), _int(parts[2], "window end")
    return _Parsed(name, _join_labels(labels, ","), "", _dirs(root), name, extras=(parts[0],))


def _generic(cols: list[str]) -> _Format:
    ix = {c: i for i, c in enumerate(cols)}

    def parse(f: list[str], root: str) -> _Parsed:
        p = f[ix["path"]]
        if not p:
            raise ValueError("empty path")
        start, end = (_int(f[ix[k]] or "nan", k, float) if k in ix else math.nan for k in ("start", "end"))
        vid = os.path.splitext(p.replace("\\", "/"))[0]
        split = f[ix["split"]] if "split" in ix else ""
        folder, name = os.path.split(os.path.normpath(os.path.join(root, p)))  # an absolute p stays as it is
        return _Parsed(vid, _join_labels(f[ix["label"]], ";"), split, (folder,), name, start, end, exts=("",))

    return _Format("generic", _csv_fields, len(cols), parse)


_VGGSOUND = _Format("vggsound", _csv_fields, 4, _vggsound)
_AVE = _Format("ave", lambda line: line.split("&"), 5, _ave, ("event_start", "event_end"))
_LLP = _Format("llp", lambda line: line.split("\t"), 2, _llp, ("youtube_id",))


def _detect(first: str, data: Path) -> tuple[_Format, bool]:
    """The format of a manifest from its first non-blank line, and whether that line is a header."""
    if "\t" in first:
        if tuple(f.strip() for f in first.split("\t")) == LLP_HEADER:
            return _LLP, True
    else:
        amp = [f.strip() for f in first.split("&")]
        if tuple(amp) == AVE_HEADER:
            return _AVE, True
        if len(amp) == 5 and amp[3].isdigit() and amp[4].isdigit():
            return _AVE, False
        try:
            cols = [c.strip() for c in _csv_fields(first)]
        except csv.Error:
            cols = []
        if tuple(cols) in KINETICS_HEADERS:
            return _kinetics(cols), True
        if "path" in cols and "label" in cols:
            return _generic(cols), True
        if len(cols) == 4 and cols[1].isdigit():
            return _VGGSOUND, False
    raise ManifestError(f"{data}: unrecognised manifest (first line {first[:80]!r}); {_EXPECTED}")


def _parse_lines(lines: list[str], start: int, fmt: _Format, root: str):
    """(line number, raw line, _Parsed or the 'malformed row' detail) for each non-blank line."""
    for i in range(start, len(lines)):
        if not lines[i].strip():
            continue
        try:
            fields = [f.strip() for f in fmt.split(lines[i])]
            if len(fields) != fmt.n_fields:
                raise ValueError(f"expected {fmt.n_fields} fields, found {len(fields)}")
            parsed: _Parsed | str = fmt.parse(fields, root)
        except (ValueError, csv.Error) as e:
            parsed = f"line {i + 1}: {e}"
        yield i + 1, lines[i], parsed


def _expected(p: _Parsed) -> str:
    """The path a row names in the dataset's own flat layout."""
    return os.path.join(p.dirs[0], p.stem + p.exts[0])


def _build(entries, extras: tuple[str, ...], finder: _Finder) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The table and the skipped rows; every entry lands in exactly one of them."""
    records: list[tuple] = []
    skipped: list[tuple[str, str, str, str]] = []
    seen: dict[str, int | None] = {}
    for row, (lineno, raw, p) in enumerate(entries):
        if isinstance(p, str):
            skipped.append(("", "", "malformed row", p))
            continue
        where = f"line {lineno}: " if lineno else ""
        if p.video_id in seen:
            first = f" on line {seen[p.video_id]}" if lineno else ""
            skipped.append((p.video_id, _expected(p), "duplicate id", f"{where}{p.video_id} already listed{first}"))
            continue
        seen[p.video_id] = lineno
        path = finder.find(p)
        if path is None:
            tried = ", ".join(os.path.join(d, p.stem + p.exts[0]) for d in p.dirs)
            also = f" (also {' '.join(p.exts[1:])})" if len(p.exts) > 1 else ""
            skipped.append((p.video_id, _expected(p), "missing file", f"{where}tried {tried}{also}"))
            continue
        records.append((p.video_id, path, p.labels, p.start, p.end, p.split, row, raw, *p.extras))
    columns = [*COLUMNS, *extras]
    dtypes = {c: float if c in _FLOAT_COLUMNS else np.int64 if c == "row" else "str" for c in columns}
    table = pd.DataFrame.from_records(records, columns=columns).astype(dtypes)
    return table, pd.DataFrame(skipped, columns=list(SKIPPED_COLUMNS)).astype("str")


def _media(names) -> list[str]:
    # Hidden names skipped: macOS leaves '._clip.mp4' resource forks beside every clip.
    return sorted(n for n in names if n[:1] != "." and n[n.rfind("."):].lower() in MEDIA_EXTENSIONS)


def _read_folder(data: Path) -> Manifest:
    """Category folders (or one flat folder) of clips; built column-wise, as folders hold millions."""
    finder = _Finder()
    files, dirs = finder.scan(str(data))
    groups = [("", _media(files))]
    groups += [(d, _media(finder.scan(str(data / d))[0])) for d in dirs if not d.startswith(".")]
    if not any(names for _, names in groups):
        raise ManifestError(f"{data}: no media files in the folder or its sub-folders; {_EXPECTED}")
    fmt = "folder" if any(names for label, names in groups if label) else "flat"
    ids, paths, labels = [], [], []
    for label, names in groups:
        folder, prefix = os.path.join(data, label, ""), f"{label}/" if label else ""
        ids += [prefix + n[: n.rfind(".")] for n in names]  # _media kept names with an extension
        paths += [folder + n for n in names]
        labels += [label] * len(names)
    rows = pd.DataFrame({"video_id": ids, "path": paths, "labels": labels, "start": math.nan, "end": math.nan,
                         "split": "", "row": np.arange(len(ids)), "raw": ""})
    repeated = rows["video_id"].duplicated().to_numpy()  # clip.mp4 beside clip.mkv: the first one wins
    skipped = [(row.video_id, row.path, "duplicate id", f"{row.video_id} already listed")
               for row in rows[repeated].itertuples(index=False)]
    dtypes = {c: float if c in _FLOAT_COLUMNS else np.int64 if c == "row" else "str" for c in COLUMNS}
    table = rows[~repeated].reset_index(drop=True).astype(dtypes)
    return Manifest(fmt, data, data, table, pd.DataFrame(skipped, columns=list(SKIPPED_COLUMNS)).astype("str"), None)


def read_manifest(data: Path, *, root: Path | None = None) -> Manifest:
    """Read DATA (a folder of clips or a manifest file) into a Manifest; `root` applies to files only."""
    data = Path(data)
    if data.is_dir():
        return _read_folder(Path(os.path.abspath(data)))
    if not data.exists():
        raise ManifestError(f"{data}: no such file or folder")
    media_root = Path(os.path.abspath(root if root is not None else data.parent))
    if not media_root.is_dir():
        raise ManifestError(f"{data}: media root {media_root} is not a folder")
    try:
        text = data.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ManifestError(f"{data}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise ManifestError(f"{data}: cannot read ({e.strerror})") from None
    lines = text.split("\n")
    newline = "\r\n" if lines[0].endswith("\r") else "\n"
    lines = [line.removesuffix("\r") for line in lines]
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        raise ManifestError(f"{data}: empty manifest; {_EXPECTED}")
    fmt, has_header = _detect(lines[first], data)
    start = first + 1 if has_header else first
    table, skipped = _build(_parse_lines(lines, start, fmt, str(media_root)), fmt.extras, _Finder())
    return Manifest(fmt.name, data, media_root, table, skipped, lines[first] if has_header else None, newline)


def write_subset(
    manifest: Manifest,
    keep: pd.DataFrame | Sequence[int],
    out: Path,
    *,
    labels: Mapping[int, str] | None = None,
) -> None:
    """Write the rows `keep` (a table with a `row` column, or row numbers) to `out`, atomically.

    Dataset manifests get their header and the kept rows' original lines, in input order, with the
    input's line ending. Folders get a `path,label` CSV of absolute paths. `labels` (row -> ';'-joined
    labels) overrides labels, for folders and generic CSVs only.
    """
    out = Path(out)
    rows = keep["row"] if isinstance(keep, pd.DataFrame) else keep
    rows = np.unique(np.asarray(rows, dtype=np.int64))
    table = manifest.table
    unknown = np.setdiff1d(rows, table["row"].to_numpy())
    if unknown.size:
        raise UsageError(f"rows not in the manifest's table: {unknown[:10].tolist()}")
    if manifest.source.is_file() and out.resolve() == manifest.source.resolve():
        raise UsageError(f"refusing to overwrite the input manifest {manifest.source}")
    labels = dict(labels or {})
    if labels and manifest.format not in ("folder", "flat", "generic"):
        raise UsageError(f"labels cannot be overridden in a {manifest.format} manifest")
    sel = table[table["row"].isin(rows)].sort_values("row")
    kept = sel["row"].tolist()
    if manifest.format in ("folder", "flat"):
        subset = pd.DataFrame({"path": sel["path"].str.replace(os.sep, "/", regex=False).to_numpy(),
                               "label": [labels.get(r, lab) for r, lab in zip(kept, sel["labels"].tolist())]})
        atomic_write_text(out, csv_text(subset))
        return
    lines = sel["raw"].tolist()
    if labels:  # generic: re-serialize only the relabelled rows
        at = [c.strip() for c in _csv_fields(manifest.header)].index("label")
        lines = [_replace_field(raw, at, labels[r]) if r in labels else raw for r, raw in zip(kept, lines)]
    lines = ([manifest.header] if manifest.header is not None else []) + lines
    atomic_write_text(out, "".join(line + manifest.newline for line in lines))


def _replace_field(line: str, at: int, value: str) -> str:
    fields = _csv_fields(line)
    fields[at] = value
    return _csv_line(fields)


def skipped_table(rows: list[tuple]) -> pd.DataFrame:
    """(row position, video_id, path, reason, detail) tuples -> SKIPPED_COLUMNS indexed by position."""
    frame = pd.DataFrame(rows, columns=["position", *SKIPPED_COLUMNS])
    return frame.set_index("position").rename_axis(None).sort_index()
