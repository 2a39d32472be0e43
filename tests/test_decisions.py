import numpy as np

from avaudit.audits.decisions import category_modality, multilabel, softmax, true_label_confidence, video_modality, vote


def one_hot_confidences(predictions, confidence, n_classes=4):
    """(1, 5, C) with layer i predicting predictions[i] at confidence[i]; the rest spread evenly."""
    out = np.zeros((1, 5, n_classes))
    for i, (p, c) in enumerate(zip(predictions, confidence)):
        out[0, i] = (1 - c) / (n_classes - 1)
        out[0, i, p] = c
    return out


def test_vote_takes_the_majority():
    assert vote(one_hot_confidences([2, 2, 2, 0, 1], [0.4, 0.4, 0.4, 0.9, 0.9]))[0] == 2


def test_vote_takes_a_plurality_of_two():
    assert vote(one_hot_confidences([2, 2, 0, 1, 3], [0.4, 0.4, 0.5, 0.9, 0.6]))[0] == 2


def test_vote_tie_goes_to_the_most_confident_layer():
    assert vote(one_hot_confidences([2, 2, 1, 1, 3], [0.5, 0.6, 0.5, 0.5, 0.95]))[0] == 3  # 2-2-1 tie
    assert vote(one_hot_confidences([2, 2, 1, 1, 3], [0.5, 0.6, 0.7, 0.5, 0.65]))[0] == 1
    assert vote(one_hot_confidences([0, 1, 2, 3, 1], [0.4, 0.45, 0.9, 0.5, 0.4]))[0] == 1  # 1 has two votes


def test_vote_all_different_takes_the_most_confident():
    confidences = np.zeros((1, 5, 5))
    for layer, label, c in [(0, 0, 0.3), (1, 1, 0.4), (2, 2, 0.9), (3, 3, 0.5), (4, 4, 0.6)]:
        confidences[0, layer, label] = c
    assert vote(confidences)[0] == 2


def test_vote_is_vectorized_over_videos():
    confidences = np.concatenate([one_hot_confidences([1, 1, 1, 0, 0], [0.5] * 5),
                                  one_hot_confidences([0, 1, 2, 3, 3], [0.5] * 5)])
    assert vote(confidences).tolist() == [1, 3]


def test_multilabel_keeps_a_layer_label_only_where_that_layer_is_highest():
    outputs = np.array([[[5.0, 1.0, 0.0],    # continuous: 0, and 5 is the highest O[., 0]
                         [4.0, 0.0, 3.0],    # instant: 0, but continuous has 5 > 4 -> dropped
                         [1.0, 2.0, 0.0],    # onset: 1, highest O[., 1] is visual's 6 -> dropped
                         [0.0, 6.0, 0.0],    # visual: 1 kept
                         [0.0, 0.0, 1.0]]])  # audio: 2, instant's 3 is higher -> dropped
    assert multilabel(outputs)[0].tolist() == [True, True, False]


def test_multilabel_ties_keep_both():
    outputs = np.zeros((1, 5, 3))
    outputs[0, 0, 2] = outputs[0, 3, 2] = 4.0
    outputs[0, 1, 1] = 1.0
    assert multilabel(outputs)[0].tolist() == [True, True, True]  # layers 2 and 4 tie on label 0 at 0.0


def test_softmax_rows_sum_to_one():
    p = softmax(np.random.default_rng(0).normal(size=(3, 5, 4)) * 50)
    np.testing.assert_allclose(p.sum(-1), 1.0)


def test_video_modality_is_the_layer_most_confident_in_the_true_label():
    confidences = np.array([one_hot_confidences([1, 1, 1, 1, 0], [0.5, 0.6, 0.4, 0.9, 0.8])[0],
                            one_hot_confidences([0, 0, 0, 0, 0], [0.7, 0.7, 0.2, 0.1, 0.3])[0]])
    labels = np.array([1, 0])
    np.testing.assert_allclose(true_label_confidence(confidences, labels)[0, :4], [0.5, 0.6, 0.4, 0.9])
    assert video_modality(confidences, labels).tolist() == [3, 0]  # second: tie -> earlier layer


def test_category_modality_majority_and_tie_rule():
    categories = ["a", "a", "a", "b", "b", "c", "c"]
    layers = ["audio", "audio", "visual", "onset", "visual", "instant", "continuous"]
    confidence = [0.9, 0.8, 0.99, 0.6, 0.7, 0.5, 0.5]
    table = category_modality(categories, layers, confidence).set_index("category")
    assert table.loc["a", "layer"] == "audio" and table.loc["a", "votes_audio"] == 2
    assert table.loc["a", "n_videos"] == 3
    assert table.loc["b", "layer"] == "visual"  # 1-1 tie: visual holds more confidence
    assert table.loc["c", "layer"] == "continuous"  # equal confidence: earlier layer
