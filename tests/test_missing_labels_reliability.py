"""Missing-label candidates judged by how reliable the naming layer is in this run, measured on the run's own
videos (docs/decisions-bench.md, "Missing labels with a weak model's own evidence")."""
import numpy as np
import pandas as pd

from avaudit.audits.missing_labels import annotated, missing_label_candidates, naming_layers_perceive
from avaudit.vocab import LAYERS

CLASSES = [f"c{i}" for i in range(8)]
VISUAL = LAYERS.index("visual")


def run(visual_perceives: bool) -> tuple[pd.DataFrame, np.ndarray]:
    """8 classes, 4 single-labelled videos each. The fused and audio layers are sure of each video's label; the
    visual layer names its label too (it perceives) or a random other class just as surely (it perceives
    nothing). On video 0 (class c0) the visual layer alone names c5, very sure."""
    rng = np.random.default_rng(0)
    label = np.repeat(np.arange(8), 4)
    logits = np.zeros((len(label), 5, 8))
    logits[np.arange(len(label)), :, label] = 5.0
    named = label if visual_perceives else (label + rng.integers(1, 8, len(label))) % 8
    logits[:, VISUAL] = 0.0
    logits[np.arange(len(label)), VISUAL, named] = 5.0
    logits[0, VISUAL] = 0.0
    logits[0, VISUAL, 5] = 8.0
    ids = [f"v{i:02d}" for i in range(len(label))]
    videos = pd.DataFrame({"video_id": ids, "path": [f"/d/{v}.mp4" for v in ids],
                           "labels": [CLASSES[i] for i in label]})
    return videos, logits


def test_a_visual_layer_that_perceives_nothing_in_the_run_proposes_nothing():
    for perceives in (True, False):
        videos, logits = run(perceives)
        marks = annotated(videos["labels"], CLASSES)
        flags = naming_layers_perceive(np.exp(logits) / np.exp(logits).sum(-1, keepdims=True), marks)
        assert flags[VISUAL] == perceives and flags[LAYERS.index("audio")]
        out = missing_label_candidates(videos, logits, CLASSES)
        candidate = out[(out["video_id"] == "v00") & (out["candidate"] == "c5")]
        assert len(candidate) == 1 and candidate["layer"].iloc[0] == "visual"
        if perceives:  # the same naming, by a layer that names the labels right, is believed
            assert candidate["precision"].iloc[0] >= 0.7
        else:
            assert candidate["precision"].iloc[0] == 0.0


def test_too_few_single_labelled_videos_leave_every_layer_perceiving():
    marks = np.zeros((3, 8), bool)
    marks[0, 1] = True
    assert naming_layers_perceive(np.full((3, 5, 8), 1 / 8), marks).all()
