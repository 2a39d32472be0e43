"""Inputs a new user makes: shards and Parquet files with odd members and cells, audited as the
equivalent folder would be, never a traceback."""
from __future__ import annotations

import os
import tarfile

import pytest

from avaudit import commands
from avaudit.errors import UsageError
from avaudit.media.formats import ManifestError
from avaudit.media.sources import read_data, write_subset
from avaudit.outputs import read_csv
from tests.conftest import write_clip
from tests.shardpack import add_member
from tests.test_quality_audit import RUN, noise_clip


def test_a_byte_copy_inside_shards_is_an_audiovisual_duplicate_as_in_the_folder(tmp_path, renamed_model):
    """The shard's members are not files: their digest is of their bytes, so a copy in another shard is
    found as the same copy in a folder is. Flat grey pictures are blank (never a picture match), so only
    the digest says the copy is audiovisual (it was a sound-only pair)."""
    model = renamed_model(["a", "b"])
    one, two = write_clip(tmp_path / "one.mp4", seconds=3), write_clip(tmp_path / "two.mp4", seconds=4, size=(32, 48))
    for name, members in (("train-000000.tar", [("x1", one), ("x2", two)]), ("train-000001.tar", [("x3", one)])):
        with tarfile.open(tmp_path / name, "w") as tar:
            for key, path in members:
                add_member(tar, f"{key}.mp4", path.read_bytes())
                add_member(tar, f"{key}.cls", b"a")
    commands.quality(str(tmp_path / "train-{000000..000001}.tar"), out=tmp_path / "q", model=model, **RUN)
    pairs = read_csv(tmp_path / "q" / "quality_duplicates.csv")
    assert pairs[["video_id", "duplicate_of", "streams", "similarity"]].values.tolist() == [
        ["x3", "x1", "audiovisual", 1.0]]



def test_a_json_member_nested_too_deep_is_one_malformed_row_not_a_traceback(tmp_path):
    shard = tmp_path / "shard.tar"
    with tarfile.open(shard, "w") as tar:
        for key, meta in (("deep", b"[" * 100_000 + b"]" * 100_000), ("fine", b'{"label": "dog"}')):
            add_member(tar, f"{key}.mp4", b"video bytes")
            add_member(tar, f"{key}.json", meta)
    manifest = read_data(shard)
    assert manifest.table["video_id"].tolist() == ["fine"]
    assert manifest.skipped[["video_id", "reason"]].values.tolist() == [["deep", "malformed row"]]
    assert manifest.skipped["detail"].iloc[0].endswith("the sample deep's label is unreadable (the .json member "
                                                       "is nested too deep)")


def test_a_json_label_that_is_not_a_label_is_a_bad_label_and_a_null_in_a_list_is_no_label(tmp_path):
    """A label field holding an object, a list inside the list, NaN or true became a label spelled as Python
    prints it ("{'a': 1}", "nan", "True"), and a null inside a list the label "None"."""
    shard = tmp_path / "shard.tar"
    samples = {"obj": b'{"label": {"a": 1}}', "inner": b'{"label": ["dog", ["x"]]}', "nan": b'{"label": NaN}',
               "yes": b'{"label": true}', "nulls": b'{"label": ["dog", null, "bark"]}', "number": b'{"label": 3}'}
    with tarfile.open(shard, "w") as tar:
        for key, meta in samples.items():
            add_member(tar, f"{key}.mp4", b"video bytes")
            add_member(tar, f"{key}.json", meta)
    manifest = read_data(shard)
    assert manifest.table.set_index("video_id")["labels"].to_dict() == {"nulls": "dog;bark", "number": "3"}
    skipped = manifest.skipped.set_index("video_id")
    assert set(skipped["reason"]) == {"bad label"} and list(skipped.index) == ["obj", "inner", "nan", "yes"]
    assert skipped.loc["obj", "detail"].endswith("shard.tar/obj.mp4: the field 'label' holds {\"a\": 1}, not a "
                                                 "label (a string, a number or a list of them)")


