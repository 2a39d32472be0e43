"""Modality bias (section 4.3, Table 3): which layer carries each video's and category's label.

Pure functions: arrays and tables in, DataFrames out, no model and no I/O.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .config import LAYERS
from .decisions import LAYER_GROUP, category_modality, softmax, true_label_confidence, video_modality


def bias_audit(videos: pd.DataFrame, logits: np.ndarray, classes: list[str]) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Per-video layer, per-category layer and the dataset's Table 3 row.

    videos: video_id, path, label (a known class) for each row of logits (N, 5, C).
    """
    index = {name: i for i, name in enumerate(classes)}
    labels = videos["label"].map(index).to_numpy()
    confidences = softmax(logits)
    true_conf = true_label_confidence(confidences, labels)  # (N, 5)
    chosen = np.asarray(LAYERS)[video_modality(confidences, labels)]
    per_video = videos[["video_id", "path", "label"]].reset_index(drop=True).assign(
        layer=chosen, group=[LAYER_GROUP[name] for name in chosen])
    for i, name in enumerate(LAYERS):
        per_video[f"conf_{name}"] = true_conf[:, i]
    categories = category_modality(per_video["label"], chosen, true_conf.max(axis=1))
    categories.insert(2, "group", categories["layer"].map(LAYER_GROUP))
    summary = {"categories_per_layer": {name: int((categories["layer"] == name).sum()) for name in LAYERS},
               "total": int(len(categories)), "n_videos": int(len(per_video))}
    return per_video, categories, summary
