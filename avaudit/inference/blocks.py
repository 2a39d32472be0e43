"""Cached rows read a block at a time: an index of where each entry lies, never the cache joined into one table.

The index holds each entry's key as two 64-bit halves, sorted, with the record and row that hold it
(24 bytes an entry: 240 MB at ten million clips, where the logits of 16 classes are 3.2 GB). A block of
rows is read from the records that hold them: a record kept in memory (a cache that cannot be written, an
earlier version's chunk) by index, a record in an entry file by offset, one read per run of nearby rows,
through a handle opened when the record was placed (a file another process joined and renamed over is
still read as it was). The later of two entries for one key wins. Numpy only.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from avaudit.errors import AvauditError
from avaudit.inference.entries import Placed

LOCATE_BLOCK = 1 << 16  # keys located at a time
GAP = 64  # rows between two wanted ones of a record that one read still spans: fewer, larger reads
_HEX = np.full(256, 16, np.uint8)  # 16: not a lowercase hex digit
_HEX[np.frombuffer(b"0123456789abcdef", np.uint8)] = np.arange(16, dtype=np.uint8)


def key_halves(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(high, low) uint64 halves of each 32-hex-digit key, and which keys are usable (not ""). Keys that are not
    32 lowercase hex digits (written by hand) are hashed to 16 bytes, so two keys share halves only if equal."""
    keys = np.asarray(keys)
    ascii_keys = keys.astype("S32") if keys.dtype.kind == "U" else keys.astype("S32", copy=False)
    digits = _HEX[np.frombuffer(ascii_keys.tobytes(), np.uint8)].reshape(len(keys), 32)
    odd = np.flatnonzero((digits == 16).any(axis=1))
    packed = (digits[:, 0::2] << 4 | digits[:, 1::2]) if len(keys) else np.zeros((0, 16), np.uint8)
    packed = np.ascontiguousarray(packed, np.uint8)
    for row in odd:
        packed[row] = np.frombuffer(hashlib.blake2b(ascii_keys[row], digest_size=16).digest(), np.uint8)
    halves = packed.view(">u8").astype(np.uint64)
    return halves[:, 0].copy(), halves[:, 1].copy(), ascii_keys != b""


def key_order(high: np.ndarray, low: np.ndarray) -> np.ndarray:
    """np.lexsort((low, high)), stable: a key's entries stay oldest first. Sorted by `high` alone with numpy's
    quicker unstable sort, then the few runs of equal `high` (a key added twice) put in order by (low, position):
    a lexsort of ten million 64-bit keys was 3.1 CPU-s of the index's build, this 1.4 (benchmarks/README.md)."""
    order = np.argsort(high)
    ordered = high[order]
    same = ordered[1:] == ordered[:-1]
    del ordered
    if same.any():
        tied = np.flatnonzero(np.r_[same, False] | np.r_[False, same])  # the slots of runs of equal high
        entries = order[tied]
        order[tied] = entries[np.lexsort((entries, low[entries], high[entries]))]
    return order


class SortedSearch:
    """np.searchsorted(values, wanted) over sorted uint64 `values`, through a table of where each range of their top
    bits starts (about 4 values a range for hash keys; keys that share their top bits, a range's binary search).
    numpy's search of a block of keys in an 80 MB index of ten million keys was a run of cache misses a key: 6.0
    CPU-s for ten million keys, their blocks sorted first; this 2.5 (benchmarks/index_search.py)."""

    def __init__(self, values: np.ndarray) -> None:
        self.values = values
        bits = max(len(values).bit_length() - 3, 1)
        self.shift = np.uint64(64 - bits)
        self.starts = np.r_[np.searchsorted(values, np.arange(1 << bits, dtype=np.uint64) << self.shift), len(values)]

    def __call__(self, wanted: np.ndarray) -> np.ndarray:
        top = (wanted >> self.shift).astype(np.intp)
        low, high = self.starts[top], self.starts[top + 1]  # the answer lies in [low, high]
        while (open_ := low < high).any():
            middle = (low + high) >> 1
            right = open_ & (self.values[np.minimum(middle, len(self.values) - 1)] < wanted)
            low, high = np.where(right, middle + 1, low), np.where(open_ & ~right, middle, high)
        return low


