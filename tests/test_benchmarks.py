"""The benchmarks' own checks read what the CLI prints."""
import io
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
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


def test_cached_reaudit_copies_the_checkpoint_with_as_many_categories_as_asked(tmp_path):
    from cached_reaudit import DEFAULT_MODEL, with_classes

    from avaudit.model.checkpoint import load_checkpoint

    data = load_checkpoint(with_classes(DEFAULT_MODEL, 400, tmp_path / "model.pt"))
    assert data["classes"][:2] == ["class000", "class001"] and len(set(data["classes"])) == 400
    assert data["model"]["heads.audio.weight"].shape == (400, 128) and data["model"]["heads.onset.bias"].shape == (400,)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_weak_model_scores_groups_and_candidates_against_the_planted_truth(tmp_path):
    from weak_model import candidate_scores, group_scores

    held, where = tmp_path / "heldout", tmp_path / "audit"
    _write(held / "truth.csv", "category,modality,group\naudio_a,audio,audio\nvisual_v,visual,visual\n"
                               "cont_x,continuous,audiovisual\nonset_y,onset,audiovisual\ninstant_z,instant,audiovisual\n")
    _write(where / "bias" / "bias_categories.csv", "category,layer,group\naudio_a,audio,audio\n"
           "visual_v,onset,audiovisual\ncont_x,continuous,audiovisual\nonset_y,unclear,unclear\n"
           "instant_z,onset,audiovisual\n")
    assert group_scores(where, held) == {"groups right": 3, "groups wrong": 1, "unclear": 1,
                                         "wrong": "visual_v as audiovisual", "types right": 1, "types wrong": 1}
    _write(held / "missing_truth.csv", "path,label,missing_label\nvisual_v/v_000.mp4,visual_v,audio_a\n"
           "visual_v/v_001.mp4,visual_v,audio_a\nvisual_v/v_002.mp4,visual_v,audio_a\naudio_a/a_003.mp4,audio_a,visual_v\n")
    _write(where / "missing-labels" / "missing_labels.csv", "video_id,candidate\nvisual_v/v_000,audio_a\n"
           "visual_v/v_002,audio_a\ncont_x/x_000,onset_y\n")
    _write(where / "missing-labels" / "confusions.csv", "label,candidate,layer\nvisual_v,audio_a,audio\n")
    scores = candidate_scores(where, held, ["visual_v"])
    assert scores == {"candidates": 3, "precision": 2 / 3, "recall": 0.5, "visual_v lacks audio_a": "2/3 (set apart)"}


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
