"""WebDataset shards and Parquet files as DATA: what is read from them, and what a damaged one costs."""
import json
import tarfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cli_helpers import invoke
from shardpack import add_member, write_parquet, write_shards

from avaudit.errors import UsageError
from avaudit.media.formats import ManifestError
from avaudit.media.sources import open_member, read_data, write_subset
from avaudit.media.webdataset import key_and_suffix


@pytest.fixture(scope="module")
def shards(planted, tmp_path_factory):
    return write_shards(planted, tmp_path_factory.mktemp("wds") / "shards")


@pytest.fixture(scope="module")
def parquet_files(planted, tmp_path_factory):
    return write_parquet(planted, tmp_path_factory.mktemp("pq") / "data")


def reasons(manifest) -> list[tuple[str, str]]:
    return list(zip(manifest.skipped["reason"], manifest.skipped["detail"]))


def test_a_folder_of_shards_brace_notation_and_one_shard_name_the_same_samples(shards):
    folder = read_data(shards[0].parent)
    braces = read_data(shards[0].parent / "train-{000000..000002}.tar")
    assert folder.format == braces.format == "webdataset" and len(folder.table) == 36 and folder.skipped.empty
    assert folder.table.drop(columns="row").equals(braces.table.drop(columns="row"))
    one = read_data(shards[1])
    assert set(one.table["video_id"]) < set(folder.table["video_id"]) and (one.table["path"] == str(shards[1])).all()
    assert set(folder.table["split"]) == {"train"}  # from the shard name


def test_a_member_is_read_by_its_offset_into_memory_and_keyed_by_the_shard_and_its_name(shards, planted):
    from avaudit.inference.cache import clip_keys

    table = read_data(shards[0].parent).table
    row = table.iloc[0]
    source = open_member(row["path"], row["member"], int(row["offset"]), int(row["size"]))
    clip = next(p for p in planted.glob(f"{row['labels']}/*.mp4") if p.read_bytes() == source.data)
    assert source.name == f"{row['path']}/{row['member']}" and clip.exists()
    keys = clip_keys(table["path"], table["start"], table["end"], members=table["member"], offsets=table["offset"])
    assert len(set(keys)) == 36 and "" not in set(keys)


def test_the_label_comes_from_cls_or_a_json_field_and_a_list_is_several_labels(tmp_path, clip10):
    shard = tmp_path / "val-000000.tar"
    with tarfile.open(shard, "w") as tar:
        add_member(tar, "a.mp4", clip10.read_bytes())
        add_member(tar, "a.cls", b"dog\n")
        add_member(tar, "b.mp4", clip10.read_bytes())
        add_member(tar, "b.json", json.dumps({"label": ["dog", "bark"], "tags": ["x"], "split": "test"}).encode())
        add_member(tar, "c.mp4", clip10.read_bytes())
    table = read_data(shard).table.set_index("video_id")
    assert table["labels"].to_dict() == {"a": "dog", "b": "dog;bark", "c": ""}
    assert table["split"].to_dict() == {"a": "val", "b": "test", "c": "val"}
    tags = read_data(shard, label_field="tags").table.set_index("video_id")["labels"].to_dict()
    assert tags == {"a": "", "b": "x", "c": ""}  # a named field is the label, not the .cls


def test_member_keys_follow_webdataset():
    assert key_and_suffix("dir/abc.left.mp4") == ("dir/abc", "left.mp4")
    assert key_and_suffix("abc.CLS") == ("abc", "cls")


