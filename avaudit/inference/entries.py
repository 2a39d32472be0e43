"""The logit cache's files: append-only entry files, each a run of whole records of named per-clip arrays.

A record is a fixed 20-byte head (magic, header length, payload length, CRC-32 of header and payload),
a JSON header naming each array (name, dtype, shape of one row) and the arrays' bytes, row-major.
Every array of a record has the same number of rows. A reader takes the records from the start of a
file and stops at the first one that is not whole (a kill during an append, an append still under
way): only whole entries are ever read. Appends are made under the folder's lock (cache.py), which
first cuts a torn tail off, so a later record never follows a torn one. Numpy only: a cached re-audit
reads these without torch.
"""
from __future__ import annotations

import json
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

MAGIC = b"AVC1"
_HEAD = struct.Struct("<4sIQI")  # magic, header bytes, payload bytes, crc32
JOINED_BYTES = 64 << 20  # the most bytes compact() joins into one record (it holds two at once)
CHUNK_BYTES = 8 << 20  # what place() reads at a time of an array it checks but does not keep
Arrays = dict[str, np.ndarray]


def _bytes(array: np.ndarray) -> memoryview:
    """A contiguous array's bytes, without a copy (an empty one's too)."""
    return memoryview(array.reshape(-1).view(np.uint8))


def _crc(header: bytes, arrays: list[np.ndarray]) -> int:
    crc = zlib.crc32(header)
    for array in arrays:
        crc = zlib.crc32(_bytes(array), crc)
    return crc


def encode(arrays: Arrays) -> list[bytes | memoryview]:
    """One record's parts, to be written in order: head, header, then each array's bytes."""
    arrays = {name: np.ascontiguousarray(array) for name, array in arrays.items()}
    rows = {len(array) for array in arrays.values()}
    if len(rows) != 1:
        raise ValueError(f"the arrays of one record have different numbers of rows: {sorted(rows)}")
    header = json.dumps({"rows": rows.pop(), "arrays": [[name, array.dtype.str, list(array.shape[1:])]
                                                        for name, array in arrays.items()]}).encode()
    payload = sum(array.nbytes for array in arrays.values())
    head = _HEAD.pack(MAGIC, len(header), payload, _crc(header, list(arrays.values())))
    return [head, header, *(_bytes(array) for array in arrays.values())]


def append(path: Path, arrays: Arrays, *, end: int) -> tuple[int, Placed]:
    """Append one record after the first `end` bytes of `path` (anything after them, a torn record, is cut
    off first), durably; returns the new end and the record's place (what `place` finds there), so that the
    writer indexes it without reading back what it wrote. The caller holds the folder's lock."""
    parts = encode(arrays)
    with open(path, "ab") as handle:
        if handle.tell() > end:  # append mode writes at the end, so the torn tail goes first
            handle.truncate(end)
            handle.seek(end)
        start = handle.tell()
        for part in parts:
            handle.write(part)
        handle.flush()
        os.fsync(handle.fileno())
        offset, spans = start + len(parts[0]) + len(parts[1]), {}
        for (name, array), part in zip(arrays.items(), parts[2:]):
            spans[name] = (array.dtype, array.shape[1:], offset)
            offset += part.nbytes
        return handle.tell(), Placed(len(next(iter(arrays.values()))), spans)


def _open_record(handle, size: int) -> tuple[int, int, bytes, dict] | None:
    """(the byte where it ends, its CRC, its header's bytes, the header read) of the record at the handle's
    position, the handle left at its payload; None where its head is torn, not ours, or past `size`."""
    at = handle.tell()
    head = handle.read(_HEAD.size)
    if len(head) < _HEAD.size:
        return None
    magic, header_len, payload_len, crc = _HEAD.unpack(head)
    end = at + _HEAD.size + header_len + payload_len
    if magic != MAGIC or end > size:
        return None
    header = handle.read(header_len)
    try:
        return end, crc, header, json.loads(header)
    except ValueError:  # a header that is not ours
        return None


def _read_one(handle, size: int) -> Arrays | None:
    """The record at the handle's position, or None where it is not whole (the handle is then anywhere)."""
    opened = _open_record(handle, size)
    if opened is None:
        return None
    end, crc, header, spec = opened
    try:
        rows, arrays = int(spec["rows"]), {}
        for name, dtype, shape in spec["arrays"]:
            dtype, shape = np.dtype(dtype), (rows, *map(int, shape))
            count = int(np.prod(shape))
            data = np.fromfile(handle, dtype=dtype, count=count)
            if data.size != count:
                return None
            arrays[str(name)] = data.reshape(shape)
    except (ValueError, TypeError, KeyError):  # a header that is not ours
        return None
    if handle.tell() != end or _crc(header, list(arrays.values())) != crc:
        return None
    return arrays


def iterate(path: Path, start: int = 0) -> Iterator[tuple[Arrays, int]]:
    """(record, the byte where it ends) of each whole record of `path` from byte `start`, in order."""
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        handle.seek(start)
        while handle.tell() < size:
            record = _read_one(handle, size)
            if record is None:
                return
            yield record, handle.tell()


