"""Hostile inputs against this session's changes (the compact manifest read, the block-by-block cache read and
decisions, the shards' and Parquet's loose ends): a one-line error naming the reason, never a traceback, and
every row in the table or the skipped list."""
from __future__ import annotations

import os
import tarfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cli_helpers import invoke

from avaudit.media.formats import ManifestError
from avaudit.media.sources import read_data
from tests.shardpack import add_member


def test_a_block_size_that_is_not_a_number_is_a_one_line_error(planted, tiny_model, tmp_path, monkeypatch):
    """$AVAUDIT_BLOCK_ROWS=abc was a ValueError traceback after the whole decode."""
    monkeypatch.setenv("AVAUDIT_BLOCK_ROWS", "abc")
    result = invoke("predict", planted, "--model", tiny_model, "--out", tmp_path / "out")
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "AVAUDIT_BLOCK_ROWS" in result.output and "'abc'" in result.output


@pytest.mark.parametrize("bytes_type, path_type, value, why", [
    (pa.binary(), pa.int64(), {"bytes": b"v", "path": 3}, "whose path is not text"),
    (pa.int64(), pa.string(), {"bytes": 5, "path": None}, "whose bytes are not binary"),
    (pa.string(), pa.string(), {"bytes": "v", "path": None}, "whose bytes are not binary")])
def test_a_parquet_video_struct_of_other_types_is_the_files_skipped_row(tmp_path, bytes_type, path_type, value, why):
    """A struct<bytes, path: int64> video column was a TypeError traceback (os.path.basename of an int); bytes of
    int64 or text were each row's 'decode error' of a TypeError."""
    path = tmp_path / "clips.parquet"
    kind = pa.struct([("bytes", bytes_type), ("path", path_type)])
    pq.write_table(pa.table({"video": pa.array([value], kind), "label": ["dog"]}), path)
    with pytest.raises(ManifestError, match=f"the column 'video' is struct<.*>, {why}"):
        read_data(path)


def test_a_fifo_member_named_as_a_video_is_its_samples_skipped_row(tmp_path):
    """A FIFO (or device) member f.mp4 was passed over as a directory is: its sample vanished from both lists."""
    shard = tmp_path / "shard.tar"
    with tarfile.open(shard, "w") as tar:
        fifo = tarfile.TarInfo("f.mp4")
        fifo.type = tarfile.FIFOTYPE
        tar.addfile(fifo)
        add_member(tar, "f.cls", b"dog")
        add_member(tar, "g.mp4", b"video bytes")
    manifest = read_data(shard)
    assert manifest.table["video_id"].tolist() == ["g"]
    assert manifest.skipped[["video_id", "reason"]].values.tolist() == [["f", "unreadable file"]]
    assert manifest.skipped["detail"].iloc[0] == (f"{shard}/f.mp4: a FIFO or device, not the video's bytes; pack "
                                                  f"the video file itself")


def test_train_on_parquet_without_the_label_column_named_says_so(tmp_path):
    """train --label-field foo on Parquet that has no column foo said 'use a folder of category folders or a
    labelled manifest', never naming the file or the missing column (the audits' note was not shown)."""
    from avaudit.errors import UsageError
    from avaudit.training.command import train

    path = tmp_path / "clips.parquet"
    pq.write_table(pa.table({"clip": [b"v1", b"v2"], "cat": ["dog", "cat"]}), path)
    with pytest.raises(UsageError, match=f"every training clip needs a label: {path}: no column 'foo'"):
        train(path, label_field="foo", video_column="clip", out=tmp_path / "model.pt", device="cpu")


def test_a_parquet_id_cell_that_is_empty_is_no_id_as_a_null_is(tmp_path):
    """An id cell "" (or blanks) was the video's id: rows with the empty id in the tables, and a second such row a
    'duplicate id' of it; a null id gives the row its path's stem or the file's row name."""
    path = tmp_path / "clips.parquet"
    pq.write_table(pa.table({"video": [b"v1", b"v2", b"v3"], "id": ["", " ", None], "label": ["a", "b", "c"]}), path)
    manifest = read_data(path)
    assert manifest.table["video_id"].tolist() == ["clips-000000", "clips-000001", "clips-000002"]
    assert manifest.skipped.empty


def test_a_shard_member_named_only_by_its_extension_is_a_malformed_row(tmp_path):
    """A member .mp4 (or d/.mp4) has the key '' (WebDataset's key ends at the first dot): its skipped row said 'the
    sample  has no video member (it holds .cls, .mp4)'."""
    shard = tmp_path / "shard.tar"
    with tarfile.open(shard, "w") as tar:
        for name, data in ((".mp4", b"v"), (".cls", b"dog"), ("d/.mp4", b"v"), ("x.mp4", b"v")):
            add_member(tar, name, data)
    manifest = read_data(shard)
    assert manifest.table["video_id"].tolist() == ["x"]
    assert manifest.skipped[["video_id", "reason", "detail"]].values.tolist() == [
        ["", "malformed row", f"{shard}/.mp4: the member's name has no key (the name before its first dot); rename "
                              f"it to audit it"],
        ["d/", "malformed row", f"{shard}/d/.mp4: the member's name has no key (the name before its first dot); "
                                f"rename it to audit it"]]


def test_an_entry_file_cut_short_while_an_audit_reads_it_is_a_one_line_error(tmp_path):
    """Entries located, then their file truncated (a copy over it): the read was a ValueError traceback from
    numpy ('buffer size must be a multiple of element size'), or an IndexError had the cut fallen between rows."""
    import numpy as np

    from avaudit.errors import AvauditError
    from avaudit.inference.cache import LogitCache

    keys = np.array([f"{i:032x}" for i in range(30)])
    logits = np.random.default_rng(0).standard_normal((30, 5, 7)).astype(np.float32)
    writer = LogitCache(tmp_path, "abc", n_classes=7)
    for part in np.array_split(np.arange(30), 3):
        writer.add(keys[part], logits[part])
    reader = LogitCache(tmp_path, "abc", n_classes=7)
    where = reader.locate(keys)
    path = tmp_path / "abc" / "entries-0.bin"
    os.truncate(path, path.stat().st_size // 2)
    with pytest.raises(AvauditError, match=f"{path}: the logit cache file was cut short while this audit read it"):
        reader.read(where)
