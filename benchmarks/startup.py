"""Start-up: wall time of `avaudit --help` and `avaudit bias --help`, median of several runs.

    python benchmarks/startup.py [--runs 7]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def wall(command: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    base = wall([sys.executable, "-c", "pass"], args.runs)
    print(f"python itself: {base:.3f} s (median of {args.runs})")
    for command in (["--help"], ["bias", "--help"]):
        seconds = wall([sys.executable, "-m", "avaudit", *command], args.runs)
        print(f"avaudit {' '.join(command):12s} {seconds:.3f} s")


if __name__ == "__main__":
    main()