@dataclass(frozen=True)
class Placed:
    """A whole record's place in its file: its rows, and each array's dtype, row shape and the byte its
    payload starts at, so a reader takes any of its rows by offset (inference/blocks.py)."""
    rows: int
    arrays: dict[str, tuple[np.dtype, tuple[int, ...], int]]


def place(handle: BinaryIO, start: int = 0, *, keep: tuple[str, ...] = ("keys",),
          finite: str = "logits") -> Iterator[tuple[Placed, Arrays, np.ndarray, int]]:
    """(place, its arrays named in `keep`, which rows of `finite` are all finite (all True where it has no such
    array), the byte where it ends) of each whole record of the open file `handle` from byte `start`, in order.

    Each record's CRC is checked as `read` checks it, but a chunk of CHUNK_BYTES at a time: memory is the kept
    arrays, not the record.
    """
    size = os.fstat(handle.fileno()).st_size
    handle.seek(start)
    chunk = np.empty(CHUNK_BYTES, np.uint8)  # every chunk read into it: a reader places 3.2 GB at ten million clips
    while handle.tell() < size:
        placed = _place_one(handle, size, keep, finite, chunk)
        if placed is None:
            return
        yield (*placed, handle.tell())


def count(path: Path, start: int = 0) -> int:
    """How many records `path` holds from byte `start`, by their heads alone (a torn last one counted too)."""
    with open(path, "rb") as handle:
        size, at, records = os.fstat(handle.fileno()).st_size, start, 0
        while at + _HEAD.size <= size:
            handle.seek(at)
            magic, header_len, payload_len, _ = _HEAD.unpack(handle.read(_HEAD.size))
            if magic != MAGIC:
                break
            at, records = at + _HEAD.size + header_len + payload_len, records + 1
        return records


def _place_one(handle, size: int, keep: tuple[str, ...], finite: str, chunk: np.ndarray):
    """`place`'s record at the handle's position, or None where it is not whole. Each chunk is read into `chunk`
    (CHUNK_BYTES, or one row where a row is larger): fresh memory for every chunk cost a 10M-clip reader its page
    faults; a kept array's chunks are copied out of it."""
    opened = _open_record(handle, size)
    if opened is None:
        return None
    end, crc, header, spec = opened
    try:
        rows, arrays, kept, whole, running = int(spec["rows"]), {}, {}, np.ones(int(spec["rows"]), bool), \
            zlib.crc32(header)
        for name, dtype, shape in spec["arrays"]:
            dtype, shape, offset = np.dtype(dtype), tuple(map(int, shape)), handle.tell()
            width = int(np.prod(shape))
            step = max(CHUNK_BYTES // max(dtype.itemsize * width, 1), 1)
            parts = []
            for first in range(0, rows, step):
                count = min(step, rows - first)
                nbytes = count * width * dtype.itemsize
                if nbytes > len(chunk):
                    chunk = np.empty(nbytes, np.uint8)
                read = memoryview(chunk[:nbytes])
                if handle.readinto(read) != nbytes:
                    return None
                running = zlib.crc32(read, running)
                data = chunk[:nbytes].view(dtype).reshape((count, *shape))
                if name in keep:
                    parts.append(data.copy())
                if name == finite and dtype.kind == "f":
                    whole[first : first + count] = np.isfinite(data.reshape(count, -1)).all(axis=1)
            arrays[str(name)] = (dtype, shape, offset)
            if name in keep:
                kept[str(name)] = np.concatenate(parts) if parts else np.empty((0, *shape), dtype)
    except (ValueError, TypeError, KeyError):  # a header that is not ours
        return None
    if handle.tell() != end or running != crc:
        return None
    return Placed(rows, arrays), kept, whole


def read(path: Path, start: int = 0) -> tuple[list[Arrays], int]:
    """(the whole records of `path` from byte `start`, in order; the byte where they end)."""
    records, end = [], start
    for record, end in iterate(path, start):
        records.append(record)
    return records, end


def _schema(record: Arrays) -> tuple:
    return tuple((name, array.dtype.str, array.shape[1:]) for name, array in record.items())


def compact(path: Path, max_bytes: int = JOINED_BYTES) -> int:
    """Rewrite `path` with its consecutive records of the same arrays (names, dtypes, row shapes) joined,
    up to `max_bytes` a record, order kept, a record at a time (memory: one joined record); written
    beside it, fsynced and renamed over it. Returns its new size. The caller holds the folder's lock."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    run: list[Arrays] = []

    def flush(handle) -> None:
        if run:
            joined = run[0] if len(run) == 1 else {name: np.concatenate([r[name] for r in run]) for name in run[0]}
            for part in encode(joined):
                handle.write(part)
            run.clear()

    try:
        with open(temp, "wb") as handle:
            for record, _ in iterate(path):
                size = sum(array.nbytes for array in record.values())
                if run and (_schema(run[0]) != _schema(record) or
                            sum(a.nbytes for r in run for a in r.values()) + size > max_bytes):
                    flush(handle)
                run.append(record)
            flush(handle)
            handle.flush()
            os.fsync(handle.fileno())
            size = handle.tell()
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return size
