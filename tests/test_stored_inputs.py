"""Shards and Parquet files as a new user packs them, where WebDataset's and Parquet's own rules bite:
each case is told (a skipped row, a note, a one-line error), never silent and never a traceback."""
from __future__ import annotations

import os
import tarfile

import pytest
from cli_helpers import invoke
from shardpack import add_member

from avaudit.media.sources import check_new_shard


def test_retarget_never_writes_a_new_shard_over_or_beside_the_shards_a_brace_pattern_names(tmp_path):
    """`--out` was checked against the shards read, not the shards named: a damaged shard (one skipped row)
    or a missing one of the pattern was written over, and a new .tar landed among DATA's shards."""
    shards = tmp_path / "shards"
    shards.mkdir()
    with tarfile.open(shards / "train-000000.tar", "w") as tar:
        add_member(tar, "a.mp4", b"video bytes")
        add_member(tar, "a.cls", b"dog")
    (shards / "train-000001.tar").write_bytes(b"half a download")
    data = shards / "train-{000000..000002}.tar"
    for name, message in (("train-000001.tar", "is one of DATA's shards"), ("train-000002.tar", "is one of DATA's"),
                          ("kept.tar", "a new shard beside DATA's shards would be read with them")):
        result = invoke("retarget", data, "--keep", "audio", "--out", shards / name, "--model", tmp_path / "m.pt")
        assert result.exit_code == 2, result.output
        assert " ".join(result.output.split()).startswith(f"error: {shards / name}{':' if name == 'kept.tar' else ''}"
                                                          f" {message}")
    assert (shards / "train-000001.tar").read_bytes() == b"half a download"
    assert sorted(p.name for p in shards.iterdir()) == ["train-000000.tar", "train-000001.tar"]
    check_new_shard(data, shards / "kept.csv")  # a list of keys is no shard
    check_new_shard(data, tmp_path / "kept.tar")
    check_new_shard(shards / "train-000000.tar", tmp_path / "kept.tar")


def test_a_parquet_struct_cell_without_bytes_never_opens_a_path_outside_the_files_folder(tmp_path, clip10):
    """datasets' Video struct {bytes, path}: a cell with null bytes opened its path wherever it pointed, where a
    bare path column's is `outside root`. A path outside beside bytes (datasets keeps the maker's own path) is
    no matter: the bytes are decoded."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from avaudit.media.decode import MemorySource
    from avaudit.media.errors import OutsideRoot
    from avaudit.media.sources import open_member, read_data
    from avaudit.vocab import Skip

    (tmp_path / "b.mp4").write_bytes(clip10.read_bytes())
    (tmp_path / "data" / "sub").mkdir(parents=True)
    (tmp_path / "data" / "sub" / "c.mp4").write_bytes(clip10.read_bytes())
    path = tmp_path / "data" / "clips.parquet"
    video = pa.struct({"bytes": pa.binary(), "path": pa.string()})
    cells = [{"bytes": clip10.read_bytes(), "path": "/home/maker/a.mp4"}, {"bytes": None, "path": "../b.mp4"},
             {"bytes": None, "path": "sub/c.mp4"}]
    pq.write_table(pa.table({"video": pa.array(cells, video), "label": ["dog"] * 3}), path)

    def opened(manifest):
        return [open_member(*row) for row in manifest.table[["path", "member", "offset", "size"]].values.tolist()]

    manifest = read_data(path)
    assert manifest.table["video_id"].tolist() == ["a", "b", "c"] and manifest.skipped.empty
    a, b, c = manifest.table[["path", "member", "offset", "size"]].values.tolist()
    assert isinstance(open_member(*a), MemorySource) and open_member(*c) == str(tmp_path / "data" / "sub" / "c.mp4")
    with pytest.raises(OutsideRoot) as refused:
        open_member(*b)
    assert refused.value.reason == Skip.outside_root
    assert str(refused.value) == (f"{path}[row 1]: the cell holds no video bytes, and its path {tmp_path / 'b.mp4'} "
                                  f"is outside the Parquet file's folder; pass --allow-outside-root to open it")
    allowed = opened(read_data(path, allow_outside_root=True))
    assert [os.path.normpath(p) for p in allowed[1:]] == [str(tmp_path / "b.mp4"), str(tmp_path / "data/sub/c.mp4")]


MEASURE_CELLS = """
import sys, tracemalloc
import pyarrow as pa
from avaudit.media import parquet
path, what = sys.argv[1:]
pa.array([0]).take([0])  # pyarrow's first take builds its compute functions: 26 MiB of Python, whatever the data
tracemalloc.start()
if what == "read":
    assert all(len(parquet.read_cell(path, "video", row)[0]) == 1 << 20 for row in (*range(40), 3, 4))
