"""Missing-label candidates judged by how reliable the naming layer is in this run, measured on the run's own
videos (docs/decisions-bench.md, "Missing labels with a weak model's own evidence")."""
import numpy as np
import pandas as pd

from avaudit.audits.layertrust import names_right, reliable_layers, sure_names
from avaudit.audits.missing_labels import missing_label_candidates
from avaudit.audits.missing_scan import Annotation, annotated
from avaudit.vocab import LAYERS

CLASSES = [f"c{i}" for i in range(8)]
VISUAL = LAYERS.index("visual")


def whole(confidences: np.ndarray):
    """A reader of rows of confidences held whole (as scores and confidences)."""
    return lambda rows: (confidences[rows], confidences[rows])


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
        flags = reliable_layers(whole(np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)), marks, fraction=0.7,
                                size=7)
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
    assert reliable_layers(whole(np.full((3, 5, 8), 1 / 8)), Annotation(np.arange(3), np.vstack([marks, [False] * 8])),
                           fraction=0.7, size=2).all()


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
        flags = reliable_layers(whole(np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)), marks, fraction=0.7,
                                size=7)
        assert flags[LAYERS.index("instant")] == believed
        out = missing_label_candidates(videos, logits, CLASSES)
        candidate = out[(out["video_id"] == "v00") & (out["candidate"] == "c5")]
        assert len(candidate) == 1 and candidate["layer"].iloc[0] == "instant"
        assert (candidate["precision"].iloc[0] >= 0.7) == believed


def test_a_layer_never_sure_counts_as_naming_right():
    assert (names_right(sure_names(np.full((4, 5, 4), 0.25), np.arange(4), np.full((4, 5), -1))) == 1.0).all()


def test_a_unimodal_layer_is_right_naming_the_label_or_its_partner():
    confidences = np.full((4, 5, 4), 0.1)
    audio = LAYERS.index("audio")
    confidences[np.arange(4), audio, [1, 0, 3, 1]] = 0.7  # videos of 0, 0, 2, 2: partner, label, partner, wrong
    partner = np.full((4, 5), -1)
    partner[:, audio] = [1, 1, 3, 3]
    assert names_right(sure_names(confidences, np.array([0, 0, 2, 2]), partner))[audio] == 0.75
    assert names_right(sure_names(confidences, np.array([0, 0, 2, 2]), np.full((4, 5), -1)))[audio] == 0.25


def biased_audio_layer(biased: bool) -> tuple[pd.DataFrame, np.ndarray]:
    """8 classes in four pairs that share a sound (c0/c1, c2/c3, ...), 5 videos each. The audio layer hears
    each pair's sound and names either class of it; biased, it surely names a class of another pair on 3 of 5
    videos. On video 0 (c0) it names c1, very sure, with nothing else seeing c1."""
    rng = np.random.default_rng(2)
    label = np.repeat(np.arange(8), 5)
    logits = np.zeros((len(label), 5, 8))
    logits[np.arange(len(label)), :, label] = 5.0
    audio = LAYERS.index("audio")
    logits[:, audio] = 0.0
    heard = label ^ rng.integers(0, 2, len(label))  # the label or its pair partner
    if biased:
        wrong = np.flatnonzero(rng.random(len(label)) < 0.6)
        heard[wrong] = (label[wrong] + 2 * rng.integers(1, 4, len(wrong))) % 8
    logits[np.arange(len(label)), audio, heard] = 5.0
    logits[0, audio] = 0.0
    logits[0, audio, 1] = 9.0
    ids = [f"v{i:02d}" for i in range(len(label))]
    return pd.DataFrame({"video_id": ids, "path": [f"/d/{v}.mp4" for v in ids],
                         "labels": [CLASSES[i] for i in label]}), logits


def test_an_audio_layer_whose_sure_names_are_mostly_outside_the_labels_pair_proposes_nothing():
    for biased in (False, True):
        videos, logits = biased_audio_layer(biased)
        out = missing_label_candidates(videos, logits, CLASSES)
        candidate = out[(out["video_id"] == "v00") & (out["candidate"] == "c1")]
        assert len(candidate) == 1 and candidate["layer"].iloc[0] == "audio"
        assert reliable_layers(whole(np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)),
                               annotated(videos["labels"], CLASSES), fraction=0.7, size=9)[LAYERS.index("audio")] != biased
        assert (candidate["precision"].iloc[0] > 0) != biased


def test_a_class_wide_sound_is_a_candidate_only_where_the_candidates_group_owns_it():
    """On every video of c0 the audio layer hears c1, as it does on c1's own videos: c1's sound left off all of
    c0, or c0's sound that a weak model learned as c1. Only c1's group tells which."""
    from avaudit.audits.missing_labels import unowned_class_wide

    label = np.repeat(np.arange(8), 4)
    logits = np.zeros((len(label), 5, 8))
    logits[np.arange(len(label)), :, label] = 5.0
    audio = LAYERS.index("audio")
    logits[label == 0, audio] = 0.0
    logits[label == 0, audio, 1] = 9.0
    ids = [f"v{i:02d}" for i in range(len(label))]
    videos = pd.DataFrame({"video_id": ids, "path": [f"/d/{v}.mp4" for v in ids],
                           "labels": [CLASSES[i] for i in label]})
    precision = {}
    for name, groups in (("none", None), ("audio", {"c0": "unclear", "c1": "audio"}),
                         ("visual label", {"c0": "visual", "c1": "unclear"}), ("unclear", {"c0": "unclear"}),
                         ("visual", {"c0": "audio", "c1": "visual"})):
        out = missing_label_candidates(videos, logits, CLASSES, groups=groups)
        chosen = out[(out["label"] == "c0") & (out["candidate"] == "c1")]
        assert len(chosen) == 4 and (chosen["layer"] == "audio").all() and (chosen["confusion"] > 0.5).all()
        precision[name] = chosen["precision"].min()
    assert precision["none"] > 0.7  # without groups, as before
    assert precision["audio"] > 0.7 and precision["visual label"] > 0.7  # an audio c1 owns it; a visual c0 cannot
    assert precision["unclear"] == 0 == precision["visual"]
    groups = np.array(["unclear", "unclear", "audio", "visual"], dtype=object)
    on_c0, on_c3 = np.eye(4, dtype=bool)[[0]], np.eye(4, dtype=bool)[[3]]
    # audio layer: c1 unclear, c2 audio, c1 not class-wide; fused layer: c1 unclear, c2 audio; audio layer on
    # a visual c3's video
    assert unowned_class_wide(groups, np.array([audio, audio, audio, 0, 0, audio]), np.array([1, 2, 1, 1, 2, 1]),
                              np.array([0.9, 0.9, 0.2, 0.9, 0.9, 0.9]),
                              np.concatenate([on_c0, on_c0, on_c0, on_c0, on_c0, on_c3])).tolist() == [
        True, False, False, True, False, False]
