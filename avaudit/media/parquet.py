"""Parquet as DATA: a file, or a folder of shards, with the videos' bytes (or paths) in a column.

The defaults are Hugging Face's: a `video` column of struct<bytes, path> (datasets' Video feature) and a
`label` column, whose integers are named by the ClassLabel names datasets keeps in the schema's
metadata. A plain binary column holds bytes; a string column holds paths, resolved like a manifest's.

Only the small columns are read to list the rows, a row group at a time, so a shard's video bytes are
never all in memory: each decoding worker reads its row's cell alone, from a cursor over that row's row
group (rows come in order, so the next row is usually the cursor's next cell).
"""
from __future__ import annotations

import bisect
import functools
import json
import os
from pathlib import Path

from avaudit.media.formats import BadLabel, echo, one_label
from avaudit.media.webdataset import stored_files
from avaudit.vocab import Skip

PARQUET_SUFFIX = ".parquet"
VIDEO_COLUMN = "video"  # datasets' Video feature: struct<bytes: binary, path: string>
LABEL_COLUMN = "label"
ID_COLUMNS = ("video_id", "id", "key", "__key__")  # a column naming each video, where there is one
CELL = -1  # a row's `size`: its cell is read whole
OUTSIDE = -2  # a struct row's `size` whose path leaves the file's folder: used only if its bytes are there
BATCH_ROWS = 1  # rows read at once from a video column: one video's bytes
READ_BUFFER = 1 << 20  # pyarrow reads a column chunk a page at a time through this buffer (without it, and
# with pre_buffer, it reads the whole chunk: the row group's videos)
COPY_BYTES = 64 << 20  # kept rows gathered before retarget writes them as one row group of the new file


def expand(data: str | os.PathLike) -> list[Path] | None:
    """The Parquet files DATA names (a `.parquet` file, or a folder holding them and no clips), in
    order; None when DATA is not Parquet."""
    path = Path(data)
    if path.is_file():
        return [path] if path.suffix == PARQUET_SUFFIX else None
    if path.is_dir():
        return stored_files(path, (PARQUET_SUFFIX,), what="Parquet files", instead="name one file")
    return None


def _class_names(schema, column: str) -> list[str] | None:
    """The ClassLabel names datasets saved for `column` in the schema's metadata, if any."""
    try:
        info = json.loads((schema.metadata or {}).get(b"huggingface", b"{}"))
        feature = info.get("info", {}).get("features", {}).get(column, {})
        names = feature.get("names") if isinstance(feature, dict) else None
    except (ValueError, AttributeError):
        return None
    return names if isinstance(names, list) else None


def _labels(value, names: list[str] | None) -> str:
    """A label cell as ';'-joined labels: a name, a ClassLabel index, or a list of them."""
    values = [v for v in (value if isinstance(value, list) else [value]) if v is not None]  # a null is no label
    try:
        values = [v.decode("utf-8") if isinstance(v, bytes) else v for v in values]  # a binary column of text
    except UnicodeDecodeError:
        raise BadLabel(f"the label cell holds {echo(str(value))}, which is not UTF-8 text") from None
    if any(isinstance(v, (bool, dict, list)) or v != v for v in values):
        raise BadLabel(f"the label cell holds {echo(str(value))}, not a label (a string, a number or a list of them)")
    named = [names[v] if names is not None and isinstance(v, int) and 0 <= v < len(names) else str(v)
             for v in values]
    return ";".join(dict.fromkeys(one_label(v.strip()) for v in named if v.strip()))


def _video_kind(field) -> str:
    """'struct' (bytes and path), 'bytes' or 'path': what the video column holds; ValueError otherwise."""
    import pyarrow as pa

    kind = field.type
    if pa.types.is_struct(kind) and kind.get_field_index("bytes") >= 0:
        data, at = kind[kind.get_field_index("bytes")].type, kind.get_field_index("path")
        if not (pa.types.is_binary(data) or pa.types.is_large_binary(data)):
            raise ValueError(f"the column {field.name!r} is {kind}, whose bytes are not binary")
        if at >= 0 and not (pa.types.is_string(kind[at].type) or pa.types.is_large_string(kind[at].type)):
            raise ValueError(f"the column {field.name!r} is {kind}, whose path is not text")
        return "struct"
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return "bytes"
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return "path"
    raise ValueError(f"the column {field.name!r} is {kind}, not video bytes, paths or datasets' Video struct")


