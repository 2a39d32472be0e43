"""Dataset manifests: every DATA form avaudit accepts, read into one table, and subsets written back.

A manifest is read record by record (records.py: which lines make each record) so that each row keeps
its original text (``raw``) and every line is a row, a further record of one, or a skipped row naming
its lines; a subset is written back as those very records, so a retargeted Kinetics CSV is
byte-compatible with the input. Folders are read by folders.py.
A video listed on several records (AVE's multi-label videos, AVVP's events, any manifest that repeats
an id with another label) is one row with all its labels; its further records ride along in
``Manifest.more_lines`` and are written back with it. Media are located with one ``os.scandir`` per
directory, never a stat per row (manifests run to 250k rows), and only inside the media root unless
the caller allows otherwise.
"""
from __future__ import annotations

import csv
import io
import math
import os
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from avaudit.errors import UsageError
from avaudit.media.folders import PATH_ECHO, Finder, list_clips, printable
from avaudit.media.formats import (
    CLASS_INDEX,
    EXPECTED,
    FORMATS,
    MEDIA_EXTENSIONS,
    Format,
    ManifestError,
    Row,
    audioset,
    csv_fields,
    detect,
    echo,
    read_class_index,
)
from avaudit.media.records import Span, read_records, where
from avaudit.outputs import atomic_write_text, csv_text
from avaudit.vocab import SKIPPED_COLUMNS, Skip, plural

__all__ = ["COLUMNS", "FORMATS", "MEDIA_EXTENSIONS", "Manifest", "ManifestError", "read_manifest", "write_subset"]
COLUMNS = ("video_id", "path", "labels", "start", "end", "split", "row", "raw")
_FLOAT_COLUMNS = ("start", "end", "event_start", "event_end")
# The first bytes of the containers avaudit decodes (ISO BMFF's box type at byte 4, Matroska, RIFF/AVI).
_VIDEO_MAGIC = ((4, b"ftyp"), (0, b"\x1aE\xdf\xa3"), (0, b"RIFF"))


@dataclass
class Manifest:
    format: str  # one of FORMATS
    source: Path  # the DATA given: a folder or a manifest file
    root: Path  # absolute folder where media resolve
    table: pd.DataFrame  # COLUMNS (+ AVE: event_start,event_end; LLP: youtube_id), a row per usable video
    skipped: pd.DataFrame  # SKIPPED_COLUMNS, one row per listed video (or unparsable record) that is not usable
    header: str | None  # the header line(s) as they were; None for folders and headerless manifests
    newline: str = "\n"  # the input's line ending, reused by write_subset
    more_lines: dict[int, list[tuple[int, str]]] = field(default_factory=dict)  # row -> its video's further records
    labels_named: frozenset[str] = frozenset()  # every label DATA names, videos without media included
    notes: list[str] = field(default_factory=list)  # lines for the user: media found where, labels left unnamed
    spans: Sequence[Span] = field(default_factory=list)  # row -> (first, last) line of its record; manifests only


def _named_path(p: Row) -> str:
    """The path a row names in the dataset's own layout: its first place."""
    return os.path.join(p.places[0][0], p.places[0][1] + p.exts[0])


class _Inside:
    """Whether a place is inside the media root; a folder is judged once, whatever its number of files."""

    def __init__(self, prefix: str) -> None:
        self.prefix, self._folders = prefix, {}

    def __call__(self, place: tuple[str, str]) -> bool:
        folder, stem = place
        if not stem or stem in (".", "..") or os.sep in stem or (os.altsep and os.altsep in stem):
            return os.path.normpath(os.path.join(folder, stem)).startswith(self.prefix)
        if folder not in self._folders:  # a plain file name: its folder decides
            self._folders[folder] = os.path.normpath(os.path.join(folder, "x")).startswith(self.prefix)
        return self._folders[folder]


