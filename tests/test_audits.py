"""The audit commands end to end on the tiny planted set, with a tiny trained model."""
import json
import os

import numpy as np
import pandas as pd
import pytest
import torch
from cli_helpers import bias_alone_and_under_torchrun, cli, invoke

from avaudit.options import THRESHOLDS


@pytest.mark.slow
def test_second_bias_run_reads_the_cache_and_writes_identical_files(planted, tiny_model, tmp_path, cache):
    first = invoke("bias", planted, "--model", tiny_model, "--out", tmp_path / "one")
    assert first.exit_code == 0, first.output
    assert "0 of 36 videos read from the cache, 36 decoded" in first.output
    second = invoke("bias", planted, "--model", tiny_model, "--out", tmp_path / "two")
    assert second.exit_code == 0, second.output
    assert "36 of 36 videos read from the cache, 0 decoded" in second.output
    for name in ("bias_videos.csv", "bias_categories.csv", "bias_summary.json", "bias_run.yaml"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name
    summary = json.loads((tmp_path / "one" / "bias_summary.json").read_text())
    stats = summary["layer_statistics"]
    assert set(stats["uniquely_correct"]) == {"continuous", "instant", "onset"} and stats["n_videos"] == 36
    assert summary["rule"] == "sufficiency" and summary["fraction"] == THRESHOLDS.fraction
    counts = summary["categories_per_layer"]
    assert sum(counts.values()) == summary["total"] == 16 and counts["redundant"] == (
        pd.read_csv(tmp_path / "one" / "bias_categories.csv")["layer"] == "redundant").sum()


def test_paper_rule_only_assigns_layers(planted, tiny_model, tmp_path):
    result = invoke("bias", planted, "--model", tiny_model, "--out", tmp_path / "b", "--rule", "paper")
    assert result.exit_code == 0, result.output
    videos = pd.read_csv(tmp_path / "b" / "bias_videos.csv")
    assert set(videos["layer"]) <= {"continuous", "instant", "onset", "visual", "audio"}
    best = videos[[f"conf_{n}" for n in ("continuous", "instant", "onset", "visual", "audio")]].to_numpy().max(1)
    chosen = videos.apply(lambda r: r[f"conf_{r['layer']}"], axis=1).to_numpy()
    np.testing.assert_allclose(chosen, best)


def test_predict_writes_predictions_and_cleanlab_arrays(planted, tiny_model, tmp_path):
    result = invoke("predict", planted, "--model", tiny_model, "--out", tmp_path / "p",
                    "--export-probs", tmp_path / "p" / "probs.npz")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "p" / "predictions.csv", keep_default_na=False)
    assert list(table.columns) == ["video_id", "path", "label", "vote", "labels_eq7", "conf_continuous",
                                   "conf_instant", "conf_onset", "conf_visual", "conf_audio", "seconds", "padded"]
    assert len(table) == 36 and (table["labels_eq7"].str.len() > 0).all()
    assert (table["seconds"] == 10.0).all() and not table["padded"].any()
    assert table[[c for c in table.columns if c.startswith("conf_")]].to_numpy().max() <= 1.0
    arrays = np.load(tmp_path / "p" / "probs.npz")
    assert arrays["pred_probs"].shape == (36, 16) and arrays["labels"].shape == (36,)
    np.testing.assert_allclose(arrays["pred_probs"].sum(1), 1.0, rtol=1e-5)
    assert (arrays["labels"] >= 0).all()


def test_missing_labels_lists_only_unannotated_candidates(planted, tiny_model, tmp_path):
    result = invoke("missing-labels", planted, "--model", tiny_model, "--out", tmp_path / "m")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "m" / "missing_labels.csv")
    assert list(table.columns) == ["video_id", "path", "label", "candidate", "layer", "confidence", "confusion",
                                   "reciprocal", "mean_confidence", "precision"]
    assert (table["candidate"] != table["label"]).all()
    assert table["confidence"].is_monotonic_decreasing
    assert (table["precision"] >= 0.7).all() and (table["confidence"] >= 0.3).all()
    confused = pd.read_csv(tmp_path / "m" / "confusions.csv")
    assert list(confused.columns) == ["label", "candidate", "layer", "n_videos", "median_confusion", "max_confidence"]
    assert f"{confused['n_videos'].sum()} candidates set apart as too unlikely (estimated precision)" in result.output
    everything = invoke("missing-labels", planted, "--model", tiny_model, "--out", tmp_path / "all",
                        "--min-precision", "0")
    assert everything.exit_code == 0, everything.output
    every = pd.read_csv(tmp_path / "all" / "missing_labels.csv")
    assert len(every) == len(table) + confused["n_videos"].sum()