def read_parquet_file(path: Path, *, video_column: str = VIDEO_COLUMN, label_field: str | None = None,
                      notes: list[str], allow_outside_root: bool = False) -> tuple[list[tuple], list[tuple]]:
    """(rows (video_id, path, labels, split, member, offset, size), skipped rows) of one Parquet file.

    A row's `member` is the video column and `offset` its row number in the file, `size` CELL (or OUTSIDE,
    see _outside): the cell the worker reads; a path column gives rows of the files it names (member '',
    `path` that file). A file that cannot be read, or lacks the video column, is one skipped row naming it.
    A path outside the file's folder is `outside root` unless `allow_outside_root`, as a manifest's is
    outside --root."""
    import pyarrow.parquet as pq

    label_column = label_field or LABEL_COLUMN
    try:
        handle = pq.ParquetFile(path)
        schema = handle.schema_arrow
    except Exception as err:  # noqa: BLE001 - pyarrow's errors for a file that is not Parquet vary
        return [], [("", str(path), Skip.unreadable_file, f"{path}: not a readable Parquet file ({err})")]
    if video_column not in schema.names:
        return [], [("", str(path), Skip.unreadable_file,
                     f"{path}: no column {video_column!r} (it has {', '.join(schema.names)}); name the video "
                     f"column with --video-column")]
    try:
        kind = _video_kind(schema.field(video_column))
    except ValueError as err:
        return [], [("", str(path), Skip.unreadable_file, f"{path}: {err}; name the video column with --video-column")]
    if label_column not in schema.names:
        notes.append(f"{path}: no column {label_column!r}, so its videos are unlabelled; name the label column "
                     f"with --label-field")
    names = _class_names(schema, label_column)
    id_column = next((c for c in ID_COLUMNS if c in schema.names), None)
    wanted = [c for c in (id_column, label_column, "split") if c in schema.names]
    if kind != "bytes":
        wanted.append(f"{video_column}.path" if kind == "struct" else video_column)
    rows, skipped, at = [], [], 0
    for group in range(handle.metadata.num_row_groups):
        try:
            cells = handle.read_row_group(group, columns=wanted).to_pylist()
        except Exception as err:  # noqa: BLE001 - a damaged row group is its rows' loss, not the file's
            n = handle.metadata.row_group(group).num_rows
            skipped.append(("", str(path), Skip.unreadable_file,
                            f"{path}: row group {group} (rows {at}-{at + n - 1}) is unreadable ({err})"))
            at += n
            continue
        for cell in cells:
            row, skip = _row(cell, at, path, kind, video_column, id_column, label_column, names)
            if row is not None and not allow_outside_root:
                video = cell.get(video_column)
                row, skip = _outside(row, video.get("path") if isinstance(video, dict) else video, path, at)
            (rows.append(row) if skip is None else skipped.append(skip))
            at += 1
    return rows, skipped


def _row(cell: dict, at: int, path: Path, kind: str, video_column: str, id_column: str | None,
         label_column: str, names: list[str] | None) -> tuple[tuple | None, tuple | None]:
    """(the row, None) or (None, its skipped row) of one row's small cells."""
    video = cell.get(video_column)
    named = video.get("path") if isinstance(video, dict) else video
    given = "" if not id_column or cell[id_column] is None else str(cell[id_column])  # a null or empty id is no id
    video_id = given if given.strip() else os.path.splitext(os.path.basename(named))[0] if named \
        else f"{path.stem}-{at:06d}"
    try:
        labels = _labels(cell.get(label_column), names)
    except BadLabel as err:
        return None, (video_id, str(path), Skip.bad_label, f"{path}: row {at}: {err}")
    split = "" if cell.get("split") is None else str(cell["split"])
    if kind == "path":
        if not named:
            return None, (video_id, str(path), Skip.missing_file, f"{path}: row {at} names no video file")
        return (video_id, os.path.join(path.parent, named), labels, split, "", at, CELL), None
    return (video_id, str(path), labels, split, video_column, at, CELL), None


def _outside(row: tuple, named: str | None, path: Path, at: int) -> tuple[tuple | None, tuple | None]:
    """(row, None) where the path a row's cell names (`named`) is inside the Parquet file's folder; else, of a
    path column, (None, its `outside root` skipped row); of datasets' struct, the row sized OUTSIDE: its
    bytes are read, but its path is never opened should the bytes be null (sources.open_member)."""
    if not named:
        return row, None
    where = os.path.normpath(os.path.join(os.path.abspath(path.parent), named))
    if where.startswith(os.path.abspath(path.parent) + os.sep):
        return row, None
    if row[4]:
        return (*row[:6], OUTSIDE), None
    return None, (row[0], row[1], Skip.outside_root, f"{path}: row {at}: {where} is outside the Parquet file's "
                                                     f"folder; pass --allow-outside-root to open it")


