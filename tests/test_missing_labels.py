import numpy as np
import pandas as pd
import pytest

from avaudit.audits.decisions import softmax
from avaudit.audits.missing_labels import captured, missing_label_candidates, split_confusions
from avaudit.audits.missing_scan import Annotation, captured_counts, label_medians, leave_one_out_median

CLASSES = ["bark", "drum", "piano", "siren"]


def layer_logits(predicted, strength):
    """(5, 4) logits: layer i puts `strength[i]` on class predicted[i] and 0 elsewhere."""
    out = np.zeros((5, len(CLASSES)))
    out[np.arange(5), predicted] = strength
    return out


def videos(*labels):
    return pd.DataFrame({"video_id": [f"v{i}" for i in range(len(labels))],
                         "path": [f"/d/v{i}.mp4" for i in range(len(labels))], "labels": list(labels)})


def test_candidates_are_the_eq7_set_minus_the_annotation():
    # Layers predict drum (3.0), piano (2.0), drum (1.0, beaten by layer 0), bark (4.0), piano (1.0).
    logits = layer_logits([1, 2, 1, 0, 2], [3.0, 2.0, 1.0, 4.0, 1.0])[None]
    out = missing_label_candidates(videos("drum"), logits, CLASSES)
    assert list(out.columns) == ["video_id", "path", "label", "candidate", "layer", "confidence", "confusion",
                                 "reciprocal", "mean_confidence", "precision"]
    assert set(out["candidate"]) == {"piano", "bark"}  # drum is annotated
    row = out.set_index("candidate").loc["bark"]
    assert row["layer"] == "visual" and row["label"] == "drum" and row["path"] == "/d/v0.mp4"
    assert row["confidence"] == pytest.approx(softmax(logits)[0, 3, 0])
    assert out.set_index("candidate").loc["piano", "layer"] == "instant"


def test_sorted_by_confidence_then_video_then_candidate():
    a = layer_logits([0, 1, 0, 0, 0], [5.0, 5.0, 1.0, 1.0, 1.0])  # bark and drum tie at the same confidence
    b = layer_logits([3, 3, 3, 3, 3], [1.0, 1.0, 1.0, 1.0, 9.0])  # siren, most confident
    out = missing_label_candidates(videos("piano", ""), np.stack([a, b]), CLASSES)
    assert list(zip(out["video_id"], out["candidate"])) == [("v1", "siren"), ("v0", "bark"), ("v0", "drum")]
    assert out["confidence"].is_monotonic_decreasing


def test_equal_confidences_order_by_video_id():
    same = layer_logits([3, 0, 0, 0, 0], [5.0, 0.0, 0.0, 0.0, 0.0])  # siren from continuous, bark elsewhere
    out = missing_label_candidates(videos("bark", "bark", "bark").iloc[::-1], np.stack([same] * 3), CLASSES)
    assert out["video_id"].tolist() == ["v0", "v1", "v2"]


def test_the_set_compares_logits_not_confidences():
    # Audio holds the larger logit for bark (4 > 3) but the smaller softmax (0.52 < 0.87): eq. 7 on O = logits.
    logits = np.zeros((1, 5, 4))
    logits[0, 0] = [3.0, 0.0, 0.0, 0.0]
    logits[0, 4] = [4.0, 3.9, 0.0, 0.0]
    out = missing_label_candidates(videos(""), logits, CLASSES)
    assert out.set_index("candidate").loc["bark", "layer"] == "audio"
    # Audio now prefers drum yet still holds bark's largest logit, so continuous's bark is dropped,
    # although continuous is by far the surer of bark in softmax terms.
    logits[0, 4] = [4.0, 5.0, 0.0, 0.0]
    assert missing_label_candidates(videos(""), logits, CLASSES)["candidate"].tolist() == ["drum"]


def test_tied_layers_report_the_most_confident_one():
    # Continuous and audio share the top logit for piano; audio is sharper elsewhere, so it is surer.
    logits = np.zeros((1, 5, 4))
    logits[0, 0] = [0.0, 0.0, 2.0, 0.0]
    logits[0, 4] = [-5.0, -5.0, 2.0, -5.0]
    out = missing_label_candidates(videos("bark"), logits, CLASSES)
    piano = out[out["candidate"] == "piano"]
    assert len(piano) == 1 and piano["layer"].item() == "audio"


