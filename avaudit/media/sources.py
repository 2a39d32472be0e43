"""DATA in every form: a folder or a manifest (manifests.py), WebDataset shards (webdataset.py) or
Parquet files (parquet.py), read into one Manifest; the kept rows written back; and where a row's
bytes come from when they are inside a shard.

A row stored inside a shard keeps the shard file as its `path` (the file whose identity keys its
cache entry) and says where in it its video is: `member` (the tar member, or the Parquet column),
`offset` (the member's byte offset, or the row number) and `size` (the member's bytes; -1 for
Parquet). Rows of files have member ''. A decoding worker reads the one video it decodes into memory.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from avaudit.errors import UsageError
from avaudit.media import parquet, webdataset
from avaudit.media.formats import ManifestError
from avaudit.media.manifests import COLUMNS, Manifest, read_manifest
from avaudit.media.manifests import write_subset as write_manifest_subset
from avaudit.outputs import atomic_write, atomic_write_text, csv_text
from avaudit.vocab import SKIPPED_COLUMNS, Skip, plural

MEMBER_COLUMNS = ("member", "offset", "size")
STORED = ("webdataset", "parquet")  # the formats whose rows are members of shard files


def read_data(data: Path | str, *, root: Path | None = None, classes: Path | None = None,
              allow_outside_root: bool = False, label_field: str | None = None,
              video_column: str | None = None) -> Manifest:
    """Read DATA, whatever its form, into a Manifest. `label_field` names the label's field of a
    shard's .json member or the label column of Parquet; `video_column` the Parquet video column."""
    shards = webdataset.expand(data)
    if shards is not None:
        _refuse(data, "shards", video_column=video_column, root=root, classes=classes)
        notes: list[str] = []
        rows, skipped = webdataset.read_shards(shards, label_field=label_field, notes=notes)
        return _stored_manifest("webdataset", data, shards, rows, skipped, notes)
    files = parquet.expand(data)
    if files is not None:
        _refuse(data, "Parquet", root=root, classes=classes)
        rows, skipped, notes = [], [], []
        for path in files:
            found, lost = parquet.read_parquet_file(Path(os.path.abspath(path)), label_field=label_field, notes=notes,
                                                    video_column=video_column or parquet.VIDEO_COLUMN,
                                                    allow_outside_root=allow_outside_root)
            rows += found
            skipped += lost
        return _stored_manifest("parquet", data, files, rows, skipped, notes)
    _refuse(data, "a folder or manifest", label_field=label_field, video_column=video_column)
    return read_manifest(Path(data), root=root, classes=classes, allow_outside_root=allow_outside_root)


def _refuse(data, what: str, **options) -> None:
    """A ManifestError for an option DATA's form has no use for."""
    given = [name for name, value in options.items() if value is not None]
    if given:
        flag = "--" + given[0].replace("_", "-")
        raise ManifestError(f"{data}: {flag} does not apply: DATA is {what}")


def _stored_manifest(fmt: str, data, files: list[Path], rows: list[tuple], skipped: list[tuple],
                     notes: list[str]) -> Manifest:
    """The Manifest of rows (video_id, path, labels, split, member, offset, size) read from shard files;
    a key listed again is a duplicate id, and DATA with no row to audit is a ManifestError naming why."""
    seen: dict[str, str] = {}  # key -> where it was first listed
    kept = []
    for row in rows:
        if row[0] in seen:
            skipped.append((row[0], row[1], Skip.duplicate_id, f"{member_name(row[1], row[4], row[5])}: the key "
                                                               f"{row[0]} is already listed at {seen[row[0]]}"))
            continue
        seen[row[0]] = member_name(row[1], row[4], row[5])
        kept.append(row)
    if not kept:
        first = skipped[0][3] if skipped else f"{files[0]}: no videos"
        more = f" (and {plural(len(skipped) - 1, 'other problem')})" if len(skipped) > 1 else ""
        raise ManifestError(f"{first}{more}; nothing to audit")
    ids, paths, labels, splits, members, offsets, sizes = zip(*kept)
    table = pd.DataFrame({"video_id": ids, "path": paths, "labels": labels, "start": np.nan, "end": np.nan,
                          "split": splits, "row": np.arange(len(kept), dtype=np.int64),
                          "member": members, "offset": np.asarray(offsets, np.int64),
                          "size": np.asarray(sizes, np.int64)})
    table = table.astype({c: "str" for c in ("video_id", "path", "labels", "split", "member")})
    lost = pd.DataFrame(skipped, columns=list(SKIPPED_COLUMNS)).astype("str")
    named = frozenset(label for text in labels for label in text.split(";") if label)
    root = Path(os.path.abspath(files[0])).parent
    return Manifest(fmt, Path(data), root, table[[*COLUMNS, *MEMBER_COLUMNS]], lost, None, labels_named=named,
                    notes=notes)


