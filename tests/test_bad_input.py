"""Dirty data: every video accounted for, each skip with the right reason, exit code 1."""
import pandas as pd
import pytest
from badmedia import write_bad_corpus, write_bad_manifest
from cli_helpers import invoke

from avaudit.media.decode import REASONS

MANIFEST_REASONS = ("missing file", "duplicate id", "malformed row")


@pytest.fixture(scope="module")
def relabelled_model(renamed_model):
    """The tiny model with its first two classes renamed to the corpus's categories."""
    return renamed_model(["alpha", "beta"])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad") / "data"
    table = write_bad_corpus(root)
    return root, table


def audit_and_check(data, expected: pd.DataFrame, model, out, *extra):
    result = invoke("bias", data, "--model", model, "--out", out, "--rule", "paper", *extra)
    assert result.exit_code == 1, result.output
    skipped = pd.read_csv(out / "bias_skipped.csv", keep_default_na=False)
    assert list(skipped.columns) == ["video_id", "path", "reason", "detail"]
    assert set(skipped["reason"]) <= set(REASONS) | set(MANIFEST_REASONS)
    videos = pd.read_csv(out / "bias_videos.csv", keep_default_na=False)
    assert len(videos) + len(skipped) == len(expected)  # every row accounted for, once
    malformed = skipped["reason"] == "malformed row"  # unparsed rows have no id or path, only a line number
    assert malformed.sum() == (expected["expected"] == "malformed row").sum()
    assert skipped.loc[malformed, "detail"].str.startswith("line ").all()
    bad = expected[~expected["expected"].isin(["", "malformed row"])]
    got = dict(zip(skipped["path"].map(lambda p: p.rsplit("/", 1)[-1]), skipped["reason"]))
    for path, reason in zip(bad["path"], bad["expected"]):
        assert got.get(path.rsplit("/", 1)[-1]) == reason, (path, got)
    good = expected[expected["expected"] == ""]
    assert set(videos["path"].map(lambda p: p.rsplit("/", 1)[-1])) == set(good["path"].map(
        lambda p: p.rsplit("/", 1)[-1]))
    return result, skipped


def test_every_bad_file_in_a_folder_is_skipped_with_its_reason(corpus, relabelled_model, tmp_path):
    root, table = corpus
    result, skipped = audit_and_check(root, table, relabelled_model, tmp_path / "out")
    assert f"{len(skipped)} of {len(table)} videos skipped" in result.output


def test_manifest_rows_naming_missing_duplicate_and_malformed_entries(corpus, relabelled_model, tmp_path):
    root, table = corpus
    manifest, expected = write_bad_manifest(root, table)
    audit_and_check(manifest, expected, relabelled_model, tmp_path / "out")


@pytest.mark.slow
def test_no_audio_silence_audits_the_silent_clip(corpus, relabelled_model, tmp_path):
    root, table = corpus
    expected = table.copy()
    expected.loc[expected["path"].str.endswith("silent.mp4"), "expected"] = ""
    audit_and_check(root, expected, relabelled_model, tmp_path / "out", "--no-audio", "silence")


def test_a_decode_over_its_time_limit_is_skipped_not_fatal(clip10, tiny_config):
    from avaudit.media.dataset import ClipDataset

    item = ClipDataset([str(clip10)], config=tiny_config.model, time_limit=0.001)[0]
    assert item.reason == "decode timeout" and "took over" in item.detail
    assert ClipDataset([str(clip10)], config=tiny_config.model)[0].reason == ""


def test_files_over_the_length_limit_are_refused_before_decoding(clip10):
    from avaudit.media.decode import TooLong, decode_clip

    with pytest.raises(TooLong, match="over the 5 s limit"):
        decode_clip(clip10, steps=100, seconds=10.0, sample_rate=16000, resize=(32, 32), crop=32, max_seconds=5)


@pytest.mark.slow
def test_kill_minus_9_mid_audit_then_rerun_gives_the_uninterrupted_files(planted, tiny_model, tmp_path):
    """Outputs are written atomically and cache entries whole; a rerun resumes from the cache."""
    import os
    import signal
    import subprocess
    import sys
    import time

    def command(out, cache):
        return ([sys.executable, "-m", "avaudit", "bias", str(planted), "--model", str(tiny_model), "--out",
                 str(out), "--device", "cpu", "--workers", "0", "--batch-size", "2"],
                {**os.environ, "AVAUDIT_CACHE_DIR": str(cache)})

    args, env = command(tmp_path / "whole", tmp_path / "cache_a")
    assert subprocess.run(args, env=env, capture_output=True, timeout=600).returncode == 0
    args, env = command(tmp_path / "killed", tmp_path / "cache_b")
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    from avaudit.inference import entries

    def batches_cached() -> int:  # whole records (a batch each) in the entry file so far
        return sum(len(entries.read(path)[0]) for path in (tmp_path / "cache_b").glob("*/entries-*.bin"))

    while time.time() < deadline and batches_cached() < 3:
        time.sleep(0.05)
    assert process.poll() is None, "the audit ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (tmp_path / "killed" / "bias_videos.csv").exists()  # nothing half-written
    rerun = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    import re

    from_cache = int(re.search(r"(\d+) of 36 videos read from the cache", rerun.stdout).group(1))
    assert 6 <= from_cache < 36  # at least the three chunks seen before the kill
    for name in ("bias_videos.csv", "bias_categories.csv", "bias_summary.json"):
        assert (tmp_path / "killed" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name


@pytest.mark.parametrize("command,table", [("predict", "predictions.csv"), ("missing-labels", None)])
def test_the_other_audits_account_for_every_bad_file_too(corpus, relabelled_model, tmp_path, command, table):
    root, expected = corpus
    result = invoke(command, root, "--model", relabelled_model, "--out", tmp_path)
    assert result.exit_code == 1, result.output
    skipped = pd.read_csv(tmp_path / f"{command.replace('-', '_')}_skipped.csv", keep_default_na=False)
    bad = expected[expected["expected"] != ""]
    assert sorted(skipped["reason"]) == sorted(bad["expected"])
    if table:
        assert len(pd.read_csv(tmp_path / table)) + len(skipped) == len(expected)