def kinetics_copy(planted, tmp_path):
    """The planted clips as a Kinetics release: CSV (some labels quoted) + flat `{id}_{s:06d}_{e:06d}.mp4`."""
    root = tmp_path / "kinetics"
    root.mkdir()
    lines = ["label,youtube_id,time_start,time_end,split,is_cc"]
    for i, clip in enumerate(sorted(planted.glob("*/*.mp4"))):
        youtube_id = f"-id{i:03d}xyzAB"
        os.symlink(clip, root / f"{youtube_id}_000010_000020.mp4")
        label = clip.parent.name
        lines.append(f'{f"{chr(34)}{label}{chr(34)}" if i % 2 else label},{youtube_id},10,20,val,0')
    (root / "kinetics_val.csv").write_text("\n".join(lines) + "\n")
    return root / "kinetics_val.csv"


def test_retarget_keeps_the_kinetics_format_byte_for_byte(planted, tiny_model, tmp_path, monkeypatch):
    manifest = kinetics_copy(planted, tmp_path)
    monkeypatch.chdir(tmp_path)
    result = invoke("bias", manifest, "--model", tiny_model)
    assert result.exit_code == 0, result.output
    out = tmp_path / "kinetics_av.csv"
    result = cli("retarget", "--keep", "audiovisual", "--keep", "audio", "--keep", "visual", "--keep", "redundant",
                 "--keep", "unclear", "--out", out)
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == manifest.read_bytes()  # everything kept: the very same file
    result = cli("retarget", "--keep", "audiovisual", "--out", out, "--by", "video")
    assert result.exit_code == 0, result.output
    original = manifest.read_text().splitlines(keepends=True)
    written = out.read_text().splitlines(keepends=True)
    assert written[0] == original[0] and set(written[1:]) <= set(original[1:])
    videos = pd.read_csv(tmp_path / "avaudit-out" / "bias" / "bias_videos.csv")
    assert len(written) - 1 == (videos["group"] == "audiovisual").sum()
    # YouTube ids may start with "-": a spreadsheet-safe "'-" in bias_videos.csv, the id itself in the subset
    assert videos["video_id"].str.startswith("'-id").all() and all(",-id" in line for line in written[1:])


def test_retarget_compares_with_kinetics_sounds(planted, tiny_model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert invoke("bias", planted, "--model", tiny_model).exit_code == 0
    result = cli("retarget", "--keep", "audiovisual", "--compare", "ks31")
    assert result.exit_code == 0, result.output
    assert "0 of 31 ks31 classes are in the subset" in result.output
    subset = pd.read_csv(tmp_path / "avaudit-out" / "retarget" / "subset.csv")
    assert list(subset.columns) == ["path", "label"]


def test_a_clip_shorter_than_the_window_is_marked_padded_with_its_seconds(tiny_model, tmp_path):
    from conftest import write_clip

    write_clip(tmp_path / "data" / "cat" / "short.mp4", seconds=4.0)
    write_clip(tmp_path / "data" / "dog" / "long.mp4", seconds=10.0)
    result = invoke("predict", tmp_path / "data", "--model", tiny_model, "--out", tmp_path / "p")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "p" / "predictions.csv").set_index("video_id")
    assert table.loc["cat/short", "padded"] and not table.loc["dog/long", "padded"]
    assert abs(table.loc["cat/short", "seconds"] - 4.0) <= 0.1 and table.loc["dog/long", "seconds"] == 10.0


def test_retarget_without_a_bias_run_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli("retarget", "--keep", "audiovisual")
    assert result.exit_code == 2
    assert " ".join(result.output.split()) == (
        "error: no DATA given and no bias run under avaudit-out/: run `avaudit bias DATA` first, pass DATA, "
        "or name a bias run's folder with --from")


