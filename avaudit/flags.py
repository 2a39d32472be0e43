"""Each audited clip's quality flags, from the arrays its decode measured (inference.pipeline.Audit.quality).

`still` and `silent` come from the clip's signals (quality.signals.flags_of); `duplicate` marks every copy
but the first (in DATA's order) of a group of clips that duplicate each other in either stream
(quality.duplicates.find_duplicates over the signatures, and the file digests confirmed byte for byte:
media.digest.confirm_identical), so that leaving the flagged ones out keeps one copy of each.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from avaudit.outputs import atomic_write


@dataclass
class Quality:
    """One row per decoded clip of DATA, and the duplicate pairs among them."""
    videos: pd.DataFrame  # video_id, path, split, flags, duplicate_of, the signals (SIGNAL_NAMES), labels, position
    duplicates: pd.DataFrame  # video_id, duplicate_of, streams, similarity, same_split (quality.duplicates.COLUMNS)
    measured: bool  # False when the audit ran without signals (AVAUDIT_SIGNALS=0): no flags at all


def measure_flags(table: pd.DataFrame, positions: np.ndarray, arrays: dict[str, np.ndarray], *,
                  memo: Path | None = None) -> Quality:
    """Flags of the manifest `table`'s rows at `positions` (the decoded ones, each once) from the audit's quality
    arrays over all of `table` (Audit.quality; {} when not measured). `memo`: find_copies'."""
    from avaudit.quality.duplicates import COLUMNS
    from avaudit.quality.signals import SIGNAL_NAMES, flags_of

    rows = table.iloc[positions]
    videos = pd.DataFrame({"video_id": rows["video_id"].to_numpy(), "path": rows["path"].to_numpy(),
                           "split": rows["split"].fillna("").to_numpy(), "flags": "", "duplicate_of": ""})
    signals = arrays["signals"][positions] if arrays else np.full((len(rows), len(SIGNAL_NAMES)), np.nan, np.float32)
    for i, name in enumerate(SIGNAL_NAMES):
        videos[name] = np.round(signals[:, i].astype(float), 3)
    videos["labels"], videos["position"] = rows["labels"].to_numpy(), positions
    if not arrays:
        return Quality(videos, pd.DataFrame(columns=COLUMNS), measured=False)
    duplicates = find_copies(rows, positions, arrays, usable=np.isfinite(signals).all(axis=1), memo=memo)
    videos["duplicate_of"] = kept_copies(videos["video_id"], duplicates)
    flags = [[flag for flag in text.split(";") if flag] for text in flags_of(signals)]
    videos["flags"] = [";".join([*own, *(["duplicate"] if kept else [])])
                       for own, kept in zip(flags, videos["duplicate_of"] != "")]
    return Quality(videos, duplicates, measured=True)


def row_flags(table: pd.DataFrame, positions: np.ndarray, arrays: dict[str, np.ndarray], *,
              memo: Path | None = None) -> tuple[np.ndarray, bool]:
    """(each row's flags (N,) str, whether measured) for the manifest `table`'s rows at `positions` (repeats
    allowed: one row per video and label). Without signals no row has a flag, and the manifest's rows are not
    copied into a per-video table (measure_flags') to say so: at ten million rows that table is gigabytes."""
    if not arrays:
        return np.full(len(positions), "", "<U1"), False
    found = measure_flags(table, np.unique(positions), arrays, memo=memo)
    flag_of = pd.Series(found.videos["flags"].to_numpy(), index=found.videos["position"])  # no dict of every video
    return pd.Series(positions).map(flag_of).to_numpy(str), True


def find_copies(rows: pd.DataFrame, positions: np.ndarray, arrays: dict[str, np.ndarray], *,
                usable: np.ndarray, memo: Path | None = None) -> pd.DataFrame:
    """find_duplicates over the clips whose signals were measured (a failed measurement has no signature to
    compare), their file digests confirmed byte for byte first. With `memo` (a folder), the pairs found for
    the same clips, signatures, digests and splits are read back (the search costs seconds per 100,000
    clips; a cached re-audit decodes nothing and should search nothing either)."""
    from avaudit.media.digest import confirm_identical
    from avaudit.quality.duplicates import COLUMNS, find_duplicates

    rows, positions = rows[usable], positions[usable]
    ids, splits = rows["video_id"].to_numpy().astype(str), rows["split"].fillna("").to_numpy().astype(str)
    digests = confirm_identical(rows["path"].to_numpy(), rows["start"].to_numpy(), rows["end"].to_numpy(),
                                arrays["digests"][positions],
                                whole=rows["member"].to_numpy(str) != "" if "member" in rows else None)
    signatures = arrays["signatures"][positions]
    path = memo / f"{memo_key(ids, signatures, digests, splits)}.npz" if memo is not None else None
    try:
        with np.load(path) as saved:
            i, j = saved["i"], saved["j"]
            return pd.DataFrame({"video_id": ids[j], "duplicate_of": ids[i], "streams": saved["streams"],
                                 "similarity": saved["similarity"], "same_split": saved["same_split"]},
                                columns=COLUMNS)
    except (OSError, TypeError, ValueError, KeyError, IndexError):
        pass  # no memo, or one not as written: search
    hexes = [d.hex() for d in np.ascontiguousarray(digests).view("S16").ravel()]  # "" for an unread file
    pairs = find_duplicates(ids.astype(object), signatures, hexes, splits.astype(object)).reset_index(drop=True)
    if path is not None:
        index = {video: k for k, video in enumerate(ids)}
        columns = {"i": pairs["duplicate_of"].map(index).to_numpy(np.int64),
                   "j": pairs["video_id"].map(index).to_numpy(np.int64),
                   "streams": pairs["streams"].to_numpy(str), "similarity": pairs["similarity"].to_numpy(float),
                   "same_split": pairs["same_split"].to_numpy(bool)}
        try:
            atomic_write(path, lambda handle: np.savez(handle, **columns))
        except OSError:
            pass  # a read-only cache: the next audit searches again
    return pairs


def memo_key(ids: np.ndarray, signatures: np.ndarray, digests: np.ndarray, splits: np.ndarray) -> str:
    """A hash of everything the duplicate search reads, and of the search's own code."""
    from avaudit.quality import duplicates

    key = hashlib.blake2b(Path(duplicates.__file__).read_bytes(), digest_size=16)
    for part in ("\0".join(ids), np.ascontiguousarray(signatures).tobytes(), np.ascontiguousarray(digests).tobytes(),
                 "\0".join(splits)):
        key.update(part.encode("utf-8", "surrogateescape") if isinstance(part, str) else part)
        key.update(b"\1")
    return key.hexdigest()


def kept_copies(video_ids: pd.Series, duplicates: pd.DataFrame) -> np.ndarray:
    """(N,) for each video the copy kept of its group of duplicates (the group's first in `video_ids`' order),
    "" for a video kept or in no group. Groups join through any pair, in either stream."""
    index = {video: i for i, video in enumerate(video_ids)}
    parent = np.arange(len(video_ids))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    members = set()
    for a, b in zip(duplicates["video_id"].map(index), duplicates["duplicate_of"].map(index)):
        ra, rb = root(int(a)), root(int(b))
        parent[max(ra, rb)] = min(ra, rb)  # the earlier row roots the group
        members.update((int(a), int(b)))
    ids = np.asarray(video_ids, dtype=object)
    kept = np.full(len(ids), "", dtype=object)
    for i in members:
        if root(i) != i:
            kept[i] = ids[root(i)]
    return kept