def test_a_truncated_shard_costs_its_last_member_and_a_non_video_sample_is_one_skipped_row(shards, tmp_path, clip10):
    damaged = tmp_path / "d"
    damaged.mkdir()
    cut = damaged / "train-000000.tar"
    cut.write_bytes(shards[0].read_bytes()[:-15000])  # inside the last sample's video
    odd = damaged / "train-000001.tar"
    with tarfile.open(odd, "w") as tar:
        add_member(tar, "pic.jpg", b"\xff\xd8\xff")
        add_member(tar, "pic.cls", b"dog")
        add_member(tar, "ok.mp4", clip10.read_bytes())
    (damaged / "train-000002.tar").write_bytes(b"not a tar at all" * 100)
    manifest = read_data(damaged)
    assert len(manifest.table) == 11 + 1  # 12 samples in the first shard, its last one cut; ok.mp4
    got = reasons(manifest)
    assert [r for r, _ in got] == ["unreadable file", "no video stream", "unreadable file"], got
    assert "train-000000.tar/s00033.mp4: truncated" in got[0][1]
    assert got[1][1].endswith("train-000001.tar: the sample pic has no video member (it holds .cls, .jpg)")
    assert got[2][1].endswith("train-000002.tar: cannot read the shard (not a tar file)")


def test_parquet_rows_name_their_class_label_and_read_one_cell(parquet_files, planted):
    manifest = read_data(parquet_files[0].parent)
    assert manifest.format == "parquet" and len(manifest.table) == 36 and manifest.skipped.empty
    folder = read_data(planted).table
    assert sorted(manifest.table["labels"]) == sorted(folder["labels"])
    row = manifest.table.iloc[7]
    source = open_member(row["path"], row["member"], int(row["offset"]), int(row["size"]))
    assert source.name == f"{row['path']}[row 7]"
    assert source.data == (planted / row["labels"] / f"{row['video_id']}.mp4").read_bytes()


def test_a_parquet_file_without_the_column_or_not_parquet_is_one_skipped_row_and_alone_one_line(parquet_files,
                                                                                                 tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "a.parquet").write_bytes(parquet_files[0].read_bytes())
    pq.write_table(pa.table({"clip": [b"x"], "label": ["dog"]}), folder / "b.parquet")
    (folder / "c.parquet").write_bytes(parquet_files[1].read_bytes()[:300])
    manifest = read_data(folder)
    assert len(manifest.table) == 18
    got = reasons(manifest)
    assert got[0] == ("unreadable file", f"{folder / 'b.parquet'}: no column 'video' (it has clip, label); name the "
                                         f"video column with --video-column")
    assert got[1][1].startswith(f"{folder / 'c.parquet'}: not a readable Parquet file (")
    assert len(read_data(folder / "b.parquet", video_column="clip").table) == 1
    with pytest.raises(ManifestError, match=r"b\.parquet: no column 'video' .*; nothing to audit$"):
        read_data(folder / "b.parquet")


def test_a_parquet_file_without_a_label_column_is_read_unlabelled_with_a_note(tmp_path, clip10):
    path = tmp_path / "x.parquet"
    pq.write_table(pa.table({"video": [clip10.read_bytes()], "video_id": ["v1"]}), path)
    manifest = read_data(path)
    assert manifest.table[["video_id", "labels"]].values.tolist() == [["v1", ""]]
    assert manifest.notes == [f"{path}: no column 'label', so its videos are unlabelled; name the label column with "
                              f"--label-field"]


def test_options_of_another_form_are_refused(planted, shards):
    with pytest.raises(ManifestError, match="--label-field does not apply: DATA is a folder or manifest$"):
        read_data(planted, label_field="x")
    with pytest.raises(ManifestError, match="--video-column does not apply: DATA is shards$"):
        read_data(shards[0], video_column="x")


def test_the_kept_samples_of_shards_are_written_as_a_list_of_keys(shards, tmp_path):
    manifest = read_data(shards[0].parent)
    write_subset(manifest, [0, 2], tmp_path / "kept.csv")
    lines = (tmp_path / "kept.csv").read_text().splitlines()
    first = manifest.table.iloc[0]
    assert lines[0] == "key,shard,member,label" and len(lines) == 3
    assert lines[1] == f"{first['video_id']},{first['path']},{first['member']},{first['labels']}"


