"""Peak memory of `avaudit bias` over manifests of 1,000 and 20,000 rows: it must not grow with them.

    python benchmarks/memory.py [--rows 1000 20000] [--clips 4]

Each manifest is a `path,label` CSV whose rows are the same few sample clips under new ids
(symbolic links named v0000000.mp4, v0000001.mp4, ...). Each size runs as its own CLI process
with an empty cache, so both decode the same clips (a clip listed many times is decoded once)
and differ only in the rows they carry. Prints each run's peak RSS and their ratio.
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
    parser.add_argument("--rows", type=int, nargs=2, default=[1_000, 20_000])
    parser.add_argument("--clips", type=int, default=4)
    args = parser.parse_args()
    categories = sorted(p for p in (REPO / "sample_videos").iterdir() if p.is_dir())
    clips = [sorted(folder.glob("*.mp4"))[0] for folder in categories[: args.clips]]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for rows in args.rows:
            manifest = write_manifest(tmp / f"rows{rows}", clips, rows)
            env = {**os.environ, "AVAUDIT_CACHE_DIR": str(tmp / f"cache{rows}")}  # empty: decode anew
            wall, rss, _ = run_avaudit(["bias", str(manifest), "--device", "cpu", "--out", str(tmp / f"out{rows}")],
                                       tmp, env)
            results[rows] = rss, wall
    print(f"`avaudit bias` over a CSV of the same {len(clips)} clips under new ids, empty cache each")
    for rows, (rss, wall) in results.items():
        print(f"{rows:7,d} rows  peak RSS {rss:7.1f} MiB  ({wall:5.1f} s)")
    small, large = (results[rows][0] for rows in args.rows)
    print(f"peak RSS {args.rows[1]:,} / {args.rows[0]:,} rows = {large / small:.3f}")


if __name__ == "__main__":
    main()
