"""Event types named only where an audio-visual layer leads: bias_audit's type margin, and retarget over it."""
import numpy as np
import pandas as pd
import pytest

from avaudit.audits.bias import bias_audit, event_type_margin
from avaudit.audits.retarget import select

CLASSES = ["drum", "rain", "siren"]


def audit(true_conf_by_label, *, type_margin):
    """bias_audit over videos whose five layers give their own label the listed confidences (rest spread)."""
    labels, rows = [], []
    for label, confs in true_conf_by_label.items():
        for conf in confs:
            labels.append(label)
            layer_rows = np.tile((1 - np.asarray(conf, float))[:, None] / (len(CLASSES) - 1), (1, len(CLASSES)))
            layer_rows[:, CLASSES.index(label)] = conf
            rows.append(layer_rows)
    videos = pd.DataFrame({"video_id": [f"v{i}" for i in range(len(labels))],
                           "path": [f"/v{i}.mp4" for i in range(len(labels))], "label": labels})
    return bias_audit(videos, np.stack(rows), CLASSES, rule="sufficiency", fraction=0.9, type_margin=type_margin)


# Confidences in the true label: continuous, instant, onset, visual, audio.
SATURATED = [[0.9999, 0.9998, 0.9997, 0.2, 0.3], [0.9990, 0.9995, 0.9991, 0.2, 0.3],
             [0.9996, 0.9994, 0.9993, 0.2, 0.3]]  # continuous leads two of three videos by under 0.001
INSTANT = [[0.80, 0.99, 0.85, 0.2, 0.3], [0.70, 0.98, 0.60, 0.2, 0.3], [0.90, 0.89, 0.88, 0.2, 0.3]]
AUDIO = [[0.5, 0.5, 0.5, 0.1, 0.9]] * 3


def test_a_layer_leading_by_the_margin_names_the_type_and_a_saturated_tie_does_not():
    _, categories, summary = audit({"drum": INSTANT, "rain": SATURATED, "siren": AUDIO}, type_margin=0.003)
    table = categories.set_index("category")
    assert table["layer"].to_dict() == {"drum": "instant", "rain": "audiovisual", "siren": "audio"}
    assert table["group"].to_dict() == {"drum": "audiovisual", "rain": "audiovisual", "siren": "audio"}
    # drum: instant leads by 0.14, 0.38 and 0.01 (median 0.14); rain: instant leads on the mean (0.99957
    # against continuous's 0.99950) and by -0.0001, 0.0004, -0.0002 (median -0.0001) per video
    assert table.loc["drum", "type_margin"] == pytest.approx(0.14)
    assert table.loc["rain", "type_margin"] == pytest.approx(-0.0001)
    assert np.isnan(table.loc["siren", "type_margin"])
    assert summary["categories_per_layer"] == {"continuous": 0, "instant": 1, "onset": 0, "audiovisual": 1,
                                               "visual": 0, "audio": 1, "redundant": 0, "unclear": 0}
    assert sum(summary["categories_per_layer"].values()) == summary["total"] == 3
    assert summary["categories_per_group"]["audiovisual"] == 2 and summary["type_margin"] == 0.003


def test_margin_zero_names_every_type_as_the_paper_does():
    _, categories, summary = audit({"drum": INSTANT, "rain": SATURATED}, type_margin=0.0)
    assert categories.set_index("category")["layer"].to_dict() == {"drum": "instant", "rain": "instant"}
    assert summary["categories_per_layer"]["audiovisual"] == 0


def test_retarget_keeps_unclear_types_as_audiovisual_and_named_types_by_layer():
    per_video, categories, _ = audit({"drum": INSTANT, "rain": SATURATED, "siren": AUDIO}, type_margin=0.003)
    assert sorted(set(select(per_video, categories, ["audiovisual"])["label"])) == ["drum", "rain"]
    assert set(select(per_video, categories, ["instant"])["label"]) == {"drum"}
    assert select(per_video, categories, ["continuous"]).empty


def test_event_type_margin_is_the_median_lead_over_the_best_other_audio_visual_layer():
    true_conf = np.array([[0.5, 0.9, 0.6, 0, 0], [0.5, 0.7, 0.8, 0, 0], [0.2, 0.6, 0.3, 0, 0], [0.9, 0.1, 0.1, 0, 0]])
    categories = pd.DataFrame({"category": ["a", "b"], "layer": ["instant", "visual"]})
    out = event_type_margin(pd.Series(["a", "a", "a", "b"]), true_conf, categories)
    assert out[0] == pytest.approx(0.3) and np.isnan(out[1])  # leads 0.3, -0.1, 0.3