def test_calibrated_confidences_rescore_without_changing_the_set():
    logits = layer_logits([1, 1, 1, 1, 1], [3.0, 2.0, 2.0, 2.0, 2.0])[None]
    custom = np.full(logits.shape, 0.25)
    custom[0, :, 1] = [0.4, 0.1, 0.1, 0.1, 0.1]
    out = missing_label_candidates(videos("bark;piano"), logits, CLASSES, confidences=custom)
    assert out["candidate"].tolist() == ["drum"] and out["confidence"].item() == pytest.approx(0.4)


def test_annotations_split_on_semicolons_and_missing_ones_hide_nothing():
    logits = np.stack([layer_logits([1, 1, 1, 1, 2], [3.0, 1.0, 1.0, 1.0, 2.0])] * 2)
    out = missing_label_candidates(videos(" drum ; piano", None), logits, CLASSES)
    assert out["video_id"].tolist() == ["v1", "v1"] and set(out["candidate"]) == {"drum", "piano"}


def test_empty_input_gives_the_columns():
    out = missing_label_candidates(videos(), np.zeros((0, 5, 4)), CLASSES)
    assert out.empty and list(out.columns) == ["video_id", "path", "label", "candidate", "layer", "confidence",
                                               "confusion", "reciprocal", "mean_confidence", "precision"]


def test_misaligned_inputs_are_refused():
    with pytest.raises(ValueError):
        missing_label_candidates(videos("bark"), np.zeros((2, 5, 4)), CLASSES)
    with pytest.raises(ValueError):
        missing_label_candidates(videos("bark"), np.zeros((1, 5, 3)), CLASSES)


def test_leave_one_out_median_of_float32_values_is_that_of_their_float64_values():
    """missing-labels holds its median columns in float32 where the confidences are float32 values (a raw softmax):
    the medians (the mean of two middle values) are still taken in float64, bit for bit."""
    rng = np.random.default_rng(3)
    values = rng.uniform(0, 1, size=(40, 6)).astype(np.float32)
    row = rng.integers(0, 40, 200)
    own = values[row, rng.integers(0, 6, 200)].astype(float)
    narrow, wide = leave_one_out_median(values.copy(), row, own), leave_one_out_median(values.astype(float), row, own)
    assert narrow.dtype == np.float64 and np.array_equal(narrow, wide)
    assert not np.array_equal((values[:, 0] + values[:, 1]) / 2, (values[:, 0].astype(float) + values[:, 1]) / 2)


def test_leave_one_out_median_drops_one_equal_entry_per_query():
    values = np.array([[0.1, 0.9, 0.2, 0.4], [5.0, 7.0, 6.0, 5.0]])
    # row 0 is 0.1 0.2 0.4 0.9: without 0.1 -> 0.4, without 0.9 -> 0.2; row 1 without one 5.0 -> 6.0
    out = leave_one_out_median(values, np.array([0, 0, 1, 1]), np.array([0.1, 0.9, 5.0, 7.0]))
    np.testing.assert_allclose(out, [0.4, 0.2, 6.0, 5.0])
    assert np.isnan(leave_one_out_median(values[:, :1], np.array([0]), np.array([0.1]))).all()


def confused_audio(n_videos, n_missing):
    """bark videos whose audio layer is torn between bark and drum (same sound, say); the visual layer of
    the first n_missing of them is sure of siren, which is really there and not annotated."""
    logits = np.zeros((n_videos, 5, 4))
    logits[:, :3, 0] = 6.0  # the audio-visual layers are sure of bark
    logits[:, 3, 0] = 3.0  # visual: bark
    logits[:n_missing, 3, 3] = 9.0  # visual: siren on the two-event videos
    logits[:, 4, 0], logits[:, 4, 1] = 3.0, 3.2  # audio: drum a hair ahead of bark on every video
    return logits


