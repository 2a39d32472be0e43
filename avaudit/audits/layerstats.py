"""Layer statistics (Table 4): what each audio-visual layer gets right that the others miss.

Pure function over logits of videos with one known label; plain ints out, ready for JSON.
"""
from __future__ import annotations

import numpy as np

from avaudit.audits.decisions import check_layer_arrays
from avaudit.vocab import AV_LAYERS, LAYERS


def layer_statistics(logits: np.ndarray, labels: np.ndarray) -> dict:
    """Counts of correct argmaxes per layer, and of videos only one audio-visual layer gets right.

    logits: (N, 5, C) in LAYERS order; labels: (N,) class indices (single-label videos only).
    Returns n_videos; correct {layer: n} for all five layers; uniquely_correct {av layer: n}, the
    videos that layer classifies correctly while the other two audio-visual layers both fail; and
    instant_or_onset_not_continuous, the videos instant or onset gets right and continuous does not
    (what the event-specific pools add over plain averaging).
    """
    logits, labels = check_layer_arrays(logits, labels)
    correct = logits.argmax(axis=-1) == labels[:, None]  # (N, 5)
    hit = {name: correct[:, i] for i, name in enumerate(LAYERS)}
    unique = {}
    for name in AV_LAYERS:
        others = [hit[o] for o in AV_LAYERS if o != name]
        unique[name] = int((hit[name] & ~others[0] & ~others[1]).sum())
    return {
        "n_videos": int(len(labels)),
        "correct": {name: int(hit[name].sum()) for name in LAYERS},
        "uniquely_correct": unique,
        "instant_or_onset_not_continuous": int(((hit["instant"] | hit["onset"]) & ~hit["continuous"]).sum()),
    }
