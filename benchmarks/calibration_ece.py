"""Per-layer expected calibration error of raw and temperature-scaled confidences on a labelled set.

    avaudit predict DATA --model MODEL.pt --confidence raw --export-probs raw.npz
    avaudit predict DATA --model MODEL.pt --confidence calibrated --export-probs calibrated.npz
    python benchmarks/calibration_ece.py raw.npz calibrated.npz
"""
from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from avaudit.audits.calibration import layer_ece


def main() -> None:
    rows = {}
    for path in sys.argv[1:]:
        data = np.load(path)
        known = data["labels"] >= 0
        rows[path] = layer_ece(data["layer_probs"][known], data["labels"][known])
    print(pd.DataFrame(rows).T.round(4).to_string())


if __name__ == "__main__":
    main()
