"""Sound localization on the planted instant clips: does the heat peak where and when the event is?

    python benchmarks/planted_localization.py PLANTED [--model MODEL.pt]

Runs `avaudit localize` (the library function) on every instant clip of a planted set. Temporal hit:
the strongest response's time is within 0.5 s of the planted event's start. Spatial hit: at that
strongest step, the planted object's centre lies inside the response map's strongest cell.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import decord
import numpy as np
import pandas as pd

from avaudit.localize import localize
from avaudit.options import DEFAULT_MODEL


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("planted", type=Path)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    args = parser.parse_args()
    clips = pd.read_csv(args.planted / "clips.csv")
    instant = clips[clips["modality"] == "instant"]
    temporal, spatial = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for row in instant.itertuples(index=False):
            result = localize(args.planted / row.path, model=args.model, out=Path(tmp))
            t0 = float(str(row.event_times).split(";")[0])
            temporal.append(abs(result["peak_time"] - t0) <= 0.5)
            x, y = result["peak_xy_fraction"]
            cell_w, cell_h = result["cell_fraction"]
            height, width = decord.VideoReader(str(args.planted / row.path))[0].shape[:2]
            spatial.append(abs(row.object_x / width - x) <= cell_w / 2 and abs(row.object_y / height - y) <= cell_h / 2)
    print(f"instant clips: {len(instant)}; heat peak within 0.5 s of the event: {sum(temporal)} "
          f"({100 * np.mean(temporal):.0f}%); object centre in the peak cell: {sum(spatial)} "
          f"({100 * np.mean(spatial):.0f}%)")


if __name__ == "__main__":
    main()
