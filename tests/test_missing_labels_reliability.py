"""Missing-label candidates judged by how reliable the naming layer is in this run, measured on the run's own
videos (docs/decisions-bench.md, "Missing labels with a weak model's own evidence")."""
import numpy as np
import pandas as pd

from avaudit.audits.missing_labels import (
    NAMES_RIGHT,
    annotated,
    missing_label_candidates,
    names_right,
    naming_layers_perceive,
)
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


def noisy_instant_layer(wrong_share: float) -> tuple[pd.DataFrame, np.ndarray]:
    """8 classes, 5 single-labelled videos each; every layer sure of each video's label, but the instant layer
    surely names a random other class on `wrong_share` of the videos. On video 0 (class c0) the instant and
    onset layers name c5."""
    rng = np.random.default_rng(1)
    label = np.repeat(np.arange(8), 5)
    logits = np.zeros((len(label), 5, 8))
    logits[np.arange(len(label)), :, label] = 5.0
    instant = LAYERS.index("instant")
    wrong = np.flatnonzero(rng.random(len(label)) < wrong_share)
    logits[wrong, instant] = 0.0
    logits[wrong, instant, (label[wrong] + rng.integers(1, 8, len(wrong))) % 8] = 5.0
    logits[0, [instant, LAYERS.index("onset")]] = 0.0
    logits[0, [instant, LAYERS.index("onset")], 5] = 6.0
    ids = [f"v{i:02d}" for i in range(len(label))]
    return pd.DataFrame({"video_id": ids, "path": [f"/d/{v}.mp4" for v in ids],
                         "labels": [CLASSES[i] for i in label]}), logits


def test_a_fused_layer_whose_sure_names_are_often_not_the_label_proposes_nothing():
    for wrong_share, believed in ((0.0, True), (0.4, False)):
        videos, logits = noisy_instant_layer(wrong_share)
        marks = annotated(videos["labels"], CLASSES)
        right = names_right(np.exp(logits) / np.exp(logits).sum(-1, keepdims=True), marks)
        assert (right[LAYERS.index("instant")] >= NAMES_RIGHT) == believed
        out = missing_label_candidates(videos, logits, CLASSES)
        candidate = out[(out["video_id"] == "v00") & (out["candidate"] == "c5")]
        assert len(candidate) == 1 and candidate["layer"].iloc[0] == "instant"
        assert (candidate["precision"].iloc[0] >= 0.7) == believed


def test_a_layer_never_sure_counts_as_naming_right():
    marks = np.eye(4, dtype=bool)
    assert (names_right(np.full((4, 5, 4), 0.25), marks) == 1.0).all()
