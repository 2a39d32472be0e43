"""A cache of each clip's five-layer logits, kept outside the audited data.

A second audit of the same data with the same model decodes nothing, and an interrupted run
resumes where it stopped. Entries live under `<root>/<fingerprint>/` in one append-only file per
torchrun rank (entries.py), appended a batch at a time under the folder's lock: a kill at any moment
leaves only whole entries to read, several processes add to one folder, and ten million clips are a
handful of files, not a file per batch.
"""
from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import stat
import time
import warnings
from pathlib import Path
from typing import BinaryIO, Sequence

import numpy as np

from avaudit.errors import AvauditWarning
from avaudit.inference import blocks, entries
from avaudit.media.listing import give_back_freed
from avaudit.outputs import STALE_TEMP_S, atomic_write_text
from avaudit.vocab import LAYERS

N_LAYERS = len(LAYERS)
KEY_DTYPE = "<U32"  # blake2b, 16 bytes, as hex
STORED_KEY = "S32"  # the same, as ASCII bytes in entry files and in an audit
KEY_BLOCK = 65_536  # rows whose keys clip_key_bytes makes at a time
COMPACT_AT = 64  # records in an entry file (a batch each) past which a reader joins them into one


def default_cache_dir() -> Path:
    """$AVAUDIT_CACHE_DIR, else $XDG_CACHE_HOME/avaudit, else ~/.cache/avaudit."""
    if os.environ.get("AVAUDIT_CACHE_DIR"):
        return Path(os.environ["AVAUDIT_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "avaudit"


def model_fingerprint(path: Path) -> str:
    """First 16 hex chars of the checkpoint's sha256: any retraining gives a fresh cache.

    An audit asks more than once (its checkpoint fields, then its cache, per torchrun shard
    too); the file is hashed once while its identity is unchanged.
    """
    info = os.stat(path)
    return _sha256_prefix(os.path.realpath(path), info.st_size, info.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _sha256_prefix(path: str, size: int, mtime_ns: int) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()[:16]


def clip_keys(paths: Sequence[str], starts: np.ndarray, ends: np.ndarray, *, members: Sequence[str] | None = None,
              offsets: np.ndarray | None = None) -> np.ndarray:
    """One key (N,) per clip from its file's identity (real path, size, mtime_ns) and window (s);
    for a video inside a shard (`members[i]` not ''), the shard file's identity and the member's name
    and offset (media/sources.py).

    Touching or rewriting a file changes its key, so stale logits are never served. A file that
    cannot be stat'ed gets "" (the caller decodes nothing for it and reports it). Each distinct
    path is stat'ed once a block of KEY_BLOCK rows, whatever the number of windows cut from it.
    As text (<U32); an audit keeps them as ASCII bytes (clip_key_bytes), a quarter of the memory.
    """
    return clip_key_bytes(paths, starts, ends, members=members, offsets=offsets).astype(KEY_DTYPE)


def clip_key_bytes(paths: Sequence[str], starts: np.ndarray, ends: np.ndarray, *,
                   members: Sequence[str] | None = None, offsets: np.ndarray | None = None) -> np.ndarray:
    """clip_keys as ASCII bytes (N,) S32, b"" where a file cannot be stat'ed, made a block of KEY_BLOCK rows at a
    time: ten million keys are 320 MB, and no Python object per row outlives its block. A pandas column (the
    manifest's Arrow text) is turned into Python strings a block at a time too (~130 bytes a path)."""
    paths, starts, ends = _column(paths), np.asarray(starts, float), np.asarray(ends, float)
    members = None if members is None else _column(members)
    keys = np.zeros(len(paths), STORED_KEY)
    for first in range(0, len(paths), KEY_BLOCK):
        part = slice(first, first + KEY_BLOCK)
        block = [os.fspath(path) for path in _cells(paths, part)]
        identity = _file_identities(dict.fromkeys(block))
        inside = [""] * len(block) if members is None else [
            f"\0{member}\0{offset}" if member else ""
            for member, offset in zip(_cells(members, part), np.asarray(offsets[part]).tolist())]
        # repr of a Python float is exact and spells NaN as "nan", so open windows hash stably.
        keys[part] = [
            hashlib.blake2b(f"{identity[path]}{within}\0{start!r}\0{end!r}".encode("utf-8", "surrogateescape"),
                            digest_size=16).hexdigest() if identity[path] else ""
            for path, within, start, end in zip(block, inside, starts[part].tolist(), ends[part].tolist())]
    return keys


def _column(values):
    """A pandas column as it is (its cells made a block at a time: _cells), any other sequence as an array."""
    return values if hasattr(values, "iloc") else np.asarray(values, object)


def _cells(values, part: slice) -> list:
    """The cells of `values` (_column's) in `part`, as Python objects."""
    return values.iloc[part].tolist() if hasattr(values, "iloc") else values[part].tolist()


def _file_identities(paths) -> dict[str, str]:
    """Each path's real path, size and mtime_ns joined by NULs; "" where it cannot be stat'ed.

    os.path.realpath costs an lstat per path component: a folder's real path is found once, and a
    file that is not itself a link is that plus its name, after one lstat (the same result).
    """
    identities, real_folders = {}, {}
    for path in paths:
        cut = path.rfind(os.sep) + 1
        folder, name = path[:cut], path[cut:]
        try:
            info = os.lstat(path)
            if stat.S_ISLNK(info.st_mode) or name in ("", ".", ".."):
                real = os.path.realpath(path)
                info = os.stat(real)
            else:
                if folder not in real_folders:
                    real_folders[folder] = os.path.join(os.path.realpath(folder or os.curdir), "")
                real = real_folders[folder] + name
        except (OSError, ValueError):
            identities[path] = ""
            continue
        identities[path] = f"{real}\0{info.st_size}\0{info.st_mtime_ns}"
    return identities


class LogitCache:
    """Logits (5, C) float32, the seconds of real content, and any further named per-clip arrays of a
    fixed row shape, per clip key, for one model (one fingerprint directory).

    Each process appends to the entry file of its torchrun rank (entries-<RANK>.bin; entries.py) under
    the folder's lock, so a cache of any size is a few files: one per rank that ever wrote, and a reader
    that finds a file of many records (one per batch) joins them into one. Readers hold an index of where
    each entry lies (blocks.EntryIndex), not the entries: `locate` keys, then `read` a block of them.
    Chunk files of earlier versions (chunk-*.npz, one per batch) are read, moved into an entry file and
    removed; those written before seconds were kept read back as NaN seconds.
    """

    def __init__(self, root: Path, fingerprint: str, *, n_classes: int, source: str = "") -> None:
        self.dir = Path(root) / fingerprint
        self.n_classes = n_classes
        self.writable = True  # until a write fails: a read-only or full cache is read, not written
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            if not (self.dir / "model.txt").exists():  # for humans browsing the cache
                atomic_write_text(self.dir / "model.txt", f"checkpoint: {source}\nn_classes: {n_classes}\n")
        except OSError as err:
            self._cannot_write(err)
        for temp in [*self.dir.glob(".chunk-*.tmp"), *self.dir.glob(".entries-*.tmp")]:
            try:
                if time.time() - temp.stat().st_mtime > STALE_TEMP_S:
                    temp.unlink()
            except OSError:
                pass  # another process removed it first
        self._own = f"entries-{int(os.environ.get('RANK', '0') or 0)}.bin"
        self._read_to: dict[str, tuple[int, int]] = {}  # entry file -> (inode, byte its whole records end at)
        self._seen: set[str] = set()  # chunk files of earlier versions, read
        self._index = blocks.EntryIndex()
        self._handles: dict[str, BinaryIO] = {}  # entry file -> the handle its newest records are read through

    def _load_new(self) -> None:
        """Place entries not placed yet (ours or other ranks'), oldest first so later ones win."""
        legacy = self._load_chunks()
        for path in sorted(self.dir.glob("entries-*.bin")):
            if self.writable and self._records_unread(path) > COMPACT_AT:
                self._locked(lambda: entries.compact(path))  # renamed over: placed again from its start
            self._place(path)
        if legacy and self.writable:
            self._locked(lambda: self._move_chunks(legacy))

    def _records_unread(self, path: Path) -> int:
        try:
            inode = path.stat().st_ino
            was_inode, start = self._read_to.get(path.name, (inode, 0))
            return entries.count(path, start if was_inode == inode else 0)
        except OSError:
            return 0

    def _place(self, path: Path) -> None:
        """Index the whole records of `path` not placed yet; a file replaced since (joined by a process) is placed
        again from its start (its entries then twice, the later copy winning), through a handle of its own."""
        try:
            handle = self._handle(path)
            inode = os.fstat(handle.fileno()).st_ino
            was_inode, start = self._read_to.get(path.name, (inode, 0))
            start = end = start if was_inode == inode else 0
            for placed, kept, finite, end in entries.place(handle, start):
                self._add_placed(placed, kept, finite, handle, path.name)
        except OSError as error:
            warnings.warn(f"skipping unreadable cache file {path}: {error}", AvauditWarning, stacklevel=4)
            return
        self._read_to[path.name] = (inode, end)

    def _handle(self, path: Path) -> BinaryIO:
        """The handle `path`'s records are read through: one a file, opened again where the file was replaced."""
        handle = self._handles.get(path.name)
        if handle is None or os.fstat(handle.fileno()).st_ino != path.stat().st_ino:
            handle = self._handles[path.name] = open(path, "rb")
        return handle

    def _add_placed(self, placed: entries.Placed, kept: entries.Arrays, finite: np.ndarray, handle, name: str) -> None:
        """A record of an entry file into the index, if it holds keys and logits of this model's shape."""
        shapes = {key: (dtype, shape) for key, (dtype, shape, _) in placed.arrays.items() if key != "keys"}
        problem = self._problem(shapes, "keys" in kept)
        if problem:
            warnings.warn(f"skipping cache entries in {name}: {problem.format(rows=placed.rows)}", AvauditWarning,
                          stacklevel=6)
            return
        self._index.add(blocks.Record(shapes, handle=handle, placed=placed), kept["keys"], finite)

    def _problem(self, shapes: dict, has_keys: bool) -> str:
        """Why a record is not this model's entries ({rows} to fill in), or ""."""
        if not has_keys or "logits" not in shapes:
            return f"{'logits' if has_keys else 'keys'} missing"
        dtype, shape = shapes["logits"]
        seconds = shapes.get("seconds", (np.dtype(np.float32), ()))[1]
        if shape != (N_LAYERS, self.n_classes) or dtype != np.float32 or seconds != ():
            return (f"logits ({{rows}}, {', '.join(map(str, shape))}) {dtype}, expected ({{rows}}, {N_LAYERS}, "
                    f"{self.n_classes}) float32")
        return ""

    def _add_memory(self, record: entries.Arrays, name: str) -> bool:
        """A record held in memory (an earlier version's chunk, a batch a full disk did not take) into the index;
        rows with non-finite logits (an older version cached NaN outputs) are not found."""
        shapes = {key: (array.dtype, array.shape[1:]) for key, array in record.items() if key != "keys"}
        problem = self._problem(shapes, "keys" in record)
        if problem:
            warnings.warn(f"skipping cache entries in {name}: {problem.format(rows=len(next(iter(record.values()))))}",
                          AvauditWarning, stacklevel=5)
            return False
        finite = np.isfinite(record["logits"]).all(axis=(1, 2))
        self._index.add(blocks.Record(shapes, arrays=record), record["keys"], finite)
        return True

    def _load_chunks(self) -> list[tuple[Path, dict]]:
        """Chunk files of earlier versions not read yet: (file, its entries) of each whole one."""
        read = []
        for path in sorted(p for p in self.dir.glob("chunk-*.npz") if p.name not in self._seen):
            self._seen.add(path.name)
            try:
                with np.load(path) as data:
                    record = {name: data[name] for name in data.files}
            except Exception as error:  # a truncated or foreign file must not stop an audit
                warnings.warn(f"skipping unreadable cache chunk {path}: {error}", AvauditWarning, stacklevel=4)
                continue
            if self._add_memory(record, path.name):
                read.append((path, record))
        return read

    def _move_chunks(self, chunks: list[tuple[Path, dict]]) -> None:
        """Earlier versions' chunks, already read, appended to our entry file (rows with finite logits, seconds
        NaN where they predate them), then removed."""
        moved = []
        for _, record in chunks:
            keep = np.isfinite(record["logits"]).all(axis=(1, 2))
            seconds = record.get("seconds", np.full(len(keep), np.nan, np.float32)).astype(np.float32)
            moved.append({**{name: array[keep] for name, array in record.items()}, "seconds": seconds[keep],
                          "keys": record["keys"][keep].astype(STORED_KEY)})
        self._append_records([record for record in moved if len(record["keys"])])
        for path, _ in chunks:
            path.unlink(missing_ok=True)

    def _append_records(self, records: list[entries.Arrays]) -> None:
        """Append to our entry file, after what other processes appended to it (placed now) and without
        a torn record a killed one left, then index ours as written (reading them back cost a copy and a CRC
        of every byte a run caches). The caller holds the lock."""
        mine = self.dir / self._own
        if mine.exists():
            self._place(mine)
        end = self._read_to.get(mine.name, (0, 0))[1] if mine.exists() else 0  # removed by hand: a new file
        appended = []
        for record in records:
            end, placed = entries.append(mine, record, end=end)
            appended.append((placed, record))
        if not appended:
            return
        handle = self._handle(mine)  # the file holds what was placed, then ours: indexed as written, not read back
        for placed, record in appended:
            self._add_placed(placed, {"keys": record["keys"]}, np.isfinite(record["logits"]).all(axis=(1, 2)), handle,
                             mine.name)
        self._read_to[mine.name] = (os.fstat(handle.fileno()).st_ino, end)

    def _locked(self, work) -> bool:
        """`work()` under the folder's lock (appends and joins exclude each other); a failure to write
        stops this run's writing, with one warning. Whether it was done."""
        try:
            with open(self.dir / "lock", "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                work()
            return True
        except OSError as err:
            self._cannot_write(err)
            return False

    def locate(self, keys: np.ndarray) -> blocks.Where:
        """Where each key's entry is (blocks.Where; not found: "", not cached, or logits not all finite). What
        placing and merging freed goes back to the system (~55 bytes a key that glibc kept at a million keys)."""
        self._load_new()
        where = self._index.locate(keys)
        give_back_freed()
        return where

    def release_keys(self) -> None:
        """Forget where each key is (the index: 24 bytes an entry, 240 MB at ten million), keeping what `read`
        needs of the entries located so far: an audit that has located its rows reads them through its decisions.
        A later `locate` places every file again."""
        self._index.forget_keys()
        self._read_to.clear()
        self._seen.clear()
        give_back_freed()

    def read(self, where: blocks.Where, name: str = "logits") -> np.ndarray:
        """Array `name` of the located entries `where` (a block of them): logits (N, 5, C) float32, seconds (N,),
        or a further array (N, ...); NaN, or 0, where not found or not kept for a clip."""
        return self._read(where, name)[0]

    def _read(self, where: blocks.Where, name: str) -> tuple[np.ndarray, np.ndarray | None]:
        fixed = {"logits": (np.dtype(np.float32), (N_LAYERS, self.n_classes)), "seconds": (np.dtype(np.float32), ())}
        if name not in fixed and name not in self._index.newest:
            return np.full(len(where), np.nan, np.float32), None
        dtype, shape = fixed.get(name) or self._index.newest[name]
        return self._index.take(where, name, dtype, shape, np.nan if dtype.kind in "fc" else 0)

    def lookup(self, keys: np.ndarray, *names: str) -> tuple[np.ndarray, ...]:
        """(found (N,) bool, logits (N, 5, C) float32 with NaN rows where not found, seconds (N,)), then
        the named further arrays (N, ...) (NaN, or 0, where not found or not kept for a clip)."""
        where = self.locate(keys)
        return where.found, *(self.read(where, name) for name in ("logits", "seconds", *names))

    def lookup_extra(self, keys: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray | None]:
        """(known (N,) bool, values (N, ...)) of the further array `name` (add(..., name=...)): known where
        the key's entry holds it; values None where no entry does (an older version's cache)."""
        return self.lookup_extra_at(self.locate(keys), name)

    def lookup_extra_at(self, where: blocks.Where, name: str) -> tuple[np.ndarray, np.ndarray | None]:
        """lookup_extra of entries already located."""
        values, known = self._read(where, name)
        return (np.zeros(len(values), bool), None) if known is None else (known, values)

    def add(self, keys: np.ndarray, logits: np.ndarray, seconds: np.ndarray | None = None, **arrays) -> None:
        """Append one batch; `arrays`: further named per-clip arrays (N, ...) kept beside the logits.
        Rows without a key or with logits that are not all finite (a failed decode, a network output
        of NaN) are not kept, so that a failure is retried next time instead of being remembered, and
        a cached row always has logits."""
        keys = np.asarray(keys).astype(STORED_KEY)
        logits = np.asarray(logits, dtype=np.float32)
        seconds = np.full(len(keys), np.nan, np.float32) if seconds is None else np.asarray(seconds, np.float32)
        if logits.shape != (len(keys), N_LAYERS, self.n_classes):
            raise ValueError(f"logits {logits.shape} do not match {len(keys)} keys × {N_LAYERS} × {self.n_classes}")
        arrays = {name: np.asarray(array) for name, array in arrays.items()}
        if any(len(array) != len(keys) for array in arrays.values()):
            raise ValueError(f"extra arrays of a batch need one row per key ({len(keys)})")
        keep = (keys != b"") & np.isfinite(logits).all(axis=(1, 2))
        record = {name: array[keep] for name, array in
                  {"keys": keys, "logits": logits, "seconds": seconds, **arrays}.items()}
        if not keep.any():
            return
        stored = self.writable and self._locked(lambda: self._append_records([record]))
        if not stored:
            self._add_memory(record, "memory")  # this run still finds them

    def _cannot_write(self, err: OSError) -> None:
        """Warn once, then go on without adding to the cache (its entries are still read)."""
        if self.writable:
            self.writable = False
            warnings.warn(f"the logit cache {self.dir} cannot be written ({err.strerror or err}): going on "
                          f"without caching, so an interrupted run starts over and a re-audit decodes again "
                          f"(free space, or pass another --cache-dir)", AvauditWarning, stacklevel=3)

    def __len__(self) -> int:
        self._load_new()
        return len(self._index)
