"""A cache of each clip's five-layer logits, kept outside the audited data.

A second audit of the same data with the same model decodes nothing, and an interrupted run
resumes where it stopped. Entries live in append-only chunk files under `<root>/<fingerprint>/`,
each written whole (temp file + rename), so a kill at any moment leaves only whole chunks and
several processes (torchrun ranks) can add to one directory without locking.
"""
from __future__ import annotations

import functools
import hashlib
import itertools
import os
import stat
import time
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from avaudit.errors import AvauditWarning
from avaudit.outputs import STALE_TEMP_S, atomic_write, atomic_write_text
from avaudit.vocab import LAYERS

N_LAYERS = len(LAYERS)
KEY_DTYPE = "<U32"  # blake2b, 16 bytes, as hex
EXTRA = "extra_"  # a chunk's extra per-clip arrays are stored under this prefix
KNOWN = "known_"  # in memory: which rows of a merged chunk have an extra array
_counter = itertools.count()


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


def clip_keys(paths: Sequence[str], starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """One key (N,) per clip from its file's identity (real path, size, mtime_ns) and window (s).

    Touching or rewriting a file changes its key, so stale logits are never served. A file that
    cannot be stat'ed gets "" (the caller decodes nothing for it and reports it). Each distinct
    path is stat'ed once, whatever the number of windows cut from it.
    """
    paths = [os.fspath(path) for path in paths]
    identity = _file_identities(dict.fromkeys(paths))
    # repr of a Python float is exact and spells NaN as "nan", so open windows hash stably.
    return np.array([
        hashlib.blake2b(f"{identity[path]}\0{start!r}\0{end!r}".encode("utf-8", "surrogateescape"),
                        digest_size=16).hexdigest() if identity[path] else ""
        for path, start, end in zip(paths, np.asarray(starts, float).tolist(), np.asarray(ends, float).tolist())],
        dtype=KEY_DTYPE)


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
    """Logits (5, C) float32 and the seconds of real content per clip key, for one model (one
    fingerprint directory). Chunks written before seconds were kept read back as NaN seconds.

    A chunk may carry extra named per-clip arrays beside them (`add(..., signals=...)`, the clip's quality
    signals, signature and file digest); `lookup_extra` reads one back with which keys have it: a chunk
    written without it, or with another shape (an older version), leaves its keys without it.
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
        for temp in self.dir.glob(".chunk-*.tmp"):
            try:
                if time.time() - temp.stat().st_mtime > STALE_TEMP_S:
                    temp.unlink()
            except OSError:
                pass  # another process removed it first
        self._seen: set[str] = set()
        self._keys: list[np.ndarray] = []
        self._logits: list[np.ndarray] = []
        self._seconds: list[np.ndarray] = []
        self._extras: list[dict[str, np.ndarray]] = []  # per chunk, its extra arrays by name
        self._extra_tables: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._index: pd.Index | None = None
        self._table = np.empty(0, np.float32)
        self._seconds_table = np.empty(0, np.float32)

    def _load_new_chunks(self) -> None:
        """Read chunks not read yet (ours or other ranks'), oldest first so later ones win."""
        for name in sorted(p.name for p in self.dir.glob("chunk-*.npz") if p.name not in self._seen):
            self._seen.add(name)
            try:
                with np.load(self.dir / name) as data:
                    keys, logits = data["keys"].astype(KEY_DTYPE), data["logits"]
                    seconds = data["seconds"] if "seconds" in data else np.full(len(keys), np.nan, np.float32)
                    extras = {name[len(EXTRA):]: data[name] for name in data.files if name.startswith(EXTRA)}
            except Exception as error:  # a truncated or foreign file must not stop an audit
                warnings.warn(f"skipping unreadable cache chunk {self.dir / name}: {error}", AvauditWarning,
                              stacklevel=3)
                continue
            if logits.shape != (len(keys), N_LAYERS, self.n_classes) or logits.dtype != np.float32 \
                    or seconds.shape != (len(keys),):
                warnings.warn(f"skipping cache chunk {name}: logits {logits.shape} {logits.dtype}, "
                              f"expected ({len(keys)}, {N_LAYERS}, {self.n_classes}) float32", AvauditWarning,
                              stacklevel=3)
                continue
            finite = np.isfinite(logits).all(axis=(1, 2))  # an older version cached NaN outputs: not found
            extras = {name: array[finite] for name, array in extras.items() if array.shape[:1] == (len(keys),)}
            self._append(keys[finite], logits[finite], seconds[finite].astype(np.float32), extras)

    def _append(self, keys: np.ndarray, logits: np.ndarray, seconds: np.ndarray, extras: dict) -> None:
        self._keys.append(keys)
        self._logits.append(logits)
        self._seconds.append(seconds)
        self._extras.append(extras)
        self._index = None

    def _build_index(self) -> pd.Index:
        """Concatenate once into one table and a unique-key Index: no Python object per entry.

        The table has one NaN row past the end, so a lookup is a single gather with misses
        pointing there, and holds no more than the (N, 5, C) answer besides the table.
        """
        self._load_new_chunks()
        if self._index is None:
            keys = np.concatenate([np.empty(0, KEY_DTYPE), *self._keys])
            table = np.empty((len(keys) + 1, N_LAYERS, self.n_classes), np.float32)
            if self._logits:
                np.concatenate(self._logits, out=table[:-1])
            table[-1] = np.nan
            seconds = np.concatenate([*self._seconds, [np.nan]]).astype(np.float32)
            names = {name for chunk in self._extras for name in chunk if not name.startswith(KNOWN)}
            extras = {name: self._gather_extra(name) for name in names}
            index = pd.Index(keys)
            if not index.is_unique:
                last = np.append(~index.duplicated(keep="last"), True)
                keys, table, seconds, index = keys[last[:-1]], table[last], seconds[last], index[last[:-1]]
                extras = {name: (values[last], known[last]) for name, (values, known) in extras.items()}
            self._keys, self._logits, self._seconds, self._index = [keys], [table[:-1]], [seconds[:-1]], index
            self._table, self._seconds_table, self._extra_tables = table, seconds, extras
            # One chunk now; its rows without an array are marked by a known mask of their own.
            self._extras = [{**{name: values[:-1] for name, (values, _) in extras.items()},
                             **{KNOWN + name: known[:-1] for name, (_, known) in extras.items()}}]
        return self._index

    def _gather_extra(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(values (n + 1, ...), known (n + 1,)) of one extra array over every chunk, in the newest chunk's shape
        and dtype: a chunk without it, or with another shape, gives zeros (NaN for floats), unknown."""
        newest = next(chunk[name] for chunk in reversed(self._extras) if name in chunk)
        sizes = [len(keys) for keys in self._keys]
        values = np.zeros((sum(sizes) + 1, *newest.shape[1:]), newest.dtype)
        if values.dtype.kind == "f":
            values[:] = np.nan
        known = np.zeros(len(values), bool)
        for start, size, chunk in zip(np.cumsum([0, *sizes]), sizes, self._extras):
            if name in chunk and chunk[name].shape[1:] == newest.shape[1:]:
                values[start:start + size] = chunk[name]
                known[start:start + size] = chunk.get(KNOWN + name, True)
        return values, known

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(found (N,) bool, logits (N, 5, C) float32 with NaN rows where not found, seconds (N,))."""
        keys = np.asarray(keys, dtype=KEY_DTYPE)
        index = self._build_index()
        rows = index.get_indexer(keys)
        rows[(rows < 0) | (keys == "")] = len(index)
        return rows < len(index), self._table[rows], self._seconds_table[rows]

    def lookup_extra(self, keys: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray | None]:
        """(known (N,) bool, values (N, ...)) of the extra array `name` (`add`'s keyword); values None where no
        chunk has it."""
        keys = np.asarray(keys, dtype=KEY_DTYPE)
        index = self._build_index()
        if name not in self._extra_tables:
            return np.zeros(len(keys), bool), None
        rows = index.get_indexer(keys)
        rows[(rows < 0) | (keys == "")] = len(index)
        values, known = self._extra_tables[name]
        return known[rows], values[rows]

    def add(self, keys: np.ndarray, logits: np.ndarray, seconds: np.ndarray | None = None, **extras) -> None:
        """Append one chunk. Rows without a key or with logits that are not all finite (a failed decode,
        a network output of NaN) are not kept, so that a failure is retried next time instead of being
        remembered, and a cached row always has logits. `extras`: named arrays with one row per key, kept
        beside them (lookup_extra)."""
        keys = np.asarray(keys, dtype=KEY_DTYPE)
        logits = np.asarray(logits, dtype=np.float32)
        seconds = np.full(len(keys), np.nan, np.float32) if seconds is None else np.asarray(seconds, np.float32)
        if logits.shape != (len(keys), N_LAYERS, self.n_classes):
            raise ValueError(f"logits {logits.shape} do not match {len(keys)} keys × {N_LAYERS} × {self.n_classes}")
        keep = (keys != "") & np.isfinite(logits).all(axis=(1, 2))
        extras = {name: np.asarray(array) for name, array in extras.items()}
        if any(array.shape[:1] != (len(keep),) for array in extras.values()):
            raise ValueError(f"extra arrays {[array.shape for array in extras.values()]} do not match {len(keep)} keys")
        keys, logits, seconds = keys[keep], logits[keep], seconds[keep]
        extras = {name: array[keep] for name, array in extras.items()}
        if not len(keys):
            return
        # Zero-padded time sorts chunks oldest first; pid and counter keep ranks' names apart.
        name = f"chunk-{time.time_ns():020d}-{os.getpid()}-{next(_counter)}.npz"
        if self.writable:
            try:
                atomic_write(self.dir / name,
                             lambda handle: np.savez(handle, keys=keys, logits=logits, seconds=seconds,
                                                     **{EXTRA + name: array for name, array in extras.items()}),
                             durable=True)
                self._seen.add(name)
            except OSError as err:
                self._cannot_write(err)
        self._append(keys, logits, seconds, extras)  # this run still finds them

    def _cannot_write(self, err: OSError) -> None:
        """Warn once, then go on without adding to the cache (its entries are still read)."""
        if self.writable:
            self.writable = False
            warnings.warn(f"the logit cache {self.dir} cannot be written ({err.strerror or err}): going on "
                          f"without caching, so an interrupted run starts over and a re-audit decodes again "
                          f"(free space, or pass another --cache-dir)", AvauditWarning, stacklevel=3)

    def __len__(self) -> int:
        return len(self._build_index())
