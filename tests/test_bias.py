"""The two modality rules of the bias audit on hand-built confidences (LAYERS order:
continuous, instant, onset, visual, audio)."""
import numpy as np
import pandas as pd
import pytest

from avaudit.audits.bias import assign_videos, bias_audit, sufficiency_modality
from avaudit.errors import UsageError


def test_sufficiency_names_the_modality_that_alone_reaches_the_fraction():
    true_conf = np.array([
        [0.90, 0.10, 0.10, 0.20, 0.85],  # audio alone reaches 0.9 * 0.90 = 0.81
        [0.90, 0.10, 0.10, 0.85, 0.20],  # visual alone
        [0.90, 0.10, 0.10, 0.85, 0.85],  # both: redundant
        [0.50, 0.90, 0.10, 0.20, 0.30],  # neither: the most confident audio-visual layer
        [0.10, 0.20, 0.60, 0.10, 0.10],  # neither: onset
    ])
    assert sufficiency_modality(true_conf, fraction=0.9).tolist() == [
        "audio", "visual", "redundant", "instant", "onset"]


def test_the_fraction_is_a_boundary_that_counts_as_reached():
    true_conf = np.array([[1.0, 0.0, 0.0, 0.0, 0.5]])
    assert sufficiency_modality(true_conf, fraction=0.5).tolist() == ["audio"]
    assert sufficiency_modality(true_conf, fraction=0.51).tolist() == ["continuous"]


def test_the_paper_rule_takes_the_most_confident_layer_and_ties_go_to_the_earlier_layer():
    true_conf = np.array([[0.2, 0.7, 0.7, 0.1, 0.1], [0.1, 0.1, 0.1, 0.4, 0.9], [0.5, 0.5, 0.5, 0.5, 0.5]])
    assert assign_videos(true_conf, rule="paper", fraction=0.9).tolist() == ["instant", "audio", "continuous"]


def test_an_unknown_rule_is_a_usage_error():
    with pytest.raises(UsageError, match="^unknown rule 'vote'; choose one of paper, sufficiency$"):
        assign_videos(np.zeros((1, 5)), rule="vote", fraction=0.9)


def confidences_for(labels: list[int], true_conf: np.ndarray, n_classes: int = 2) -> np.ndarray:
    """(N, 5, C) with each video's true-label confidence as given and the rest spread on the others."""
    out = np.zeros((len(labels), 5, n_classes))
    for i, label in enumerate(labels):
        out[i, :, label] = true_conf[i]
        out[i, :, 1 - label] = 1 - true_conf[i]
    return out


def test_under_the_paper_rule_a_category_takes_its_videos_majority_and_a_tie_goes_to_the_larger_summed_confidence():
    videos = pd.DataFrame({"video_id": list("abcde"), "path": [f"{v}.mp4" for v in "abcde"],
                           "label": ["dog", "dog", "dog", "cat", "cat"]})
    true_conf = np.array([
        [0.9, 0.1, 0.1, 0.2, 0.95],  # dog: audio
        [0.9, 0.1, 0.1, 0.2, 0.95],  # dog: audio
        [0.9, 0.1, 0.1, 0.95, 0.2],  # dog: visual
        [0.6, 0.1, 0.1, 0.5, 0.5],  # cat: continuous (0.6); the unimodal layers lean to neither class
        [0.1, 0.1, 0.7, 0.5, 0.5],  # cat: onset (0.7) wins the 1-1 tie on summed confidence
    ])
    per_video, _, _ = bias_audit(videos, confidences_for([0, 0, 0, 1, 1], true_conf), ["dog", "cat"],
                                 rule="sufficiency", fraction=0.9)
    assert per_video["layer"].tolist() == ["audio", "audio", "visual", "continuous", "onset"]
    assert per_video["group"].tolist() == ["audio", "audio", "visual", "audiovisual", "audiovisual"]
    true_conf[2] = [0.9, 0.1, 0.1, 0.2, 0.95]  # dog: audio by the paper's rule too
    per_video, categories, summary = bias_audit(videos, confidences_for([0, 0, 0, 1, 1], true_conf),
                                                ["dog", "cat"], rule="paper", fraction=0.9)
    assert per_video["layer"].tolist() == ["audio", "audio", "audio", "continuous", "onset"]
    assert categories.set_index("category")["layer"].to_dict() == {"cat": "onset", "dog": "audio"}
    assert summary["categories_per_layer"] == {"continuous": 0, "instant": 0, "onset": 1, "visual": 0, "audio": 1,
                                               "redundant": 0, "audiovisual": 0, "unclear": 0}
    assert summary["categories_per_group"] == {"audiovisual": 1, "audio": 1, "visual": 0, "redundant": 0,
                                               "unclear": 0}
    assert summary["total"] == 2 and summary["n_videos"] == 5


def test_redundant_videos_make_a_redundant_category():
    videos = pd.DataFrame({"video_id": ["a", "b"], "path": ["a.mp4", "b.mp4"], "label": ["rain", "rain"]})
    true_conf = np.array([[0.9, 0.1, 0.1, 0.9, 0.9], [0.8, 0.1, 0.1, 0.8, 0.78]])
    _, categories, summary = bias_audit(videos, confidences_for([0, 0], true_conf), ["rain", "other"],
                                        rule="sufficiency", fraction=0.9)
    assert categories[["category", "layer", "group", "votes_redundant"]].values.tolist() == [
        ["rain", "redundant", "redundant", 2]]
    assert summary["categories_per_group"]["redundant"] == 1


@pytest.mark.parametrize("rule", ["paper", "sufficiency"])
def test_videos_that_do_not_vote_get_their_own_call_but_not_their_categorys(rule):
    """Two still pictures (audio by construction) outvote one real dog video unless they are left out of the
    vote; a category none of whose videos vote (cat) is decided by all of them."""
    videos = pd.DataFrame({"video_id": list("abcde"), "path": [f"{v}.mp4" for v in "abcde"],
                           "label": ["dog", "dog", "dog", "cat", "cat"]})
    true_conf = np.array([
        [0.9, 0.1, 0.1, 0.2, 0.99],  # dog, a still picture: audio
        [0.9, 0.1, 0.1, 0.2, 0.99],  # dog, a still picture: audio
        [0.9, 0.1, 0.1, 0.95, 0.6],  # dog: visual
        [0.9, 0.1, 0.1, 0.95, 0.2],  # cat, flagged: visual
        [0.9, 0.1, 0.1, 0.96, 0.1],  # cat, flagged: visual
    ])
    confidences = confidences_for([0, 0, 0, 1, 1], true_conf)
    kw = dict(rule=rule, fraction=0.9)
    per_all, all_vote, _ = bias_audit(videos, confidences, ["dog", "cat"], **kw)
    per_video, categories, summary = bias_audit(videos, confidences, ["dog", "cat"], votes=np.array(
        [False, False, True, False, False]), **kw)
    pd.testing.assert_frame_equal(per_video, per_all)  # each video's own call does not change
    assert all_vote.set_index("category")["group"].to_dict() == {"cat": "visual", "dog": "audio"}
    assert categories.set_index("category")["group"].to_dict() == {"cat": "visual", "dog": "visual"}
    assert categories.set_index("category")["n_videos"].to_dict() == {"cat": 2, "dog": 3}
    assert summary["n_videos"] == 5
