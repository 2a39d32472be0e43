"""Which clips are byte-identical copies: a digest of each clip's file and window, cheap where it is taken.

Hashing every byte of every file would read a dataset twice (the decoder reads only the window's
packets). The decoding worker takes a pre-filter instead: the file's size and a hash of its first and
last MiB (`clip_digest`), with the clip's window, so two windows of one file never match. Only clips whose
pre-filters agree are read whole, once, by `confirm_identical`: a handful among thousands.
"""
from __future__ import annotations

import hashlib
import os

import numpy as np

DIGEST_BYTES = 16
EDGE_BYTES = 1 << 20  # bytes hashed at each end of a file by the pre-filter
NO_DIGEST = np.zeros(DIGEST_BYTES, np.uint8)  # a file that could not be read: never a copy of another


def clip_digest(path, start: float, end: float, *, whole: bool = False) -> np.ndarray:
    """(DIGEST_BYTES,) uint8: the file's size, its first and last EDGE_BYTES (every byte with `whole`) and the
    window (start, end; NaN for an open one). NO_DIGEST where the file cannot be read. `path` may be a
    MemorySource (a shard's member, already in memory): every byte of it, as a file read whole."""
    digest = hashlib.blake2b(digest_size=DIGEST_BYTES)
    data = getattr(path, "data", None)
    if data is not None:
        digest.update(f"{len(data)}\0{float(start)!r}\0{float(end)!r}\0".encode())
        digest.update(data)
        return np.frombuffer(digest.digest(), np.uint8).copy()
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            digest.update(f"{size}\0{float(start)!r}\0{float(end)!r}\0".encode())
            if whole or size <= 2 * EDGE_BYTES:
                for block in iter(lambda: handle.read(EDGE_BYTES), b""):
                    digest.update(block)
            else:
                digest.update(handle.read(EDGE_BYTES))
                handle.seek(size - EDGE_BYTES)
                digest.update(handle.read(EDGE_BYTES))
    except (OSError, ValueError):
        return NO_DIGEST.copy()
    return np.frombuffer(digest.digest(), np.uint8).copy()


def confirm_identical(paths, starts, ends, digests: np.ndarray, *, whole=None) -> np.ndarray:
    """`digests` (N, DIGEST_BYTES) with each pre-filter shared by two or more distinct files replaced by the
    hash of every byte (the same for true copies, different for files alike only at their ends). Rows
    of one path share the result: the file is read once. `whole` (N,) bool: rows whose digest is already
    of every byte (a shard's member: its path is the shard, which holds other videos too), kept as they are."""
    digests = np.array(digests, np.uint8, copy=True)
    known = digests.any(axis=1) & (True if whole is None else ~np.asarray(whole, bool))
    codes = np.unique(digests, axis=0, return_inverse=True)[1].reshape(-1)
    counts = np.bincount(codes[known], minlength=codes.max(initial=0) + 1)
    whole: dict[tuple, np.ndarray] = {}
    for row in np.flatnonzero(known & (counts[codes] > 1)):
        key = (os.path.realpath(paths[row]), float(starts[row]), float(ends[row]))
        if key not in whole:
            whole[key] = clip_digest(paths[row], starts[row], ends[row], whole=True)
        digests[row] = whole[key]
    return digests
