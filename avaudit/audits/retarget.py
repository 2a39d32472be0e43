"""Retargeting: keep the videos whose label a chosen modality carries, and compare with Kinetics-Sounds.

Pure functions over the bias audit's tables; writing the kept rows back in the input's own
manifest format is the manifests module's job.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd

from avaudit.errors import UsageError
from avaudit.vocab import GROUPS, LAYERS, QUALITY_FLAGS, UNCLEAR

_KS31 = (
    "blowing nose", "blowing out candles", "bowling", "chopping wood", "dribbling basketball", "laughing",
    "mowing lawn", "playing accordion", "playing bagpipes", "playing bass guitar", "playing clarinet",
    "playing drums", "playing guitar", "playing harmonica", "playing keyboard", "playing organ",
    "playing piano", "playing saxophone", "playing trombone", "playing trumpet", "playing violin",
    "playing xylophone", "ripping paper", "shoveling snow", "shuffling cards", "singing", "stomping grapes",
    "tap dancing", "tapping guitar", "tapping pen", "tickling",
)
KINETICS_SOUNDS: dict[str, tuple[str, ...]] = {
    # The original list; seven of its names are not Kinetics-400 class names.
    "ks34": (
        "blowing nose", "bowling", "chopping wood", "ripping paper", "shuffling cards", "singing",
        "tapping pen", "typing", "blowing out", "dribbling ball", "laughing",
        "mowing the lawn by pushing lawnmower", "shoveling snow", "stomping", "tap dancing", "tapping guitar",
        "tickling", "fingerpicking", "patting", "playing accordion", "playing bagpipes", "playing bass guitar",
        "playing clarinet", "playing drums", "playing guitar", "playing harmonica", "playing keyboard",
        "playing organ", "playing piano", "playing saxophone", "playing trombone", "playing trumpet",
        "playing violin", "playing xylophone",
    ),
    "ks31": _KS31,  # the same classes under Kinetics-400 names
    "ks32": tuple(sorted(_KS31 + ("strumming guitar",))),
}


def _matches(frame: pd.DataFrame, keep: set[str]) -> pd.Series:
    """A row matches when its group or its layer is kept; `redundant` only matches itself."""
    return frame["group"].isin(keep) | frame["layer"].isin(keep)


KEEPABLE = tuple(dict.fromkeys((*GROUPS, UNCLEAR, *LAYERS)))  # what `keep` may name


def check_keep(keep: Sequence[str]) -> list[str]:
    """`keep` as a list of group or layer names (KEEPABLE), or a UsageError naming the ones that are not."""
    if keep is not None and (isinstance(keep, str) or not isinstance(keep, Iterable)
                             or not all(isinstance(name, str) for name in keep)):
        raise UsageError(f"keep must be a list of group or layer names ({', '.join(KEEPABLE)}), not {keep!r}")
    if not keep:
        raise UsageError(f"keep at least one of: {', '.join(KEEPABLE)}")
    unknown = sorted(set(keep) - set(KEEPABLE))
    if unknown:
        names = "name" if len(unknown) == 1 else "names"
        raise UsageError(f"unknown group or layer {names} {', '.join(unknown)}; valid: {', '.join(KEEPABLE)}")
    return list(keep)


def check_reference(reference: str) -> str:
    """A Kinetics-Sounds list's key (KINETICS_SOUNDS), as given in any case, or a UsageError listing them."""
    key = reference.strip().lower() if isinstance(reference, str) else None
    if key not in KINETICS_SOUNDS:
        raise UsageError(f"unknown reference {reference!r}; known: {', '.join(sorted(KINETICS_SOUNDS))}")
    return key


