"""The benchmarks' own checks read what the CLI prints."""
import io
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from rich.console import Console

from avaudit.display import show_counts

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from cached_reaudit import read_all_from_cache  # noqa: E402


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


@pytest.mark.slow
def test_the_ten_million_rows_benchmark_runs_every_stage_at_a_small_size(tmp_path):
    import json
    import os
    import subprocess

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "ten_million.py"
    result = subprocess.run([sys.executable, str(script), "3000"], capture_output=True, text=True, timeout=600,
                            env={**os.environ, "TMPDIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(result.stdout.splitlines()[-1])
    assert figures["n"] == 3000 and figures["cache_files"] <= 5  # entries-0.bin, lock, model.txt, checkpoint.json
    assert [stage for stage, *_ in figures["stages"]][-1] == "report"