class _Video:
    """A video while its records are gathered: its first record's row, lines and text, the path it names,
    its window, all labels and its further records (row, text, lines); then what became of its media:
    the file found (`path`, with the first record's split and extras), or a skip (`reason`, `detail`)."""
    __slots__ = ("row", "span", "raw", "labels", "more", "named", "start", "end", "split", "extras", "path",
                 "reason", "detail")

    def __init__(self, row: int, span: Span, raw: str, labels: list[str], p: Row):
        self.row, self.span, self.raw, self.labels, self.named = row, span, raw, labels, _named_path(p)
        self.start, self.end, self.split, self.extras = p.start, p.end, p.split, p.extras
        self.more: list[tuple[int, str, Span]] = []
        self.path = self.reason = self.detail = None

    def lines(self) -> str:
        """Where a detail says the video is listed: 'line 3', or 'line 3 (also lines 7-8)'."""
        also = f" (also {', '.join(where(span) for _, _, span in self.more)})" if self.more else ""
        return where(self.span) + also


class Spans(Sequence):
    """Each row's (first, last) line, two integers a row (a list of tuples costs ten times that)."""

    def __init__(self) -> None:
        self._first, self._last = array("q"), array("q")

    def append(self, span: Span) -> None:
        self._first.append(span[0])
        self._last.append(span[1])

    def __len__(self) -> int:
        return len(self._first)

    def __getitem__(self, row):
        if isinstance(row, slice):
            return [self[i] for i in range(*row.indices(len(self)))]
        return self._first[row], self._last[row]

    def __eq__(self, other) -> bool:
        return list(self) == list(other) if isinstance(other, Sequence) else NotImplemented


def _tried(p: Row, places: tuple[tuple[str, str], ...]) -> str:
    """Where a missing file was looked for; a path longer than any real one is shortened."""
    paths = [os.path.join(folder, stem + p.exts[0]) for folder, stem in places]
    tried = ", ".join(paths)
    if len(tried) > PATH_ECHO:
        tried = ", ".join(echo(path, PATH_ECHO) for path in paths)
    return f"tried {tried}" + (f" (also {' '.join(p.exts[1:])})" if len(p.exts) > 1 else "")


def _repeat(p: Row, seen: _Video, fmt: Format) -> str | None:
    """Why a record of an id already listed is not merged into its video; None to merge it."""
    named, before = os.path.basename(_named_path(p)), os.path.basename(seen.named)
    if fmt.names_files and named != before:
        return (f"{echo(named)} has the id {echo(p.video_id)} of {echo(before)} on {where(seen.span)} "
                f"(an id is the path without its extension); rename one to audit both")
    new = [label for label in p.labels.split(";") if label and label not in seen.labels]
    same = all(a == b or (math.isnan(a) and math.isnan(b)) for a, b in ((p.start, seen.start), (p.end, seen.end)))
    if fmt.events or (new and same):  # another event, or the same clip under another label
        return None
    why = "already listed" if same else "already listed with another window"
    return f"{echo(p.video_id)} {why} on {where(seen.span)}"


def _locate(v: _Video, p: Row, root: str, finder: Finder, inside: _Inside | None, missing: list[str]) -> None:
    """Find a video's media file when its first record is read: its `path`, or why it is skipped (the
    detail's lines are named once all records are read, since later ones may add some)."""
    places = p.places if inside is None else tuple(filter(inside, p.places))
    if not places:
        v.reason, v.detail = Skip.outside_root, (f"{echo(v.named, PATH_ECHO)} is outside the media root {root}; "
                                                 f"pass a --root that holds it, or --allow-outside-root")
        return
    path, refused = finder.find(places, p.exts)
    if path is None:
        v.reason, v.detail = (Skip.unreadable_file, refused) if refused else (Skip.missing_file, _tried(p, places))
        if not refused and not missing:  # the note's example
            missing.append(v.named)
        return
    if printable(path) != path:
        v.named, v.reason = path, Skip.bad_name
        v.detail = f"{echo(path, PATH_ECHO)}: the path is not UTF-8; rename it to audit it"
        return
    v.path = path


