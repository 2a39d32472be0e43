"""The bias audit and the missing-label candidates scored against people's labels (VGGSounder, AVVP).

People say of each (video, label) whether it is heard only (`audio`; VGGSounder's `A`), seen only
(`visual`; `V`) or heard and seen (`audiovisual`; `AV`). avaudit's modality of the same (video, label)
is its group, with `redundant` (either stream alone names it) read as `audiovisual`: both streams hold
it, as `truth.py` reads AVVP. Any other group (an `unclear` decision) is counted apart, in neither the
agreement nor kappa.

Scores, over (video, label) rows and over categories (people's majority over the category's scored
videos against the category's group): the matrix of avaudit's modality (rows) against people's
(columns), agreement (its diagonal's share) and Cohen's kappa, (p_o - p_e) / (1 - p_e), the agreement
beyond what the two sides' own proportions give by chance (empty where p_e = 1). Each is given over all
rows and split by VGGSounder's flags (background_music, static_image, voice_over: True / False).

Pure functions: tables in, tables and dicts out, no I/O.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from avaudit.audits.truth import category_truth, match_filenames, normal_label, score_against_truth

MODALITIES = ("audio", "visual", "audiovisual")
UNCLEAR = "unclear"
FLAGS = ("background_music", "static_image", "voice_over")
AS_MODALITY = {"audio": "audio", "visual": "visual", "audiovisual": "audiovisual", "redundant": "audiovisual"}
SCORE_COLUMNS = ("level", "flag", "value", "n_scored", "n_agree", "agreement", "kappa", "n_unclear")
MATRIX_COLUMNS = ("level", "flag", "value", "avaudit", *MODALITIES)


def modality_matrix(groups, truths) -> np.ndarray:
    """(4, 3) counts: avaudit's modality (MODALITIES, then unclear) by people's (MODALITIES)."""
    rows = pd.Series(np.asarray(groups, dtype=object)).map(AS_MODALITY).fillna(UNCLEAR)
    row = rows.map({name: i for i, name in enumerate((*MODALITIES, UNCLEAR))}).to_numpy(int)
    column = pd.Series(np.asarray(truths, dtype=object)).map({m: i for i, m in enumerate(MODALITIES)}).to_numpy(int)
    counts = np.zeros((len(MODALITIES) + 1, len(MODALITIES)), int)
    np.add.at(counts, (row, column), 1)
    return counts


def cohen_kappa(matrix: np.ndarray) -> float | None:
    """Cohen's kappa of a square agreement matrix; None with no rows or where chance agreement is 1."""
    n = matrix.sum()
    if n == 0:
        return None
    observed = np.trace(matrix) / n
    chance = float(matrix.sum(axis=1) @ matrix.sum(axis=0)) / n ** 2
    return None if chance >= 1 else float((observed - chance) / (1 - chance))


def block_scores(matrix: np.ndarray) -> dict:
    """n_scored, n_agree, agreement, kappa and n_unclear of a `modality_matrix`."""
    decided = matrix[: len(MODALITIES)]
    n = int(decided.sum())
    return {"n_scored": n, "n_agree": int(np.trace(decided)), "agreement": float(np.trace(decided) / n) if n else None,
            "kappa": cohen_kappa(decided), "n_unclear": int(matrix[len(MODALITIES)].sum())}


