"""The report of a 200,000-video audit: page size, build time, and how long headless Chromium takes to draw it.

    python benchmarks/report_scale.py [--videos N] [--skipped N] [--runs 3]

Writes a synthetic output folder (tests/bigaudit.py: bias, missing-labels, predict, retarget and a
skipped.csv, a row per video), builds report.html, and times `chromium --headless --screenshot` of it
(start-up included) against the same Chromium drawing an empty page.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from bigaudit import write_big_audit  # noqa: E402

from avaudit.report import build_report  # noqa: E402

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1280,3000"]


def draw(page: Path, work: Path, run: int) -> float:
    started = time.perf_counter()
    subprocess.run([shutil.which("chromium"), *FLAGS, f"--user-data-dir={work / f'profile{run}'}",
                    f"--screenshot={work / f'shot{run}.png'}", page.as_uri()], capture_output=True, check=True,
                   timeout=300)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=200_000)
    parser.add_argument("--skipped", type=int, default=200_798)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        out = write_big_audit(work / "out", n_videos=args.videos, n_skipped=args.skipped)
        started = time.perf_counter()
        page = build_report(out)
        built = time.perf_counter() - started
        empty = work / "empty.html"
        empty.write_text("<!doctype html><title>empty</title>")
        blank = [draw(empty, work, -i - 1) for i in range(args.runs)]
        drawn = [draw(page, work, i) for i in range(args.runs)]
        size = page.stat().st_size / 2**20
        print(f"{args.videos:,} videos, {args.skipped:,} skipped rows: report.html {size:.2f} MiB, "
              f"built in {built:.1f} s")
        print(f"chromium --screenshot: report {', '.join(f'{s:.1f}' for s in drawn)} s; "
              f"empty page {', '.join(f'{s:.1f}' for s in blank)} s")


if __name__ == "__main__":
    main()