def _build(entries, fmt: Format, root: str, finder: Finder, *, allow_outside_root: bool):
    """(table, skipped, more_lines, labels named, found-files note, spans): every listed video lands in
    exactly one of table and skipped; a video's records after its first are merged into it. Records are
    read one at a time and each video's file looked for at its first record, so no parse outlives its record."""
    videos: dict[str, _Video] = {}
    skipped: list[tuple] = []  # (row, video_id, path, reason, detail)
    named: set[str] = set()
    spans, missing, n_missing = Spans(), [], 0
    inside = None if allow_outside_root else _Inside(os.path.join(root, ""))
    for row, (span, raw, p) in enumerate(entries):
        spans.append(span)
        if not isinstance(p, Row):
            skipped.append((row, "", "", *p))
            continue
        labels = [label for label in p.labels.split(";") if label]
        named.update(labels)
        seen = videos.get(p.video_id)
        if seen is None:
            videos[p.video_id] = v = _Video(row, span, raw, labels, p)
            _locate(v, p, root, finder, inside, missing)
            n_missing += v.reason == Skip.missing_file
            continue
        why = _repeat(p, seen, fmt)
        if why is None:
            seen.labels += [label for label in labels if label not in seen.labels]
            seen.more.append((row, raw, span))
            continue
        skipped.append((row, p.video_id, _named_path(p), Skip.duplicate_id, f"{where(span)}: {why}"))
    records, more = [], {}
    for video_id, v in videos.items():
        if v.path is None:
            skipped.append((v.row, video_id, v.named, v.reason, f"{v.lines()}: {v.detail}"))
            continue
        records.append((video_id, v.path, ";".join(v.labels), v.start, v.end, v.split, v.row, v.raw, *v.extras))
        if v.more:
            more[v.row] = [(row, raw) for row, raw, _ in v.more]
    videos.clear()
    n_found = len(records)
    note = (f"{n_found:,} of {plural(n_found + n_missing, 'file')} found under {root}; "
            f"e.g. {echo(str(missing[0]), PATH_ECHO)}" if missing else None)
    skipped.sort(key=lambda s: s[0])
    return _table(records, fmt.extras), _skipped([s[1:] for s in skipped]), more, frozenset(named), note, spans


def _dtypes(columns) -> dict:
    return {c: float if c in _FLOAT_COLUMNS else np.int64 if c == "row" else "str" for c in columns}


def _table(records: list[tuple], extras: tuple[str, ...] = ()) -> pd.DataFrame:
    columns = [*COLUMNS, *extras]
    return pd.DataFrame.from_records(records, columns=columns).astype(_dtypes(columns))


def _skipped(rows: list[tuple]) -> pd.DataFrame:
    rows = [tuple(printable(str(v)) for v in row) for row in rows]
    return pd.DataFrame(rows, columns=list(SKIPPED_COLUMNS)).astype("str")


def _read_folder(data: Path) -> Manifest:
    """Category folders (or one flat folder) of clips: folders.list_clips's clips as rows, a clip
    beside one of the same name (clip.mp4, clip.mkv) skipped as a duplicate id."""
    clips = list_clips(data)
    if not clips.ids and not clips.skipped:
        below = "".join(f"; {note}" for note in clips.notes)
        raise ManifestError(f"{data}: no media files in the folder or its category folders{below}; {EXPECTED}")
    rows = pd.DataFrame({"video_id": clips.ids, "path": clips.paths, "labels": clips.labels, "start": math.nan,
                         "end": math.nan, "split": "", "row": np.arange(len(clips.ids)), "raw": ""})
    repeated = rows["video_id"].duplicated().to_numpy()  # clip.mp4 beside clip.mkv: the first one wins
    skipped = clips.skipped + [(row.video_id, row.path, Skip.duplicate_id, f"{row.video_id} already listed")
                               for row in rows[repeated].itertuples(index=False)]
    table = rows[~repeated].reset_index(drop=True).astype(_dtypes(COLUMNS))
    return Manifest("folder" if clips.categories else "flat", data, data, table, _skipped(skipped), None,
                    labels_named=frozenset(clips.labels) - {""}, notes=clips.notes)


def _is_video(path: Path) -> bool:
    if path.suffix.lower() in MEDIA_EXTENSIONS:
        return True
    try:
        with open(path, "rb") as handle:
            head = handle.read(12)
    except OSError:
        return False
    return any(head[at : at + len(magic)] == magic for at, magic in _VIDEO_MAGIC)


