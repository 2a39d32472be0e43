"""Duplicate clips from their signatures: byte-identical files, re-encoded or resized copies, and clips
that share only their sound or only their picture, each pair with whether it crosses a split.

Up to ALL_PAIRS_UP_TO clips every pair is compared; above, never all pairs: a band index (locality-sensitive
hashing on the hash bits) proposes the pairs that agree exactly on some band of bits, and only those are
compared bit by bit (docs/quality.md gives the index's recall against the share of bits a copy changes).
A blank picture or a silent track is not content, so two of them never make a duplicate (they are the
`still` / `silent` flags).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from avaudit.quality.signals import BLANK, PICTURE_BYTES, SIGNATURE_BYTES, SILENT, SOUND_BYTES

PICTURE_MATCH = 0.93  # share of equal picture-hash bits from which two pictures are the same
SOUND_MATCH = 0.68  # share of equal sound-fingerprint bits from which two sounds are the same
PICTURE_BAND_BYTES = 3  # 24 bits: two clips are compared when any band of their picture hashes agrees exactly
SOUND_BAND_BYTES = 2  # 16 bits, one stretch of the sound fingerprint (Haitsma and Kalker's look-up unit)
ALL_PAIRS_UP_TO = 1500  # clips up to which every pair is compared (the index only proposes pairs above it)
MAX_BUCKET = 256  # clips sharing one band value above which the band pairs them only with its first clip
CHUNK = 200_000  # pairs compared at once: bounds the memory of the comparison
COLUMNS = ["video_id", "duplicate_of", "streams", "similarity", "same_split"]


def band_candidates(hashes: np.ndarray, usable: np.ndarray, *, band_bytes: int) -> np.ndarray:
    """(M, 2) int64 index pairs i < j of `hashes` (N, B) uint8 rows that agree on at least one band of
    `band_bytes` bytes, among the `usable` rows. Memory grows with N and M, never with N squared."""
    rows = np.flatnonzero(usable)
    coded = [np.zeros(0, np.int64)]
    for start in range(0, hashes.shape[1] - band_bytes + 1, band_bytes):
        band = hashes[rows, start : start + band_bytes].astype(np.uint64)
        keys = (band << (8 * np.arange(band_bytes, dtype=np.uint64))).sum(axis=1)
        pairs = _equal_key_pairs(keys, rows)
        coded.append(pairs[:, 0] * len(hashes) + pairs[:, 1])  # one int64 a pair: half the memory of (i, j)
    coded = _distinct(np.concatenate(coded))
    return np.stack([coded // len(hashes), coded % len(hashes)], axis=1)


def _distinct(values: np.ndarray) -> np.ndarray:
    """Sorted distinct int64 values: a sort in place, several times faster than np.unique's hashing on
    tens of millions of candidate pairs (numpy 2.4)."""
    values.sort()
    return values[np.r_[True, values[1:] != values[:-1]]] if len(values) else values


def _equal_key_pairs(keys: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """(M, 2) pairs of `rows` with equal `keys`; a run over MAX_BUCKET gives only (first, each other).

    Vectorized by run length: the runs of one length k form an (R, k) array whose column pairs are the pairs.
    """
    order = np.lexsort((rows, keys))
    sorted_keys, members = keys[order], rows[order]
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    lengths = np.diff(np.r_[starts, len(keys)])
    pairs = []
    for k in np.unique(lengths[lengths > 1]):
        runs = members[starts[lengths == k][:, None] + np.arange(k)]  # (R, k), each run ascending
        if k > MAX_BUCKET:
            pairs.append(np.stack([np.repeat(runs[:, 0], k - 1), runs[:, 1:].reshape(-1)], axis=1))
        else:
            i, j = np.triu_indices(k, k=1)
            pairs.append(np.stack([runs[:, i].reshape(-1), runs[:, j].reshape(-1)], axis=1))
    return np.concatenate(pairs) if pairs else np.zeros((0, 2), np.int64)


def bit_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(M,) share of equal bits between rows of (M, B) uint8 arrays (B a multiple of 8: counted as uint64)."""
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    if a.shape[1] % 8 == 0:
        differ = np.bitwise_count(a.view(np.uint64) ^ b.view(np.uint64)).sum(axis=1, dtype=np.int64)
    else:
        differ = np.bitwise_count(a ^ b).sum(axis=1, dtype=np.int64)
    return 1.0 - differ / (8 * a.shape[1])


