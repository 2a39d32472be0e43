"""What the CLI prints says what is there: no "-0.0000" margin, no "(top 15)" over fewer rows, no
"DATA has no labels" where there is no DATA."""
from pathlib import Path

import pandas as pd
from cli_helpers import cli

from avaudit import commands
from avaudit.display import _cell
from avaudit.runs import AuditRun, MissingLabelsSummary


def test_a_margin_that_rounds_to_zero_is_shown_without_a_sign():
    assert [_cell(v) for v in (-0.00001, -0.0, 0.00004, -0.5, float("nan"))] == [
        "0.0000", "0.0000", "0.0000", "-0.5000", ""]


def candidates_run(n: int, out: Path) -> AuditRun:
    table = pd.DataFrame({"video_id": [f"v{i}" for i in range(n)], "label": "dog", "candidate": "cat",
                          "layer": "audio", "confidence": 0.9, "precision": 0.9})
    summary = MissingLabelsSummary(n_videos=n, n_candidates=n, n_videos_with_candidates=n, n_confused=0)
    return AuditRun(out, {"missing_labels.csv": table}, summary, n_rows=n)


def test_missing_labels_says_top_15_only_over_more_rows(monkeypatch, tmp_path):
    for n, title in ((10, "10 candidate labels in 10 of 10 videos"), (20, "20 candidate labels in 20 of 20 videos "
                                                                        "(top 15)")):
        monkeypatch.setattr(commands, "missing_labels", lambda *a, on_event, **k: candidates_run(n, tmp_path))
        result = cli("missing-labels", str(tmp_path))
        assert result.exit_code == 0, result.output
        assert result.output.splitlines()[0].strip() == title
        assert sum(line.count("│ v") for line in result.output.splitlines()) == min(n, 15)
