"""`avaudit quality`, the flags in `bias` and `retarget --drop`: signals measured in the audit's own decode and
cached with its logits, on a handful of short clips with one of each confounder planted."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from avaudit import commands
from avaudit.errors import UsageError
from avaudit.flags import kept_copies
from avaudit.media import encode
from avaudit.outputs import read_csv
from tests.cli_helpers import cli, invoke

RUN = dict(device="cpu", workers=0)


def noise_clip(path: Path, seed: int, *, still: bool = False, silent: bool = False, seconds: float = 6.0) -> Path:
    """A clip of its own random picture and sound (no two seeds alike); `still`: one picture throughout,
    `silent`: digital silence."""
    rng = np.random.default_rng(seed)
    fps, rate = 25, 16000
    blocks = rng.integers(0, 256, (int(seconds * fps), 4, 4, 3), dtype=np.uint8)
    if still:
        blocks[:] = blocks[0]
    frames = np.repeat(np.repeat(blocks, 8, axis=1), 8, axis=2)  # 32 x 32, coarse enough to survive H.264
    audio = np.zeros(int(seconds * rate), np.float32) if silent else \
        (0.3 * rng.standard_normal(int(seconds * rate))).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    encode.write_clip(path, frames=frames, audio=audio, fps=fps, sample_rate=rate)
    return path


@pytest.fixture(scope="session")
def confounded(tmp_path_factory) -> Path:
    """Two categories (a, b) of clean clips, a still one, a silent one and a byte-identical copy."""
    root = tmp_path_factory.mktemp("confounded") / "data"
    noise_clip(root / "a" / "clean1.mp4", 1)
    noise_clip(root / "a" / "clean2.mp4", 2)
    noise_clip(root / "a" / "still.mp4", 3, still=True)
    noise_clip(root / "b" / "clean3.mp4", 4)
    noise_clip(root / "b" / "silent.mp4", 5, silent=True)
    shutil.copy(root / "a" / "clean1.mp4", root / "b" / "zcopy.mp4")
    return root


@pytest.fixture
def model(renamed_model) -> Path:
    return renamed_model(["a", "b"])


def test_quality_flags_each_confounder_and_the_copy_not_its_original(confounded, model, tmp_path):
    run = commands.quality(confounded, out=tmp_path / "q", model=model, **RUN)
    videos = read_csv(tmp_path / "q" / "quality_videos.csv", dtype={"flags": str, "duplicate_of": str})
    assert list(videos.columns[:5]) == ["video_id", "path", "split", "flags", "duplicate_of"]
    flags = dict(zip(videos["video_id"], videos["flags"].fillna("")))
    assert flags == {"a/clean1": "", "a/clean2": "", "a/still": "still", "b/clean3": "", "b/silent": "silent",
                     "b/zcopy": "duplicate"}
    assert videos.set_index("video_id").loc["b/zcopy", "duplicate_of"] == "a/clean1"
    assert videos.set_index("video_id").loc["a/still", "still_fraction"] == 1.0
    assert videos.set_index("video_id").loc["b/silent", "level_dbfs"] < -100
    pairs = read_csv(tmp_path / "q" / "quality_duplicates.csv")
    assert pairs[["video_id", "duplicate_of", "streams", "similarity", "same_split"]].values.tolist() == [
        ["b/zcopy", "a/clean1", "audiovisual", 1.0, True]]
    summary = json.loads((tmp_path / "q" / "quality_summary.json").read_text())
    assert summary["n_flagged"] == {"still": 1, "silent": 1, "duplicate": 1, "any": 3}
    assert summary["n_duplicate_pairs"] == 1 and summary["n_videos"] == 6 and run.summary.n_cross_split_pairs == 0
    record = yaml.safe_load((tmp_path / "q" / "quality_run.yaml").read_text())
    assert record["command"] == "quality"
    assert record["outputs"] == ["quality_duplicates.csv", "quality_summary.json", "quality_videos.csv"]


def test_a_cached_reaudit_decodes_nothing_and_has_the_same_signals(confounded, model, tmp_path, cache):
    first = commands.quality(confounded, out=tmp_path / "one", model=model, **RUN)
    again = commands.quality(confounded, out=tmp_path / "two", model=model, **RUN)
    assert (first.n_cached, first.n_decoded) == (0, 6) and (again.n_cached, again.n_decoded) == (6, 0)
    pd.testing.assert_frame_equal(first.tables["quality_videos.csv"], again.tables["quality_videos.csv"])
    pd.testing.assert_frame_equal(first.tables["quality_duplicates.csv"], again.tables["quality_duplicates.csv"])


def test_entries_cached_without_signals_are_decoded_again_once(confounded, model, tmp_path, cache, monkeypatch):
    monkeypatch.setenv("AVAUDIT_SIGNALS", "0")  # what an older avaudit cached: logits and seconds only
    old = commands.bias(confounded, out=tmp_path / "old", model=model, **RUN)
    assert old.summary.n_flagged is None and set(old.tables["bias_videos.csv"]["flags"]) == {""}
    with pytest.raises(UsageError, match="AVAUDIT_SIGNALS=0"):
        commands.quality(confounded, out=tmp_path / "q", model=model, **RUN)
    monkeypatch.delenv("AVAUDIT_SIGNALS")
    new = commands.bias(confounded, out=tmp_path / "new", model=model, **RUN)
    assert new.n_decoded == 6 and new.summary.n_flagged["any"] == 3
    pd.testing.assert_frame_equal(old.tables["bias_videos.csv"].drop(columns="flags"),
                                  new.tables["bias_videos.csv"].drop(columns="flags"))  # same logits
    assert commands.bias(confounded, out=tmp_path / "again", model=model, **RUN).n_decoded == 0


def test_bias_flags_videos_counts_them_per_category_and_leaves_them_out_of_the_vote(confounded, model, tmp_path):
    run = commands.bias(confounded, out=tmp_path / "b", model=model, **RUN)
    videos = read_csv(tmp_path / "b" / "bias_videos.csv", dtype={"flags": str}).fillna({"flags": ""})
    assert dict(zip(videos["video_id"], videos["flags"]))["a/still"] == "still"
    categories = read_csv(tmp_path / "b" / "bias_categories.csv").set_index("category")
    assert categories["n_flagged"].to_dict() == {"a": 1, "b": 2} and categories["n_videos"].to_dict() == {"a": 3, "b": 3}
    votes = [f"votes_{name}" for name in ("continuous", "instant", "onset", "visual", "audio", "redundant")]
    assert categories[votes].sum(axis=1).to_dict() == {"a": 2, "b": 1}  # the flagged ones did not vote
    assert run.summary.n_flagged == {"still": 1, "silent": 1, "duplicate": 1, "any": 3}
    voted = commands.bias(confounded, out=tmp_path / "v", model=model, flagged_vote=True, **RUN)
    assert voted.tables["bias_categories.csv"][votes].sum(axis=1).tolist() == [3, 3]
    assert yaml.safe_load((tmp_path / "v" / "bias_run.yaml").read_text())["flagged_vote"] is True


def test_retarget_drop_leaves_out_flagged_videos_and_keeps_one_copy(confounded, model, tmp_path):
    keep = ["audiovisual", "audio", "visual", "redundant", "unclear"]
    commands.bias(confounded, out=tmp_path / "b", model=model, **RUN)
    run = commands.retarget(keep=keep, bias_run=tmp_path / "b", drop="still,silent,duplicate",
                            out=tmp_path / "r" / "subset.csv")
    subset = read_csv(tmp_path / "r" / "subset.csv")
    assert sorted(Path(p).stem for p in subset["path"]) == ["clean1", "clean2", "clean3"]  # clean1's copy gone
    assert run.summary.n_dropped == 3 and run.summary.drop == ["still", "silent", "duplicate"]
    assert json.loads((tmp_path / "r" / "subset.csv.json").read_text())["drop"] == ["still", "silent", "duplicate"]
    only = commands.retarget(keep=keep, bias_run=tmp_path / "b", drop=["duplicate"], out=tmp_path / "d.csv")
    assert only.summary.n_videos == 5


def test_retarget_drop_refuses_unknown_flags_and_a_bias_run_without_flags(confounded, model, tmp_path):
    commands.bias(confounded, out=tmp_path / "b", model=model, **RUN)
    result = cli("retarget", "--from", tmp_path / "b", "--keep", "audio", "--drop", "still,blurry",
                 "--out", tmp_path / "r.csv")
    assert result.exit_code == 2 and "unknown quality flag blurry" in result.output
    videos = tmp_path / "b" / "bias_videos.csv"
    pd.read_csv(videos).drop(columns="flags").to_csv(videos, index=False)  # a bias run of an older avaudit
    result = cli("retarget", "--from", tmp_path / "b", "--keep", "audio", "--drop", "still", "--out", tmp_path / "r.csv")
    assert result.exit_code == 2 and "no `flags` column" in result.output and "Traceback" not in result.output


def test_the_quality_command_prints_its_summary(confounded, model, tmp_path):
    result = invoke("quality", confounded, "--model", model, "--out", tmp_path / "q")
    assert result.exit_code == 0, result.output
    assert "6 clips measured; 3 flagged (1 still, 1 silent, 1 duplicate); 1 duplicate pair" in result.output
    bias = invoke("bias", confounded, "--model", model, "--out", tmp_path / "b")
    assert "3 videos with a quality flag" in bias.output and "--flagged-vote" in bias.output


def test_a_group_of_duplicates_keeps_its_first_copy_whichever_way_its_pairs_point():
    ids = pd.Series(["a", "b", "c", "d", "e"])
    pairs = pd.DataFrame({"video_id": ["c", "b", "e"], "duplicate_of": ["b", "d", "d"]})  # b-c-d-e in one group
    assert kept_copies(ids, pairs).tolist() == ["", "", "b", "b", "b"]
    assert kept_copies(ids, pairs.iloc[:0]).tolist() == [""] * 5


def test_the_report_plays_the_flagged_clips_and_both_clips_of_each_duplicate_pair(confounded, model, tmp_path):
    from avaudit.report import build_report

    commands.quality(confounded, out=tmp_path / "out" / "quality", model=model, **RUN)
    text = build_report(tmp_path / "out").read_text()
    quality = text.split('<section id="quality">')[1].split("</section>")[0]
    assert "<p>3 of 6 clips flagged (1 still, 1 silent, 1 duplicate); 1 duplicate pair (1 audiovisual, 0 audio, " \
           "0 visual), 0 of them across splits</p>" in quality
    links = re.findall(r'<a class="clip" href="([^"]+)"', quality)
    assert [Path(link).name for link in links] == ["still.mp4", "silent.mp4", "zcopy.mp4", "zcopy.mp4", "clean1.mp4"]
    assert all((tmp_path / "out" / link).resolve().is_file() for link in links)


def test_a_reaudit_reads_the_duplicate_pairs_back_and_a_damaged_memo_is_searched_again(confounded, model, tmp_path,
                                                                                         cache):
    first = commands.quality(confounded, out=tmp_path / "one", model=model, **RUN)
    memos = list((cache / "duplicates").glob("*.npz"))
    assert len(memos) == 1
    again = commands.quality(confounded, out=tmp_path / "two", model=model, **RUN)
    pd.testing.assert_frame_equal(first.tables["quality_duplicates.csv"], again.tables["quality_duplicates.csv"])
    memos[0].write_bytes(b"not a memo")
    damaged = commands.quality(confounded, out=tmp_path / "three", model=model, **RUN)
    pd.testing.assert_frame_equal(first.tables["quality_duplicates.csv"], damaged.tables["quality_duplicates.csv"])
    assert np.load(memos[0])["j"].tolist() == [5]  # written again: b/zcopy, the sixth clip


def test_quality_over_planted_confounders_names_each_kind_and_the_leaks_across_splits(tmp_path_factory, tiny_model):
    """make-samples --confounders' manifest (path,label,split): the planted still and silent clips flagged, the
    byte copies paired with their sources, `same_split` as the truth says."""
    from avaudit.planted import make_samples

    out = tmp_path_factory.mktemp("confounders") / "set"
    make_samples(out, seed=3, clips_per_category=1, two_event_per_category=0, size=32, confounders=2)
    run = commands.quality(out / "manifest.csv", out=tmp_path_factory.mktemp("q"), model=tiny_model, **RUN)
    truth = read_csv(out / "confounders_truth.csv")
    videos = run.tables["quality_videos.csv"].assign(name=lambda t: [Path(p).name for p in t["path"]])
    flags = dict(zip(videos["name"], videos["flags"]))
    for kind in ("still", "silent"):
        assert all(kind in flags[Path(p).name].split(";") for p in truth.loc[truth["kind"] == kind, "path"]), kind
    ids = dict(zip(videos["name"], videos["video_id"]))
    pairs = run.tables["quality_duplicates.csv"]
    found = {(a, b): (streams, same) for a, b, streams, same in
             pairs[["video_id", "duplicate_of", "streams", "same_split"]].itertuples(index=False)}
    for row in truth[truth["kind"] == "exact"].itertuples():
        copy, source = ids[Path(row.path).name], ids[Path(row.source).name]
        streams, same = found.get((copy, source)) or found[(source, copy)]
        assert streams == "audiovisual" and same == (row.split == videos.set_index("video_id").loc[source, "split"])
    assert run.summary.n_cross_split_pairs == int((~pairs["same_split"].astype(bool)).sum()) > 0
