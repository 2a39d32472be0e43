"""Shards and Parquet files as a new user packs them, where WebDataset's and Parquet's own rules bite:
each case is told (a skipped row, a note, a one-line error), never silent and never a traceback."""
from __future__ import annotations

import tarfile

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
