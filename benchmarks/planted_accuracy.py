"""Validation accuracy of a trained checkpoint per planted modality group.

    python benchmarks/planted_accuracy.py MODEL.pt PLANTED/truth.csv

Reads the per-category validation accuracies that `avaudit train` stores in the checkpoint and averages
them over the categories of each planted modality (audio-only, visual-only, continuous, instant, onset).
"Chance" for a unimodal layer on the other modality's categories is 1 / (number of such categories):
their signal in that modality is identical by construction, so at best the layer guesses among them.
"""
from __future__ import annotations

import sys

import pandas as pd
import torch

LAYERS = ("continuous", "instant", "onset", "visual", "audio", "vote")


def main() -> None:
    checkpoint = torch.load(sys.argv[1], map_location="cpu", weights_only=True)
    truth = pd.read_csv(sys.argv[2])
    final = checkpoint["metrics"]["final"]
    per_category = pd.DataFrame(final["categories"]).merge(truth, on="category")
    table = per_category.groupby("modality")[list(LAYERS)].mean()
    table.insert(0, "categories", per_category.groupby("modality").size())
    print(f"validation clips: {final['n_val']}, training clips: {final['n_train']}")
    print("overall: " + ", ".join(f"{name} {final['val'][name]:.3f}" for name in LAYERS))
    print(table.round(3).to_string())
    for modality in ("audio", "visual"):
        n = int((truth["modality"] == modality).sum())
        print(f"chance for the other modality's layer on {modality}-only categories: 1/{n} = {1 / n:.3f}")


if __name__ == "__main__":
    main()
