"""The bias audit scored against modality truth from annotations that label sound and sight apart (AVVP).

Truth of a (video, label), from its audio events and its visual events:

| heard (audio events) | seen (visual events) | truth |
| --- | --- | --- |
| yes | no | `audio` |
| no | yes | `visual` |
| yes | yes | `audiovisual` (at any moments of the clip; `both_s` says how long at once) |

The audit agrees when its group matches: `audio` with `audio`, `visual` with `visual`, and `audiovisual`
with either `audiovisual` or `redundant`, since annotations say what each stream holds, not whether one
stream alone would name the event. A category's truth is the most common truth of its scored videos
(ties: audiovisual, then audio, then visual). A group that is none of these (an `unclear` decision) is
counted apart: `agrees` is empty there, and agreement is over the decided rows.

Pure functions: event tables and the bias audit's tables in, DataFrames out, no I/O.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

TRUTHS = ("audiovisual", "audio", "visual")  # also the order ties are broken in
AGREEING = {"audio": ("audio",), "visual": ("visual",), "audiovisual": ("audiovisual", "redundant")}
GROUPS_SCORED = ("audio", "visual", "audiovisual", "redundant")  # any other group is unclear: counted apart
CATEGORY_COLUMNS = ("category", "truth", "n_audio", "n_visual", "n_audiovisual", "layer", "group", "agrees")


def normal_label(names: pd.Series) -> pd.Series:
    """Labels compared ignoring case, '_' against ' ' and repeated spaces (`Frying_(food)` = `frying (food)`)."""
    return names.astype(str).str.replace("_", " ").str.lower().str.split().str.join(" ")


def _segments(events: pd.DataFrame) -> pd.DataFrame:
    """The union of each (filename, label)'s events as disjoint intervals: filename, label, start, end."""
    e = events.sort_values(["filename", "label", "onset"], kind="mergesort", ignore_index=True)
    keys = [e["filename"], e["label"]]
    reach = e.groupby(keys, sort=False)["offset"].cummax()
    before = reach.groupby(keys, sort=False).shift()
    segment = (before.isna() | (e["onset"] > before)).cumsum()
    return e.groupby(segment).agg(filename=("filename", "first"), label=("label", "first"),
                                  start=("onset", "min"), end=("offset", "max")).reset_index(drop=True)


def modality_truth(audio_events: pd.DataFrame, visual_events: pd.DataFrame) -> pd.DataFrame:
    """One row per annotated (filename, label): truth, and seconds heard, seen, and heard and seen at once.

    audio_events, visual_events: filename, label, onset, offset (s), as `avaudit.events.read_events` gives.
    Returns filename, label (as annotated, the audio file's spelling first), key (normal_label), truth,
    audio_s, visual_s, both_s.
    """
    parts = []
    for events, stream in ((audio_events, "audio"), (visual_events, "visual")):
        segments = _segments(events.assign(label=normal_label(events["label"]))) if len(events) else \
            pd.DataFrame(columns=["filename", "label", "start", "end"])
        parts.append(segments.assign(stream=stream))
    a, v = (p.rename(columns={"label": "key"}) for p in parts)
    overlap = a.merge(v, on=["filename", "key"], suffixes=("_a", "_v"))
    overlap["both_s"] = (np.minimum(overlap["end_a"], overlap["end_v"])
                         - np.maximum(overlap["start_a"], overlap["start_v"])).clip(lower=0)
    seconds = pd.concat([a, v]).assign(length=lambda t: t["end"] - t["start"]).pivot_table(
        index=["filename", "key"], columns="stream", values="length", aggfunc="sum")
    seconds = seconds.reindex(columns=["audio", "visual"]).rename(columns={"audio": "audio_s", "visual": "visual_s"})
    seconds["both_s"] = overlap.groupby(["filename", "key"])["both_s"].sum()
    seconds = seconds.reset_index()
    heard, seen = seconds["audio_s"].notna(), seconds["visual_s"].notna()
    seconds["truth"] = np.where(heard & seen, "audiovisual", np.where(heard, "audio", "visual"))
    seconds[["audio_s", "visual_s", "both_s"]] = seconds[["audio_s", "visual_s", "both_s"]].fillna(0.0)
    spelling = pd.concat([audio_events, visual_events]).assign(key=lambda t: normal_label(t["label"]))
    spelling = spelling.drop_duplicates(["filename", "key"])[["filename", "key", "label"]]
    out = seconds.merge(spelling, on=["filename", "key"], how="left")
    return out[["filename", "label", "key", "truth", "audio_s", "visual_s", "both_s"]].sort_values(
        ["filename", "key"], ignore_index=True)