def select(per_video: pd.DataFrame, per_category: pd.DataFrame, keep: Sequence[str], *,
           by: str = "category") -> pd.DataFrame:
    """The rows of per_video to keep, in their order and with their index (to map back to the manifest).

    per_video: video_id, path, label, layer, group; per_category: category, layer, group (the bias
    audit's outputs). keep: group names (GROUPS) or layer names (LAYERS). by="category" keeps every
    video of a category whose own group or layer is kept; by="video" judges each video alone.
    Keeping `audiovisual` does not keep `redundant` categories: ask for both to have both.
    """
    wanted = set(check_keep(keep))
    if by == "video":
        return per_video[_matches(per_video, wanted)]
    if by == "category":
        categories = per_category.loc[_matches(per_category, wanted), "category"]
        return per_video[per_video["label"].isin(categories)]
    raise UsageError(f"by must be 'category' or 'video', got {by!r}")


def select_blocks(blocks: Iterable[pd.DataFrame], per_category: pd.DataFrame, keep: Sequence[str], *, by: str,
                  drop: Sequence[str], named: str) -> tuple[pd.Series, pd.DataFrame]:
    """`select`, then `drop_flagged`, over per-video rows given a block at a time (at least one): (the selected
    rows' video_id, the kept rows' video_id and label). A bias run's bias_videos.csv is read so, never whole.
    `named`: the per-video table's file, named where `drop` needs a `flags` column it lacks."""
    selected, kept = [], []
    for block in blocks:
        if drop and "flags" not in block:
            raise UsageError(f"{named}: no `flags` column (a bias run of an older avaudit, or run with "
                             f"AVAUDIT_SIGNALS=0) to drop {', '.join(drop)} by; rerun `avaudit bias`")
        chosen = select(block, per_category, keep, by=by)
        selected.append(chosen["video_id"])
        kept.append(drop_flagged(chosen, drop)[["video_id", "label"]])
    return pd.concat(selected, ignore_index=True), pd.concat(kept, ignore_index=True)


def check_drop(drop: Sequence[str] | str | None) -> list[str]:
    """`drop` as a list of quality flags (QUALITY_FLAGS), given as names or comma-joined ("still,silent"), or a
    UsageError naming the ones that are not."""
    if drop is None:
        return []
    if isinstance(drop, str):
        drop = [drop]
    if not isinstance(drop, Iterable) or not all(isinstance(name, str) for name in drop):
        raise UsageError(f"drop must be quality flags ({', '.join(QUALITY_FLAGS)}), not {drop!r}")
    names = [name.strip() for text in drop for name in text.split(",") if name.strip()]
    unknown = sorted(set(names) - set(QUALITY_FLAGS))
    if unknown:
        raise UsageError(f"unknown quality flag {', '.join(unknown)} to drop; valid: {', '.join(QUALITY_FLAGS)}")
    return list(dict.fromkeys(names))


def drop_flagged(per_video: pd.DataFrame, drop: Sequence[str]) -> pd.DataFrame:
    """The rows of per_video (with the bias audit's `flags` column, `;`-joined) that hold none of the flags in
    `drop`. A group of duplicates keeps its first copy: only the others carry `duplicate`."""
    if not drop:
        return per_video
    flags = per_video["flags"].fillna("").astype(str).str.split(";")
    return per_video[~flags.map(lambda own: bool(set(own) & set(drop))).to_numpy(bool)]


def _normal(name: str) -> str:
    """Folder names spell classes with underscores and any case: compare on a common spelling."""
    return " ".join(str(name).replace("_", " ").lower().split())


def compare(categories: Iterable[str], reference: str) -> dict:
    """How many of a Kinetics-Sounds list's classes are among `categories` (e.g. the kept ones).

    reference: a key of KINETICS_SOUNDS. Names match ignoring case, surrounding spaces and '_' vs ' '.
    Returns reference, n_reference, n_matched, fraction, and the matched and unmatched reference names.
    """
    key = check_reference(reference)
    names = KINETICS_SOUNDS[key]
    have = {_normal(c) for c in categories}
    matched = sorted(n for n in names if _normal(n) in have)
    unmatched = sorted(n for n in names if _normal(n) not in have)
    return {"reference": key, "n_reference": len(names), "n_matched": len(matched),
            "fraction": len(matched) / len(names), "matched": matched, "unmatched": unmatched}