def find_duplicates(video_ids, signatures: np.ndarray, file_digests, splits) -> pd.DataFrame:
    """One row per duplicate pair: `video_id` is the later clip, `duplicate_of` the earlier one.

    signatures (N, SIGNATURE_BYTES) uint8 from clip_signature; file_digests (N,) str (e.g. sha256) or
    None; splits (N,). streams: `audiovisual` (byte-identical, or both picture and sound match),
    `audio` or `visual`; similarity: the mean share of equal bits of the matching streams.
    """
    signatures = np.asarray(signatures, np.uint8)
    ids, splits = np.asarray(video_ids, dtype=object), np.asarray(splits, dtype=object)
    if signatures.ndim != 2 or signatures.shape[1] != SIGNATURE_BYTES or len(signatures) != len(ids):
        raise ValueError(f"signatures must be ({len(ids)}, {SIGNATURE_BYTES}) uint8, not {signatures.shape}")
    digests = None if file_digests is None else np.asarray(list(file_digests), dtype=object)
    i, j = candidate_pairs(signatures, digests)
    found = [_matches(signatures, digests, i[k : k + CHUNK], j[k : k + CHUNK]) for k in range(0, len(i), CHUNK)]
    empty = (np.zeros(0, np.int64),) * 2 + (np.zeros(0, str), np.zeros(0))
    i, j, streams, similarity = (np.concatenate(part) for part in zip(*found)) if found else empty
    return pd.DataFrame({"video_id": ids[j], "duplicate_of": ids[i], "streams": streams,
                         "similarity": np.round(similarity, 3), "same_split": splits[i] == splits[j]}, columns=COLUMNS)


def candidate_pairs(signatures: np.ndarray, digests: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(i, j) index pairs, i < j, worth comparing: all of them up to ALL_PAIRS_UP_TO clips, else the index's."""
    n = len(signatures)
    if n <= ALL_PAIRS_UP_TO:
        return np.triu_indices(n, k=1)
    pictures, sounds = _streams(signatures)
    has_picture, has_sound = (signatures[:, 0] & BLANK) == 0, (signatures[:, 0] & SILENT) == 0
    pairs = np.concatenate([band_candidates(pictures, has_picture, band_bytes=PICTURE_BAND_BYTES),
                            band_candidates(sounds, has_sound, band_bytes=SOUND_BAND_BYTES),
                            _digest_pairs(digests, n)])
    coded = _distinct(pairs[:, 0] * n + pairs[:, 1])
    return coded // n, coded % n


def _streams(signatures: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return signatures[:, 1 : 1 + PICTURE_BYTES], signatures[:, 1 + PICTURE_BYTES : 1 + PICTURE_BYTES + SOUND_BYTES]


def _matches(signatures: np.ndarray, digests: np.ndarray | None, i: np.ndarray, j: np.ndarray):
    """The pairs among (i, j) that are duplicates: (i, j, streams, similarity), each (M,)."""
    pictures, sounds = _streams(signatures)
    content_i, content_j = signatures[i, 0], signatures[j, 0]
    picture_sim, sound_sim = bit_similarity(pictures[i], pictures[j]), bit_similarity(sounds[i], sounds[j])
    same_picture = ((content_i | content_j) & BLANK == 0) & (picture_sim >= PICTURE_MATCH)
    same_sound = ((content_i | content_j) & SILENT == 0) & (sound_sim >= SOUND_MATCH)
    exact = np.zeros(len(i), bool) if digests is None else np.array(
        [bool(a) and a == b for a, b in zip(digests[i], digests[j])], bool)
    streams = np.where(exact | (same_picture & same_sound), "audiovisual",
                       np.where(same_sound, "audio", np.where(same_picture, "visual", "")))
    similarity = np.where(exact, 1.0, (same_picture * picture_sim + same_sound * sound_sim)
                          / np.maximum(same_picture.astype(int) + same_sound, 1))
    keep = streams != ""
    return i[keep], j[keep], streams[keep], similarity[keep]


def _digest_pairs(digests: np.ndarray | None, n: int) -> np.ndarray:
    """(M, 2) pairs of rows with the same file digest (None / empty digests never pair)."""
    if digests is None:
        return np.zeros((0, 2), np.int64)
    known = np.array([isinstance(d, str) and d != "" for d in digests], bool)
    codes = pd.factorize(pd.Series(digests[known], dtype=object))[0]
    return _equal_key_pairs(codes, np.flatnonzero(known))