@dataclass
class Where:
    """Each asked key's record (-1: not cached) and row in it."""
    record: np.ndarray
    row: np.ndarray

    @property
    def found(self) -> np.ndarray:
        return self.record >= 0

    def __getitem__(self, rows) -> Where:
        return Where(self.record[rows], self.row[rows])

    def __len__(self) -> int:
        return len(self.record)


class Record:
    """One record's rows: in memory (`arrays`), or in an entry file (`handle`, open for reading, shared by the
    records of one file and closed with the last of them, and where each array starts)."""

    def __init__(self, shapes: dict[str, tuple[np.dtype, tuple[int, ...]]], *, arrays: dict | None = None,
                 handle: BinaryIO | None = None, placed: Placed | None = None) -> None:
        self.shapes, self.arrays, self.handle, self.placed = shapes, arrays, handle, placed

    def take(self, name: str, rows: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Array `name` at `rows` (sorted, unique), in `out` (C-contiguous, len(rows) rows) where given. Each run of
        nearby rows is one read: of consecutive rows straight into their place, no copy and no fresh memory (a
        re-audit reads every row of a 3.2 GB cache, and fresh memory costs page faults); of rows with gaps into a
        span, then the rows wanted copied from it."""
        if self.arrays is not None:
            if out is None:
                return self.arrays[name][rows]
            out[...] = self.arrays[name][rows]
            return out
        dtype, shape, offset = self.placed.arrays[name]
        width = dtype.itemsize * int(np.prod(shape))
        out = np.empty((len(rows), *shape), dtype) if out is None else out
        cuts = np.flatnonzero(np.diff(rows) > GAP) + 1
        for run, first_at in zip(np.split(rows, cuts), np.r_[0, cuts]):
            first, last = int(run[0]), int(run[-1])
            place = out[first_at : first_at + len(run)]
            whole = last - first + 1 == len(run)  # no row of the span left out: read into its place
            span = place if whole else np.empty((last - first + 1, *shape), dtype)
            if os.preadv(self.handle.fileno(), [memoryview(span).cast("B")], offset + first * width) < span.nbytes:
                raise AvauditError(f"{self.handle.name}: the logit cache file was cut short while this audit read "
                                   f"it; run the audit again")  # since placed (a copy over it, by hand)
            if not whole:
                place[...] = span[run - first]
        return out


class EntryIndex:
    """Every usable entry's place: sorted key halves -> (record, row); records added oldest first."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.newest: dict[str, tuple[np.dtype, tuple[int, ...]]] = {}  # each array's dtype and row shape, newest
        self._sorted = tuple(np.empty(0, dtype) for dtype in (np.uint64, np.uint64, np.int32, np.int32))
        self._pending: tuple[list[np.ndarray], ...] = ([], [], [], [])  # high, low, record, row of each add
        self._search: SortedSearch | None = None  # of the sorted high halves, made by the first locate

    def add(self, record: Record, keys: np.ndarray, usable: np.ndarray) -> None:
        """A record's entries (its `keys`, those rows where `usable`), later than every one added before."""
        number = len(self.records)
        self.records.append(record)
        for name, (dtype, shape) in record.shapes.items():
            self.newest[name] = (dtype, shape)
        high, low, named = key_halves(keys)
        rows = np.flatnonzero(usable & named)
        for parts, values in zip(self._pending, (high[rows], low[rows], np.full(len(rows), number, np.int32),
                                                 rows.astype(np.int32))):  # a record holds under 2**31 rows
            parts.append(values)

    def _merged(self) -> tuple[np.ndarray, ...]:
        """The sorted arrays with what was added since merged in, the later entry of a key kept. One array is
        joined, then reordered, at a time (at ten million entries each is 40-80 MB)."""
        if self._pending[0]:
            joined = []
            for parts, done in zip(self._pending, self._sorted):
                joined.append(np.concatenate([done, *parts]))
                parts.clear()
            self._sorted, self._search = (), None
            order = key_order(joined[0], joined[1])
            for i in range(len(joined)):
                joined[i] = joined[i][order]
            del order
            high, low = joined[:2]
            last = np.r_[(high[1:] != high[:-1]) | (low[1:] != low[:-1]), True] if len(high) else np.ones(0, bool)
            self._sorted = tuple(joined) if last.all() else tuple(values[last] for values in joined)
        return self._sorted

    def __len__(self) -> int:
        return len(self._merged()[0])

    def forget_keys(self) -> None:
        """Drop the sorted keys and places (24 bytes an entry), keeping the records that the places located so far
        are read from."""
        self._sorted = tuple(np.empty(0, values.dtype) for values in self._sorted)
        self._search = None
        for parts in self._pending:
            parts.clear()

    def locate(self, keys: np.ndarray) -> Where:
        """Each key's record (-1 where not cached, or "") and row, found LOCATE_BLOCK keys at a time (the key
        halves and search positions of ten million keys at once are ~1.5 GB)."""
        where = Where(np.full(len(keys), -1, np.int32), np.zeros(len(keys), np.int32))
        if len(self._merged()[0]):
            self._search = self._search or SortedSearch(self._sorted[0])
            for first in range(0, len(keys), LOCATE_BLOCK):
                part = slice(first, first + LOCATE_BLOCK)
                where.record[part], where.row[part] = self._locate_block(keys[part])
        return where

    def _locate_block(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        high, low, record, row = self._sorted
        want_high, want_low, named = key_halves(keys)
        at = self._search(want_high)
        inside = np.minimum(at, len(high) - 1)
        hit = named & (at < len(high)) & (high[inside] == want_high)
        same_high = np.flatnonzero(hit & (low[inside] != want_low))
        for i in same_high:  # halves equal in their first 64 bits, not the rest: about 1 in 10^12 at 10M keys
            end = np.searchsorted(high, want_high[i], side="right")
            at[i] = at[i] + np.searchsorted(low[at[i] : end], want_low[i])
            hit[i] = at[i] < end and low[at[i]] == want_low[i]
        at = np.where(hit, at, 0)
        return np.where(hit, record[at], -1), np.where(hit, row[at], 0)

    def take(self, where: Where, name: str, dtype: np.dtype, shape: tuple[int, ...],
             missing) -> tuple[np.ndarray, np.ndarray]:
        """(values (N, *shape) of array `name` at `where`, `missing` where not cached or the record lacks it at
        that shape; known (N,) bool). Reads each record's rows once, in order, whatever the order asked."""
        values = np.empty((len(where), *shape), dtype)
        known = np.zeros(len(where), bool)
        order = np.lexsort((where.row, where.record))
        records = where.record[order]
        starts = np.flatnonzero(np.r_[True, records[1:] != records[:-1]]) if len(order) else []
        for first, end in zip(starts, [*starts[1:], len(order)]):
            number = int(records[first])
            record = self.records[number] if number >= 0 else None
            if record is None or record.shapes.get(name, (None, None))[1] != shape:
                continue
            asked = order[first:end]
            rows, inverse = np.unique(where.row[asked], return_inverse=True)
            if len(rows) == len(asked) and (np.diff(asked) == 1).all():
                record.take(name, rows, out=values[asked[0] : asked[-1] + 1])  # rows asked in the record's order
            else:
                taken = record.take(name, rows)
                values[asked] = taken if len(rows) == len(asked) else taken[inverse]  # no repeat: asked in row order
            known[asked] = True
        values[~known] = missing
        return values, known
