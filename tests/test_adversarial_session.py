"""Hostile inputs against this session's changes (the compact manifest read, the block-by-block cache read and
decisions, the shards' and Parquet's loose ends): a one-line error naming the reason, never a traceback, and
every row in the table or the skipped list."""
from __future__ import annotations

import pytest
from cli_helpers import invoke

from avaudit.media.sources import read_data


def test_a_block_size_that_is_not_a_number_is_a_one_line_error(planted, tiny_model, tmp_path, monkeypatch):
    """$AVAUDIT_BLOCK_ROWS=abc was a ValueError traceback after the whole decode."""
    monkeypatch.setenv("AVAUDIT_BLOCK_ROWS", "abc")
    result = invoke("predict", planted, "--model", tiny_model, "--out", tmp_path / "out")
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "AVAUDIT_BLOCK_ROWS" in result.output and "'abc'" in result.output


def test_a_parquet_video_struct_whose_path_is_not_text_is_the_files_skipped_row(tmp_path):
    """A struct<bytes, path: int64> video column was a TypeError traceback (os.path.basename of an int)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "clips.parquet"
    kind = pa.struct([("bytes", pa.binary()), ("path", pa.int64())])
    pq.write_table(pa.table({"video": pa.array([{"bytes": b"v", "path": 3}], kind), "label": ["dog"]}), path)
    with pytest.raises(Exception) as caught:
        read_data(path)
    assert type(caught.value).__name__ == "ManifestError"
    assert "'video'" in str(caught.value) and "int64" in str(caught.value)