def test_retarget_uses_the_newest_bias_run_or_the_one_named_and_says_which(planted, tiny_model, tmp_path,
                                                                            monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = invoke("bias", planted, "--model", tiny_model, "--out", tmp_path / "avaudit-out" / "mine")
    assert first.exit_code == 0, first.output
    newest = cli("retarget", "--keep", "audio")
    assert newest.exit_code == 0, newest.output
    assert "from the bias run in avaudit-out/mine" in " ".join(newest.output.split())
    named = cli("retarget", "--keep", "audio", "--from", tmp_path / "avaudit-out" / "mine", "--out", tmp_path / "s.csv")
    assert named.exit_code == 0 and (tmp_path / "s.csv").is_file()
    (tmp_path / "avaudit-out" / "mine" / "bias_run.yaml").write_text("command: predict\n")
    tampered = cli("retarget", "--keep", "audio", "--from", tmp_path / "avaudit-out" / "mine")
    assert tampered.exit_code == 2
    assert " ".join(tampered.output.split()) == (
        f"error: {tmp_path / 'avaudit-out' / 'mine' / 'bias_run.yaml'}: not the record of a bias run "
        "(needs command: bias, data and root)")


def test_calibrated_confidence_needs_temperatures(planted, tiny_model, tmp_path):
    data = torch.load(tiny_model, weights_only=True)
    assert len(data["temperatures"]) == 5
    del data["temperatures"]
    old = tmp_path / "old.pt"
    torch.save(data, old)
    result = invoke("bias", planted, "--model", old, "--confidence", "calibrated")
    assert result.exit_code == 2 and "temperatures" in result.output
    ok = invoke("bias", planted, "--model", tiny_model, "--confidence", "calibrated", "--out", tmp_path / "c")
    assert ok.exit_code == 0, ok.output
    import yaml

    assert yaml.safe_load((tmp_path / "c" / "bias_run.yaml").read_text())["confidence"] == "calibrated"
    assert json.loads((tmp_path / "c" / "bias_summary.json").read_text())["confidence"] == "calibrated"


@pytest.mark.slow
def test_an_interrupted_audit_resumes_from_the_batches_it_finished(planted, tiny_model, cache):
    from avaudit.inference.pipeline import audit

    class Stop(Exception):
        pass

    seen = []

    def stop_after_two_batches(kind, info):
        if kind == "advance":
            seen.append(info["n"])
            if len(seen) == 2:
                raise Stop

    with pytest.raises(Stop):
        audit(planted, model=tiny_model, device="cpu", workers=0, batch_size=4, on_event=stop_after_two_batches)
    resumed = audit(planted, model=tiny_model, device="cpu", workers=0, batch_size=4)
    assert resumed.n_cached == 8 and len(resumed.rows) == 36  # every row decoded
    again = audit(planted, model=tiny_model, device="cpu", workers=0, batch_size=4)
    assert again.n_cached == 36
    np.testing.assert_array_equal(again.logits, resumed.logits)


@pytest.mark.slow
def test_a_two_process_torchrun_audit_writes_the_single_process_files(planted, tiny_model, tmp_path):
    _, both = bias_alone_and_under_torchrun(planted, tiny_model, tmp_path, port=29533)
    assert both.stdout.count("categories per layer") == 1  # rank 0 alone prints and writes
    assert "36 of 36 videos read from the cache" in both.stdout  # both shards were cached first
    for name in ("bias_videos.csv", "bias_categories.csv", "bias_summary.json"):
        assert (tmp_path / "single" / name).read_bytes() == (tmp_path / "torchrun" / name).read_bytes(), name
    files = sorted(p.name for p in (tmp_path / "cache_torchrun").glob("*/entries-*"))
    assert files == ["entries-0.bin", "entries-1.bin"]  # written by two ranks, a file each


def test_a_clip_listed_under_several_ids_is_decoded_once(planted, tiny_model, tmp_path, cache):
    from avaudit.inference.pipeline import audit

    clip = sorted(planted.glob("*/*.mp4"))[0]
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    for i in range(3):  # the same file under three names (ids), and a broken one under two
        (tmp_path / f"copy{i}.mp4").symlink_to(clip)
    for i in range(2):
        (tmp_path / f"bad{i}.mp4").symlink_to(tmp_path / "broken.mp4")
    names = ["copy0", "bad0", "copy1", "bad1", "copy2"]
    (tmp_path / "list.csv").write_text("path,label\n" + "".join(f"{n}.mp4,{clip.parent.name}\n" for n in names))
    totals = []
    result = audit(tmp_path / "list.csv", model=tiny_model, device="cpu", workers=0,
                   on_event=lambda kind, info: totals.append(info["total"]) if kind == "start" else None)
    assert totals == [2]  # one good clip and one broken file decoded
    copies = result.logits[[0, 2, 4]]
    assert not np.isnan(copies).any() and (copies == copies[0]).all()
    assert result.skipped["video_id"].tolist() == ["bad0", "bad1"]
    assert result.skipped["reason"].nunique() == 1 and "bad1.mp4" in result.skipped["path"].iat[1]
    again = audit(tmp_path / "list.csv", model=tiny_model, device="cpu", workers=0)
    assert again.n_cached == 3 and again.skipped["video_id"].tolist() == ["bad0", "bad1"]


@pytest.mark.slow
def test_a_cached_reaudit_never_imports_torch(planted, tiny_model, tmp_path, cache):
    import subprocess
    import sys

    first = invoke("bias", planted, "--model", tiny_model, "--out", tmp_path / "one")
    assert first.exit_code == 0, first.output
    args = ["bias", str(planted), "--model", str(tiny_model), "--out", str(tmp_path / "two"), "--device", "cpu"]
    code = ("import sys\nfrom avaudit.cli import app\ntry:\n    app(%r)\nexcept SystemExit as end:\n"
            "    print('exit', end.code, 'torch loaded:', 'torch' in sys.modules)\n" % args)
    second = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "36 of 36 videos read from the cache" in second.stdout, second.stdout + second.stderr
    assert second.stdout.strip().endswith("exit 0 torch loaded: False")
    assert (tmp_path / "one" / "bias_videos.csv").read_bytes() == (tmp_path / "two" / "bias_videos.csv").read_bytes()


def bad_first_manifest(planted, tmp_path):
    """A broken file, then nine planted clips: the bad one sits in the first batch."""
    clips = sorted(planted.glob("*/*.mp4"))[::4][:9]
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    lines = ["path,label", f"{tmp_path / 'bad.mp4'},{clips[0].parent.name}"]
    lines += [f"{clip},{clip.parent.name}" for clip in clips]
    (tmp_path / "list.csv").write_text("\n".join(lines) + "\n")
    return tmp_path / "list.csv"


@pytest.mark.slow
def test_a_resume_after_a_bad_clip_in_the_first_batch_gives_the_uninterrupted_logits(planted, tiny_model, tmp_path):
    from avaudit.inference.pipeline import audit

    data = bad_first_manifest(planted, tmp_path)
    options = dict(model=tiny_model, device="cpu", workers=0, batch_size=4, allow_outside_root=True)
    whole = audit(data, cache_dir=tmp_path / "whole", **options)

    class Stop(Exception):
        pass

    def stop_after_the_first_batch(kind, info):
        if kind == "advance":
            raise Stop

    with pytest.raises(Stop):
        audit(data, cache_dir=tmp_path / "cut", on_event=stop_after_the_first_batch, **options)
    resumed = audit(data, cache_dir=tmp_path / "cut", **options)
    assert resumed.n_cached == 3 and resumed.skipped["path"].tolist() == [str(tmp_path / "bad.mp4")]
    np.testing.assert_array_equal(resumed.logits, whole.logits)  # bit for bit (the bad row NaN in both)


def test_batch_sizes_agree_within_the_stated_tolerance(planted, tiny_model, tmp_path):
    """docs/outputs.md: across --batch-size values (and thread counts) logits agree within 1e-5, not bit for bit."""
    from avaudit.inference.pipeline import audit

    data = bad_first_manifest(planted, tmp_path)
    one = audit(data, model=tiny_model, device="cpu", workers=0, batch_size=1, cache_dir=tmp_path / "one")
    eight = audit(data, model=tiny_model, device="cpu", workers=0, batch_size=8, cache_dir=tmp_path / "eight")
    np.testing.assert_allclose(one.logits, eight.logits, rtol=0, atol=1e-5)
    np.testing.assert_allclose(one.probabilities, eight.probabilities, rtol=0, atol=1e-6)


def test_the_printed_category_table_shows_margins_in_thousandths_and_none_for_unimodal(planted, tiny_model, tmp_path):
    import re

    result = invoke("bias", planted, "--model", tiny_model, "--out", tmp_path / "b", "--min-support", "0")
    assert result.exit_code == 0, result.output
    categories = pd.read_csv(tmp_path / "b" / "bias_categories.csv").set_index("category")
    rows = {line.split("│")[1].strip(): line.split("│")[-2].strip() for line in result.output.splitlines()
            if line.startswith("│") and line.split("│")[1].strip() in categories.index}
    assert len(rows) == 16 and "nan" not in result.output
    for category, shown in rows.items():
        margin = categories.loc[category, "type_margin"]
        assert shown == ("" if np.isnan(margin) else f"{margin:.4f}"), (category, shown)
    assert any(re.fullmatch(r"-?\d\.\d{4}", shown) for shown in rows.values())