def match_filenames(video_ids: pd.Series, paths: pd.Series, filenames, *, window_fields: int = 2) -> pd.Series:
    """Each audited video's annotation filename, or NaN: its video_id (an LLP manifest's ids are the
    filenames), else the last part of the id, else the file's stem, else that stem as a YouTube id that
    one filename alone starts with (the release's download script saves `video/{youtube_id}.mp4`).
    window_fields: how many `_`-parts follow the YouTube id in a filename (LLP `{id}_{start}_{end}`: 2,
    VGGSound `{id}_{start:06d}`: 1)."""
    known = pd.Index(pd.unique(pd.Series(list(filenames), dtype=object)))
    youtube = pd.Series(known, index=known).str.rsplit("_", n=window_fields).str[0]
    unique_youtube = youtube[~youtube.duplicated(keep=False)]
    by_youtube = pd.Series(unique_youtube.index, index=unique_youtube.to_numpy())
    ids = video_ids.astype(str).reset_index(drop=True)
    stems = paths.astype(str).reset_index(drop=True).str.replace("\\", "/").str.rsplit("/", n=1).str[-1] \
        .str.replace(r"\.[^.]*$", "", regex=True)
    matched = pd.Series(np.nan, index=ids.index, dtype=object)
    for candidate in (ids, ids.str.rsplit("/", n=1).str[-1], stems):
        matched = matched.where(matched.notna(), candidate.where(candidate.isin(known)))
    return matched.where(matched.notna(), stems.map(by_youtube)).set_axis(video_ids.index)


def agreement(truths, groups) -> pd.Series:
    """Does each group agree with its truth? True or False, NA where the group is none of GROUPS_SCORED
    (a decision left `unclear`, or a category with no assignment): counted apart, never as wrong."""
    return pd.Series([group in AGREEING[t] if group in GROUPS_SCORED else pd.NA
                      for t, group in zip(truths, groups)], dtype="boolean")


def category_truth(scored: pd.DataFrame, categories: pd.DataFrame) -> pd.DataFrame:
    """Per category of scored (video, label) rows: the most common truth against the category's group."""
    counts = pd.crosstab(scored["label"], scored["truth"]).reindex(columns=list(TRUTHS), fill_value=0)
    per_category = pd.DataFrame({"category": counts.index,
                                 "truth": np.asarray(TRUTHS)[counts.to_numpy().argmax(axis=1)] if len(counts)
                                 else np.array([], dtype=object)})
    for name in ("audio", "visual", "audiovisual"):
        per_category[f"n_{name}"] = counts[name].to_numpy()
    per_category = per_category.merge(categories[["category", "layer", "group"]], on="category", how="left")
    per_category["agrees"] = agreement(per_category["truth"], per_category["group"]).to_numpy()
    return per_category[list(CATEGORY_COLUMNS)]


def score_against_truth(per_video: pd.DataFrame, categories: pd.DataFrame, truth: pd.DataFrame, *,
                        window_fields: int = 2) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Per-video and per-category agreement of the bias audit with modality truth, and a summary.

    per_video: the bias audit's video_id, path, label, layer, group; categories: its category, layer,
    group; truth: filename, label, key, truth and any columns of its own (`modality_truth`'s seconds,
    VGGSounder's flags), kept after `truth`. Rows whose video or label the truth does not cover are not
    scored (counted in the summary); window_fields as `match_filenames`. Returns the scored rows,
    CATEGORY_COLUMNS and a dict.
    """
    rows = per_video[["video_id", "path", "label", "layer", "group"]].reset_index(drop=True)
    rows["filename"] = match_filenames(rows["video_id"], rows["path"], truth["filename"],
                                       window_fields=window_fields).to_numpy()
    rows["key"] = normal_label(rows["label"])
    scored = rows.merge(truth.drop(columns="label"), on=["filename", "key"], how="inner")
    scored["agrees"] = agreement(scored["truth"], scored["group"]).to_numpy()
    own = [c for c in truth.columns if c not in ("filename", "label", "key", "truth")]
    scored = scored[["video_id", "path", "label", "filename", "truth", *own, "layer", "group", "agrees"]]
    per_category = category_truth(scored, categories)

    def block(table: pd.DataFrame) -> dict:
        by_truth = {t: {"n": int((table["truth"] == t).sum()),
                        "groups": {g: int(n) for g, n in table.loc[table["truth"] == t, "group"].value_counts()
                                   .sort_index().items()}} for t in ("audio", "visual", "audiovisual")}
        decided = table["agrees"].dropna()
        return {"n_scored": int(len(decided)), "n_agree": int(decided.sum()),
                "agreement": float(decided.mean()) if len(decided) else None,
                "n_unclear": int(table["agrees"].isna().sum()), "by_truth": by_truth}

    matched = rows["filename"].notna()
    summary = {"mapping": {"heard only": "audio", "seen only": "visual",
                           "heard and seen": "audiovisual (agrees with group audiovisual or redundant)"},
               "videos": {**block(scored), "n_rows": int(len(rows)),
                          "n_video_not_annotated": int((~matched).sum()),
                          "n_label_not_annotated": int(matched.sum() - len(scored))},
               "categories": block(per_category)}
    return scored, per_category, summary
