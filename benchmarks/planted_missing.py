"""Share of planted two-event videos whose missing label avaudit proposes.

    avaudit missing-labels PLANTED --model MODEL.pt --out MISSING_DIR
    python benchmarks/planted_missing.py MISSING_DIR PLANTED/missing_truth.csv
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd


def main() -> None:
    candidates = pd.read_csv(Path(sys.argv[1]) / "missing_labels.csv")
    truth = pd.read_csv(sys.argv[2])
    truth["video_id"] = truth["path"].str.replace(r"\.mp4$", "", regex=True)
    proposed = set(zip(candidates["video_id"], candidates["candidate"]))
    truth["found"] = [(v, m) in proposed for v, m in zip(truth["video_id"], truth["missing_label"])]
    print(f"two-event videos: {len(truth)}, missing label proposed: {int(truth['found'].sum())} "
          f"({100 * truth['found'].mean():.0f}%)")
    others = candidates[~candidates["video_id"].isin(set(truth["video_id"]))]
    print(f"candidates on the other videos: {len(others)} in {others['video_id'].nunique()} videos")
    print(truth[["path", "label", "missing_label", "found"]].to_string(index=False))


if __name__ == "__main__":
    main()