def test_a_bad_parquet_file_is_one_line_at_the_command_line(tmp_path):
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"PAR1 not really")
    result = invoke("bias", path, "--out", tmp_path / "out")
    line = result.output.strip()
    assert result.exit_code == 2 and len(line.splitlines()) == 1, result.output
    assert line.startswith(f"error: {path}: not a readable Parquet file (") and line.endswith("; nothing to audit")


def test_torchrun_ranks_take_whole_shards_and_every_sample_once(shards, planted):
    from avaudit.media.sources import rank_rows

    table = read_data(shards[0].parent).table
    parts = [rank_rows(table, rank, 2) for rank in range(2)]
    assert [sorted(set(part["path"])) for part in parts] == [[str(shards[0]), str(shards[2])], [str(shards[1])]]
    assert sorted(parts[0]["row"].tolist() + parts[1]["row"].tolist()) == table["row"].tolist()
    folder = read_data(planted).table
    assert rank_rows(folder, 1, 2)["row"].tolist() == folder["row"].tolist()[1::2]  # files: every N-th row


def test_the_kept_samples_are_written_as_a_new_shard_or_parquet_file_with_every_member(shards, parquet_files,
                                                                                      tmp_path):
    manifest = read_data(shards[0].parent / "train-{000000..000002}.tar")
    kept = manifest.table.iloc[[0, 1, 20]]
    write_subset(manifest, kept["row"].tolist(), tmp_path / "kept.tar")
    with tarfile.open(tmp_path / "kept.tar") as tar:
        names = tar.getnames()
        first = tar.extractfile(f"{kept['video_id'].iat[0]}.mp4").read()
    assert names == [f"{key}.{suffix}" for key in kept["video_id"] for suffix in ("mp4", "cls")]
    row = kept.iloc[0]
    assert first == open_member(row["path"], row["member"], int(row["offset"]), int(row["size"])).data
    again = read_data(tmp_path / "kept.tar").table
    assert again[["video_id", "labels"]].values.tolist() == kept[["video_id", "labels"]].values.tolist()

    table = read_data(parquet_files[0].parent)
    chosen = table.table.iloc[[2, 17, 30]]
    write_subset(table, chosen["row"].tolist(), tmp_path / "kept.parquet")
    copied = pq.read_table(tmp_path / "kept.parquet")
    assert copied.schema.equals(pq.read_schema(parquet_files[0])) and copied.num_rows == 3
    assert [v["path"] for v in copied.column("video").to_pylist()] == [f"{i}.mp4" for i in chosen["video_id"]]
    with pytest.raises(UsageError, match="refusing to overwrite the input"):
        write_subset(manifest, [0], shards[1])


def test_a_compressed_shard_is_one_line_saying_to_decompress_it(tmp_path):
    with pytest.raises(ManifestError, match=r"\.tar\.gz: a compressed shard cannot be read member by member \(by "
                                            r"offset\); decompress it"):
        read_data(tmp_path / "train-{000000..000003}.tar.gz")


def test_train_reads_shards_as_the_audits_do_and_its_decoding_names_the_member(shards, monkeypatch, tmp_path,
                                                                               tiny_config):
    from cli_helpers import cli

    from avaudit.training import recipe
    from avaudit.training.sources import _RowSubset

    seen = {}

    def caught(table, **_):
        seen["table"] = table
        raise SystemExit(3)

    monkeypatch.setattr(recipe, "run_recipe", caught)
    result = cli("train", shards[0].parent / "train-{000000..000002}.tar", "--out", tmp_path / "m.pt")
    assert result.exit_code == 3, result.output
    table = seen["table"]
    assert len(table) == 36 and table["member"].str.endswith(".mp4").all()
    from avaudit.media.dataset import ClipDataset

    clips = ClipDataset(table["path"], config=tiny_config.model,
                        members=[table[c].to_numpy() for c in ("member", "offset", "size")])
    subset = _RowSubset(clips, [5, 2])
    assert subset.name(1) == f"{table['path'].iat[2]}/{table['member'].iat[2]}"  # a timeout's detail names it
    assert subset[1].reason == "" and subset[1].frames.shape[0] == tiny_config.model.steps


