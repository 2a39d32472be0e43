"""Accuracy of the five layers and of the eq. 6 vote against labels: what training validates with.

Pure functions over arrays, as the other audits: logits are (N, 5, C) in LAYERS order, labels (N,)
class indices.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from avaudit.audits.decisions import softmax, vote
from avaudit.vocab import LAYERS

MEASURES = (*LAYERS, "vote")  # what an accuracy is reported for: each layer's argmax and the vote


def accuracies(logits: np.ndarray, labels: np.ndarray, measured=MEASURES) -> dict[str, float]:
    """Accuracy of every layer's argmax and of the eq. 6 vote; NaN where not `measured`, and
    everywhere when there is no label to measure against."""
    result = {name: float("nan") for name in MEASURES}
    if len(labels) == 0:
        return result
    for i, name in enumerate(LAYERS):
        if name in measured:
            result[name] = float((logits[:, i].argmax(-1) == labels).mean())
    if "vote" in measured:
        result["vote"] = float((vote(softmax(logits)) == labels).mean())
    return result


def category_accuracies(logits: np.ndarray, labels: np.ndarray, classes: list[str]) -> pd.DataFrame:
    """One row per class: its validation clips (`n_val`) and each layer's and the vote's accuracy on
    them. A class without a validation clip keeps its row, with n_val 0 and NaN accuracies (not
    measured, shown as n/a), so that no category leaves the table."""
    rows = []
    for c, name in enumerate(classes):
        mask = labels == c
        rows.append({"category": name, "n_val": int(mask.sum()), **accuracies(logits[mask], labels[mask])})
    return pd.DataFrame(rows, columns=["category", "n_val", *MEASURES])
