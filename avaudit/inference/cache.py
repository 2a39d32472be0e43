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
from typing import Sequence

import numpy as np
import pandas as pd

from avaudit.errors import AvauditWarning
from avaudit.inference import entries
from avaudit.outputs import STALE_TEMP_S, atomic_write_text
from avaudit.vocab import LAYERS

N_LAYERS = len(LAYERS)
KEY_DTYPE = "<U32"  # blake2b, 16 bytes, as hex
STORED_KEY = "S32"  # the same, as ASCII bytes in entry files
KNOWN = "known:"  # in memory: which rows of a joined part hold the array after it
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
    path is stat'ed once, whatever the number of windows cut from it.
    """
    paths = [os.fspath(path) for path in paths]
    identity = _file_identities(dict.fromkeys(paths))
    inside = [""] * len(paths) if members is None else [
        f"\0{member}\0{offset}" if member else "" for member, offset in zip(members, np.asarray(offsets).tolist())]
    # repr of a Python float is exact and spells NaN as "nan", so open windows hash stably.
    return np.array([
        hashlib.blake2b(f"{identity[path]}{within}\0{start!r}\0{end!r}".encode("utf-8", "surrogateescape"),
                        digest_size=16).hexdigest() if identity[path] else ""
        for path, within, start, end in zip(paths, inside, np.asarray(starts, float).tolist(),
                                            np.asarray(ends, float).tolist())],
        dtype=KEY_DTYPE)


def _read_only(array: np.ndarray) -> np.ndarray:
    """A view of the cache's own table that no caller can change."""
    view = array.view()
    view.flags.writeable = False
    return view


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
    that finds a file of many records (one per batch) joins them into one. Chunk files of earlier
    versions (chunk-*.npz, one per batch) are read, moved into an entry file and removed; those written
    before seconds were kept read back as NaN seconds.
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
        self._parts: list[entries.Arrays] = []
        self._index: pd.Index | None = None
        self._tables: dict[str, np.ndarray] = {}
        self._known: dict[str, np.ndarray] = {}  # per further array, which rows of the tables hold it

    def _load_new(self) -> None:
        """Read entries not read yet (ours or other ranks'), oldest first so later ones win."""
        legacy = self._load_chunks()
        for path in sorted(self.dir.glob("entries-*.bin")):
            records = self._read_entries(path)
            if len(records) > COMPACT_AT and self.writable:
                self._locked(lambda: self._compact(path))
        if legacy and self.writable:
            self._locked(lambda: self._move_chunks(legacy))

    def _read_entries(self, path: Path) -> list[entries.Arrays]:
        """The whole records of `path` not read yet, kept; a file replaced since (joined by another
        process) is read again from its start (its entries are then there twice, the later copy wins)."""
        try:
            inode = path.stat().st_ino
            was_inode, start = self._read_to.get(path.name, (inode, 0))
            records, end = entries.read(path, start if was_inode == inode else 0)
        except OSError as error:
            warnings.warn(f"skipping unreadable cache file {path}: {error}", AvauditWarning, stacklevel=4)
            return []
        self._read_to[path.name] = (inode, end)
        kept = [checked for record in records if (checked := self._checked(record, path.name)) is not None]
        self._parts += kept
        self._index = None if kept else self._index
        return records

    def _checked(self, record: dict, name: str) -> dict | None:
        """A record with keys, logits of this model's shape and seconds, less rows with non-finite logits
        (an older version cached NaN outputs: not found); None, with a warning, if it is not one."""
        try:
            keys, logits = record["keys"].astype(KEY_DTYPE), record["logits"]
            seconds = record["seconds"] if "seconds" in record else np.full(len(keys), np.nan, np.float32)
        except (KeyError, ValueError) as error:
            warnings.warn(f"skipping cache entries in {name}: {error}", AvauditWarning, stacklevel=5)
            return None
        if logits.shape != (len(keys), N_LAYERS, self.n_classes) or logits.dtype != np.float32 \
                or seconds.shape != (len(keys),):
            warnings.warn(f"skipping cache entries in {name}: logits {logits.shape} {logits.dtype}, "
                          f"expected ({len(keys)}, {N_LAYERS}, {self.n_classes}) float32", AvauditWarning,
                          stacklevel=5)
            return None
        finite = np.isfinite(logits).all(axis=(1, 2))
        record = {**record, "keys": keys, "seconds": seconds.astype(np.float32)}
        return {name: array[finite] for name, array in record.items()} if not finite.all() else record

    def _load_chunks(self) -> list[tuple[Path, dict]]:
        """Chunk files of earlier versions not read yet: (file, its checked entries) of each whole one."""
        read = []
        for path in sorted(p for p in self.dir.glob("chunk-*.npz") if p.name not in self._seen):
            self._seen.add(path.name)
            try:
                with np.load(path) as data:
                    record = {name: data[name] for name in data.files}
            except Exception as error:  # a truncated or foreign file must not stop an audit
                warnings.warn(f"skipping unreadable cache chunk {path}: {error}", AvauditWarning, stacklevel=4)
                continue
            checked = self._checked(record, path.name)
            if checked is not None:
                self._parts.append(checked)
                self._index = None
                read.append((path, checked))
        return read

    def _move_chunks(self, chunks: list[tuple[Path, dict]]) -> None:
        """Earlier versions' chunks, already read, appended to our entry file, then removed."""
        self._append_records([{**record, "keys": record["keys"].astype(STORED_KEY)}
                              for _, record in chunks if len(record["keys"])])
        for path, _ in chunks:
            path.unlink(missing_ok=True)

    def _append_records(self, records: list[entries.Arrays]) -> None:
        """Append to our entry file, after what other processes appended to it (read now) and without
        a torn record a killed one left. The caller holds the lock."""
        mine = self.dir / self._own
        if mine.exists():
            self._read_entries(mine)
        end = self._read_to.get(mine.name, (0, 0))[1] if mine.exists() else 0  # removed by hand: a new file
        for record in records:
            end = entries.append(mine, record, end=end)
        self._read_to[mine.name] = (mine.stat().st_ino, end)

    def _compact(self, path: Path) -> None:
        """Join the records of `path` into one per run of like records, in place."""
        self._read_entries(path)  # what was appended since it was read
        size = entries.compact(path)
        self._read_to[path.name] = (path.stat().st_ino, size)

    def _locked(self, work) -> None:
        """`work()` under the folder's lock (appends and joins exclude each other); a failure to write
        stops this run's writing, with one warning."""
        try:
            with open(self.dir / "lock", "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                work()
        except OSError as err:
            self._cannot_write(err)

    def _build_index(self) -> pd.Index:
        """Concatenate once into one table per array and a unique-key Index: no Python object per entry.

        Each table has one row past the end (NaN, or 0 for whole numbers), so a lookup is a single
        gather with misses pointing there; an array some entries lack is that row for them.
        """
        self._load_new()
        if self._index is None:
            parts = self._parts
            keys = np.concatenate([np.empty(0, KEY_DTYPE), *(part["keys"] for part in parts)])
            tables, known = {}, {}
            names = (name for part in parts for name in part if name != "keys" and not name.startswith(KNOWN))
            for name in dict.fromkeys(names):
                shape, dtype = next((p[name].shape[1:], p[name].dtype) for p in reversed(parts) if name in p)  # newest
                table = np.empty((len(keys) + 1, *shape), dtype)  # each row written once: 0.8 GB at 100k x 400
                missing = np.nan if dtype.kind in "fc" else 0
                known[name] = np.zeros(len(keys) + 1, bool)
                table[-1] = missing
                at = 0
                for part in parts:
                    rows = slice(at, at + len(part["keys"]))
                    if name in part and part[name].shape[1:] == shape:
                        table[rows] = part[name]
                        known[name][rows] = part.get(KNOWN + name, True)
                    else:
                        table[rows] = missing
                    at += len(part["keys"])
                tables[name] = table
            index = pd.Index(keys)
            if not index.is_unique:
                last = np.append(~index.duplicated(keep="last"), True)
                keys, index = keys[last[:-1]], index[last[:-1]]
                tables = {name: table[last] for name, table in tables.items()}
                known = {name: rows[last] for name, rows in known.items()}
            # the join keeps which entries hold each array, so an array an entry lacks stays unknown for it
            self._parts = [{"keys": keys, **{name: table[:-1] for name, table in tables.items()},
                            **{KNOWN + name: rows[:-1] for name, rows in known.items() if not rows[:-1].all()}}]
            self._index, self._tables, self._known = index, tables, known
        return self._index

    def lookup(self, keys: np.ndarray, *names: str) -> tuple[np.ndarray, ...]:
        """(found (N,) bool, logits (N, 5, C) float32 with NaN rows where not found, seconds (N,)), then
        the named further arrays (N, ...) (NaN, or 0, where not found or not kept for a clip)."""
        rows, index = self._rows(keys)
        tables = self._tables
        if len(rows) == len(index) and np.array_equal(rows, np.arange(len(rows))):  # every entry, as stored
            tables = {name: _read_only(table[:-1]) for name, table in tables.items()}  # no copy (N, 5, C)
            rows = slice(None)
        empty = {"logits": np.full((1, N_LAYERS, self.n_classes), np.nan, np.float32),
                 "seconds": np.full(1, np.nan, np.float32)}
        found = np.ones(len(index), bool) if isinstance(rows, slice) else rows < len(index)
        return found, *(tables[name][rows] if name in tables else
                                    np.repeat(empty.get(name, np.full(1, np.nan, np.float32)), len(found), axis=0)
                                    for name in ("logits", "seconds", *names))

    def lookup_extra(self, keys: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray | None]:
        """(known (N,) bool, values (N, ...)) of the further array `name` (add(..., name=...)): known where
        the key's entry holds it; values None where no entry does (an older version's cache)."""
        rows, _ = self._rows(keys)
        if name not in self._tables:
            return np.zeros(len(rows), bool), None
        return self._known[name][rows], self._tables[name][rows]

    def _rows(self, keys: np.ndarray) -> tuple[np.ndarray, pd.Index]:
        """Each key's row in the tables (their last row, all missing values, where not cached), and the index."""
        keys = np.asarray(keys, dtype=KEY_DTYPE)
        index = self._build_index()
        rows = index.get_indexer(keys)
        rows[(rows < 0) | (keys == "")] = len(index)
        return rows, index

    def add(self, keys: np.ndarray, logits: np.ndarray, seconds: np.ndarray | None = None, **arrays) -> None:
        """Append one batch; `arrays`: further named per-clip arrays (N, ...) kept beside the logits.
        Rows without a key or with logits that are not all finite (a failed decode, a network output
        of NaN) are not kept, so that a failure is retried next time instead of being remembered, and
        a cached row always has logits."""
        keys = np.asarray(keys, dtype=KEY_DTYPE)
        logits = np.asarray(logits, dtype=np.float32)
        seconds = np.full(len(keys), np.nan, np.float32) if seconds is None else np.asarray(seconds, np.float32)
        if logits.shape != (len(keys), N_LAYERS, self.n_classes):
            raise ValueError(f"logits {logits.shape} do not match {len(keys)} keys × {N_LAYERS} × {self.n_classes}")
        arrays = {name: np.asarray(array) for name, array in arrays.items()}
        if any(len(array) != len(keys) for array in arrays.values()):
            raise ValueError(f"extra arrays of a batch need one row per key ({len(keys)})")
        keep = (keys != "") & np.isfinite(logits).all(axis=(1, 2))
        record = {name: array[keep] for name, array in
                  {"keys": keys, "logits": logits, "seconds": seconds, **arrays}.items()}
        if not keep.any():
            return
        if self.writable:
            self._locked(lambda: self._append_records([{**record, "keys": record["keys"].astype(STORED_KEY)}]))
        self._parts.append(record)  # this run still finds them
        self._index = None

    def _cannot_write(self, err: OSError) -> None:
        """Warn once, then go on without adding to the cache (its entries are still read)."""
        if self.writable:
            self.writable = False
            warnings.warn(f"the logit cache {self.dir} cannot be written ({err.strerror or err}): going on "
                          f"without caching, so an interrupted run starts over and a re-audit decodes again "
                          f"(free space, or pass another --cache-dir)", AvauditWarning, stacklevel=3)

    def __len__(self) -> int:
        return len(self._build_index())