def test_a_parquet_label_list_with_a_null_has_no_label_none_and_nan_is_a_bad_label(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "clips.parquet"
    pq.write_table(pa.table({"video": [b"v1", b"v2", b"v3"], "id": ["a", "b", "c"],
                             "label": pa.array([["dog", None], [None], ["cat"]], pa.list_(pa.string())),
                             "score": [1.0, float("nan"), 2.0]}), path)
    assert read_data(path).table.set_index("video_id")["labels"].to_dict() == {"a": "dog", "b": "", "c": "cat"}
    by_score = read_data(path, label_field="score")
    assert by_score.table["labels"].tolist() == ["1.0", "2.0"]
    assert by_score.skipped[["video_id", "reason"]].values.tolist() == [["b", "bad label"]]


def test_unbalanced_braces_are_one_line_naming_the_pattern(tmp_path):
    with pytest.raises(ManifestError, match=r"train-\{\{0,1\}\.tar: unbalanced braces"):
        read_data(str(tmp_path / "train-{{0,1}.tar"))


def test_parquet_cells_are_read_as_what_they_hold_not_as_python_prints_them(tmp_path):
    """A null id was the id "None" (the second one a `duplicate id` hiding its real reason), a binary label
    "b'dog'", and a split 0 no split while 1 was "1"."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "clips.parquet"
    pq.write_table(pa.table({"video": [b"v1", b"v2", b"v3"], "id": ["a", None, None],
                             "label": pa.array([b"dog", b"cat", b"\xff"], pa.binary()), "split": [0, 1, 0]}), path)
    manifest = read_data(path)
    assert manifest.table[["video_id", "labels", "split"]].values.tolist() == [
        ["a", "dog", "0"], ["clips-000001", "cat", "1"]]
    assert manifest.skipped[["video_id", "reason"]].values.tolist() == [["clips-000002", "bad label"]]


def test_retarget_drop_refuses_a_bias_run_made_without_signals_instead_of_dropping_nothing(
        renamed_model, tmp_path, monkeypatch):
    """A bias run with AVAUDIT_SIGNALS=0 has a `flags` column, empty: `--drop duplicate` left out nothing
    and said "left out 0 videos flagged duplicate", as if the copies had been looked for."""
    model, confounded = renamed_model(["a", "b"]), tmp_path / "data"
    noise_clip(confounded / "a" / "one.mp4", 1, seconds=3)
    noise_clip(confounded / "b" / "two.mp4", 2, seconds=3)
    monkeypatch.setenv("AVAUDIT_SIGNALS", "0")
    commands.bias(confounded, out=tmp_path / "b", model=model, **RUN)
    with pytest.raises(UsageError, match="measured no quality signals"):
        commands.retarget(keep=["audio"], bias_run=tmp_path / "b", drop="duplicate", out=tmp_path / "r.csv")
    with pytest.raises(UsageError, match="measured no quality signals"):
        commands.retarget(confounded, keep=["audio"], drop="duplicate", out=tmp_path / "s" / "r.csv", model=model,
                          **RUN)
    assert not (tmp_path / "r.csv").exists()


def test_a_new_shard_holds_the_kept_samples_only_not_a_later_sample_of_the_same_key(tmp_path):
    """A key listed again in its shard is a `duplicate id`, never audited; copying by key wrote it into the
    new shard beside the kept sample of that key."""
    shard = tmp_path / "train-000000.tar"
    with tarfile.open(shard, "w") as tar:
        for key, video, label in (("k", b"first", b"dog"), ("j", b"other", b"cat"), ("k", b"again", b"dog")):
            add_member(tar, f"{key}.mp4", video)
            add_member(tar, f"{key}.cls", label)
    manifest = read_data(shard)
    assert manifest.skipped["reason"].tolist() == ["duplicate id"]
    write_subset(manifest, manifest.table["row"].tolist(), tmp_path / "kept.tar")
    with tarfile.open(tmp_path / "kept.tar") as tar:
        copied = [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]
    assert copied == [("k.mp4", b"first"), ("k.cls", b"dog"), ("j.mp4", b"other"), ("j.cls", b"cat")]


def test_a_video_member_that_is_a_link_is_one_skipped_row_naming_it(tmp_path):
    """GNU tar stores a second name of one file as a hard link, and keeps symbolic links as links: such a
    member holds no bytes. A lone link vanished (no row, no skipped row); beside its .cls the sample was
    "no video member (it holds .cls)"."""
    shard = tmp_path / "shard.tar"
    with tarfile.open(shard, "w") as tar:
        add_member(tar, "a.mp4", b"video bytes")
        add_member(tar, "a.cls", b"dog")
        for key, kind in (("b", tarfile.LNKTYPE), ("c", tarfile.SYMTYPE)):
            link = tarfile.TarInfo(f"{key}.mp4")
            link.type, link.linkname = kind, "a.mp4"
            tar.addfile(link)
        add_member(tar, "c.cls", b"dog")
    manifest = read_data(shard)
    assert manifest.table["video_id"].tolist() == ["a"]
    skipped = manifest.skipped.set_index("video_id")
    assert skipped["reason"].to_dict() == {"b": "unreadable file", "c": "unreadable file"}
    assert skipped.loc["c", "detail"].endswith("shard.tar/c.mp4: a link, not the video's bytes; pack the "
                                               "shard with tar --dereference --hard-dereference")
    write_subset(manifest, manifest.table["row"].tolist(), tmp_path / "kept.tar")
    with tarfile.open(tmp_path / "kept.tar") as tar:
        assert tar.getnames() == ["a.mp4", "a.cls"]


def test_a_sample_of_a_member_without_extension_says_so_not_it_holds_a_dot(tmp_path):
    shard = tmp_path / "shard.tar"
    with tarfile.open(shard, "w") as tar:
        add_member(tar, "README", b"text")
        add_member(tar, "a.mp4", b"video bytes")
    detail = read_data(shard).skipped["detail"].iloc[0]
    assert detail.endswith("shard.tar: the sample README has no video member (it holds README, without an extension)")


def test_a_compressed_shard_in_a_folder_of_shards_is_a_skipped_row_not_passed_over(tmp_path):
    import gzip

    for name in ("train-000000.tar", "train-000001.tar"):
        with tarfile.open(tmp_path / name, "w") as tar:
            add_member(tar, f"{name[:12]}.mp4", b"video bytes")
    (tmp_path / "train-000001.tar.gz").write_bytes(gzip.compress((tmp_path / "train-000001.tar").read_bytes()))
    (tmp_path / "train-000001.tar").unlink()
    manifest = read_data(tmp_path)
    assert manifest.table["video_id"].tolist() == ["train-000000"]
    assert manifest.skipped[["reason", "detail"]].values.tolist() == [[
        "unreadable file", f"{tmp_path / 'train-000001.tar.gz'}: a compressed shard cannot be read member by member "
                           f"(by offset); decompress it (gunzip, or zstd -d) and give the .tar"]]


def test_a_folder_of_category_folders_with_a_stray_tar_is_refused_not_read_as_shards(tmp_path):
    """The folder was read as shards: the backup .tar's samples audited, every clip of the category folders
    passed over without a word."""
    write_clip(tmp_path / "data" / "dog" / "a.mp4", seconds=1)
    with tarfile.open(tmp_path / "data" / "backup.tar", "w") as tar:
        add_member(tar, "x.mp4", b"video bytes")
    with pytest.raises(ManifestError, match=r"data: holds both shards \(backup\.tar\) and folders of clips \(dog/\)"):
        read_data(tmp_path / "data")
    (tmp_path / "data" / "backup.tar").rename(tmp_path / "data" / "meta.parquet")
    with pytest.raises(ManifestError, match=r"data: holds both Parquet files \(meta\.parquet\) and folders of clips"):
        read_data(tmp_path / "data")


def test_a_sample_whose_label_member_is_cut_off_is_one_skipped_row_not_also_an_unlabelled_row(tmp_path):
    """A shard cut inside the last sample's .cls gave that sample twice: an audited row without its label and
    a skipped row."""
    whole = tmp_path / "whole.tar"
    with tarfile.open(whole, "w") as tar:
        for key in ("k1", "k2"):
            add_member(tar, f"{key}.mp4", b"video bytes")
            add_member(tar, f"{key}.cls", b"dog")
    with tarfile.open(whole) as tar:
        label = tar.getmember("k2.cls")
    (tmp_path / "cut.tar").write_bytes(whole.read_bytes()[:label.offset_data + 1])
    manifest = read_data(tmp_path / "cut.tar")
    assert manifest.table[["video_id", "labels"]].values.tolist() == [["k1", "dog"]]
    assert manifest.skipped[["video_id", "reason"]].values.tolist() == [["k2", "unreadable file"]]
    assert "cut.tar/k2.cls: truncated" in manifest.skipped["detail"].iloc[0]


def test_a_parquet_path_outside_the_files_folder_is_outside_root_unless_allowed(tmp_path):
    """A path column's `../` or absolute path was opened wherever it pointed; a manifest's is refused."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "data" / "clips.parquet"
    path.parent.mkdir()
    pq.write_table(pa.table({"video": ["sub/a.mp4", "../b.mp4", "/etc/c.mp4"], "label": ["dog"] * 3}), path)
    manifest = read_data(path)
    assert manifest.table["video_id"].tolist() == ["a"]
    assert manifest.skipped[["video_id", "reason"]].values.tolist() == [["b", "outside root"], ["c", "outside root"]]
    assert manifest.skipped["detail"].iloc[0].endswith(f"clips.parquet: row 1: {tmp_path / 'b.mp4'} is outside the "
                                                       f"Parquet file's folder; pass --allow-outside-root to open it")
    allowed = read_data(path, allow_outside_root=True).table["path"].tolist()
    assert [os.path.normpath(p) for p in allowed[1:]] == [str(tmp_path / "b.mp4"), "/etc/c.mp4"]
