"""The bias audit scored against people's modality labels (VGGSounder: one row per video and label).

People say of each (video, label) whether it is heard (`A`), seen (`V`) or both (`AV`). The audit's
modality of the same pair is its video's group: `audio`, `visual`, `audiovisual` (with `redundant`, since
people say what each stream holds, not whether one alone would name it), or `unclear` (a video not
`clear`, a category `unclear`), which is counted apart and scored nowhere. Scores: the 3 x 3 matrix,
agreement and Cohen's kappa, per (video, label) and per category (people's majority of its rows against
the category's group), each split by VGGSounder's three flags. Truth rows that match no audited pair
are counted and named.

Pure functions: tables in, tables and a dict out, no I/O.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from avaudit.audits.truth import normal_label

PEOPLE = ("A", "V", "AV")
MODALITY = {"A": "audio", "V": "visual", "AV": "audiovisual"}
OURS = {"audio": "audio", "visual": "visual", "audiovisual": "audiovisual", "redundant": "audiovisual"}
FLAGS = ("background_music", "static_image", "voice_over")
REQUIRED = ("video_id", "label", "modality")


def check_people(table: pd.DataFrame) -> pd.DataFrame:
    """VGGSounder's rows, checked: video_id, label, modality (A, V or AV), and the flags present as bools.

    Raises ValueError saying which column is missing or how many rows hold another modality (the
    caller names the file).
    """
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        raise ValueError(f"no {', '.join(missing)} column (the header must name {', '.join(REQUIRED)})")
    out = table.assign(modality=table["modality"].astype(str).str.strip().str.upper())
    bad = ~out["modality"].isin(PEOPLE)
    if bad.any():
        raise ValueError(f"{int(bad.sum())} rows with a modality other than A, V or AV "
                         f"(first: {table['modality'].iloc[int(np.argmax(bad.to_numpy()))]!r})")
    for flag in FLAGS:
        if flag in out.columns:
            out[flag] = out[flag].astype(str).str.strip().str.lower().isin(("1", "true", "yes", "1.0"))
    return out.assign(video_id=out["video_id"].astype(str).str.strip(), key=normal_label(out["label"]))


def agreement(table: pd.DataFrame) -> dict:
    """The 3 x 3 matrix (people's rows, the audit's columns), agreement and Cohen's kappa of `people`
    against `ours` (both audio / visual / audiovisual). Kappa is None where it is undefined."""
    names = list(MODALITY.values())
    matrix = pd.crosstab(pd.Categorical(table["people"], names), pd.Categorical(table["ours"], names),
                         dropna=False).reindex(index=names, columns=names, fill_value=0).to_numpy()
    n = int(matrix.sum())
    observed = np.trace(matrix) / n if n else None
    expected = float(matrix.sum(axis=1) @ matrix.sum(axis=0)) / n ** 2 if n else None
    kappa = (observed - expected) / (1 - expected) if n and expected < 1 else None
    return {"n": n, "matrix": {p: dict(zip(names, map(int, row))) for p, row in zip(names, matrix)},
            "agreement": observed, "kappa": kappa}


def split_by_flags(table: pd.DataFrame) -> dict:
    """`agreement` for the rows with each flag and for those without it (flags the file has)."""
    return {flag: {"with": agreement(table[table[flag]]), "without": agreement(table[~table[flag]])}
            for flag in FLAGS if flag in table.columns}


def score_against_people(per_video: pd.DataFrame, categories: pd.DataFrame,
                         people: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict]:
    """Per (video, label) and per category agreement with people's modality labels.

    per_video: the bias audit's video_id, path, label, group (and clear, if there); categories: its
    category, group; people: `check_people`'s rows. A pair matches on the video id or its file's stem,
    and on the label ignoring case, '_' and repeated spaces.
    Returns the scored pairs, the scored categories, the unmatched truth rows (video_id, label) and a
    summary.
    """
    rows = per_video.reset_index(drop=True)
    stems = rows["path"].astype(str).str.replace("\\", "/").str.rsplit("/", n=1).str[-1] \
        .str.replace(r"\.[^.]*$", "", regex=True)
    ids = rows["video_id"].astype(str).where(rows["video_id"].astype(str).isin(set(people["video_id"])), stems)
    ours = rows["group"].map(OURS).fillna("unclear")
    if "clear" in rows.columns:
        ours = ours.where(rows["clear"].astype(bool), "unclear")
    audited = pd.DataFrame({"video_id": ids, "key": normal_label(rows["label"]), "ours": ours,
                            "label": rows["label"]}).drop_duplicates(["video_id", "key"])
    merged = people.drop(columns="label").merge(audited, on=["video_id", "key"], how="left", indicator=True)
    unmatched = people.loc[(merged["_merge"] == "left_only").to_numpy(), ["video_id", "label"]].reset_index(drop=True)
    pairs = merged[merged["_merge"] == "both"].drop(columns="_merge").assign(
        people=lambda t: t["modality"].map(MODALITY))
    decided = pairs[pairs["ours"] != "unclear"]

    counts = pd.crosstab(pairs["label"], pairs["people"]).reindex(columns=["audiovisual", "audio", "visual"],
                                                                  fill_value=0)
    majority = pd.Series(counts.columns[counts.to_numpy().argmax(axis=1)] if len(counts) else [],
                         index=counts.index, dtype=object)  # ties: audiovisual, then audio, then visual
    flags = [f for f in FLAGS if f in pairs.columns]
    per_category = pd.DataFrame({"category": majority.index, "people": majority.to_numpy()}).merge(
        categories[["category", "group"]], on="category", how="left")
    per_category["ours"] = per_category["group"].map(OURS).fillna("unclear")
    for flag in flags:  # a category carries a flag when most of its rows do
        per_category[flag] = per_category["category"].map(pairs.groupby("label")[flag].mean() > 0.5).astype(bool)
    sure = per_category[per_category["ours"] != "unclear"]
    summary = {"pairs": {**agreement(decided), "n_unclear": int((pairs["ours"] == "unclear").sum()),
                         "by_flag": split_by_flags(decided)},
               "categories": {**agreement(sure), "n_unclear": int(len(per_category) - len(sure)),
                              "by_flag": split_by_flags(sure)},
               "n_truth_rows": int(len(people)), "n_unmatched": int(len(unmatched)),
               "unmatched": [f"{v}/{label}" for v, label in unmatched.head(20).itertuples(index=False)]}
    return (pairs[["video_id", "label", "people", "ours", *flags]].reset_index(drop=True), per_category,
            unmatched, summary)
