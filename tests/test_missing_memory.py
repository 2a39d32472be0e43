"""missing-labels reads every row's (N, 5, C) confidences a block of rows at a time and never holds them (issue 22:
in float64 they were 6.4 GB at ten million rows of 16 classes): avaudit/audits/missing_scan.py, with the same
candidates as over the whole arrays."""
import tracemalloc

import numpy as np
import pandas as pd

from avaudit.audits.decisions import softmax
from avaudit.audits.missing_labels import candidates_of, missing_label_candidates, with_videos
from avaudit.vocab import SKIPPED_COLUMNS


def world(n: int, n_classes: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, list[str]]:
    """n videos of n_classes in turn, a tenth with a second label and a few unlabelled, as a manifest holds
    them (labels a categorical); float32 logits where each layer leads the video's first label by 0 to 4."""
    rng = np.random.default_rng(seed)
    classes = [f"c{i}" for i in range(n_classes)]
    label = np.arange(n) % n_classes
    logits = rng.normal(size=(n, 5, n_classes)).astype(np.float32)
    logits[np.arange(n), :, label] += rng.uniform(0, 4, size=(n, 5)).astype(np.float32)
    labels = np.asarray(classes, dtype=object)[label]
    second = rng.choice(n, n // 10, replace=False)
    labels[second] = [f"{first};{classes[j]}" for first, j in zip(labels[second], rng.integers(0, n_classes,
                                                                                             len(second)))]
    labels[rng.choice(n, n // 100, replace=False)] = ""
    videos = pd.DataFrame({"video_id": [f"v{i:06d}" for i in range(n)], "path": [f"/d/v{i:06d}.mp4" for i in range(n)],
                           "labels": pd.Categorical(labels)})
    return videos, logits, classes


def test_candidates_read_a_block_at_a_time_are_those_of_the_whole_arrays():
    videos, logits, classes = world(3000, 8)
    confidences = softmax(logits.astype(float))
    groups = {name: group for name, group in zip(classes, ["audio", "visual", "audiovisual", "redundant"] * 2)}
    for given in (None, groups):
        whole = missing_label_candidates(videos, confidences, classes, confidences=confidences, min_confidence=0.2,
                                         groups=given)
        blocks = with_videos(candidates_of(lambda rows: (confidences[rows], confidences[rows]), videos, classes,
                                           min_confidence=0.2, groups=given, size=97, budget=5_000), videos)
        assert whole["confusion"].notna().sum() > 100 and whole["reciprocal"].notna().sum() > 100
        pd.testing.assert_frame_equal(blocks, whole, check_exact=True)


def test_a_bench_worlds_candidates_and_category_margins_read_a_block_at_a_time_are_the_whole_arrays():
    from avaudit.audits.bias import shifted_margins
    from avaudit.audits.layertrust import category_margins
    from avaudit.audits.missing_scan import annotated
    from avaudit.audits.reduce import rival_sample
    from avaudit.audits.simulate import make_world, simulate, with_learned
    from avaudit.audits.uncertainty import rival_evidence
    from avaudit.groupfiles import category_groups

    world = with_learned(make_world(np.random.default_rng(1)), np.random.default_rng([1, 18]), 2)
    draw = simulate(world, quality=3.0, rng=np.random.default_rng([1, 400]))
    confidences = softmax(draw.logits).astype(float)  # float32 confidences, as the cache gives, in the rules' dtype

    def read(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return confidences[rows], confidences[rows]

    groups = category_groups(draw.videos, read, world.classes, size=37)
    whole = missing_label_candidates(draw.videos, confidences, world.classes, confidences=confidences,
                                     min_confidence=0.3, groups=groups)
    assert (whole["precision"] >= 0.7).sum() > 10
    for narrow in (False, True):  # float32 values, held in float32 for the medians: the same bits
        blocks = with_videos(candidates_of(read, draw.videos, world.classes, min_confidence=0.3, groups=groups,
                                           size=41, budget=3_000, narrow=narrow), draw.videos)
        pd.testing.assert_frame_equal(blocks, whole, check_exact=True)
    marks = annotated(draw.videos["labels"], world.classes).marks(slice(None))
    single = np.flatnonzero(marks.sum(axis=1) == 1)
    present, codes = np.unique(marks[single].argmax(axis=1), return_inverse=True)
    _, means, _ = shifted_margins(rival_evidence(confidences[single], codes, present), present[codes], fraction=0.7)
    sample = rival_sample(codes, len(present))
    on_sample = rival_evidence(confidences[single[sample]], codes[sample], present)
    assert np.array_equal(category_margins(read, single, codes, present, on_sample, size=29, fraction=0.7), means)


class HeldLogits:
    """The cache's RowLogits, over logits held here: read a block of rows at a time."""

    def __init__(self, logits: np.ndarray) -> None:
        self.logits = logits

    def __len__(self) -> int:
        return len(self.logits)

    def read(self, positions: np.ndarray) -> np.ndarray:
        return self.logits[positions]


def test_the_missing_labels_command_holds_a_block_of_rows_confidences_not_every_rows(tmp_path, monkeypatch):
    from avaudit import commands
    from avaudit.inference.pipeline import Audit

    n, n_classes = 40_000, 32
    videos, logits, classes = world(n, n_classes)
    a = Audit(manifest=None, checkpoint={"config": {}}, classes=classes, layers=HeldLogits(logits),
              rows=videos.assign(position=np.arange(n)), window={}, record={"confidence": "raw", "n_rows": n},
              skipped=pd.DataFrame(columns=list(SKIPPED_COLUMNS)), n_rows=n, n_cached=n)
    monkeypatch.setattr(commands, "audit", lambda *args, **kwargs: a)  # the cached run read: the logits above
    monkeypatch.setenv("AVAUDIT_BLOCK_ROWS", "200")
    tracemalloc.start()
    run = commands.missing_labels(tmp_path / "data.csv", out=tmp_path / "out")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(run.tables["missing_labels.csv"]) + len(run.tables["confusions.csv"]) > 0
    # before: every row's confidences in float64 (1,280 bytes a row at 32 classes), and more than as much again in
    # transients; now the groups' bias call (its per-row arrays) is the largest
    assert peak < 500 * n


def test_one_labels_rows_are_read_in_spans_of_at_most_a_block_of_row_numbers():
    from avaudit.audits.missing_scan import spans

    rows = np.r_[np.arange(0, 1600, 16), 5000, 5001, 9999]  # every 16th row, then a few far apart
    cuts = spans(rows, 100)
    assert np.array_equal(np.concatenate([rows[cut] for cut in cuts]), rows)
    assert all(rows[cut][-1] - rows[cut][0] < 100 for cut in cuts)  # before: 100 of them a read, spanning 1,585 rows
    assert len(cuts) == 17 and spans(np.arange(10), 3) == [slice(0, 3), slice(3, 6), slice(6, 9), slice(9, 10)]
