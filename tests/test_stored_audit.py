"""The same audit of the same clips whether DATA is a folder, a CSV, WebDataset shards or Parquet; and a
damaged shard or Parquet file costs its own rows, each a skipped row, never the run."""
import tarfile

import pandas as pd
import pytest
from cli_helpers import bias_alone_and_under_torchrun, invoke
from shardpack import add_member, clips_of, write_parquet, write_shards


def comparable(videos: pd.DataFrame) -> pd.DataFrame:
    """bias_videos.csv without what names a video (its id and path), rows in one order."""
    rest = videos.drop(columns=[c for c in ("video_id", "path") if c in videos])
    return rest.sort_values(list(rest.columns)).reset_index(drop=True)


@pytest.fixture(scope="module")
def four_forms(planted, tmp_path_factory):
    """The planted set as a folder, a path,label CSV, three tar shards (labels in .json) and two Parquet files."""
    packed = tmp_path_factory.mktemp("forms")
    listing = packed / "clips.csv"
    listing.write_text("path,label\n" + "".join(f"{path.relative_to(planted)},{label}\n"
                                                for label, path in clips_of(planted)))
    shards = write_shards(planted, packed / "shards", label_as="json")
    write_parquet(planted, packed / "parquet")
    return {"folder": planted, "csv": listing, "shards": packed / "shards" / "train-{000000..000002}.tar",
            "parquet": packed / "parquet", "one shard": shards[0]}


@pytest.mark.slow
def test_bias_of_the_planted_set_is_the_same_table_in_all_four_forms(four_forms, tiny_model, tmp_path):
    tables = {}
    for form in ("folder", "csv", "shards", "parquet"):
        root = ["--root", four_forms["folder"]] if form == "csv" else []
        result = invoke("bias", four_forms[form], *root, "--model", tiny_model, "--out", tmp_path / form)
        assert result.exit_code == 0, (form, result.output)
        tables[form] = comparable(pd.read_csv(tmp_path / form / "bias_videos.csv"))
    assert len(tables["folder"]) == 36
    for form in ("csv", "shards", "parquet"):
        pd.testing.assert_frame_equal(tables[form], tables["folder"], obj=form)


def test_retarget_of_shards_writes_the_kept_keys(four_forms, tiny_model, tmp_path):
    out = tmp_path / "kept.csv"
    every = [arg for group in ("audiovisual", "audio", "visual", "redundant", "unclear") for arg in ("--keep", group)]
    result = invoke("retarget", four_forms["one shard"], "--model", tiny_model, *every, "--out", out)
    assert result.exit_code == 0, result.output
    kept = pd.read_csv(out)
    assert list(kept.columns) == ["key", "shard", "member", "label"] and len(kept) == 12
    assert (kept["shard"] == str(four_forms["one shard"])).all() and kept["member"].str.endswith(".mp4").all()
    again = invoke("bias", four_forms["one shard"], "--model", tiny_model, "--out", tmp_path / "again")
    assert "12 of 12 videos read from the cache, 0 decoded" in again.output  # keyed by shard and member


def test_a_damaged_shard_costs_its_own_samples_and_the_rest_is_audited(planted, tiny_model, tmp_path):
    clips = clips_of(planted)[:8]
    shards = tmp_path / "shards"
    shards.mkdir()
    for name, part in (("train-000000.tar", clips[:4]), ("train-000002.tar", clips[4:])):
        with tarfile.open(shards / name, "w") as tar:
            for i, (label, path) in enumerate(part):
                add_member(tar, f"{name[6:12]}-{i}.mp4", path.read_bytes())
                add_member(tar, f"{name[6:12]}-{i}.cls", label.encode())
    with tarfile.open(shards / "train-000001.tar", "w") as tar:
        add_member(tar, "garbage.mp4", b"\x00\x00\x00\x18ftypisom" + bytes(5000))  # a video by name only
        add_member(tar, "garbage.cls", clips[0][0].encode())
        add_member(tar, "unlabelled.mp4", clips[1][1].read_bytes())
        add_member(tar, "notes.txt", b"a sample with no video")
    cut = shards / "train-000002.tar"
    cut.write_bytes(cut.read_bytes()[:-20000])  # inside the last video
    result = invoke("bias", shards, "--model", tiny_model, "--out", tmp_path / "out")
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    skipped = pd.read_csv(tmp_path / "out" / "bias_skipped.csv", keep_default_na=False)
    assert dict(zip(skipped["video_id"], skipped["reason"])) == {
        "garbage": "unreadable container", "unlabelled": "no label", "notes": "no video stream",
        "000002-3": "unreadable file"}
    details = skipped.set_index("video_id")["detail"]
    assert details["garbage"].startswith(f"{shards / 'train-000001.tar'}/garbage.mp4: ")
    assert details["000002-3"].startswith(f"{cut}/000002-3.mp4: truncated")
    audited = pd.read_csv(tmp_path / "out" / "bias_videos.csv")
    assert len(audited) == 4 + 3  # the whole shard and the cut one's whole samples


@pytest.mark.slow
def test_a_two_process_torchrun_audit_of_shards_writes_the_single_process_files(four_forms, tiny_model, tmp_path):
    _, both = bias_alone_and_under_torchrun(four_forms["shards"], tiny_model, tmp_path, port=29541)
    assert "36 of 36 videos read from the cache" in both.stdout  # the ranks decoded every shard first
    for name in ("bias_videos.csv", "bias_categories.csv", "bias_summary.json"):
        assert (tmp_path / "single" / name).read_bytes() == (tmp_path / "torchrun" / name).read_bytes(), name


@pytest.mark.slow
def test_train_on_shards_writes_a_model_that_audits_them(four_forms, tiny_preset, tmp_path):
    from cli_helpers import cli

    model = tmp_path / "shards.pt"
    result = cli("train", four_forms["shards"], "--preset", tiny_preset, "--out", model, "--device", "cpu")
    assert result.exit_code == 0, result.output
    audit = invoke("bias", four_forms["shards"], "--model", model, "--out", tmp_path / "bias")
    assert audit.exit_code == 0, audit.output