@functools.lru_cache(maxsize=8)
def _group_starts(path: str, identity: tuple) -> list[int]:
    """The first row of each row group, and the row count last, of a file as it is now (`identity`)."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
    starts = [0]
    for group in range(meta.num_row_groups):
        starts.append(starts[-1] + meta.row_group(group).num_rows)
    return starts


class _Cells:
    """One row group's video cells, read forward BATCH_ROWS at a time through a READ_BUFFER: in memory, the
    data page that holds the row (one video, where the file was written a page per video; up to pyarrow's
    1,024 rows by default), never the whole group. A worker asks for its rows in order, so the next row is
    usually the next cell; one behind the cursor (a row decoded again after a crash) reads the group anew."""

    def __init__(self, path: str, group: int, column: str):
        self.path, self.group, self.column = path, group, column
        self._restart()

    def _restart(self) -> None:
        import pyarrow.parquet as pq

        self.batches = pq.ParquetFile(self.path, buffer_size=READ_BUFFER, pre_buffer=False).iter_batches(
            batch_size=BATCH_ROWS, row_groups=[self.group], columns=[self.column])
        self.first, self.cells = 0, []

    def cell(self, row: int):
        """The cell of the group's `row`-th row; OSError when the group ends before it."""
        if row < self.first:
            self._restart()
        while row >= self.first + len(self.cells):
            self.first += len(self.cells)
            batch = next(self.batches, None)
            if batch is None:
                raise OSError(f"the row group ends before its row {row}")
            self.cells = batch.column(0).to_pylist()
        return self.cells[row - self.first]


@functools.lru_cache(maxsize=1)
def _cells(path: str, identity: tuple, group: int, column: str) -> _Cells:
    """The cursor over one row group's video cells (the last one a process read)."""
    return _Cells(path, group, column)


def read_cell(path: str, column: str, row: int) -> tuple[bytes | None, str | None]:
    """(bytes, path) of a row's video cell: the bytes, or the path it names (relative to the file's folder);
    OSError when the file no longer has that row."""
    info = os.stat(path)
    identity = (info.st_size, info.st_mtime_ns)
    starts = _group_starts(path, identity)
    group = bisect.bisect_right(starts, row) - 1
    if not 0 <= row < starts[-1]:
        raise OSError(f"the file has no row {row} (it has {starts[-1]})")
    value = _cells(path, identity, group, column).cell(row - starts[group])
    if isinstance(value, dict):
        named = value.get("path")
        return value.get("bytes"), os.path.join(os.path.dirname(path), named) if named else None
    return value, None


def copy_rows(kept: dict[str, list[int]], handle) -> None:
    """The kept rows (file path -> row numbers, ascending) of Parquet files with one schema, every
    column, into one new Parquet file written to `handle`, read BATCH_ROWS at a time and written in row
    groups of about COPY_BYTES: a huge row group of the input is never held whole."""
    import pyarrow.parquet as pq

    writer = None
    try:
        for path, rows in kept.items():
            source = pq.ParquetFile(path, buffer_size=READ_BUFFER, pre_buffer=False)
            if writer is None:
                writer = pq.ParquetWriter(handle, source.schema_arrow)
            elif not source.schema_arrow.equals(writer.schema):
                raise ValueError(f"{path} has other columns than the first file; write a list of the kept rows "
                                 f"(--out FILE.csv) instead")
            starts = _group_starts(path, (os.stat(path).st_size, os.stat(path).st_mtime_ns))
            for group in range(len(starts) - 1):
                wanted = {row - starts[group] for row in rows if starts[group] <= row < starts[group + 1]}
                if wanted:
                    _copy_group(source, group, wanted, writer)
    finally:
        if writer is not None:
            writer.close()


def _copy_group(source, group: int, wanted: set[int], writer) -> None:
    """The `wanted` rows of row group `group` of `source`, in order, into `writer`."""
    import pyarrow as pa

    held, size, first = [], 0, 0
    for batch in source.iter_batches(batch_size=BATCH_ROWS, row_groups=[group]):
        take = [i for i in range(batch.num_rows) if first + i in wanted]
        first += batch.num_rows
        if take:
            held.append(batch.take(take))
            size += held[-1].nbytes
        if size >= COPY_BYTES:
            writer.write_table(pa.Table.from_batches(held))
            held, size = [], 0
    if held:
        writer.write_table(pa.Table.from_batches(held))
