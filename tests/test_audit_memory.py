"""An audit of N videos holds its (N, 5, C) confidences at most once, not once more per decision (issue 22: ten
million rows of 16 classes are 3 GB a copy; tests/test_blocks.py: the decisions that read them a block at a time)."""
import tracemalloc

import numpy as np
import pandas as pd
from test_bias_memory import traced_peak


def test_calibrated_confidences_are_made_in_one_array_and_are_the_same():
    from avaudit.audits.decisions import calibrated_softmax, softmax

    logits = np.random.default_rng(0).normal(size=(2000, 5, 16)).astype(np.float32) * 4
    temperatures = np.array([1.5, 0.7, 1.0, 2.0, 1.2])
    tracemalloc.start()
    calibrated = calibrated_softmax(logits, temperatures)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1.5 * calibrated.nbytes  # before: the float64 logits, their scaled copy, then the output
    assert np.array_equal(calibrated, softmax(np.asarray(logits, float) / temperatures[None, :, None]))


def test_missing_labels_over_confidences_given_as_both_hold_one_float64_copy():
    from avaudit.audits.decisions import softmax
    from avaudit.audits.missing_labels import missing_label_candidates

    rng = np.random.default_rng(1)
    classes = [f"c{i}" for i in range(16)]
    videos = pd.DataFrame({"video_id": [f"v{i}" for i in range(3000)], "path": "x.mp4",
                           "labels": [classes[i % 16] for i in range(3000)]})
    confidences = softmax(rng.normal(size=(3000, 5, 16)).astype(np.float32) * 3)
    apart = confidences.copy()

    def peak_of(given: np.ndarray) -> tuple[int, pd.DataFrame]:
        tracemalloc.start()
        found = missing_label_candidates(videos, confidences, classes, confidences=given)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak, found

    (peak_apart, expected), (peak_same, found) = peak_of(apart), peak_of(confidences)
    assert peak_same < peak_apart - 0.8 * confidences.astype(float).nbytes  # the second float64 copy not made
    pd.testing.assert_frame_equal(found, expected)


def test_flags_of_a_run_without_signals_copy_none_of_the_manifest_rows():
    from avaudit.flags import measure_flags, row_flags

    n = 200_000
    table = pd.DataFrame({"video_id": [f"v{i}" for i in range(n)], "path": "x.mp4", "split": "train",
                          "labels": "a b c"})
    positions = np.arange(n)
    tracemalloc.start()
    flags, measured = row_flags(table, positions, {})
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8 * n  # before: measure_flags' per-video table and NaN signals, ~320 bytes a row
    assert not measured and flags.tolist() == measure_flags(table, positions, {}).videos["flags"].tolist()


def test_predictions_share_the_manifests_text_columns(planted, tiny_model, tmp_path):
    from avaudit.commands import predict

    run = predict(planted, out=tmp_path / "predict", model=tiny_model, cache_dir=tmp_path / "cache", device="cpu")
    table = run.tables["predictions.csv"]
    for name in ("video_id", "path", "label"):  # before: to_numpy(), a Python string a row (~80 bytes of ten million)
        assert table[name].dtype != object, name
    for name in ("vote", "labels_eq7"):  # before: a pointer a row, and the sets' text copied into a string column
        assert isinstance(table[name].dtype, pd.CategoricalDtype), name


def test_retarget_reads_of_bias_videos_the_columns_it_keeps_by(planted, tiny_model, tmp_path):
    from avaudit.commands import bias
    from avaudit.runs import read_bias_tables, read_run

    bias(planted, out=tmp_path / "bias", model=tiny_model, cache_dir=tmp_path / "cache", device="cpu")
    video_blocks, categories = read_bias_tables(read_run(tmp_path / "bias", "bias"))
    per_video = pd.concat(video_blocks)
    assert list(per_video.columns) == ["video_id", "label", "layer", "group", "flags"]
    written = pd.read_csv(tmp_path / "bias" / "bias_videos.csv", keep_default_na=False, dtype=str)
    pd.testing.assert_frame_equal(per_video.astype(str), written[list(per_video.columns)])
    assert len(categories)


