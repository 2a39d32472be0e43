"""Missing labels (eq. 7): classes some layer is surest of that the annotation does not name.

Pure function: a manifest table and logits in, a DataFrame out, no model and no I/O.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .config import LAYERS
from .decisions import multilabel, softmax

COLUMNS = ("video_id", "path", "label", "candidate", "layer", "confidence")


def _annotated(labels) -> set[str]:
    """The ';'-joined annotation as a set; a missing or empty annotation is the empty set."""
    if not isinstance(labels, str):
        return set()
    return {name.strip() for name in labels.split(";") if name.strip()}


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

    predicted = logits.argmax(axis=-1)  # (N, 5)
    kept = multilabel(logits)  # (N, C)
    rows = []
    for n, (video_id, path, labels) in enumerate(videos[["video_id", "path", "labels"]].itertuples(index=False)):
        annotated = _annotated(labels)
        for c in np.flatnonzero(kept[n]):
            if classes[c] in annotated:
                continue
            # Layers whose argmax is c and that eq. 7 keeps: those holding the largest logit for c.
            voters = np.flatnonzero((predicted[n] == c) & (logits[n, :, c] >= logits[n, :, c].max()))
            best = voters[confidences[n, voters, c].argmax()]
            if confidences[n, best, c] < min_confidence:
                continue
            rows.append((video_id, path, labels, classes[c], LAYERS[best], float(confidences[n, best, c])))
    out = pd.DataFrame(rows, columns=list(COLUMNS))
    out["confidence"] = out["confidence"].astype(float)
    return out.sort_values(["confidence", "video_id", "candidate"], ascending=[False, True, True],
                           kind="mergesort", ignore_index=True)
