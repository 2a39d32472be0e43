"""missing-labels' groups (groupfiles.category_groups) decide the categories alone, on the true-label confidences held
in float32 where the confidences are float32's: `bias`'s categories table, the same bits, at 110 bytes a row at
their peak where the whole bias call made 167 (issue 22: ~1 GB of the 4.4 GB missing-labels peak at 10M rows)."""
import tracemalloc

import numpy as np
import pandas as pd
import pytest
from test_missing_memory import world

from avaudit.audits.decisions import softmax


def widened(logits: np.ndarray):
    """A reader of float32 confidences widened to float64, as missing-labels reads the cache."""
    confidences = softmax(logits.astype(float)).astype(np.float32)

    def read(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        values = np.asarray(confidences[rows], float)
        return values, values

    return read


def test_the_groups_peak_holds_no_per_video_table():
    from avaudit.groupfiles import category_groups

    n = 60_000
    videos, logits, classes = world(n, 16)
    read = widened(logits)
    tracemalloc.start()
    groups = category_groups(videos, read, classes, size=200)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(groups) == 16
    assert peak < 130 * n  # f243b85: 167 bytes a row (the per-video table, float64 confidences, weights); now 110


@pytest.mark.parametrize("rule", ["sufficiency", "paper"])
def test_the_categories_decided_alone_are_bias_audits(rule):
    from avaudit.audits.bias import bias_audit, category_calls
    from avaudit.audits.reduce import bias_inputs

    videos, logits, classes = world(3000, 6, seed=3)
    videos = videos[~videos["labels"].astype(str).str.contains(";")].reset_index(drop=True)
    videos = videos[videos["labels"].astype(str) != ""].reset_index(drop=True)
    logits = np.round(logits[:len(videos)])  # exact ties among the layers, and among the categories' votes
    labels = videos["labels"].map({name: i for i, name in enumerate(classes)}).to_numpy(np.int64)
    read = widened(logits)
    rows = np.arange(len(videos))
    options = dict(rule=rule, fraction=0.7, type_margin=0.05, min_support=0.5, false_call_rate=0.1)
    true_conf, evidence, _ = bias_inputs(read, rows, labels, rule=rule, size=97)
    _, whole, _ = bias_audit(videos.assign(path=videos["video_id"], label=videos["labels"].astype(str)), None,
                             classes, reduced=(true_conf, evidence), **options)
    narrow, evidence, _ = bias_inputs(read, rows, labels, rule=rule, size=97, narrow=True)
    assert narrow.dtype == np.float32
    alone = category_calls(labels, narrow, evidence, classes, wide=np.float64, **options)
    pd.testing.assert_frame_equal(alone, whole, check_exact=True)


def test_true_label_confidences_are_held_narrow_only_where_exact():
    from avaudit.audits.reduce import bias_inputs

    videos, logits, classes = world(2000, 5, seed=4)
    labels = np.arange(len(videos)) % 5
    rows = np.arange(len(videos))
    read = widened(logits)
    wide, evidence, _ = bias_inputs(read, rows, labels, rule="sufficiency", size=64)
    narrow, narrowed, _ = bias_inputs(read, rows, labels, rule="sufficiency", size=64, narrow=True)
    assert narrow.dtype == np.float32 and wide.dtype == np.float64
    assert np.array_equal(narrow.astype(float), wide) and np.array_equal(narrowed.margins, evidence.margins)
    calibrated = softmax(logits.astype(float) / 1.3)  # float64 values no float32 holds

    def read64(where: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return calibrated[where], calibrated[where]

    held, _, _ = bias_inputs(read64, rows, labels, rule="sufficiency", size=64, narrow=True)
    assert held.dtype == np.float64
    assert np.array_equal(held, bias_inputs(read64, rows, labels, rule="sufficiency", size=64)[0])
