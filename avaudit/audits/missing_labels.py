"""Missing labels (eq. 7): classes some layer is surest of that the annotation does not name.

Pure function: a manifest table and logits in, a DataFrame out, no model and no I/O.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from avaudit.audits.decisions import multilabel, softmax
from avaudit.vocab import LAYERS

COLUMNS = ("video_id", "path", "label", "candidate", "layer", "confidence")


def annotated(labels: pd.Series, classes: list[str]) -> np.ndarray:
    """(N, C) bool: class c is among row n's ';'-joined labels (missing or unknown names: none)."""
    index = {name: i for i, name in enumerate(classes)}
    text = pd.Series([value if isinstance(value, str) else "" for value in labels.to_numpy(dtype=object).tolist()],
                     dtype=str)
    names = text.str.split(";").explode() if text.str.contains(";", regex=False).any() else text
    codes = names.str.strip().map(index)
    known = codes.notna().to_numpy()
    marks = np.zeros((len(labels), len(classes)), bool)
    marks[names.index.to_numpy()[known], codes.to_numpy()[known].astype(int)] = True
    return marks


def missing_label_candidates(videos: pd.DataFrame, logits: np.ndarray, classes: list[str], *,
                             confidences: np.ndarray | None = None, min_confidence: float = 0.0) -> pd.DataFrame:
    """One row per eq. 7 label that the video's annotation lacks, most confident first.

    videos: video_id, path, labels (';'-joined) for each row of logits (N, 5, C); classes: the C
    names. The set is taken over `logits`, whatever per-layer scores the caller compares (the
    paper's O are logits; the audit passes confidences, README says why); `confidences`
    (N, 5, C), by default the softmax of the logits, scores the rows, and candidates below
    `min_confidence` are left out.
    `layer` is the layer whose argmax kept the candidate (the most confident one when exact ties
    keep several) and `confidence` is that layer's confidence in it.
    Returns columns video_id, path, label (the annotation as given), candidate, layer, confidence.
    """
    logits = np.asarray(logits, float)
    if logits.ndim != 3 or logits.shape[1] != len(LAYERS) or logits.shape[2] != len(classes):
        raise ValueError(f"logits must be (N, {len(LAYERS)}, {len(classes)}), got {logits.shape}")
    if len(videos) != len(logits):
        raise ValueError(f"{len(videos)} videos but {len(logits)} rows of logits")
    confidences = softmax(logits) if confidences is None else np.asarray(confidences, float)
    if confidences.shape != logits.shape:
        raise ValueError(f"confidences must match logits {logits.shape}, got {confidences.shape}")

    # Every (video, class) eq. 7 keeps that the annotation lacks, in video then class order.
    video, cls = np.nonzero(multilabel(logits) & ~annotated(videos["labels"], classes))
    scores = logits[video, :, cls]  # (M, 5): each layer's logit for the candidate
    # Layers whose argmax is the candidate and that eq. 7 keeps: those holding its largest logit.
    voters = (logits.argmax(axis=-1)[video] == cls[:, None]) & (scores >= scores.max(axis=1, keepdims=True))
    layer_conf = confidences[video, :, cls]
    best = np.where(voters, layer_conf, -np.inf).argmax(axis=1)  # the most confident voter, earliest on ties
    confidence = layer_conf[np.arange(len(video)), best]
    keep = confidence >= min_confidence
    video, cls, best, confidence = video[keep], cls[keep], best[keep], confidence[keep]
    out = pd.DataFrame({"video_id": videos["video_id"].to_numpy()[video], "path": videos["path"].to_numpy()[video],
                        "label": videos["labels"].to_numpy()[video], "candidate": np.asarray(classes)[cls],
                        "layer": np.asarray(LAYERS)[best], "confidence": confidence.astype(float)},
                       columns=list(COLUMNS))
    return out.sort_values(["confidence", "video_id", "candidate"], ascending=[False, True, True],
                           kind="mergesort", ignore_index=True)