def rank_rows(table: pd.DataFrame, rank: int, world: int) -> pd.DataFrame:
    """The rows torchrun's rank `rank` of `world` decodes: every world-th row, or of shards and Parquet
    every world-th shard file, whole, so that each shard is read by one machine."""
    if "member" not in table:
        return table.iloc[rank::world]
    return table[table["path"].isin(pd.unique(table["path"])[rank::world])]


def member_name(path: str, member: str, offset: int) -> str:
    """How a detail names a video inside a shard: `shard.tar/KEY.mp4`, or `file.parquet[row 12]`."""
    if not member:
        return path
    return f"{path}[row {offset}]" if path.endswith(parquet.PARQUET_SUFFIX) else f"{path}/{member}"


def open_member(path: str, member: str, offset: int, size: int):
    """The video of a row stored in a shard, in memory (decode.MemorySource), or the file a Parquet
    cell names; UnreadableFile when the shard no longer holds it."""
    from avaudit.media.decode import MemorySource
    from avaudit.media.errors import MissingFile, OutsideRoot, UnreadableFile

    name = member_name(path, member, offset)
    try:
        if path.endswith(parquet.PARQUET_SUFFIX):
            data, named = parquet.read_cell(path, member, offset)
            if data is None:
                if named is None:
                    raise MissingFile(f"{name}: the cell holds neither video bytes nor a path")
                if size == parquet.OUTSIDE:
                    raise OutsideRoot(f"{name}: the cell holds no video bytes, and its path {os.path.normpath(named)} "
                                      f"is outside the Parquet file's folder; pass --allow-outside-root to open it")
                return named
        else:
            data = webdataset.read_member(path, offset, size)
    except OSError as err:  # pyarrow's damaged page too ("Corrupt snappy compressed data")
        raise UnreadableFile(f"{name}: {err.strerror or err}") from None
    return MemorySource(name, data)


def check_new_shard(data, out: Path) -> None:
    """Before any work: a UsageError where retarget's subset `out` is a file DATA's shards or Parquet files
    name (an unreadable or missing one too, which no table lists), or a new `.tar` / `.parquet` in their
    folder, where a folder DATA would read it with them (every kept sample then listed twice)."""
    named = webdataset.expand(data) or parquet.expand(data) or []
    real = os.path.realpath(out)
    if any(real == os.path.realpath(path) for path in named):
        raise UsageError(f"{out} is one of DATA's shards ({data}): refusing to overwrite an input; choose another "
                         f"output path")
    folders = {os.path.realpath(path.parent) for path in named}
    if out.suffix in (webdataset.SHARD_SUFFIX, parquet.PARQUET_SUFFIX) and os.path.dirname(real) in folders:
        raise UsageError(f"{out}: a new shard beside DATA's shards would be read with them when their folder is DATA; "
                         f"write it in another folder")


def write_subset(manifest: Manifest, rows, out: Path) -> None:
    """Write the kept rows (row numbers) to `out`: a manifest's or folder's subset in its own format
    (manifests.write_subset); for shards and Parquet a CSV listing the kept samples (key, shard,
    member, label), in DATA's order, or with `out` a `.tar` (of shards) or `.parquet` (of Parquet),
    the kept samples themselves, every member or column, in one new file."""
    if manifest.format not in STORED:
        write_manifest_subset(manifest, rows, out)
        return
    out = Path(out)
    if any(out.resolve() == Path(path).resolve() for path in manifest.table["path"].unique()):
        raise UsageError(f"refusing to overwrite the input {out}")
    table = manifest.table
    sel = table[table["row"].isin(np.asarray(rows, dtype=np.int64))].sort_values("row")
    if manifest.format == "webdataset" and out.suffix == webdataset.SHARD_SUFFIX:
        kept = {path: set(offsets.tolist()) for path, offsets in sel.groupby("path", sort=False)["offset"]}
        atomic_write(out, lambda handle: webdataset.copy_samples(kept, handle))
        return
    if manifest.format == "parquet" and out.suffix == parquet.PARQUET_SUFFIX:
        if (sel["member"] == "").any():
            raise UsageError(f"{out}: the Parquet files name their videos' paths, so the kept rows are not in "
                             f"them to copy; write the list of kept samples instead (--out FILE.csv)")
        kept = {path: sorted(at) for path, at in sel.groupby("path", sort=False)["offset"]}
        try:
            atomic_write(out, lambda handle: parquet.copy_rows(kept, handle))
        except ValueError as err:
            raise UsageError(str(err)) from None
        return
    members = [member_name(p, m, o) if manifest.format == "parquet" else m
               for p, m, o in zip(sel["path"], sel["member"], sel["offset"].tolist())]
    kept = pd.DataFrame({"key": sel["video_id"].to_numpy(), "shard": sel["path"].to_numpy(), "member": members,
                         "label": sel["labels"].to_numpy()})
    atomic_write_text(Path(out), csv_text(kept))
