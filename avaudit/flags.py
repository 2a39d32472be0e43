"""Each audited clip's quality flags, from the arrays its decode measured (inference.pipeline.Audit.quality).

`still` and `silent` come from the clip's signals (quality.signals.flags_of); `duplicate` marks every copy
but the first (in DATA's order) of a group of clips that duplicate each other in either stream
(quality.duplicates.find_duplicates over the signatures, and the file digests confirmed byte for byte:
media.digest.confirm_identical), so that leaving the flagged ones out keeps one copy of each.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass
class Quality:
    """One row per decoded clip of DATA, and the duplicate pairs among them."""
    videos: pd.DataFrame  # video_id, path, split, flags, duplicate_of, the signals (SIGNAL_NAMES), labels, position
    duplicates: pd.DataFrame  # video_id, duplicate_of, streams, similarity, same_split (quality.duplicates.COLUMNS)
    measured: bool  # False when the audit ran without signals (AVAUDIT_SIGNALS=0): no flags at all


def measure_flags(table: pd.DataFrame, positions: np.ndarray, arrays: dict[str, np.ndarray]) -> Quality:
    """Flags of the manifest `table`'s rows at `positions` (the decoded ones, each once) from the audit's quality
    arrays over all of `table` (Audit.quality; {} when not measured)."""
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
    duplicates = find_copies(rows, positions, arrays, usable=np.isfinite(signals).all(axis=1))
    videos["duplicate_of"] = kept_copies(videos["video_id"], duplicates)
    flags = [[flag for flag in text.split(";") if flag] for text in flags_of(signals)]
    videos["flags"] = [";".join([*own, *(["duplicate"] if kept else [])])
                       for own, kept in zip(flags, videos["duplicate_of"] != "")]
    return Quality(videos, duplicates, measured=True)


def find_copies(rows: pd.DataFrame, positions: np.ndarray, arrays: dict[str, np.ndarray], *,
                usable: np.ndarray) -> pd.DataFrame:
    """find_duplicates over the clips whose signals were measured (a failed measurement has no signature to
    compare), their file digests confirmed byte for byte first."""
    from avaudit.media.digest import confirm_identical
    from avaudit.quality.duplicates import find_duplicates

    rows, positions = rows[usable], positions[usable]
    digests = confirm_identical(rows["path"].to_numpy(), rows["start"].to_numpy(), rows["end"].to_numpy(),
                                arrays["digests"][positions])
    hexes = [bytes(d).hex() if d.any() else "" for d in digests]
    return find_duplicates(rows["video_id"].to_numpy(), arrays["signatures"][positions], hexes,
                           rows["split"].fillna("").to_numpy()).reset_index(drop=True)


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

    for a, b in zip(duplicates["video_id"].map(index), duplicates["duplicate_of"].map(index)):
        ra, rb = root(int(a)), root(int(b))
        parent[max(ra, rb)] = min(ra, rb)  # the earlier row roots the group
    first = np.array([root(i) for i in range(len(video_ids))], dtype=np.int64)
    ids = np.asarray(video_ids, dtype=object)
    return np.where(first != np.arange(len(first)), ids[first], "").astype(object)
