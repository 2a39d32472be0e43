import json

import numpy as np
import pytest

from avaudit.audits.layerstats import layer_statistics


def logits_for(predictions, n_classes=3):
    """(N, 5, C) logits whose argmax for video n, layer i is predictions[n][i]."""
    out = np.zeros((len(predictions), 5, n_classes))
    for n, row in enumerate(predictions):
        out[n, np.arange(5), row] = 1.0
    return out


def test_counts_on_hand_built_videos():
    # Label 0 for all; layer order continuous, instant, onset, visual, audio.
    predictions = [
        [0, 1, 1, 0, 0],  # only continuous right among the AV layers
        [1, 0, 2, 1, 0],  # only instant
        [1, 2, 0, 0, 1],  # only onset
        [2, 0, 0, 2, 2],  # instant and onset, not continuous
        [0, 0, 0, 0, 0],  # all right
        [1, 1, 1, 1, 1],  # all wrong
    ]
    stats = layer_statistics(logits_for(predictions), np.zeros(6, int))
    assert stats["n_videos"] == 6
    assert stats["uniquely_correct"] == {"continuous": 1, "instant": 1, "onset": 1}
    assert stats["instant_or_onset_not_continuous"] == 3
    assert stats["correct"] == {"continuous": 2, "instant": 3, "onset": 3, "visual": 3, "audio": 3}
    json.dumps(stats)  # plain ints only
    assert all(type(v) is int for v in stats["correct"].values())


def test_labels_are_per_video():
    predictions = [[2, 2, 2, 1, 1], [1, 2, 2, 1, 1]]
    stats = layer_statistics(logits_for(predictions), np.array([2, 1]))
    assert stats["correct"] == {"continuous": 2, "instant": 1, "onset": 1, "visual": 1, "audio": 1}
    assert stats["uniquely_correct"]["continuous"] == 1 and stats["instant_or_onset_not_continuous"] == 0


def test_no_videos_and_bad_shapes():
    stats = layer_statistics(np.zeros((0, 5, 3)), np.zeros(0, int))
    assert stats["n_videos"] == 0 and sum(stats["correct"].values()) == 0
    with pytest.raises(ValueError):
        layer_statistics(np.zeros((2, 4, 3)), np.zeros(2, int))
    with pytest.raises(ValueError):
        layer_statistics(np.zeros((2, 5, 3)), np.zeros(3, int))
