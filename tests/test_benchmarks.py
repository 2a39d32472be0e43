"""The benchmarks' own checks read what the CLI prints."""
import io
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
from rich.console import Console

from avaudit.display import show_counts

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from cached_reaudit import DEFAULT_MODEL, prepare, read_all_from_cache  # noqa: E402


def count_line(n_cached: int, n_rows: int, width: int = 160) -> str:
    out = io.StringIO()
    run = SimpleNamespace(n_cached=n_cached, n_rows=n_rows, n_decoded=n_rows - n_cached, skipped=pd.DataFrame(),
                          out=Path("avaudit-out/bias"))
    show_counts(Console(file=out, width=width), run)
    return out.getvalue()


def test_cached_reaudit_reads_the_cli_count_line_with_thousands_separators():
    assert read_all_from_cache(count_line(100_000, 100_000), 100_000)
    assert read_all_from_cache(count_line(100_000, 100_000, width=40), 100_000)
    assert read_all_from_cache(count_line(1, 1), 1)
    assert not read_all_from_cache(count_line(99_999, 100_000), 100_000)


def test_the_prepared_cache_serves_every_row_with_its_quality_arrays_so_nothing_is_decoded(tmp_path):
    """cached_reaudit.py times a re-audit: its cache must hold all an audit reads (an entry without the
    quality arrays would be decoded again, and the benchmark would time decoding)."""
    from avaudit.flags import measure_flags
    from avaudit.inference.logits import checkpoint_info, infer_logits
    from avaudit.media.manifests import read_manifest

    prepare(tmp_path, DEFAULT_MODEL, 40)
    table = read_manifest(tmp_path / "data").table
    checkpoint = checkpoint_info(DEFAULT_MODEL, tmp_path / "cache")
    *_, n_cached, quality = infer_logits(table, DEFAULT_MODEL, checkpoint, device="cpu", cache_dir=tmp_path / "cache")
    assert n_cached == len(table) == 40
    memo = tmp_path / "cache" / "duplicates"
    assert len(list(memo.glob("*.npz"))) == 1
    found = measure_flags(table, np.arange(len(table)), quality, memo=memo)
    assert set(found.videos["flags"]) == {""} and len(list(memo.glob("*.npz"))) == 1  # the memo was the one read