def test_a_layers_confusion_on_most_videos_is_set_apart_and_a_minority_missing_label_kept():
    logits = confused_audio(10, 3)
    out = missing_label_candidates(videos(*["bark"] * 10), logits, CLASSES)
    drum, siren = out[out["candidate"] == "drum"], out[out["candidate"] == "siren"]
    assert len(drum) == 10 and (drum["layer"] == "audio").all()
    np.testing.assert_allclose(drum["confusion"], softmax(logits)[0, 4, 1])  # every other video: the same 0.55
    assert len(siren) == 3 and (siren["layer"] == "visual").all()
    # the other 9 bark videos: 2 with siren, 7 without -> median near 0
    np.testing.assert_allclose(siren["confusion"], softmax(logits)[9, 3, 3])
    kept, confused = split_confusions(out, max_confusion=0.1)
    assert kept["candidate"].tolist() == ["siren"] * 3
    assert confused.to_dict("records") == [{"label": "bark", "candidate": "drum", "layer": "audio", "n_videos": 10,
                                            "median_confusion": pytest.approx(softmax(logits)[0, 4, 1]),
                                            "max_confidence": pytest.approx(softmax(logits)[0, 4, 1])}]
    assert len(split_confusions(out, max_confusion=None)[0]) == 13


def test_a_label_missing_from_most_videos_counts_as_a_confusion():
    # The rule's limit, as docs/decisions.md says: a second event in over half of a category's videos looks systematic.
    out = missing_label_candidates(videos(*["bark"] * 10), confused_audio(10, 7), CLASSES)
    kept, _ = split_confusions(out, max_confusion=0.1)
    assert "siren" not in set(kept["candidate"])


def test_a_video_alone_in_its_label_cannot_be_judged_and_is_kept():
    out = missing_label_candidates(videos("bark"), confused_audio(1, 1), CLASSES)
    assert out["confusion"].isna().all()
    assert len(split_confusions(out, max_confusion=0.1)[0]) == len(out) == 2


def test_a_multi_label_video_takes_its_most_confused_label():
    confidences = np.full((3, 5, 4), 0.0)
    confidences[:, 4, 1] = [0.9, 0.6, 0.05]  # audio's drum: on v0 (bark;siren), v1 (bark), v2 (siren)
    marks = np.array([[1, 0, 0, 1], [1, 0, 0, 0], [0, 0, 0, 1]], bool)
    out, _ = label_medians(lambda at: (confidences[at],) * 2, Annotation(np.arange(3), np.vstack([marks, [False] * 4])),
                           np.array([0]), np.array([4]), np.array([1]), np.array([0.9]), size=2)
    np.testing.assert_allclose(out, [0.6])  # bark's other video gives 0.6, siren's 0.05


def test_a_layer_that_names_one_class_on_the_videos_of_several_is_biased_not_hearing_missing_labels():
    """A 2-epoch model's audio layer names `audio_tone200` on most videos of six audio-visual categories: high
    confusion, no reciprocal, so each looked like a label left off a whole class (estimated precision 0.9-1.0).
    A sound that goes with one class is named on that class's videos alone."""
    classes = ["tone", "red", "grid_a", "grid_b"]
    labels = ["tone"] * 3 + ["red"] * 3 + ["grid_a"] * 3 + ["grid_b"] * 3
    logits = np.zeros((12, 5, 4))
    for row, label in enumerate(labels):
        logits[row, :, classes.index(label)] = 6.0  # every layer names the video's own label ...
    logits[3:6, 4, 0] = 9.0  # ... but the audio layer hears the tone on red's videos (it goes with every one)
    counts = captured(*captured_counts(softmax(logits), np.eye(4, dtype=bool)[[classes.index(x) for x in labels]]))
    assert counts[4].tolist() == [1, 0, 0, 0] and not counts[:4].any()
    videos = pd.DataFrame({"video_id": [f"v{i}" for i in range(12)], "path": [f"v{i}.mp4" for i in range(12)],
                           "labels": labels})
    kept = missing_label_candidates(videos, logits, classes)
    assert set(kept["label"]) == {"red"} and (kept["precision"] > 0).all()  # the whole-class label: estimated
    logits[6:, 4, 0] = 9.0  # the audio layer now hears the tone on the grids' videos too: biased to it
    biased = missing_label_candidates(videos, logits, classes)
    assert len(biased) == 9 and (biased["precision"] == 0).all()
