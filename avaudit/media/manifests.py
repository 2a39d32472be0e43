"""Dataset manifests: every DATA form avaudit accepts, read into one table, and subsets written back.

A manifest is read record by record (records.py: which lines make each record) so that each row knows
its record's lines and every line is a row, a further record of one, or a skipped row naming its
lines; a subset is written back as those very records (read again from the file: `Manifest.records`),
so a retargeted Kinetics CSV is byte-compatible with the input. Folders are read by folders.py.
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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from avaudit.errors import UsageError
from avaudit.media.folders import Finder, list_clips, printable
from avaudit.media.formats import (
    CLASS_INDEX,
    EXPECTED,
    FORMATS,
    MEDIA_EXTENSIONS,
    ManifestError,
    Row,
    audioset,
    csv_fields,
    detect,
    read_class_index,
    reversed_event,
)
from avaudit.media.listing import build, gather, give_back_freed
from avaudit.media.records import FileLines, Span, read_records, where
from avaudit.outputs import atomic_write_text, csv_text
from avaudit.vocab import SKIPPED_COLUMNS, Skip, plural

__all__ = ["COLUMNS", "FORMATS", "MEDIA_EXTENSIONS", "Manifest", "ManifestError", "read_manifest", "write_subset"]
COLUMNS = ("video_id", "path", "labels", "start", "end", "split", "row")
_FLOAT_COLUMNS = ("start", "end", "event_start", "event_end")
_CODED_COLUMNS = ("labels", "split")
# The first bytes of the containers avaudit decodes (ISO BMFF's box type at byte 4, Matroska, RIFF/AVI).
_VIDEO_MAGIC = ((4, b"ftyp"), (0, b"\x1aE\xdf\xa3"), (0, b"RIFF"))


@dataclass
class Manifest:
    format: str  # one of FORMATS
    source: Path  # the DATA given: a folder or a manifest file
    root: Path  # absolute folder where media resolve
    table: pd.DataFrame  # COLUMNS (+ AVE: event_start,event_end; LLP: youtube_id), a row per usable video;
    # labels and split categorical
    skipped: pd.DataFrame  # SKIPPED_COLUMNS, one row per listed video (or unparsable record) that is not usable
    header: str | None  # the header line(s) as they were; None for folders and headerless manifests
    newline: str = "\n"  # the input's line ending, reused by write_subset
    more_lines: dict[int, list[tuple[int, str]]] = field(default_factory=dict)  # row -> its video's further records
    labels_named: frozenset[str] = frozenset()  # every label DATA names, videos without media included
    notes: list[str] = field(default_factory=list)  # lines for the user: media found where, labels left unnamed
    spans: Sequence[Span] = field(default_factory=list)  # row -> (first, last) line of its record; manifests only
    identity: tuple[int, int] | None = None  # the manifest file's size and mtime_ns when read; manifests only

    def records(self, rows: Sequence[int]) -> list[str]:
        """The text of the records of `rows` (the table's `row`), as the manifest file holds them: read again by
        their lines, so the table keeps no copy of the file's text (~56 bytes a row). Refused where the file has
        changed since it was read."""
        source = self.source
        try:
            info = os.stat(source)
            if (info.st_size, info.st_mtime_ns) != self.identity:
                raise ManifestError(f"{source}: changed since it was read; run the command again")
            lines = FileLines(source)
        except (OSError, UnicodeDecodeError) as e:
            raise ManifestError(f"{source}: cannot read it again ({getattr(e, 'strerror', None) or e})") from None
        return [lines.record(self.spans[row]) for row in rows]


def _dtypes(columns) -> dict:
    """The table's column types: labels and split as categoricals (listing.categorical: a byte a row, not a string)."""
    return {c: float if c in _FLOAT_COLUMNS else np.int64 if c == "row" else "category" if c in _CODED_COLUMNS
            else "str" for c in columns}


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
                         "end": math.nan, "split": "", "row": np.arange(len(clips.ids))})
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


def _noting_reversed(entries, found: list):
    """`entries` passed through as they stream, with the AVVP event records whose offset comes before
    their onset added to `found` as (span, why) (kept: formats.reversed_event)."""
    for span, raw, parsed in entries:
        if isinstance(parsed, Row) and (why := reversed_event(raw)):
            found.append((span, why))
        yield span, raw, parsed


def _reversed_note(found: list, data: Path) -> list[str]:
    """A note naming the first reversed event record and how many more there are."""
    if not found:
        return []
    more = f" ({plural(len(found) - 1, 'more event')} like it)" if len(found) > 1 else ""
    return [f"{data}: {where(found[0][0])}: {found[0][1]}{more}; kept, as the event between the two times "
            f"(AVVP_eval_audio.csv has one such row)"]


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
        info = os.stat(data)
        lines = FileLines(data)  # each line read from the file when asked for: a manifest may run to gigabytes
    except UnicodeDecodeError as e:
        raise ManifestError(f"{data}: not UTF-8 text ({e.reason} at byte {e.start}); {EXPECTED}") from None
    except OSError as e:
        raise ManifestError(f"{data}: cannot read ({e.strerror})") from None
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
    records, reversed_events = read_records(lines, first + n_header, fmt, str(media_root)), []
    if fmt.events:
        records = _noting_reversed(records, reversed_events)
    listed = gather(records, fmt, str(media_root), Finder(), allow_outside_root=allow_outside_root,
                    text_of=lines.record)
    del records, lines  # the file: not read past the records
    table, skipped, more, named, found, spans = build(listed, fmt, str(media_root))
    del listed  # the gathered columns
    give_back_freed()
    if not spans:
        raise ManifestError(f"{data}: the manifest lists no videos, only a header")
    notes += _reversed_note(reversed_events, data)
    return Manifest(fmt.name, data, media_root, table, skipped, header, newline, more, named,
                    ([found] if found else []) + notes, spans, (info.st_size, info.st_mtime_ns))


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
    # np.isin (a lookup table over the rows' range), not np.setdiff1d: that hashed and sorted every row of the
    # table, 0.5 CPU-s at 1M rows and 9 at 10M (most of retarget's time there)
    unknown = rows[~np.isin(rows, table["row"].to_numpy())]
    if unknown.size:
        raise UsageError(f"rows not in the manifest's table: {unknown[:10].tolist()}")
    if manifest.source.is_file() and out.resolve() == manifest.source.resolve():
        raise UsageError(f"refusing to overwrite the input manifest {manifest.source}")
    labels = dict(labels or {})
    if labels and manifest.format not in ("folder", "flat", "generic"):
        raise UsageError(f"labels cannot be overridden in a {manifest.format} manifest")
    columns = ["row", "path", "labels"] if manifest.format in ("folder", "flat") else ["row"]
    sel = table.loc[table["row"].isin(rows), columns].sort_values("row")  # the columns it writes: not all the text
    kept = sel["row"].tolist()
    if manifest.format in ("folder", "flat"):
        subset = pd.DataFrame({"path": sel["path"].str.replace(os.sep, "/", regex=False).to_numpy(),
                               "label": [labels.get(r, lab) for r, lab in zip(kept, sel["labels"].tolist())]})
        atomic_write_text(out, csv_text(subset))
        return
    records = list(zip(kept, manifest.records(kept)))
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
