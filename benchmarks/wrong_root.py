"""Every audit command on a Kinetics-400 validation CSV of the real size (19,906 rows) with a wrong --root.

    python benchmarks/wrong_root.py [--repeats N]

The CSV is made from the release's 300-row head (tests/bigkinetics.py: the release's byte layout, an id
per row, 400 labels). The root is an empty folder, so every row must come back as a `missing file` in
<command>_skipped.csv, the run must exit 1 and print the found-files line. Prints each command's wall time
(interpreter start-up included) and peak resident memory, one fresh process per run, shipped model.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from avaudit_process import measure_avaudit  # noqa: E402
from bigkinetics import write_big_kinetics  # noqa: E402

COMMANDS = {"bias": [], "predict": [], "missing-labels": [], "retarget": ["--keep", "audiovisual"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = write_big_kinetics(tmp / "kinetics_400_val.csv")
        (tmp / "wrong").mkdir()
        env = {**os.environ, "AVAUDIT_CACHE_DIR": str(tmp / "cache"), "COLUMNS": "300"}
        measure_avaudit(["bias", str(src), "--root", str(tmp / "wrong"), "--out", str(tmp / "warm")], env)  # fills the
        # checkpoint's cached fields, as any earlier run with the model has
        print(f"{'command':16} {'exit':>4} {'wall s (each run)':>24} {'peak MiB':>9}  skipped rows")
        for command, extra in COMMANDS.items():
            out = tmp / command
            target = ["--out", str(out / "subset.csv")] if command == "retarget" else ["--out", str(out)]
            runs = [measure_avaudit([command, str(src), "--root", str(tmp / "wrong"), *target, *extra], env)
                    for _ in range(args.repeats)]
            code, _, _, output = runs[-1]
            listed = out / "bias" / "bias_skipped.csv" if command == "retarget" else \
                out / f"{command.replace('-', '_')}_skipped.csv"
            rows = listed.read_text().count("\n") - 1
            line = next((x for x in output.splitlines() if "files found under" in x), "(no found-files line)")
            print(f"{command:16} {code:>4} {' '.join(f'{r[1]:.2f}' for r in runs):>24} "
                  f"{max(r[2] for r in runs):>9.0f}  {rows:,}")
        print(line.replace(str(tmp), "$TMP"))
        load = os.getloadavg()[0]
        print(f"(load average {load:.1f} on {os.cpu_count()} CPUs while measuring)")


if __name__ == "__main__":
    main()