else:
    parquet.COPY_BYTES = 1 << 20
    with open(path + ".kept", "wb") as handle:
        parquet.copy_rows({path: list(range(0, 40, 2))}, handle)
print(tracemalloc.get_traced_memory()[1], pa.default_memory_pool().max_memory())
"""


def test_a_huge_parquet_row_group_is_read_and_copied_a_video_at_a_time_not_whole(tmp_path):
    """A worker kept its row's whole row group in memory (every video of it, as Python bytes), and retarget's
    --out FILE.parquet read each row group whole: a 40-video group cost 40 videos. Measured in a fresh
    process: the peak of Python's and pyarrow's allocations while every cell is read (a row behind the
    cursor too), then while half the rows are copied."""
    import subprocess
    import sys

    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "one-group.parquet"
    cells = [{"bytes": os.urandom(1 << 20), "path": f"v{i}.mp4"} for i in range(40)]
    video = pa.struct({"bytes": pa.binary(), "path": pa.string()})
    pq.write_table(pa.table({"video": pa.array(cells, video), "label": ["dog"] * 40}), path, row_group_size=40,
                   use_dictionary=False, write_batch_size=1)  # a page per video, as a streaming writer makes them
    for what in ("read", "copy"):
        done = subprocess.run([sys.executable, "-c", MEASURE_CELLS, str(path), what], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        python_peak, arrow_peak = map(int, done.stdout.split())
        assert python_peak < 4 << 20 and arrow_peak < 12 << 20, (what, python_peak >> 20, arrow_peak >> 20)
    kept = pq.read_table(str(path) + ".kept")
    assert kept.column("video").to_pylist() == cells[::2] and kept.num_rows == 20


def test_webdatasets_grouping_is_followed_and_told_where_it_bites(tmp_path):
    """Members of a key packed apart (`tar cf shard.tar *.mp4 *.cls`), a second video of a key (`x.left.mp4`
    beside `x.right.mp4`, or `v.1.mp4` beside `v.2.mp4`), and a label member with a dot in its key gave no hint:
    the videos were audited unlabelled, the later `.cls` a puzzling `no video member`, the second video gone."""
    from avaudit.media.sources import read_data

    shard = tmp_path / "train-000000.tar"
    with tarfile.open(shard, "w") as tar:
        for name in ("a.mp4", "b.mp4", "a.cls", "b.cls", "x.left.mp4", "x.right.mp4", "x.cls", "c.mp4", "c.v2.cls",
                     "a.mp4"):
            add_member(tar, name, b"video bytes" if name.endswith(".mp4") else b"dog")
    manifest = read_data(shard)
    table = manifest.table.set_index("video_id")
    assert table["labels"].to_dict() == {"a": "", "b": "", "x": "dog", "c": ""}  # WebDataset's samples
    assert table.loc["x", "member"] == "x.left.mp4"
    skipped = manifest.skipped[["video_id", "reason", "detail"]].values.tolist()
    assert [row[:2] for row in skipped] == [["a", "malformed row"], ["b", "malformed row"], ["x", "duplicate id"],
                                            ["a", "duplicate id"]]
    assert skipped[0][2] == (f"{shard}/a.cls: not next to the other members of the sample a (a.mp4, earlier in the "
                             f"shard), so WebDataset reads a.cls as a sample of its own, not audited; pack each "
                             f"sample's members together (tar --sort=name)")
    assert skipped[2][2] == (f"{shard}/x.right.mp4: a second video of the sample x (a sample is the members whose "
                             f"names share the key, up to the first dot), so only x.left.mp4 is audited; give each "
                             f"video its own key")
    assert skipped[3][2].startswith(f"{shard}/a.mp4: not next to the other members of the sample a")
    assert manifest.notes == [f"1 label member not read as a label: a dot in the name before the extension (first: "
                              f"{shard}/c.v2.cls: its sample is c, its field v2.cls, not .cls, as WebDataset keys "
                              f"it); give each key no dot (c.v2.cls -> c_v2.cls)"]


def test_train_and_localize_take_decoder_and_it_reaches_the_clips_decoder(planted, tiny_preset, clip10, tmp_path,
                                                                         monkeypatch):
    """The audits had --decoder; train and localize decoded with PyAV whatever the user chose. Here each command
    is stopped where its frames would be decoded, and decode_clip is asked what decodes them."""
    from cli_helpers import cli

    from avaudit.media import dataset
    from avaudit.media.errors import DecodeError
    from avaudit.training import sources

    asked = []

    def decode_clip(path, **options):
        asked.append(options["decoder"])
        raise DecodeError(f"{path}: stopped here by the test")

    monkeypatch.setattr(dataset, "decode_clip", decode_clip)
    result = cli("localize", clip10, "--decoder", "decord", "--out", tmp_path / "loc")
    assert result.exit_code == 2 and "stopped here by the test" in result.output, result.output
    handed = []

    def decode_batches(subset, **_):
        handed.append(subset)
        raise SystemExit(3)

    monkeypatch.setattr(sources, "decode_batches", decode_batches)
    result = cli("train", planted, "--preset", tiny_preset, "--decoder", "decord", "--out", tmp_path / "m.pt",
                 "--device", "cpu")
    assert result.exit_code == 3, result.output
    assert handed[0][0].reason == "decode error"  # the first clip, decoded here as a worker would
    assert asked == ["decord", "decord"]
    assert "--decoder" in cli("train", "--help").output and "--decoder" in cli("localize", "--help").output
    assert cli("train", planted, "--decoder", "ffmpeg").exit_code == 2


def test_the_report_names_the_shard_of_a_clip_stored_inside_one_instead_of_a_player_that_cannot_play(tmp_path):
    """A clip inside a shard has the shard as its path: the page gave it a <video> of the .tar (or .parquet),
    which no browser plays, without a word on why."""
    import pandas as pd
    import yaml
    from bigaudit import write_big_audit

    from avaudit.report import build_report

    out = write_big_audit(tmp_path / "out", n_videos=200, n_skipped=0, n_categories=4)
    assert "DATA is stored in shards" not in build_report(out).read_text()
    for table in ("bias/bias_videos.csv", "missing-labels/missing_labels.csv"):
        rows = pd.read_csv(out / table, dtype=str, keep_default_na=False)
        rows["path"] = [f"/data/shards/train-{i % 3:06d}.tar" for i in range(len(rows))]
        rows.to_csv(out / table, index=False)
    record = yaml.safe_load((out / "bias" / "bias_run.yaml").read_text())
    (out / "bias" / "bias_run.yaml").write_text(yaml.safe_dump({**record, "format": "webdataset"}))
    text = build_report(out).read_text()
    assert "<video" not in text and '<a class="clip"' not in text
    assert text.count('">in train-00000') == 4 * 2 + 10  # each category's 2 examples, the top 10 candidates
    assert ('title="inside /data/shards/train-000000.tar: a page plays files, not tar members or Parquet cells">in '
            'train-000000.tar</span>') in text
    assert "DATA is stored in shards or Parquet: its clips are inside those files" in text