def test_grouped_moments_make_one_pair_product_at_a_time_and_the_same_covariances():
    from avaudit.audits.uncertainty import PRIOR_VARIANCE, grouped_moments

    n, groups = 200_000, 16
    rng = np.random.default_rng(2)
    codes, scores = rng.integers(0, groups, n), rng.normal(size=(n, 5))
    tracemalloc.start()
    count, mean, cov = grouped_moments(codes, scores, groups)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 160 * n  # before: the (N, 15) pair products and both their factors, ~400 bytes a row
    centred = scores - mean[codes]
    outer = np.stack([np.stack([np.bincount(codes, weights=centred[:, a] * centred[:, b], minlength=groups)
                                for b in range(5)], axis=1) for a in range(5)], axis=1)  # (K, 5, 5), bit for bit
    safe = np.maximum(count, 1)[:, None, None]
    assert np.array_equal(cov, outer / np.maximum(safe - 1, 1) / safe + np.eye(5) * (PRIOR_VARIANCE / safe ** 2))


def reduced_world(seed: int, n: int = 100_000):
    """(videos, classes, bias_audit's `reduced` inputs) of n videos of 16 classes, labels and logits at random."""
    from avaudit.audits.decisions import softmax
    from avaudit.audits.reduce import video_scores

    classes = [f"class number {i}" for i in range(16)]
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, len(classes), n)
    videos = pd.DataFrame({"video_id": pd.Series([f"v{i}" for i in range(n)], dtype="str"),
                           "path": pd.Series(["x.mp4"] * n, dtype="str"),
                           "label": pd.Series(np.asarray(classes, object)[codes], dtype="str")})
    reduced = video_scores(softmax(rng.normal(size=(n, 5, 16)).astype(np.float32) * 3), codes, rule="sufficiency")
    return videos, classes, reduced


def traced_bias_audit(seed: int, n: int) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """(bias_audit's per-video and per-category tables of `reduced_world(seed, n)`, its traced peak in bytes)."""
    from avaudit.audits.bias import bias_audit

    videos, classes, reduced = reduced_world(seed, n)
    (per_video, categories, _), peak = traced_peak(lambda: bias_audit(
        videos, None, classes, rule="sufficiency", fraction=0.5, min_support=0.5, reduced=reduced))
    return per_video, categories, peak


def test_the_bias_rule_over_reduced_inputs_holds_a_few_hundred_bytes_a_row():
    n = 100_000
    per_video, categories, peak = traced_bias_audit(3, n)
    assert peak < 350 * n  # before: ~600 bytes a row, the covariances' (N, 15) pair products (grouped_moments)
    assert len(per_video) == n and len(categories) == 16  # reduced_world's classes


def test_keys_of_a_manifest_column_make_python_strings_a_block_at_a_time():
    from avaudit.inference.cache import KEY_BLOCK, clip_key_bytes

    n = 400_000
    paths = pd.Series([f"/data/kinetics/train/some_category_name/video_{i:011d}_000010_000020.mp4" for i in range(n)],
                      dtype="str")  # Arrow text, as the manifest's table holds it
    starts, ends = np.zeros(n), np.full(n, 10.0)
    tracemalloc.start()
    keys = clip_key_bytes(paths, starts, ends)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 32 * n + 500 * KEY_BLOCK  # the keys, and a block's strings; before: every path a Python string
    assert keys.tolist() == clip_key_bytes(paths.tolist(), starts, ends).tolist()


def test_bias_inputs_fill_their_per_row_arrays_in_place():
    from avaudit.audits.decisions import softmax
    from avaudit.audits.reduce import bias_inputs

    n, classes = 200_000, 16
    rng = np.random.default_rng(4)
    labels = rng.integers(0, classes, n)
    confidences = softmax(rng.normal(size=(n, 5, classes)).astype(np.float32) * 3)
    logits = np.log(confidences)
    tracemalloc.start()
    true_conf, evidence, _ = bias_inputs(lambda where: (logits[where], confidences[where]), np.arange(n), labels,
                                         rule="sufficiency", size=4096)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 120 * n  # (N, 5) float32 and float64 kept: 60 bytes; before, their blocks and the joined copy too
    assert true_conf.shape == evidence.margins.shape == (n, 5)