def read_manifest(data: Path, *, root: Path | None = None, classes: Path | None = None,
                  allow_outside_root: bool = False) -> Manifest:
    """Read DATA (a folder of clips or a manifest file) into a Manifest.

    `root` (manifests only) is where media resolve [default: the manifest's folder]; rows naming a
    file outside it are skipped unless `allow_outside_root`. `classes` is AudioSet's class index
    (index,mid,display_name) [default: class_labels_indices.csv beside DATA or in root].
    """
    data = Path(data)
    if data.is_dir():
        if classes is not None:
            raise ManifestError(f"{data}: --classes names the labels of an AudioSet segments CSV; DATA is a folder")
        return _read_folder(Path(os.path.abspath(data)))
    if not data.exists():
        raise ManifestError(f"{data}: no such file or folder")
    if _is_video(data):
        raise ManifestError(f"{data}: DATA is one video, and this command audits a dataset (a folder of clips or "
                            f"a manifest); for one video, run `avaudit localize {data}`")
    media_root = Path(os.path.abspath(root if root is not None else data.parent))
    if not media_root.is_dir():
        raise ManifestError(f"{data}: media root {media_root} is not a folder")
    try:
        text = data.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ManifestError(f"{data}: not UTF-8 text ({e.reason} at byte {e.start}); {EXPECTED}") from None
    except OSError as e:
        raise ManifestError(f"{data}: cannot read ({e.strerror})") from None
    lines = text.split("\n")
    del text  # the lines hold it (each record's text is its line), and a manifest may run to gigabytes
    newline = "\r\n" if lines[0].endswith("\r") else "\n"
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        raise ManifestError(f"{data}: empty manifest; {EXPECTED}")
    fmt, n_header = detect([line.removesuffix("\r") for line in lines[first : first + 32]], data)
    notes = []
    if fmt.name == "audioset":
        index = Path(classes) if classes is not None else next(
            (p for p in (data.parent / CLASS_INDEX, media_root / CLASS_INDEX) if p.is_file()), None)
        fmt = audioset(read_class_index(index) if index is not None else {}, data.stem)
        if index is None:
            notes.append(f"labels are AudioSet label ids (/m/...): no {CLASS_INDEX} beside {data} or in "
                         f"{media_root}; pass --classes FILE to name them")
    elif classes is not None:
        raise ManifestError(f"{data}: --classes names the labels of an AudioSet segments CSV; DATA is a "
                            f"{fmt.name} manifest")
    header = newline.join(line.removesuffix("\r") for line in lines[first : first + n_header]) if n_header else None
    table, skipped, more, named, found, spans = _build(read_records(lines, first + n_header, fmt, str(media_root)),
                                                       fmt, str(media_root), Finder(),
                                                       allow_outside_root=allow_outside_root)
    if not spans:
        raise ManifestError(f"{data}: the manifest lists no videos, only a header")
    return Manifest(fmt.name, data, media_root, table, skipped, header, newline, more, named,
                    ([found] if found else []) + notes, spans)


def write_subset(
    manifest: Manifest,
    keep: pd.DataFrame | Sequence[int],
    out: Path,
    *,
    labels: Mapping[int, str] | None = None,
) -> None:
    """Write the rows `keep` (a table with a `row` column, or row numbers) to `out`, atomically.

    Dataset manifests get their header and every original record of the kept videos, in input order,
    with the input's line ending. Folders get a `path,label` CSV of absolute paths. `labels`
    (row -> ';'-joined labels) overrides labels, for folders and generic CSVs only; a relabelled
    video is written as one record.
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
    records = list(zip(kept, sel["raw"].tolist()))
    if labels:  # generic: re-serialize only the relabelled rows
        at = [c.strip() for c in csv_fields(manifest.header)].index("label")
        records = [(r, _replace_field(raw, at, labels[r]) if r in labels else raw) for r, raw in records]
    for r in kept:
        if r not in labels:
            records += manifest.more_lines.get(r, [])
    lines = ([manifest.header] if manifest.header is not None else []) + [raw for _, raw in sorted(records)]
    atomic_write_text(out, "".join(line + manifest.newline for line in lines))


def _replace_field(line: str, at: int, value: str) -> str:
    fields = csv_fields(line)
    fields[at] = value
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(fields)
    return buf.getvalue()[:-1]


def skipped_table(rows: list[tuple]) -> pd.DataFrame:
    """(row position, video_id, path, reason, detail) tuples -> SKIPPED_COLUMNS indexed by position."""
    frame = pd.DataFrame(rows, columns=["position", *SKIPPED_COLUMNS])
    return frame.set_index("position").rename_axis(None).sort_index()