def test_train_reads_parquet_by_the_columns_its_options_name(parquet_files, monkeypatch, tmp_path):
    import pyarrow.parquet as pq
    from cli_helpers import cli

    from avaudit.training import recipe

    renamed = tmp_path / "renamed.parquet"  # as datasets writes a dataset whose features are named so
    table = pq.read_table(parquet_files[0])
    info = json.loads(table.schema.metadata[b"huggingface"])
    features = info["info"]["features"]
    info["info"]["features"] = {"clip": features["video"], "category": features["label"]}
    pq.write_table(table.rename_columns(["clip", "category"]).replace_schema_metadata(
        {"huggingface": json.dumps(info)}), renamed)
    seen = {}

    def caught(table, **_):
        seen["table"] = table
        raise SystemExit(3)

    monkeypatch.setattr(recipe, "run_recipe", caught)
    refused = cli("train", renamed, "--out", tmp_path / "m.pt")
    assert refused.exit_code == 2 and "no column 'video'" in refused.output, refused.output
    result = cli("train", renamed, "--video-column", "clip", "--label-field", "category", "--out", tmp_path / "m.pt")
    assert result.exit_code == 3, result.output
    assert len(seen["table"]) == table.num_rows and (seen["table"]["member"] == "clip").all()
    assert set(seen["table"]["labels"]) <= set(features["label"]["names"])  # the names, not the integers


def test_a_member_name_that_is_not_utf8_is_one_skipped_row(tmp_path, clip10):
    shard = tmp_path / "train-000000.tar"
    with tarfile.open(shard, "w", encoding="utf-8", errors="surrogateescape") as tar:
        add_member(tar, "caf\udce9.mp4", clip10.read_bytes())  # Latin-1 é
        add_member(tar, "ok.mp4", clip10.read_bytes())
    manifest = read_data(shard)
    assert manifest.table["video_id"].tolist() == ["ok"]
    assert reasons(manifest) == [("non-UTF-8 name", f"{shard}/caf\\xe9.mp4: the member name is not UTF-8; rename it "
                                                    f"to audit it")]


def test_parquet_whose_label_column_is_not_there_says_which_option_names_it(parquet_files, tmp_path):
    result = invoke("bias", parquet_files[0], "--label-field", "category", "--out", tmp_path / "out")
    assert result.exit_code == 2, result.output
    assert result.output.strip() == ("error: DATA has no labels: this audit needs category folders, a labelled "
                                     "manifest, or shards or Parquet with labels (--label-field names their field or "
                                     "column)")


def test_a_shard_or_parquet_file_changed_since_it_was_listed_is_an_unreadable_file(shards, parquet_files, tmp_path):
    from avaudit.media.errors import UnreadableFile

    cut = tmp_path / "train-000000.tar"
    cut.write_bytes(shards[0].read_bytes())
    row = read_data(cut).table.iloc[-1]
    cut.write_bytes(shards[0].read_bytes()[: int(row["offset"]) + 100])
    with pytest.raises(UnreadableFile, match=rf"^{cut}/{row['member']}: the shard ends "):
        open_member(str(cut), row["member"], int(row["offset"]), int(row["size"]))
    damaged = tmp_path / "x.parquet"
    damaged.write_bytes(parquet_files[0].read_bytes())
    rows = read_data(damaged).table
    data = bytearray(damaged.read_bytes())
    data[4:40000] = bytes(40000 - 4)  # the first row groups' pages, footer intact
    damaged.write_bytes(bytes(data))
    with pytest.raises(UnreadableFile, match=rf"^{damaged}\[row 0\]: "):
        open_member(str(damaged), "video", 0, int(rows["size"].iat[0]))