def test_bias_audit_keeps_each_videos_assignment_as_a_code_and_every_voters_rows_as_views():
    n = 100_000
    per_video, _, peak = traced_bias_audit(5, n)
    # before: a layer name a row, its group mapped through a Series of names (32 bytes a row kept), the voters'
    # scores and confidences copied even when every row votes, labels as Python strings: ~290 bytes a row
    assert peak < 210 * n
    assert per_video[["layer", "group"]].memory_usage(deep=True, index=False).sum() < 3 * n
    assert per_video["layer"].astype(str).isin(["continuous", "instant", "onset", "visual", "audio",
                                                "redundant"]).all()


def test_predict_columns_keep_a_code_a_row_for_the_vote_and_the_eq7_set():
    from avaudit.audits.decisions import multilabel, softmax
    from avaudit.audits.reduce import predict_columns

    n, classes = 100_000, [f"class number {i}" for i in range(16)]
    confidences = softmax(np.random.default_rng(6).normal(size=(n, 5, 16)).astype(np.float32) * 3)
    tracemalloc.start()
    columns = predict_columns(lambda where: (None, confidences[where]), np.arange(n), classes, size=8192)
    kept = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert kept < 40 * n  # five float32 top confidences, two small codes, the sets' names; before ~100 bytes a row:
    # a pointer a row for each, and each block's own text of every set
    chosen = multilabel(confidences[:1000])
    assert columns["labels_eq7"][:1000].tolist() == [";".join(np.asarray(classes)[row]) for row in chosen]


def test_retarget_selects_of_bias_videos_a_block_of_rows_at_a_time(tmp_path, monkeypatch):
    from avaudit import outputs
    from avaudit.audits.retarget import select_blocks
    from avaudit.runs import RunRecord, read_bias_tables

    n = 100_000
    groups = np.array(["audiovisual", "audio", "visual"], dtype=object)[np.arange(n) % 3]
    per_video = pd.DataFrame({"video_id": [f"video {i:08d}" for i in range(n)], "path": "/data/x.mp4",
                              "label": [f"class number {i % 30}" for i in range(n)], "layer": groups, "group": groups,
                              "conf_audio": 0.5, "flags": np.where(np.arange(n) % 7 == 0, "still", "")})
    outputs.write_csv(per_video, tmp_path / "bias_videos.csv")
    outputs.write_csv(pd.DataFrame({"category": [f"class number {i}" for i in range(30)],
                                    "layer": groups[:30], "group": groups[:30]}), tmp_path / "bias_categories.csv")
    monkeypatch.setattr(outputs, "READ_BLOCK", 5_000)
    per_video = None
    tracemalloc.start()
    video_blocks, categories = read_bias_tables(RunRecord(tmp_path, "bias", {}))
    selected, kept = select_blocks(video_blocks, categories, ["audio"], by="category", drop=["still"], named="x")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 40 * n  # a block's cells and the selected rows' ids (~12 bytes a row); before: every row's five
    # text cells, ~105 bytes a row
    assert len(selected) == n // 3 and kept["video_id"].tolist() == [
        f"video {i:08d}" for i in range(1, n, 3) if i % 7]


def test_report_ranks_a_bias_runs_examples_a_block_of_rows_at_a_time(tmp_path, monkeypatch):
    from avaudit import outputs
    from avaudit.report import category_examples, read_table, table_blocks
    from avaudit.vocab import LAYERS

    n, rng = 100_000, np.random.default_rng(7)
    columns = ["path", "label", *(f"conf_{name}" for name in LAYERS)]
    outputs.write_csv(pd.DataFrame({"path": [f"/data/kinetics/train/video_{i:011d}.mp4" for i in range(n)],
                                    "label": [f"class number {i % 30}" for i in range(n)],
                                    **{name: rng.integers(0, 50, n) / 50 for name in columns[2:]}}),
                      tmp_path / "bias_videos.csv")
    categories = pd.DataFrame({"category": [f"class number {i}" for i in range(30)],
                               "layer": np.resize(["continuous", "audiovisual", "redundant", "audio"], 30)})
    monkeypatch.setattr(outputs, "READ_BLOCK", 5_000)
    tracemalloc.start()
    examples = category_examples(table_blocks(tmp_path / "bias_videos.csv", columns), categories)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 40 * n  # a block's rows and the best so far; before: every row's path, label and confidences
    whole = category_examples([read_table(tmp_path / "bias_videos.csv", columns)], categories)
    assert examples.to_dict() == whole.to_dict() and len(examples) == 30  # ties to the earlier row, as in one ranking
