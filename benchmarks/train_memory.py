"""Peak memory of `avaudit train --epochs 1` over 320 and 1,600 rows: it must not grow with them.

    python benchmarks/train_memory.py [--rows 320 1600] [--preset small] [--memory-budget 0]

Each manifest is a `path,label` CSV whose rows are the clips of sample_videos/ in turn, under new
names (symbolic links v0000000.mp4, ...), labelled with their category; 1,600 rows cycle the 328
clips about five times. Each size trains one epoch per stage as its own CLI process on the CPU, and
prints its peak RSS (the largest of the process and its decoding workers) and the ratio.
--memory-budget 0 (the default here) makes both stream, which is what the figure is about: with
`avaudit train`'s own default (2 GiB), both of these sizes would keep their decoded clips in memory.
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from avaudit_process import run_avaudit, write_manifest

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs=2, default=[320, 1_600])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--memory-budget", default="0", help="GiB, passed to avaudit train")
    parser.add_argument("--workers", default=None, help="passed to avaudit train [default: its own]")
    args = parser.parse_args()
    clips = sorted((REPO / "sample_videos").glob("*/*.mp4"))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for rows in args.rows:
            manifest = write_manifest(tmp / f"rows{rows}", clips, rows)
            command = ["train", str(manifest), "--preset", args.preset, "--epochs", "1", "--device", "cpu",
                       "--memory-budget", args.memory_budget, "--out", str(tmp / f"out{rows}" / "model.pt")]
            if args.workers is not None:
                command += ["--workers", args.workers]
            wall, rss, output = run_avaudit(command, tmp, {**os.environ})
            mode = next((line for line in output.splitlines() if line.startswith("data:")), "data: ?")
            results[rows] = rss, wall, mode
    print(f"`avaudit train --preset {args.preset} --epochs 1 --memory-budget {args.memory_budget}` over a CSV of "
          f"the {len(clips)} sample clips in turn, under new names")
    for rows, (rss, wall, mode) in results.items():
        print(f"{rows:6,d} rows  peak RSS {rss:7.1f} MiB  ({wall:6.1f} s)  {mode[:110]}")
    small, large = (results[rows][0] for rows in args.rows)
    print(f"peak RSS {args.rows[1]:,} / {args.rows[0]:,} rows = {large / small:.3f}")


if __name__ == "__main__":
    main()
