"""What the quality signals add to a cold audit: `bias` of sample_videos/ with and without them, side by side.

    python benchmarks/quality_overhead.py [--rounds N] [--data DIR] [--workers N]

Each round runs `avaudit bias DATA` twice, each time with an empty logit cache of its own: once measuring
every clip's signals, signature and file digest as it decodes it (the default), once with AVAUDIT_SIGNALS=0,
which leaves them out. The two alternate which goes first from round to round, so a neighbour's load falls
on both alike. Prints each run's wall time and CPU time (the command and its decoding workers), the best of
each, and the overhead; the target is at most 10% of wall time.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET = 0.10


def cold_bias(data: Path, folder: Path, *, signals: bool, workers: int | None) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process and its workers) of one `avaudit bias DATA`, cache empty."""
    env = {**os.environ, "AVAUDIT_CACHE_DIR": str(folder / "cache"), "AVAUDIT_SIGNALS": "1" if signals else "0"}
    args = [sys.executable, "-m", "avaudit", "bias", str(data), "--device", "cpu", "--out", str(folder / "out"),
            *(["--workers", str(workers)] if workers is not None else [])]
    started = time.perf_counter()
    process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)  # rusage of the command and the workers it reaped
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) not in (0, 1):  # 1: some clips skipped, still a whole audit
        raise SystemExit(f"avaudit bias exited {os.waitstatus_to_exitcode(status)}:\n{output}")
    return wall, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--data", type=Path, default=REPO / "sample_videos")
    parser.add_argument("--workers", type=int, default=None, help="decoding workers [default: avaudit's]")
    args = parser.parse_args()
    times: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for signals in ((False, True) if round_ % 2 == 0 else (True, False)):
                folder = Path(tmp) / f"r{round_}-{'on' if signals else 'off'}"
                wall, cpu = cold_bias(args.data, folder, signals=signals, workers=args.workers)
                times[signals].append((wall, cpu))
                print(f"round {round_ + 1} signals {'on ' if signals else 'off'}: {wall:7.1f} s wall, "
                      f"{cpu:7.1f} s CPU", flush=True)
    off_wall, on_wall = min(t[0] for t in times[False]), min(t[0] for t in times[True])
    off_cpu, on_cpu = (sum(t[1] for t in times[mode]) / len(times[mode]) for mode in (False, True))
    # On a machine others load, wall time swings by more than the signals cost; CPU time does not.
    print(f"wall, best of {args.rounds}: without signals {off_wall:.1f} s, with {on_wall:.1f} s: "
          f"{on_wall / off_wall - 1:+.1%} (target at most {TARGET:.0%}); CPU, mean of {args.rounds}: without "
          f"{off_cpu:.1f} s, with {on_cpu:.1f} s: {on_cpu / off_cpu - 1:+.1%}")


if __name__ == "__main__":
    main()
