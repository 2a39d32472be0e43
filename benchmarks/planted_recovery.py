"""How well a bias run recovers planted truth, for both rules and a sweep of sufficiency fractions.

    avaudit bias PLANTED --model MODEL.pt --out BIAS_DIR [--confidence raw|calibrated]
    python benchmarks/planted_recovery.py BIAS_DIR PLANTED/truth.csv

bias_videos.csv holds every layer's confidence in each video's true label, so both rules and every
fraction are re-derived here from one run with avaudit's own functions. For each planted group
(audio, visual, audiovisual) it prints the share of its categories assigned to that group; a
`redundant` category counts as recovered for neither unimodal group.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from avaudit.audits.bias import assign_videos
from avaudit.audits.decisions import category_modality
from avaudit.vocab import ASSIGNMENTS, GROUP_OF, LAYERS

FRACTIONS = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 1.0)


def recovery(videos: pd.DataFrame, truth: pd.DataFrame, *, rule: str, fraction: float) -> dict[str, float]:
    conf = videos[[f"conf_{name}" for name in LAYERS]].to_numpy()
    chosen = assign_videos(conf, rule=rule, fraction=fraction)
    categories = category_modality(videos["label"], chosen, conf.max(axis=1), names=ASSIGNMENTS)
    merged = categories.merge(truth, on="category")
    merged["found"] = merged["layer"].map(GROUP_OF) == merged["group"]
    result = merged.groupby("group")["found"].mean().to_dict()
    result["all"] = float(merged["found"].mean())
    result["min_group"] = min(result[g] for g in ("audio", "visual", "audiovisual"))
    return result


def main() -> None:
    videos = pd.read_csv(Path(sys.argv[1]) / "bias_videos.csv")
    truth = pd.read_csv(sys.argv[2])
    rows = [{"rule": "paper", "fraction": np.nan, **recovery(videos, truth, rule="paper", fraction=1.0)}]
    rows += [{"rule": "sufficiency", "fraction": f, **recovery(videos, truth, rule="sufficiency", fraction=f)}
             for f in FRACTIONS]
    table = pd.DataFrame(rows)[["rule", "fraction", "audio", "visual", "audiovisual", "min_group", "all"]]
    print(table.round(3).to_string(index=False))


if __name__ == "__main__":
    main()