def split_tables(scored: pd.DataFrame, categories: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Scores and matrices of videos and categories, over all rows and per value of each flag present."""
    splits = [("all", "", np.ones(len(scored), bool))]
    for flag in FLAGS:
        if flag in scored.columns:
            splits += [(flag, str(value), (scored[flag] == value).to_numpy()) for value in (True, False)]
    scores, matrices = [], []
    for flag, value, rows in splits:
        per_category = category_truth(scored[rows], categories)
        for level, table in (("videos", scored[rows]), ("categories", per_category)):
            matrix = modality_matrix(table["group"], table["truth"])
            scores.append({"level": level, "flag": flag, "value": value, **block_scores(matrix)})
            for name, counts in zip((*MODALITIES, UNCLEAR), matrix):
                matrices.append({"level": level, "flag": flag, "value": value, "avaudit": name,
                                 **dict(zip(MODALITIES, counts.tolist()))})
    return (pd.DataFrame(scores, columns=list(SCORE_COLUMNS)),
            pd.DataFrame(matrices, columns=list(MATRIX_COLUMNS)))


def score_people(per_video: pd.DataFrame, categories: pd.DataFrame, truth: pd.DataFrame, *,
                 window_fields: int = 2) -> tuple[dict[str, pd.DataFrame], dict]:
    """The bias audit against people's modalities: its tables by output file name, and a summary.

    truth: filename, label, key, truth (audio, visual or audiovisual) and any columns of its own (the
    flags, AVVP's seconds). Truth rows whose video matches no audited one are listed in
    bias_truth_unmatched.csv; rows of an audited video under another label than the audited one are
    counted (`n_truth_other_label`): the bias audit gives a modality to a video's own label only.
    """
    scored, per_category, summary = score_against_truth(per_video, categories, truth, window_fields=window_fields)
    scores, matrices = split_tables(scored, categories)
    overall = scores[scores["flag"] == "all"].set_index("level")["kappa"]
    for level in ("videos", "categories"):
        summary[level]["kappa"] = None if pd.isna(overall[level]) else float(overall[level])  # JSON has no NaN
    matched = set(match_filenames(per_video["video_id"], per_video["path"], truth["filename"],
                                  window_fields=window_fields).dropna())
    unmatched = truth[~truth["filename"].isin(matched)].drop(columns="key").reset_index(drop=True)
    summary.update(n_truth_rows=int(len(truth)), n_truth_unmatched=int(len(unmatched)),
                   n_truth_videos_unmatched=int(unmatched["filename"].nunique()),
                   n_truth_other_label=int(len(truth) - len(unmatched) - len(scored)),
                   scores=scores.replace({np.nan: None}).to_dict("records"))
    tables = {"bias_truth.csv": scored, "bias_truth_categories.csv": per_category,
              "bias_truth_scores.csv": scores, "bias_truth_matrix.csv": matrices,
              "bias_truth_unmatched.csv": unmatched}
    return tables, summary


def score_candidates(videos: pd.DataFrame, candidates: pd.DataFrame, truth: pd.DataFrame, classes: list[str], *,
                     window_fields: int = 2) -> tuple[pd.DataFrame, dict]:
    """Missing-label candidates against people's complete label sets: a table and precision, recall, AP.

    videos: the audited video_id, path, labels (';'-joined); candidates: missing_labels.csv's video_id,
    candidate, confidence. On the videos the truth covers, a label people give that the annotation lacks
    and the model knows is a missing label to find; a candidate is right when people give it. Average
    precision ranks candidates by confidence: the mean over missing labels of the precision at each one's
    rank (0 for one never proposed). Returns video_id, label, confidence (empty where not proposed),
    proposed, in_truth: every candidate on a covered video and every missing label, best first.
    """
    rows = videos[["video_id", "path", "labels"]].reset_index(drop=True)
    rows["filename"] = match_filenames(rows["video_id"], rows["path"], truth["filename"],
                                       window_fields=window_fields).to_numpy()
    rows = rows[rows["filename"].notna()]
    known = set(normal_label(pd.Series(classes, dtype=object)))
    given = rows.assign(key=rows["labels"].fillna("").str.split(";")).explode("key")
    given = set(zip(given["video_id"], normal_label(given["key"].fillna(""))))
    people = rows[["video_id", "filename"]].merge(truth[["filename", "label", "key"]], on="filename")
    missing = people[[(v, k) not in given for v, k in zip(people["video_id"], people["key"])]]
    findable = missing[missing["key"].isin(known)]
    proposed = candidates[candidates["video_id"].isin(rows["video_id"])]
    proposed = proposed.sort_values("confidence", ascending=False, kind="mergesort").drop_duplicates(
        ["video_id", "candidate"])
    right = set(zip(findable["video_id"], findable["key"]))
    hits = np.array([(v, k) in right for v, k in zip(proposed["video_id"], normal_label(proposed["candidate"]))],
                    dtype=bool)
    precision_at = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    found = proposed.assign(key=normal_label(proposed["candidate"]))[hits]
    left = findable[~pd.MultiIndex.from_frame(findable[["video_id", "key"]]).isin(
        pd.MultiIndex.from_frame(found[["video_id", "key"]]))]
    table = pd.concat([pd.DataFrame({"video_id": proposed["video_id"].to_numpy(),
                                     "label": proposed["candidate"].to_numpy(),
                                     "confidence": proposed["confidence"].to_numpy(float), "proposed": True,
                                     "in_truth": hits}),
                       pd.DataFrame({"video_id": left["video_id"].to_numpy(), "label": left["label"].to_numpy(),
                                     "confidence": np.nan, "proposed": False, "in_truth": True})], ignore_index=True)
    n_missing = len(findable)
    summary = {"n_videos_covered": int(len(rows)), "n_candidates": int(len(proposed)), "n_right": int(hits.sum()),
               "precision": float(hits.mean()) if len(hits) else None, "n_missing": int(n_missing),
               "recall": float(hits.sum() / n_missing) if n_missing else None,
               "average_precision": float(precision_at[hits].sum() / n_missing) if n_missing else None,
               "n_missing_unknown_to_model": int(len(missing) - n_missing),
               "n_truth_videos_unmatched": int(truth.loc[~truth["filename"].isin(set(rows["filename"])),
                                                         "filename"].nunique())}
    return table, summary
