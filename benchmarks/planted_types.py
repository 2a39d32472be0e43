"""Event types (continuous / instant / onset) against planted truth, with and without the type margin.

    avaudit make-samples /tmp/m101 --seed 101 --clips 6 --two-event 5
    python benchmarks/planted_types.py /tmp/m101 [/tmp/m202 ...] [--model M.pt] [--sweep]

Audits each planted set once (`avaudit bias`'s own functions and defaults; the logit cache makes a rerun
cheap) and compares each planted audio-visual category's type (truth.csv's modality) with the layer its
category gets: a type is *named* when that layer is continuous, instant or onset, and *right* when it is
the planted one; `audiovisual` means the type was left unclear. Prints, per margin: how many of the
audio-visual categories got a named type, how many of those are right (their precision), how many are
wrong, and how many audio-visual categories were still recognised as audio-visual at all (group). With
--sweep, a row per margin, to choose one on a tuning set. The shipped model was trained on seed 0.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from avaudit.audits.bias import bias_audit
from avaudit.inference.pipeline import audit
from avaudit.options import DEFAULT_MODEL, THRESHOLDS
from avaudit.vocab import AV_LAYERS

SWEEP = (0.0, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1)


def type_scores(categories: pd.DataFrame, truth: pd.DataFrame) -> dict:
    merged = categories.merge(truth, on="category", suffixes=("", "_truth"))
    av = merged[merged["modality"].isin(AV_LAYERS)]
    named = av[av["layer"].isin(AV_LAYERS)]
    right = int((named["layer"] == named["modality"]).sum())
    return {"av_categories": len(av), "named": len(named), "right": right, "wrong": len(named) - right,
            "precision": right / len(named) if len(named) else float("nan"),
            "unclear": int((av["layer"] == "audiovisual").sum()),
            "group_recovered": int((av["group"] == "audiovisual").sum())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("planted", type=Path, nargs="+")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--type-margin", type=float, default=THRESHOLDS.type_margin)
    parser.add_argument("--sweep", action="store_true", help="a row per margin")
    args = parser.parse_args()
    for planted in args.planted:
        a = audit(planted, model=args.model, device="cpu", labels="require")
        rows = a.rows  # one per (video, label): labels="require"
        confidences = a.probabilities[rows["position"].to_numpy()]
        truth = pd.read_csv(planted / "truth.csv")
        by_margin = {}
        for margin in SWEEP if args.sweep else (0.0, args.type_margin):
            _, by_margin[margin], _ = bias_audit(rows, confidences, a.classes, rule=THRESHOLDS.rule,
                                                 fraction=THRESHOLDS.fraction, type_margin=margin)
        table = [{"type_margin": margin, **type_scores(categories, truth)} for margin, categories in by_margin.items()]
        print(planted)
        print(pd.DataFrame(table).round(4).to_string(index=False))
        if not args.sweep:
            shown = by_margin[0.0].merge(truth, on="category", suffixes=("", "_truth"))
            print(shown[shown["modality"].isin(AV_LAYERS)][["category", "modality", "layer", "type_margin"]]
                  .round(4).to_string(index=False))


if __name__ == "__main__":
    main()
