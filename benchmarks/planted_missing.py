"""Missing-label candidates against planted truth: precision and recall with and without the confusion rule.

    avaudit make-samples /tmp/m101 --seed 101 --clips 6 --two-event 5     # 20 of 116 clips carry a second event
    python benchmarks/planted_missing.py /tmp/m101 [/tmp/m202 ...] [--model M.pt] [--sweep]

Audits each planted set once (`avaudit missing-labels`'s own functions; the logit cache makes a rerun
cheap), then scores the candidate list against missing_truth.csv: a candidate is right when it names the
clip's planted, unlabelled second category. For each set it prints the average precision of the ranking
and precision / recall of the default list (every candidate at or over --min-confidence), without the
rule and with it (candidates whose confusion reaches --max-confusion set apart), and with the shipped
rule (candidates estimated under --min-precision set apart); with --sweep, a row per confusion
threshold. The shipped model was trained on seed 0: evaluate on others.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from avaudit.audits.missing_labels import missing_label_candidates, split_confusions
from avaudit.inference.pipeline import audit
from avaudit.options import DEFAULT_MODEL, THRESHOLDS

SWEEP = (0.005, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)


def all_candidates(planted: Path, model: Path, min_confidence: float) -> pd.DataFrame:
    """Every candidate at or over the floor, with its confusion, and `right` from the planted truth."""
    a = audit(planted, model=model, device="cpu")
    rows = a.rows
    confidences = a.probabilities[rows["position"].to_numpy()]
    found = missing_label_candidates(rows, confidences, a.classes, confidences=confidences,
                                     min_confidence=min_confidence)
    truth = pd.read_csv(planted / "missing_truth.csv")
    planted_pairs = set(zip(truth["path"].str.replace(r"\.mp4$", "", regex=True), truth["missing_label"]))
    found["right"] = [pair in planted_pairs for pair in zip(found["video_id"], found["candidate"])]
    found.attrs["n_truth"] = len(planted_pairs)
    return found


def scores(kept: pd.DataFrame, n_truth: int) -> dict:
    right = int(kept["right"].sum())
    return {"candidates": len(kept), "right": right, "precision": right / len(kept) if len(kept) else float("nan"),
            "recall": right / n_truth}


def average_precision(found: pd.DataFrame, n_truth: int) -> float:
    """Of the ranking by confidence (the list's own order)."""
    right = found["right"].to_numpy()
    precision_at = np.cumsum(right) / np.arange(1, len(right) + 1)
    return float(precision_at[right].sum() / n_truth)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("planted", type=Path, nargs="+")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--min-confidence", type=float, default=THRESHOLDS.min_confidence)
    parser.add_argument("--max-confusion", type=float, default=0.1, help="the confusion rule, for comparison")
    parser.add_argument("--min-precision", type=float, default=THRESHOLDS.min_precision)
    parser.add_argument("--sweep", action="store_true", help="precision / recall at each of several thresholds")
    args = parser.parse_args()
    for planted in args.planted:
        found = all_candidates(planted, args.model, args.min_confidence)
        n_truth = found.attrs["n_truth"]
        right = found[found["right"]]
        print(f"{planted}: {n_truth} planted missing labels; ranking AP {average_precision(found, n_truth):.3f}; "
              f"confusion of the right candidates: max {right['confusion'].max():.4f}, of the wrong ones: min "
              f"{found.loc[~found['right'], 'confusion'].min():.4f}")
        thresholds = SWEEP if args.sweep else (args.max_confusion,)
        table = [{"rule": "none", **scores(found, n_truth)}]
        table += [{"rule": f"confusion < {t}", **scores(split_confusions(found, max_confusion=t)[0], n_truth)}
                  for t in thresholds]
        table.append({"rule": f"precision >= {args.min_precision}", **scores(split_confusions(
            found, max_confusion=None, min_precision=args.min_precision)[0], n_truth)})
        print(pd.DataFrame(table).round(3).to_string(index=False))


if __name__ == "__main__":
    main()
